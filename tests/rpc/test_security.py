"""API keys, tenant isolation and quotas on in-process servers (:mod:`tests.rpc.secured`):
unauthenticated calls, another tenant's operations, page tokens, quotas, health and reflection,
and that no key is ever stored or logged in clear.

TLS and mutual TLS are in ``test_security_tls.py``; the start-up refusal to listen beyond
loopback and a whole server with TLS and keys in ``test_security_e2e.py``; the key store and
the ``routeopt keys`` commands in ``test_keys.py``."""

from __future__ import annotations

import functools
import logging
import re
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rpc.auth import CREDENTIALS_UNAVAILABLE_MESSAGE, UNAUTHENTICATED_MESSAGE
from rpc.keys import KeyStore, TenantQuota
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.secured import (
    Client,
    Metadata,
    Running,
    details_of,
    eventually,
    failure,
    serve,
    status_of,
    stop,
)
from tests.rpc.test_server_e2e import ROOT, small_request

LAYOUT_STUDY = ROOT / "examples" / "depot_layouts_study.json"


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
        intercepted = grpc.intercept_channel(channel, Metadata(metadata))
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


def test_both_headers_name_the_tenant(server: Running, keys: Keys) -> None:
    channel = grpc.insecure_channel(server.target)
    try:
        bearer = Client(
            grpc.intercept_channel(channel, Metadata([("authorization", f"Bearer {keys.acme}")]))
        )
        name = bearer.submit()
        google = server.client(keys.acme)
        assert name in google.list()
        assert google.get(name).name == name
        google.close()
        both_differ = Client(
            grpc.intercept_channel(
                channel,
                Metadata(
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


def test_tenant_quotas_answer_resource_exhausted(server: Running, keys: Keys) -> None:
    tiny, acme = server.client(keys.tiny), server.client(keys.acme)
    try:
        first, second = tiny.submit(), tiny.submit()
        # active: 2 queued of 2
        error = failure(tiny.submit)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        details = details_of(error)
        assert details["RetryInfo"].retry_delay.seconds > 0
        assert details["QuotaFailure"].violations[0].subject == "tenant:tiny"
        assert details["ErrorInfo"].metadata["limit"] == "active"
        acme.submit()  # another tenant is not held back
        two_items = pb.BatchOptimizeToursRequest(requests=[small_request(), small_request()])
        tiny.cancel(first)  # 1 active, 2 stored
        error = failure(lambda: tiny.stub.BatchOptimizeTours(two_items, timeout=5))
        assert details_of(error)["ErrorInfo"].metadata["limit"] == "active"  # all or nothing
        third = tiny.submit()  # 2 active, 3 stored
        tiny.cancel(third)
        # stored: 3 of 3; retrying does not help, deleting does
        error = failure(tiny.submit)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        details = details_of(error)
        assert "RetryInfo" not in details
        assert details["ErrorInfo"].metadata == {"limit": "stored", "quota": "3"}
        assert "DeleteOperation" in error.details()  # type: ignore[attr-defined]
        tiny.delete(first)
        fourth = tiny.submit()
        assert set(tiny.list()) == {second, third, fourth}
    finally:
        tiny.close()
        acme.close()


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
        details = details_of(error)
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
    assert f"reason=revoked key {revoked.id}" in logged  # (the operator sees which key)
    assert f"reason=wrong secret for key {new.id}" in logged
    for key in (new.key, revoked.key):
        secret = key.split("_", 2)[2]
        assert secret.encode() not in stored
        assert secret not in logged  # ... without the keys
        assert secret[:12] not in logged
    assert new.id.encode() in stored  # (the store was read)


def test_a_key_store_that_fails_lets_nobody_in(tmp_path: Path) -> None:
    running = serve(tmp_path / "data")
    try:
        key = running.keys.create("acme").key
        client = running.client(key)
        assert isinstance(client.list(), list)

        def broken(key: str) -> tuple[str | None, str | None, str]:
            raise sqlite3.OperationalError("disk I/O error")

        running.keys.check = broken  # type: ignore[method-assign]
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
