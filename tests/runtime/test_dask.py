"""Scale-out on Dask: a real ``dask scheduler`` and two ``dask worker`` processes on loopback,
and routeopt servers started with ``--dask-scheduler``.

Solves through the cluster (OptimizeTours on the embedded road network, long-running
operations, streaming, cancellation) give feasible results, the same as the local pool's for
deterministic searches, and the road network reaches each worker once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc

from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_server_e2e import (
    ROOT,
    ServerProcess,
    check_response,
    city_request,
    example_request,
)

CLUSTER_START_TIMEOUT_S = 30.0


class Cluster:
    """A Dask scheduler and workers, each a subprocess on 127.0.0.1 with random ports."""

    def __init__(self, directory: Path, n_workers: int = 2) -> None:
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.procs: list[subprocess.Popen[bytes]] = []
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        self._start(
            "scheduler",
            ["distributed.cli.dask_scheduler", "--dashboard-address", "127.0.0.1:0"],
            env,
        )
        deadline = time.monotonic() + CLUSTER_START_TIMEOUT_S
        while not self.scheduler_file.exists():
            assert time.monotonic() < deadline, f"no scheduler:\n{self.log('scheduler')}"
            assert self.procs[0].poll() is None, f"scheduler exited:\n{self.log('scheduler')}"
            time.sleep(0.1)
        for i in range(n_workers):
            self._start(
                f"worker{i}",
                [
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(self.scheduler_file),
                    "--nthreads",
                    "1",
                    "--name",
                    f"worker{i}",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--local-directory",
                    str(directory / f"worker{i}"),
                ],
                env,
            )
        self.address = self._wait_workers(n_workers, deadline)

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        common = ["--host", "127.0.0.1"]
        if name == "scheduler":
            common += ["--port", "0", "--scheduler-file", str(self.scheduler_file)]
        with (self.directory / f"{name}.log").open("wb") as log:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", *args, *common],
                    cwd=ROOT,  # the scheduler unpickles task specs: it needs routeopt too
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def _wait_workers(self, n: int, deadline: float) -> str:
        while True:
            info = json.loads(self.scheduler_file.read_text() or "{}")
            logs = [self.log(f"worker{i}") for i in range(n)]
            if sum("Registered to" in text for text in logs) == n:
                return str(info["address"])
            assert time.monotonic() < deadline, "workers did not register:\n" + "\n".join(logs)
            for proc in self.procs:
                assert proc.poll() is None, "a cluster process exited:\n" + "\n".join(logs)
            time.sleep(0.2)

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Workers first (a worker whose scheduler is gone takes seconds to give up), then the
        scheduler."""
        scheduler, *workers = self.procs
        for group in (workers, [scheduler]):
            for proc in group:
                proc.terminate()
            for proc in group:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def on_dask(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("dask-server") / "server.log"
    srv = ServerProcess(log, "--dask-scheduler", cluster.address)
    yield srv
    assert srv.terminate() == 0, srv.log()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("local-server") / "server.log"
    srv = ServerProcess(log, "--workers", "1")
    yield srv
    assert srv.terminate() == 0, srv.log()


def test_server_uses_the_cluster(on_dask: ServerProcess) -> None:
    assert "Dask cluster tcp://127.0.0.1:" in on_dask.log()
    assert "2 threads; 2 solves at once" in on_dask.log()


def test_road_solves_match_the_local_pool(on_dask: ServerProcess, local: ServerProcess) -> None:
    """The example (road travel on the embedded network, RETURN_FAST: the search ends at a local
    optimum, so it is deterministic) gives the same routes through Dask as locally."""
    request = example_request()
    request.timeout.FromSeconds(20)
    remote = on_dask.stub.OptimizeTours(request, timeout=60)
    here = local.stub.OptimizeTours(request, timeout=60)
    assert remote.solve_info.matrix_source == "road"
    check_response(request, remote)
    check_response(request, here)
    assert remote.routes == here.routes
    assert remote.metrics.total_cost == here.metrics.total_cost


def test_operations_run_on_both_workers(cluster: Cluster, on_dask: ServerProcess) -> None:
    ops = operations_pb2_grpc.OperationsStub(on_dask.channel)
    requests = [city_request(20 + i, timeout_s=1, seed=i) for i in range(4)]
    names = [on_dask.stub.OptimizeToursLongRunning(r, timeout=10).name for r in requests]
    for name, request in zip(names, requests, strict=True):
        operation = ops.GetOperation(operations_pb2.GetOperationRequest(name=name))
        deadline = time.monotonic() + 30
        while not operation.done:
            assert time.monotonic() < deadline, f"{name} not done"
            wait = operations_pb2.WaitOperationRequest(name=name)
            wait.timeout.FromSeconds(5)
            operation = ops.WaitOperation(wait, timeout=10)
        response = pb.OptimizeToursResponse()
        assert operation.response.Unpack(response)
        assert sum(len(r.visits) for r in response.routes) == len(request.model.shipments)
        check_response(request, response)
    # Each worker received the road network once (with the plugin), however many jobs ran.
    for name in ("worker0", "worker1"):
        assert cluster.log(name).count("routeopt worker ready") == 1, cluster.log(name)
        assert "roads True" in cluster.log(name)


def test_stream_and_cancel_through_the_cluster(on_dask: ServerProcess) -> None:
    request = city_request(
        120, timeout_s=30, mode=pb.OptimizeToursRequest.CONSUME_ALL_AVAILABLE_TIME
    )
    stream = on_dask.stub.OptimizeToursStream(request, timeout=60)
    first = next(stream)
    assert first.HasField("response")
    check_response(request, first.response)
    second = next(stream)
    assert second.cost <= first.cost
    stream.cancel()

    ops = operations_pb2_grpc.OperationsStub(on_dask.channel)
    name = on_dask.stub.OptimizeToursLongRunning(request, timeout=10).name
    md = pb.OptimizeToursMetadata()
    deadline = time.monotonic() + 20
    while md.solution_count == 0:
        assert time.monotonic() < deadline, "no progress from the cluster"
        time.sleep(0.1)
        assert ops.GetOperation(operations_pb2.GetOperationRequest(name=name)).metadata.Unpack(md)
    cancelled_at = time.monotonic()
    ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name))
    wait = operations_pb2.WaitOperationRequest(name=name)
    wait.timeout.FromSeconds(5)
    operation = ops.WaitOperation(wait, timeout=10)
    assert operation.done
    assert time.monotonic() - cancelled_at < 1.5
    response = pb.OptimizeToursResponse()
    assert operation.response.Unpack(response)
    assert response.solve_info.status == pb.SolveInfo.INTERRUPTED
    check_response(request, response)


