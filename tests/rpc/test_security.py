"""Transport and identity on in-process servers (:func:`rpc.server.build_server` with an executor
that runs nothing, so operations stay queued): API keys, tenant isolation, quotas, TLS and
mutual TLS, health and reflection, and that no key is ever stored or logged in clear.

The start-up refusal to listen beyond loopback and a whole server with TLS and keys are in
``test_security_e2e.py``; the key store and the ``routeopt keys`` commands in
``test_keys.py``."""

from __future__ import annotations

import functools
import logging
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from rpc.auth import CREDENTIALS_UNAVAILABLE_MESSAGE, UNAUTHENTICATED_MESSAGE
from rpc.client import Credentials, connect
from rpc.config import ServerConfig
from rpc.keys import KeyStore, TenantQuota
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc
from rpc.server import Server, bind, build_server
from tests.rpc.test_server_e2e import ROOT, small_request
from tests.rpc.tls_certs import Pki, make_pki, make_server_cert

LAYOUT_STUDY = ROOT / "examples" / "depot_layouts_study.json"


class Stuck:
    """A synchronous solve that runs until it is cancelled."""

    id = 0

    def __init__(self) -> None:
        self.cancel_requested = False
        self._callbacks: list[Callable[[Any], object]] = []

    def cancel(self) -> None:
        self.cancel_requested = True
        for fn in self._callbacks:
            fn(self)

    def done(self) -> bool:
        return self.cancel_requested

    def result(self, timeout: float | None = None) -> Any:
        raise CancelledError

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self._callbacks.append(fn)


class NoExecutor:
    """Runs nothing: every operation stays queued (all that isolation and quotas need), and a
    synchronous solve runs until its call ends."""

    max_workers = 0
    max_queued = 0
    running_count = 0
    queued_count = 0

    def warm_up(self) -> None:
        pass

    def submit(self, model: object, options: object, **kwargs: object) -> Stuck:
        return Stuck()

    def shutdown(self, cancel_running: bool = False) -> None:
        pass


@dataclass
class Running:
    """An in-process server listening on 127.0.0.1."""

    built: Server
    port: int
    keys: KeyStore
    tls: Credentials = field(default_factory=Credentials)
    """What a client needs beyond a key (TLS, a client certificate)."""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, key: str | None = None, **tls: Any) -> Client:
        fields = {**self.tls.__dict__, **tls, "api_key": key}
        return Client(connect(self.target, Credentials(**fields)))


class Client:
    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.stub = pb_grpc.RouteOptimizationStub(channel)
        self.ops = operations_pb2_grpc.OperationsStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def submit(self, request: pb.OptimizeToursRequest | None = None) -> str:
        operation = self.stub.OptimizeToursLongRunning(request or small_request(), timeout=10)
        return str(operation.name)

    def get(self, name: str) -> operations_pb2.Operation:
        return self.ops.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5)

    def list(self, flt: str = "") -> list[str]:
        request = operations_pb2.ListOperationsRequest(filter=flt, page_size=1000)
        return [op.name for op in self.ops.ListOperations(request, timeout=5).operations]

    def cancel(self, name: str) -> None:
        self.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)

    def delete(self, name: str) -> None:
        self.ops.DeleteOperation(operations_pb2.DeleteOperationRequest(name=name), timeout=5)

    def wait(self, name: str) -> operations_pb2.Operation:
        request = operations_pb2.WaitOperationRequest(name=name)
        request.timeout.FromSeconds(1)
        return self.ops.WaitOperation(request, timeout=5)

    def close(self) -> None:
        self.channel.close()


def serve(data_dir: Path, **config: Any) -> Running:
    """Build, bind and start a server on 127.0.0.1 (port 0) with ``config``."""
    cfg = ServerConfig(port=0, osm="none", data_dir=str(data_dir), workers=1, **config)
    built = build_server(cfg, executor=NoExecutor())  # type: ignore[arg-type]
    port = bind(built.grpc_server, cfg, built.credentials)
    built.grpc_server.start()
    built.jobs.start()
    built.health.set("", health_pb2.HealthCheckResponse.SERVING)
    assert built.keys is not None
    return Running(built, port, built.keys)


