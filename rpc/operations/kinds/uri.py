"""Operations of kind ``uri`` (OptimizeToursUri): an OptimizeToursRequest read from a file, solved
like a ``tours`` operation, its response written to a file (:mod:`rpc.google.storage`).

The request file is read and validated when the call is made (INVALID_ARGUMENT naming
``input.uri``), and read again when the solve starts (a file changed meanwhile is what is
solved; a file that became invalid fails the operation). The response file is written when
the solve ends (a cancelled solve writes its best solution so far); the operation's response
is an OptimizeToursUriResponse naming it. A response that cannot be written fails the operation.
"""

from __future__ import annotations

from google.protobuf.message import Message

from engine.errors import FieldViolation, InvalidModelError
from rpc.convert import FieldConverter
from rpc.convert.settings import check_parent
from rpc.google.storage import format_of_name
from rpc.google.unknown import unhonoured_fields
from rpc.limits import Limits
from rpc.operations.kinds.solve import SolveKind
from rpc.operations.store import JobRecord
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["UriKind"]


class UriKind(SolveKind):
    """Solves the OptimizeToursRequest of a file, writes the response to a file."""

    kind = "uri"
    response_type = pb.OptimizeToursUriResponse
    google_metadata = "OptimizeToursUriMetadata"
    google_response = "OptimizeToursUriResponse"

    def uri_request(self, request: pb.OptimizeToursUriRequest) -> pb.OptimizeToursRequest:
        """The request in the input file, validated (:class:`InvalidModelError` with paths
        under ``input.uri`` for the file, the request's own paths otherwise)."""
        conv = FieldConverter()
        check_parent(conv, request.parent)
        violations = [*unhonoured_fields(request), *conv.violations]
        if not request.output.uri:
            violations.append(FieldViolation("output.uri", "is required"))
        if not request.input.uri:
            violations.append(FieldViolation("input.uri", "is required"))
        if violations:
            raise InvalidModelError(violations)
        storage = self.settings.storage
        storage.path(request.output.uri, "output.uri")  # refused early when it leaves the root
        uri = request.input.uri
        return storage.read(uri, format_of_name(uri), pb.OptimizeToursRequest, "input.uri")

    def check_uri(self, request: pb.OptimizeToursUriRequest, limits: Limits | None = None) -> None:
        """Raise :class:`InvalidModelError` unless the call can be accepted."""
        self.check(self.uri_request(request), limits)

    def tours_request(self, rec: JobRecord) -> pb.OptimizeToursRequest:
        assert rec.request is not None
        return self.uri_request(pb.OptimizeToursUriRequest.FromString(rec.request))

    def respond(self, name: str, response: Message, *, cancelled: bool) -> None:
        rec = self.host.store.get(name)
        assert rec is not None
        assert rec.request is not None
        output = pb.OptimizeToursUriRequest.FromString(rec.request).output.uri
        try:
            self.settings.storage.write(output, format_of_name(output), response, "output.uri")
        except Exception as exc:
            self.fail(name, exc)
            return
        super().respond(name, response, cancelled=cancelled)

    def response(self, rec: JobRecord) -> Message:
        assert rec.request is not None
        request = pb.OptimizeToursUriRequest.FromString(rec.request)
        return pb.OptimizeToursUriResponse(output=request.output)