def test_a_layout_study_runs_on_the_cluster(cluster: Cluster, on_dask: ServerProcess) -> None:
    """EvaluateDepotLayouts on a Dask server: the study is a task on a Dask worker (its process
    is below a worker, not below the server), its progress comes back as plain data events,
    and a cancel stops it with the layouts routed so far."""
    from tests.rpc.test_faults import TASK_COMM, descendants, named_below
    from tests.rpc.test_layouts import Client as LayoutsClient
    from tests.rpc.test_layouts import check_layouts_response
    from tests.rpc.test_layouts_worker import (
        long_study,
        response_of,
        state_of,
        wait_until,
    )

    client = LayoutsClient(on_dask)
    request = long_study(layouts=6, layout_timeout_s=1.5)
    request.use_geodesic_distances = True
    name = client.stub.EvaluateDepotLayouts(request, timeout=10).name
    wait_until(client, name, lambda md: md.layouts_done >= 1, "a layout routed on the cluster")
    on_workers = [
        pid
        for proc in cluster.procs[1:]
        for pid, comm in named_below(proc.pid).items()
        if comm == TASK_COMM
    ]
    assert len(on_workers) == 1
    assert TASK_COMM not in descendants(on_dask.proc.pid).values()
    client.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)
    done = client.wait(name, timeout_s=60)
    assert state_of(done).state == pb.CANCELLED
    response = response_of(done)
    assert 1 <= len(response.layouts) < 6
    check_layouts_response(request, response)