def stop(running: Running) -> None:
    running.built.jobs.stop()
    running.built.grpc_server.stop(None).wait()
    running.built.store.close()
    running.keys.close()


def failure(call: Any) -> grpc.RpcError:
    """The RpcError of ``call()``."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def status_of(error: grpc.RpcError) -> status_pb2.Status:
    """The full status: code, message and details (from the trailer when there is one)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
        return status_pb2.Status(code=code.value[0], message=error.details())  # type: ignore[attr-defined]
    return status


@dataclass
class Keys:
    acme: str
    globex: str
    tiny: str
    revoked: str


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secured") / "data"


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> Keys:
    store = KeyStore(data_dir)
    try:
        revoked = store.create("acme", label="old").key
        assert store.revoke(revoked.split("_")[1])
        store.set_quota("tiny", TenantQuota(max_active=2, max_stored=3))
        return Keys(
            acme=store.create("acme").key,
            globex=store.create("globex").key,
            tiny=store.create("tiny").key,
            revoked=revoked,
        )
    finally:
        store.close()


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: Keys) -> Iterator[Running]:
    """Plaintext on loopback, with keys (so every call needs one)."""
    running = serve(data_dir)
    yield running
    stop(running)


# -- API keys ----------------------------------------------------------------------------------


def _unauthenticated_calls(client: Client) -> list[Any]:
    layouts = pb.EvaluateDepotLayoutsRequest()
    return [
        lambda: client.submit(),
        lambda: client.stub.OptimizeTours(small_request(), timeout=5),
        lambda: list(client.stub.OptimizeToursStream(small_request(), timeout=5)),
        lambda: client.stub.BatchOptimizeTours(pb.BatchOptimizeToursRequest(), timeout=5),
        lambda: client.stub.EvaluateDepotLayouts(layouts, timeout=5),
        lambda: client.stub.ComputeMatrix(pb.ComputeMatrixRequest(), timeout=5),
        lambda: client.get("operations/x"),
        lambda: client.list(),
        lambda: client.wait("operations/x"),
        lambda: client.cancel("operations/x"),
        lambda: client.delete("operations/x"),
    ]


@pytest.mark.parametrize(
    "metadata",
    [
        [],
        [("x-goog-api-key", "")],
        [("x-goog-api-key", "not-a-key")],
        [("x-goog-api-key", f"ro_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}")],
        [("authorization", f"Bearer ro_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}")],
        [("authorization", "Basic dXNlcjpwYXNz")],
    ],
    ids=["none", "empty", "malformed", "unknown", "unknown-bearer", "basic"],
)
def test_a_call_without_a_valid_key_is_unauthenticated(
    server: Running, metadata: list[tuple[str, str]]
) -> None:
    channel = grpc.insecure_channel(server.target)
    try:
        intercepted = grpc.intercept_channel(channel, _Metadata(metadata))
        client = Client(intercepted)
        for call in _unauthenticated_calls(client):
            error = failure(call)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            assert error.details() == UNAUTHENTICATED_MESSAGE  # type: ignore[attr-defined]
    finally:
        channel.close()


