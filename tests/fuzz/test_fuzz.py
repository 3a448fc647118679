"""The fuzz suite: seeded mutated requests to every RPC of a real server (``server.py`` in a
subprocess, roads on the embedded network, a storage root), checked after every case (see
:mod:`tests.fuzz.harness`): no UNKNOWN or INTERNAL status (in a call or an operation), no
crash, health SERVING, no leaked solver process, server RSS bounded.

Environment:

- ``ROUTEOPT_FUZZ_CASES``: how many cases (default 2,000; ``make fuzz``: 20,000);
- ``ROUTEOPT_FUZZ_SEED``: the seed (default fixed, so CI is deterministic);
- ``ROUTEOPT_FUZZ_START``: the first case index (replay one case with ``..._CASES=1``);
- ``ROUTEOPT_FUZZ_MAX_RSS_MB``: the bound on the server's RSS (default 1,500 MiB).

A failure prints each failing case with the line that replays it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

from tests.fuzz.harness import TARGETS, FuzzRun, Memory, make_case, storage_files
from tests.fuzz.mutator import Mutator
from tests.rpc.test_server_e2e import ServerProcess

CASES = int(os.environ.get("ROUTEOPT_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("ROUTEOPT_FUZZ_SEED", "20261203"))
START = int(os.environ.get("ROUTEOPT_FUZZ_START", "0"))
MAX_RSS_MB = float(os.environ.get("ROUTEOPT_FUZZ_MAX_RSS_MB", "1500"))

WORKERS = 2
SOLVER_PROCESSES = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    storage_files(root / "storage")
    srv = ServerProcess(
        root / "server.log",
        "--workers", str(WORKERS),
        "--max-queued", "4",
        "--max-solver-processes", str(SOLVER_PROCESSES),
        "--solver-processes", "1",  # one search per solve unless the request asks for more
        "--default-timeout", "1",
        "--storage-root", str(root / "storage"),
        "--grace", "2",
    )  # fmt: skip
    yield srv
    assert srv.terminate() == 0, srv.log()[-5000:]


def test_cases_are_deterministic_and_cover_every_method() -> None:
    first = [make_case(SEED, i, Memory()) for i in range(300)]
    again = [make_case(SEED, i, Memory()) for i in range(300)]
    assert [(c.target.path, c.data) for c in first] == [(c.target.path, c.data) for c in again]
    assert {c.target.path for c in first} == {t.path for t in TARGETS}


def test_every_method_the_server_serves_is_a_target() -> None:
    from google.longrunning import operations_pb2
    from google.maps.routeoptimization_v1.services.route_optimization.transports import (
        grpc as google_transport,
    )

    from rpc.pb import route_optimization_service_pb2 as pb

    served = {
        f"/routeopt.v1.RouteOptimization/{m.name}"
        for m in pb.DESCRIPTOR.services_by_name["RouteOptimization"].methods
    }
    served |= {
        f"/google.longrunning.Operations/{m.name}"
        for m in operations_pb2.DESCRIPTOR.services_by_name["Operations"].methods
    }
    transport = google_transport.RouteOptimizationGrpcTransport
    google = [n for n in ("optimize_tours", "optimize_tours_long_running",
                          "batch_optimize_tours", "optimize_tours_uri")
              if isinstance(getattr(transport, n, None), property)]  # fmt: skip
    assert len(google) == 4
    served |= {
        "/google.maps.routeoptimization.v1.RouteOptimization/"
        + "".join(part.title() for part in name.split("_"))
        for name in google
    }
    assert served <= {t.path for t in TARGETS}


def test_garbage_is_invalid_argument_with_a_bad_request(server: ServerProcess) -> None:
    """Regression (fuzz): bytes that do not parse as the request were INTERNAL ("Exception
    deserializing request!"), on every method of every service."""
    import grpc
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    for target in TARGETS:
        if target.stream:
            stream = server.channel.unary_stream(target.path)
            with pytest.raises(grpc.RpcError) as info:
                list(stream(b"\xff\xff\xff", timeout=10))
        else:
            unary = server.channel.unary_unary(target.path)
            with pytest.raises(grpc.RpcError) as info:
                unary(b"\xff\xff\xff", timeout=10)
        error = info.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (target.path, error)
        status = rpc_status.from_call(error)
        assert status is not None
        bad = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad)
        assert "does not parse" in bad.field_violations[0].description
        info_detail = error_details_pb2.ErrorInfo()
        assert status.details[1].Unpack(info_detail)
        assert info_detail.reason == "MALFORMED_REQUEST"
        assert info_detail.metadata["method"] == target.path


def test_the_mutator_reaches_every_kind_of_field() -> None:
    from tests.fuzz.harness import rules_request

    # Seeds enough for the rarest kind (an infinite double: first at seed 566 of the request the
    # fields of December 2026 make; every new field of the request dilutes the kinds).
    seen: set[str] = set()
    for i in range(2000):
        request = rules_request()
        seen.update(Mutator(random.Random(i)).mutate(request, 1))
    text = " ".join(seen)
    for marker in ("nan", "inf", "deleted", "copied", "emptied", "cleared", "ns", "appended"):
        assert marker in text, marker


def test_fuzz_every_rpc(server: ServerProcess) -> None:
    run = FuzzRun(server, workers=WORKERS, solver_processes=SOLVER_PROCESSES, max_rss_mb=MAX_RSS_MB)
    started = time.monotonic()
    run.run(SEED, START, CASES)
    elapsed = time.monotonic() - started
    print(f"\nfuzz: {run.stats.summary()} in {elapsed:.1f} s (seed {SEED}, start {START})")
    print(
        "fuzz: by method: " + ", ".join(f"{k} {v}" for k, v in sorted(run.stats.by_method.items()))
    )
    assert not run.failures, f"{len(run.failures)} failures:\n" + "\n".join(run.failures)
    assert run.stats.cases == CASES
