"""Per-tenant request limits: a tenant's quota (``routeopt keys quota --quota shipments=N``) lowers
the server's request limits (:mod:`rpc.limits`) for that tenant only, never raises them, and a
refusal names the tenant's limit (INVALID_ARGUMENT with a BadRequest)."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

import cli
from engine.errors import InvalidModelError
from rpc.keys import KeyStore, TenantQuota, parse_quota
from rpc.limits import QUOTA_LIMIT_NAMES, TENANT_LIMITS, Limits, request_size_violations
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.quotas import TenantLimits
from tests.rpc.secured import Running, eventually, failure, serve, status_of, stop
from tests.rpc.test_server_e2e import small_request

GOOGLE_OPTIMIZE_TOURS = "/google.maps.routeoptimization.v1.RouteOptimization/OptimizeTours"


# -- quota names ---------------------------------------------------------------------------------


def test_quotas_parse_and_print_request_limits() -> None:
    quota = parse_quota("active=20,shipments=2000,sync_timeout=600")
    assert quota == TenantQuota(
        max_active=20, limits=(("shipments", 2000), ("sync_timeout_s", 600.0))
    )
    assert str(quota) == "active=20,shipments=2000,sync_timeout=600"
    assert parse_quota(str(quota)) == quota
    # the Limits field names are accepted too, and dashes
    assert parse_quota("sync_timeout_s=60,visit-requests=4") == TenantQuota(
        limits=(("sync_timeout_s", 60.0), ("visit_requests", 4))
    )
    assert parse_quota("long_running_timeout=90.5").limits == (("long_running_timeout_s", 90.5),)
    # every per-request limit has a quota name; the call slots (shared by all) have none
    assert set(QUOTA_LIMIT_NAMES.values()) == set(TENANT_LIMITS)
    assert {"streams", "long_polls", "matrix_calls", "solve_calls"}.isdisjoint(TENANT_LIMITS)
    for bad in (
        "streams=2",
        "shipments=0",
        "shipments=1.5",
        "sync_timeout=abc",
        "sync_timeout=2e9",
        "shipmentz=3",
        "shipments",
    ):
        with pytest.raises(ValueError, match=bad.split("=")[0].split("_")[0]):
            parse_quota(bad)


def test_a_tenants_own_limits_override_the_default_quota_name_by_name() -> None:
    default = parse_quota("solves=2,shipments=100,vehicles=10")
    own = parse_quota("shipments=50")
    assert own.over(default) == TenantQuota(
        max_solves=2, limits=(("shipments", 50), ("vehicles", 10))
    )
    assert TenantQuota().over(default) == default


# -- Limits.for_tenant -----------------------------------------------------------------------------


def test_a_tenant_value_only_lowers_the_server_limit() -> None:
    server = Limits(shipments=100, vehicles=10, sync_timeout_s=60)
    acme = server.for_tenant("acme", {"shipments": 20, "vehicles": 50, "sync_timeout_s": 30.0})
    assert (acme.shipments, acme.vehicles, acme.sync_timeout_s) == (20, 10, 30.0)
    assert acme.lowered == {"shipments", "sync_timeout_s"}
    assert acme.tenant == "acme"
    # nothing lower: the server's limits themselves
    assert server.for_tenant("big", {"shipments": 10**6, "sync_timeout_s": 600.0}) is server
    # call slots are not the tenant's to set
    assert server.for_tenant("acme", {"streams": 1}) is server


def three_shipments() -> pb.OptimizeToursRequest:
    request = small_request()
    assert len(request.model.shipments) == 3
    return request


def test_a_refusal_names_the_tenants_limit_and_the_server_one_keeps_its_message() -> None:
    server = Limits(shipments=2)
    request = three_shipments()
    problems = request_size_violations(request, server, synchronous=True)
    assert [p.description for p in problems] == [
        "at most 2 shipments on this server (--limit shipments=N), got 3"
    ]
    acme = Limits().for_tenant("acme", {"shipments": 2})
    problems = request_size_violations(request, acme, synchronous=True)
    assert [p.field for p in problems] == ["model.shipments"]
    assert problems[0].description == (
        "at most 2 shipments for tenant 'acme' (the tenant's limit: quota shipments=N), got 3"
    )
    # the timeout caps too
    request.timeout.seconds = 100
    slow = Limits().for_tenant("acme", {"sync_timeout_s": 50.0, "long_running_timeout_s": 80.0})
    (sync,) = request_size_violations(request, slow, synchronous=True)
    assert sync.field == "timeout"
    assert "at most 50 s" in sync.description
    assert "tenant 'acme'" in sync.description
    assert "quota sync_timeout=SECONDS" in sync.description
    (lro,) = request_size_violations(request, slow, synchronous=False)
    assert "quota long_running_timeout=SECONDS" in lro.description


def test_a_tenants_compute_matrix_cap_is_checked_before_reading_the_points() -> None:
    from engine.roads import RoadContext
    from rpc.matrix import compute_matrix

    limits = Limits().for_tenant("acme", {"compute_matrix_cells": 1_000})
    request = pb.ComputeMatrixRequest()
    request.sources.extend([pb.ComputeMatrixRequest().sources.add()] * 2000)
    request.destinations.extend(list(request.sources))
    cap = limits.compute_matrix_cap(request.encoding, 64 * 1024 * 1024, 4000)
    assert cap == 1_000
    tracemalloc.start()
    try:
        with pytest.raises(InvalidModelError) as caught:
            compute_matrix(
                request,
                RoadContext.__new__(RoadContext),
                max_cells=cap,
                limit_note=limits.compute_matrix_where(cap),
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (problem,) = caught.value.violations
    assert problem.field == "destinations"
    assert "1,000" in problem.description
    assert "quota compute_matrix_cells=N" in problem.description
    assert peak < 100_000, peak
    # the server's cap (the message size here) keeps the server's message
    server = Limits().compute_matrix_where(Limits().compute_matrix_cap(0, 1024 * 1024))
    assert "--limit compute_matrix_cells=N" in server


# -- the key store and its resolver ------------------------------------------------------------


def test_the_key_store_keeps_a_tenants_limits(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    try:
        quota = parse_quota("active=3,shipments=2000,sync_timeout=600")
        store.set_quota("acme", quota)
        assert store.quota("acme") == quota
        assert store.quotas() == {"acme": quota}
        store.set_quota("acme", TenantQuota(max_active=3))  # a new quota replaces the old one
        assert store.quota("acme") == TenantQuota(max_active=3)
    finally:
        store.close()


def test_a_key_store_made_before_tenant_limits_gets_their_column(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "keys.sqlite3")
    db.executescript(
        "CREATE TABLE tenants (name TEXT PRIMARY KEY, max_active INTEGER, max_stored INTEGER,"
        " max_solves INTEGER); INSERT INTO tenants VALUES ('acme', 4, NULL, 2);"
    )
    db.commit()
    db.close()
    store = KeyStore(tmp_path)
    try:
        assert store.quota("acme") == TenantQuota(max_active=4, max_solves=2)
        store.set_quota("acme", parse_quota("active=4,vehicles=7"))
        assert str(store.quota("acme")) == "active=4,vehicles=7"
    finally:
        store.close()
    KeyStore(tmp_path).close()  # opened again: the column is there already


def test_tenant_limits_follow_the_stored_quota_at_the_next_call(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    try:
        server = Limits(shipments=100)
        limits = TenantLimits(server, lambda t: store.quota(t).over(parse_quota("vehicles=5")))
        assert limits("acme").vehicles == 5  # the default quota
        assert limits("acme").shipments == 100
        store.set_quota("acme", parse_quota("shipments=10"))
        assert limits("acme").shipments == 10
        assert limits("acme") is limits("acme")  # made once per quota
        assert limits("other").shipments == 100
        store.set_quota("acme", parse_quota("shipments=1000"))  # above the server's
        assert limits("acme").shipments == 100
    finally:
        store.close()


def test_cli_sets_and_lists_request_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    assert cli.main(["keys", "create", "--tenant", "acme", "--data-dir", data]) == 0
    quota = ["--quota", "active=20,shipments=2000,sync_timeout=600"]
    assert cli.main(["keys", "quota", "--tenant", "acme", *quota, "--data-dir", data]) == 0
    assert "quota active=20,shipments=2000,sync_timeout=600" in capsys.readouterr().err
    assert cli.main(["keys", "list", "--data-dir", data]) == 0
    assert "tenant acme: quota active=20,shipments=2000,sync_timeout=600" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["keys", "quota", "--tenant", "acme", "--quota", "streams=1", "--data-dir", data])
    assert "request limit" in capsys.readouterr().err


# -- on a server ---------------------------------------------------------------------------------


def bad_request_of(error: grpc.RpcError) -> list[tuple[str, str]]:
    found = []
    for detail in status_of(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


def validate_only(request: pb.OptimizeToursRequest) -> pb.OptimizeToursRequest:
    request.solving_mode = pb.OptimizeToursRequest.VALIDATE_ONLY
    return request


@pytest.fixture
def running(tmp_path: Path) -> Running:
    return serve(tmp_path / "data", limits=Limits(solve_calls=8, shipments=4))


def test_a_tenant_with_a_lower_limit_is_refused_where_another_passes(running: Running) -> None:
    acme, globex = running.keys.create("acme"), running.keys.create("globex")
    running.keys.set_quota("acme", parse_quota("shipments=2,long_running_timeout=60"))
    a, g = running.client(acme.key), running.client(globex.key)
    google = a.channel.unary_unary(
        GOOGLE_OPTIMIZE_TOURS,
        request_serializer=pb.OptimizeToursRequest.SerializeToString,
        response_deserializer=pb.OptimizeToursResponse.FromString,
    )
    try:
        assert g.stub.OptimizeTours(validate_only(three_shipments()), timeout=10) is not None
        for call in (
            lambda: a.stub.OptimizeTours(validate_only(three_shipments()), timeout=10),
            lambda: list(a.stub.OptimizeToursStream(three_shipments(), timeout=10)),
            lambda: a.stub.OptimizeToursLongRunning(three_shipments(), timeout=10),
            lambda: google(validate_only(three_shipments()), timeout=10),
        ):
            error = failure(call)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            assert bad_request_of(error) == [
                (
                    "model.shipments",
                    "at most 2 shipments for tenant 'acme' "
                    "(the tenant's limit: quota shipments=N), got 3",
                )
            ]
        # the long-running timeout cap, and a batch item, are the tenant's too
        slow = small_request()
        del slow.model.shipments[2:]
        slow.timeout.seconds = 120
        error = failure(lambda: a.stub.OptimizeToursLongRunning(slow, timeout=10))
        ((field, text),) = bad_request_of(error)
        assert field == "timeout"
        assert "quota long_running_timeout=SECONDS" in text
        assert g.stub.OptimizeToursLongRunning(slow, timeout=10).name
        batch = pb.BatchOptimizeToursRequest(requests=[three_shipments()])
        error = failure(lambda: a.stub.BatchOptimizeTours(batch, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert [f for f, _ in bad_request_of(error)] == ["requests[0].model.shipments"]
        assert g.stub.BatchOptimizeTours(batch, timeout=10).name
    finally:
        a.close()
        g.close()
        stop(running)


def test_a_tenant_value_above_the_server_cap_does_not_raise_it(running: Running) -> None:
    big = running.keys.create("big")
    running.keys.set_quota("big", parse_quota("shipments=1000"))
    client = running.client(big.key)
    try:
        request = validate_only(three_shipments())
        for _ in range(2):
            request.model.shipments.add().CopyFrom(request.model.shipments[0])
        error = failure(lambda: client.stub.OptimizeTours(request, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert bad_request_of(error) == [
            ("model.shipments", "at most 4 shipments on this server (--limit shipments=N), got 5")
        ]
    finally:
        client.close()
        stop(running)


def test_the_default_quota_lowers_the_limits_of_tenants_without_their_own(tmp_path: Path) -> None:
    running = serve(tmp_path / "data", default_quota=parse_quota("shipments=2"))
    small, own = running.keys.create("small"), running.keys.create("own")
    running.keys.set_quota("own", parse_quota("shipments=3"))
    s, o = running.client(small.key), running.client(own.key)
    try:
        error = failure(lambda: s.stub.OptimizeTours(validate_only(three_shipments()), timeout=10))
        assert "tenant 'small'" in bad_request_of(error)[0][1]
        assert o.stub.OptimizeTours(validate_only(three_shipments()), timeout=10) is not None
    finally:
        s.close()
        o.close()
        stop(running)


def test_without_a_request_timeout_a_solve_gets_the_tenants_cap_if_shorter(
    running: Running,
) -> None:
    quick, other = running.keys.create("quick"), running.keys.create("other")
    running.keys.set_quota("quick", parse_quota("sync_timeout=2"))
    budgets: list[float] = []
    executor = running.built.executor
    submit = executor.submit

    def recording(model: object, options: Any, **kwargs: Any) -> Any:
        budgets.append(options.time_limit_s)
        return submit(model, options, **kwargs)

    executor.submit = recording  # type: ignore[method-assign]
    q, o = running.client(quick.key), running.client(other.key)
    try:
        for calls, client in enumerate((q, o), start=1):
            request = small_request()
            request.ClearField("timeout")
            call = client.stub.OptimizeTours.future(request, timeout=60)
            eventually(lambda n=calls: len(budgets) == n)
            call.cancel()
        assert budgets == [2.0, 30.0]  # --default-timeout is 30 s
    finally:
        q.close()
        o.close()
        stop(running)