def test_revoked_key_and_a_wrong_secret_are_unauthenticated_like_no_key(
    server: Running, keys: Keys
) -> None:
    wrong_secret = keys.acme[: -len("x")] + ("A" if keys.acme[-1] != "A" else "B")
    errors = []
    for key in (keys.revoked, wrong_secret, None):
        client = server.client(key)
        try:
            errors.append(failure(lambda c=client: c.list()))  # type: ignore[misc]
        finally:
            client.close()
    assert {(e.code(), e.details()) for e in errors} == {  # type: ignore[attr-defined]
        (grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
    }


def test_a_revoked_key_stops_working_at_once(server: Running) -> None:
    new = server.keys.create("acme")
    client = server.client(new.key)
    try:
        assert isinstance(client.list(), list)
        assert server.keys.revoke(new.id)
        error = failure(client.list)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    finally:
        client.close()


class _Metadata(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Sends ``metadata`` with every call (as a client might, by hand)."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = metadata

    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        from rpc.client import _CallDetails

        new = _CallDetails(
            details.method, details.timeout, self.metadata, None, None, None
        )  # fmt: skip
        return continuation(new, request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call


def test_both_headers_name_the_tenant(server: Running, keys: Keys) -> None:
    channel = grpc.insecure_channel(server.target)
    try:
        bearer = Client(
            grpc.intercept_channel(channel, _Metadata([("authorization", f"Bearer {keys.acme}")]))
        )
        name = bearer.submit()
        google = server.client(keys.acme)
        assert name in google.list()
        assert google.get(name).name == name
        google.close()
        both_differ = Client(
            grpc.intercept_channel(
                channel,
                _Metadata(
                    [("authorization", f"Bearer {keys.acme}"), ("x-goog-api-key", keys.globex)]
                ),
            )
        )
        error = failure(both_differ.list)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    finally:
        channel.close()


# -- tenants -----------------------------------------------------------------------------------


def _not_found(call: Any, name: str) -> tuple[int, str, list[Any]]:
    """The status of a NOT_FOUND ``call()``, with ``name`` replaced by NAME (to compare)."""
    status = status_of(failure(call))
    return status.code, status.message.replace(name, "NAME"), list(status.details)


def test_another_tenants_operations_are_not_found_like_names_that_never_existed(
    server: Running, keys: Keys
) -> None:
    acme, globex = server.client(keys.acme), server.client(keys.globex)
    try:
        queued = acme.submit()
        done = acme.submit()
        acme.cancel(done)
        assert acme.get(done).done
        batch_request = pb.BatchOptimizeToursRequest(requests=[small_request(), small_request()])
        batch = acme.stub.BatchOptimizeTours(batch_request, timeout=10).name
        batch_md = pb.BatchOptimizeToursMetadata()
        acme.get(batch).metadata.Unpack(batch_md)
        item = batch_md.operations[0]
        study = json_format.Parse(LAYOUT_STUDY.read_text(), pb.EvaluateDepotLayoutsRequest())
        layouts = acme.stub.EvaluateDepotLayouts(study, timeout=10).name
        mine = [queued, done, batch, *batch_md.operations, layouts]
        assert set(mine) <= set(acme.list())

        never = f"operations/{secrets.token_hex(16)}"
        calls = {"get": globex.get, "wait": globex.wait, "cancel": globex.cancel}
        calls["delete"] = globex.delete
        for name in mine:
            for what, call in calls.items():
                foreign = _not_found(functools.partial(call, name), name)
                unknown = _not_found(functools.partial(call, never), never)
                assert foreign[0] == code_pb2.NOT_FOUND, (what, name)
                assert foreign == unknown, (what, name)
        assert not set(mine) & set(globex.list())
        assert globex.list(f"batch={batch}") == []
        assert globex.list("kind=layouts") == []
        # nothing happened to them
        assert not acme.get(queued).done
        assert not acme.get(item).done
        assert acme.get(done).done
    finally:
        acme.close()
        globex.close()


def test_page_tokens_page_through_ones_own_operations_only(server: Running) -> None:
    one, two = server.keys.create("pager-one"), server.keys.create("pager-two")
    owner, other = server.client(one.key), server.client(two.key)
    try:
        names = [owner.submit() for _ in range(3)]
        other.submit()
        seen, token, tokens = [], "", []
        while True:
            request = operations_pb2.ListOperationsRequest(page_size=1, page_token=token)
            page = owner.ops.ListOperations(request, timeout=5)
            seen += [op.name for op in page.operations]
            token = page.next_page_token
            if not token:
                break
            tokens.append(token)
        assert seen == names
        assert len(tokens) == 2
        assert not any(t.isdigit() for t in tokens)  # no shared counter shows
        request = operations_pb2.ListOperationsRequest(page_size=1, page_token=tokens[0])
        error = failure(lambda: other.ops.ListOperations(request, timeout=5))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert "page_token" in error.details()  # type: ignore[attr-defined]
    finally:
        owner.close()
        other.close()


def test_operation_names_are_unguessable(server: Running, keys: Keys) -> None:
    client = server.client(keys.globex)
    try:
        names = [client.submit() for _ in range(3)]
    finally:
        client.close()
    for name in names:
        assert re.fullmatch(r"operations/[0-9a-f]{32}", name)  # 128 bits
    assert len(set(names)) == 3


# -- quotas ------------------------------------------------------------------------------------


def _details(error: grpc.RpcError) -> dict[str, Any]:
    status = status_of(error)
    found: dict[str, Any] = {}
    for detail in status.details:
        for message in (
            error_details_pb2.RetryInfo(),
            error_details_pb2.QuotaFailure(),
            error_details_pb2.ErrorInfo(),
        ):
            if detail.Is(message.DESCRIPTOR):
                detail.Unpack(message)
                found[type(message).__name__] = message
    return found


def test_tenant_quotas_answer_resource_exhausted(server: Running, keys: Keys) -> None:
    tiny, acme = server.client(keys.tiny), server.client(keys.acme)
    try:
        first, second = tiny.submit(), tiny.submit()
        # active: 2 queued of 2
        error = failure(tiny.submit)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        details = _details(error)
        assert details["RetryInfo"].retry_delay.seconds > 0
        assert details["QuotaFailure"].violations[0].subject == "tenant:tiny"
        assert details["ErrorInfo"].metadata["limit"] == "active"
        acme.submit()  # another tenant is not held back
        two_items = pb.BatchOptimizeToursRequest(requests=[small_request(), small_request()])
        tiny.cancel(first)  # 1 active, 2 stored
        error = failure(lambda: tiny.stub.BatchOptimizeTours(two_items, timeout=5))
        assert _details(error)["ErrorInfo"].metadata["limit"] == "active"  # all or nothing
        third = tiny.submit()  # 2 active, 3 stored
        tiny.cancel(third)
        # stored: 3 of 3; retrying does not help, deleting does
        error = failure(tiny.submit)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        details = _details(error)
        assert "RetryInfo" not in details
        assert details["ErrorInfo"].metadata == {"limit": "stored", "quota": "3"}
        assert "DeleteOperation" in error.details()  # type: ignore[attr-defined]
        tiny.delete(first)
        assert tiny.submit()
        assert sorted(tiny.list()) != []
        del second
    finally:
        tiny.close()
        acme.close()


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_tenant_quota_of_synchronous_solves(tmp_path: Path) -> None:
    running = serve(tmp_path / "data", default_quota=TenantQuota(max_solves=1))
    try:
        acme, globex = running.keys.create("acme"), running.keys.create("globex")
        a, g = running.client(acme.key), running.client(globex.key)
        slots = running.built.solve_slots
        assert slots is not None
        first = a.stub.OptimizeTours.future(small_request(), timeout=3)
        eventually(lambda: slots.count("acme") == 1)  # the first solve holds acme's slot
        error = failure(lambda: list(a.stub.OptimizeToursStream(small_request(), timeout=2)))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        details = _details(error)
        assert details["RetryInfo"].retry_delay.seconds >= 1
        assert details["ErrorInfo"].metadata == {"limit": "solves", "quota": "1"}
        # another tenant has slots of its own: its solve runs (until its deadline)
        other = failure(lambda: g.stub.OptimizeTours(small_request(), timeout=1))
        assert other.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        # the first call ends (deadline): its slot is free again
        assert failure(first.result).code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        eventually(lambda: slots.count("acme") == 0)  # the server saw the call end
        again = failure(lambda: a.stub.OptimizeTours(small_request(), timeout=1))
        assert again.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        eventually(lambda: slots.count("acme") == slots.count("globex") == 0)
        a.close()
        g.close()
    finally:
        stop(running)


def test_default_quota_applies_to_tenants_without_their_own(tmp_path: Path) -> None:
    running = serve(tmp_path / "data", default_quota=TenantQuota(max_active=1))
    try:
        own = running.keys.create("big")
        running.keys.set_quota("big", TenantQuota(max_active=3))
        small = running.keys.create("small")
        big_client, small_client = running.client(own.key), running.client(small.key)
        small_client.submit()
        assert failure(small_client.submit).code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        for _ in range(3):
            big_client.submit()
        assert failure(big_client.submit).code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        big_client.close()
        small_client.close()
    finally:
        stop(running)


# -- health, reflection, secrets ---------------------------------------------------------------


def test_health_answers_without_credentials_and_reflection_needs_a_key(
    server: Running, keys: Keys
) -> None:
    anonymous = server.client()
    try:
        answer = anonymous.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        error = failure(lambda: _list_services(anonymous.channel))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    finally:
        anonymous.close()
    client = server.client(keys.acme)
    try:
        assert "routeopt.v1.RouteOptimization" in _list_services(client.channel)
    finally:
        client.close()


def _list_services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]), timeout=5)
    return [s.name for r in responses for s in r.list_services_response.service]


