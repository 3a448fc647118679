"""Google's Cloud Storage contract on a local directory: ``gs://BUCKET/PATH`` is the file
``ROOT/BUCKET/PATH`` under the storage root the operator configures (``--storage-root``).

Paths are confined to the root: a URI whose path has an empty, ``.`` or ``..`` segment, a
backslash or a NUL is refused, and the file (after following every symbolic link) must lie
under the root, so a link pointing out of it is refused too. Files are read and written in
Google's data formats: ``JSON`` (the protobuf JSON mapping) and ``PROTO_TEXT`` (the text
format); OptimizeToursUri's files go by their name (see :func:`format_of_name`). A problem
with a URI or a file is an :class:`~engine.errors.InvalidModelError` naming the request field;
a server without a storage root answers FAILED_PRECONDITION
(:class:`~rpc.errors.StorageNotConfiguredError`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final, TypeVar

from google.protobuf import json_format, text_format
from google.protobuf.message import DecodeError, Message

from engine.errors import FieldViolation, InvalidModelError
from rpc.errors import StorageNotConfiguredError
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["BINARY", "MAX_FILE_BYTES", "Storage", "format_of_name"]

_M = TypeVar("_M", bound=Message)

BINARY: Final = -1
"""A file format beyond Google's DataFormat: binary protobuf (OptimizeToursUri, by name)."""

MAX_FILE_BYTES: Final = 256 * 1024 * 1024
"""Largest file read."""

_SCHEME: Final = "gs://"


def format_of_name(uri: str) -> int:
    """OptimizeToursUri's files: ``.json`` is JSON, ``.txtpb``, ``.textproto`` or ``.pbtxt``
    PROTO_TEXT, anything else binary protobuf."""
    lower = uri.lower()
    if lower.endswith(".json"):
        return pb.JSON
    if lower.endswith((".txtpb", ".textproto", ".pbtxt")):
        return pb.PROTO_TEXT
    return BINARY


def _bad(field: str, message: str) -> InvalidModelError:
    return InvalidModelError([FieldViolation(field, message)])


class Storage:
    """Files under ``root`` (None: the server has no storage root)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root).resolve() if root else None

    def path(self, uri: str, field: str) -> Path:
        """The file of ``gs://BUCKET/PATH``, confined to the root."""
        if self.root is None:
            raise StorageNotConfiguredError(
                f"{field}: this server has no storage root for gs:// URIs "
                "(start it with --storage-root DIR)"
            )
        if not uri.startswith(_SCHEME):
            raise _bad(field, f"must be a gs://BUCKET/PATH URI, got {uri!r}")
        parts = uri[len(_SCHEME) :].split("/")
        if len(parts) < 2:
            raise _bad(field, f"must be gs://BUCKET/PATH (a bucket and an object), got {uri!r}")
        for part in parts:
            if part in ("", ".", "..") or "\\" in part or "\0" in part:
                raise _bad(field, f"has an invalid path segment {part!r}: {uri!r}")
        path = self.root.joinpath(*parts)
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise _bad(field, f"leaves the storage root (a symbolic link?): {uri!r}")
        return resolved

    def read(self, uri: str, fmt: int, message: type[_M], field: str) -> _M:
        """The message in a file, in format ``fmt`` (DataFormat or :data:`BINARY`)."""
        path = self.path(uri, field)
        if fmt not in (pb.JSON, pb.PROTO_TEXT, BINARY):
            raise _bad(field, f"unsupported data format {fmt}; use JSON or PROTO_TEXT")
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise _bad(field, f"no such object {uri!r}") from None
        except OSError as exc:
            raise _bad(field, f"cannot read {uri!r}: {exc.strerror}") from None
        if len(data) > MAX_FILE_BYTES:
            raise _bad(field, f"{uri!r} is larger than {MAX_FILE_BYTES} bytes")
        result = message()
        try:
            if fmt == pb.JSON:
                json_format.Parse(data.decode("utf-8"), result)
            elif fmt == pb.PROTO_TEXT:
                text_format.Parse(data.decode("utf-8"), result)
            else:
                result.ParseFromString(data)
        except (json_format.ParseError, text_format.ParseError, DecodeError) as exc:
            what = f"{uri!r} is not a valid {_name(fmt)} {message.__name__}: {exc}"
            raise _bad(field, what) from None
        except UnicodeDecodeError:
            raise _bad(field, f"{uri!r} is not UTF-8 text") from None
        return result

    def write(self, uri: str, fmt: int, message: Message, field: str) -> None:
        """Write ``message`` to a file (atomically: a temporary file renamed), creating its
        directories."""
        path = self.path(uri, field)
        if fmt == pb.JSON:
            data = json_format.MessageToJson(message).encode("utf-8")
        elif fmt == pb.PROTO_TEXT:
            data = text_format.MessageToString(message).encode("utf-8")
        elif fmt == BINARY:
            data = message.SerializeToString()
        else:
            raise _bad(field, f"unsupported data format {fmt}; use JSON or PROTO_TEXT")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.parent.resolve().is_relative_to(self.path_root()):
                raise _bad(field, f"leaves the storage root (a symbolic link?): {uri!r}")
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".routeopt-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise _bad(field, f"cannot write {uri!r}: {exc.strerror or exc}") from None

    def path_root(self) -> Path:
        assert self.root is not None
        return self.root


def _name(fmt: int) -> str:
    names: dict[int, str] = {pb.JSON: "JSON", pb.PROTO_TEXT: "PROTO_TEXT"}
    return names.get(fmt, "binary protobuf")