def test_keys_are_never_stored_or_logged_in_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    running = serve(tmp_path / "data")
    try:
        new = running.keys.create("acme", label="ci")
        revoked = running.keys.create("acme")
        running.keys.revoke(revoked.id)
        good, bad = running.client(new.key), running.client(revoked.key)
        good.submit()
        good.list()
        failure(bad.list)
        wrong = running.client(new.key[:-4] + "AAAA")
        failure(wrong.list)
        for client in (good, bad, wrong):
            client.close()
    finally:
        stop(running)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    logged = caplog.text
    assert "UNAUTHENTICATED" in logged  # the refusals were logged ...
    for key in (new.key, revoked.key):
        secret = key.split("_", 2)[2]
        assert secret.encode() not in stored
        assert secret not in logged  # ... without the keys
        assert secret[:12] not in logged
    assert new.id.encode() in stored  # (the store was read)


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ("acme", "globex", "not a tenant!"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Running]:
    """TLS, with keys."""
    running = serve(
        tmp_path_factory.mktemp("tls") / "data", tls_cert=pki.server_cert, tls_key=pki.server_key
    )
    running.tls = Credentials(ca_file=pki.ca)
    yield running
    stop(running)


def test_tls_with_the_right_ca_and_a_key_works(tls_server: Running) -> None:
    key = tls_server.keys.create("acme").key
    client = tls_server.client(key)
    try:
        assert client.submit() in client.list()
    finally:
        client.close()


def test_tls_fails_with_a_wrong_ca_or_without_tls(tls_server: Running, pki: Pki) -> None:
    key = tls_server.keys.create("acme").key
    wrong_ca = tls_server.client(key, ca_file=pki.other_ca)
    plaintext = Client(connect(tls_server.target, Credentials(api_key=key)))
    try:
        for client in (wrong_ca, plaintext):
            error = failure(lambda c=client: c.list())  # type: ignore[misc]
            assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            error = failure(
                lambda c=client: c.health.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[misc]
            )
            assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        wrong_ca.close()
        plaintext.close()


def test_a_renewed_certificate_is_used_without_a_restart(tmp_path: Path, pki: Pki) -> None:
    """The server's files are replaced by a certificate of another CA: new connections get it."""
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki.server_cert, cert)
    shutil.copy(pki.server_key, key)
    running = serve(tmp_path / "data", tls_cert=str(cert), tls_key=str(key))
    try:
        old, new = running.client(ca_file=pki.ca), running.client(ca_file=pki.other_ca)
        assert isinstance(old.list(), list)
        assert failure(new.list).code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        old.close()
        new.close()
        renewed_cert, renewed_key = make_server_cert(pki.directory, "renewed", "other-ca")
        cert.write_text("half-written")  # a renewal in progress: the old files stay in use
        old = running.client(ca_file=pki.ca)
        assert isinstance(old.list(), list)
        old.close()
        shutil.copy(renewed_key, key)
        shutil.copy(renewed_cert, cert)
        old, new = running.client(ca_file=pki.ca), running.client(ca_file=pki.other_ca)
        assert isinstance(new.list(), list)
        assert failure(old.list).code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        old.close()
        new.close()
    finally:
        stop(running)


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Running]:
    """Mutual TLS, no keys: the certificate names the tenant."""
    running = serve(
        tmp_path_factory.mktemp("mtls") / "data",
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        tls_client_ca=pki.ca,
    )
    running.tls = Credentials(ca_file=pki.ca)
    yield running
    stop(running)


def test_mtls_refuses_a_client_without_a_certificate(mtls_server: Running, pki: Pki) -> None:
    client = mtls_server.client()  # TLS, right CA, no client certificate
    try:
        for call in (
            client.list,
            lambda: client.health.Check(health_pb2.HealthCheckRequest(), timeout=5),
        ):
            assert failure(call).code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        client.close()
    other_cert, other_key = pki.client("acme")
    del other_cert, other_key


def test_mtls_certificate_names_the_tenant(mtls_server: Running, pki: Pki) -> None:
    cert, key = pki.client("acme")
    acme = mtls_server.client(cert_file=cert, key_file=key)
    cert, key = pki.client("globex")
    globex = mtls_server.client(cert_file=cert, key_file=key)
    try:
        health = acme.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        name = acme.submit()
        assert name in acme.list()
        assert name not in globex.list()
        assert failure(lambda: globex.get(name)).code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        # a key, when sent, decides the tenant (and must be valid)
        globex_key = mtls_server.keys.create("globex").key
        cert, key = pki.client("acme")
        acme_cert_globex_key = mtls_server.client(globex_key, cert_file=cert, key_file=key)
        assert name not in acme_cert_globex_key.list()
        acme_cert_globex_key.close()
        bad_key = mtls_server.client("ro_bad", cert_file=cert, key_file=key)
        assert failure(bad_key.list).code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        bad_key.close()
    finally:
        acme.close()
        globex.close()


def test_mtls_certificate_whose_name_is_not_a_tenant_is_unauthenticated(
    mtls_server: Running, pki: Pki
) -> None:
    cert, key = pki.client("not a tenant!")
    client = mtls_server.client(cert_file=cert, key_file=key)
    try:
        error = failure(client.list)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert error.details() == UNAUTHENTICATED_MESSAGE  # type: ignore[attr-defined]
    finally:
        client.close()


def test_a_key_store_that_fails_lets_nobody_in(tmp_path: Path) -> None:
    running = serve(tmp_path / "data")
    try:
        key = running.keys.create("acme").key
        client = running.client(key)
        assert isinstance(client.list(), list)

        def broken(key: str) -> tuple[str, str] | None:
            raise sqlite3.OperationalError("disk I/O error")

        running.keys.verify = broken  # type: ignore[method-assign]
        error = failure(client.list)
        assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert error.details() == CREDENTIALS_UNAVAILABLE_MESSAGE  # type: ignore[attr-defined]
        health = client.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        client.close()
    finally:
        stop(running)


# -- without keys: one tenant, as before -------------------------------------------------------


def test_without_keys_every_call_is_the_default_tenant(tmp_path: Path) -> None:
    running = serve(tmp_path / "data")
    try:
        one, other = running.client(), running.client("ro_whatever")
        name = one.submit()
        assert name in other.list()  # no keys: nobody is authenticated, keys are ignored
        assert other.get(name).name == name
        one.close()
        other.close()
        # The first key turns authentication on at the next call
        running.keys.create("acme")
        anonymous = running.client()
        assert failure(anonymous.list).code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        anonymous.close()
    finally:
        stop(running)
