"""The fault suite: what happens to operations when processes die, the server is stopped, the
job database is damaged, the disk is full (a small tmpfs: skipped where mounting one is not
allowed), or a job kills its worker every time. Each test asserts the outcome the README
documents ("Running in production" → "Operations") and that no acknowledged operation is lost.
(A store that cannot write, in process and without a mount — disk full, database locked — is
``tests/rpc/test_store_faults.py``.)

Poison jobs use the test hooks, honoured only when the server runs with
``ROUTEOPT_TEST_HOOKS=1`` in its environment (never in production): a shipment labelled
``routeopt-test:crash-worker`` makes its worker SIGKILL itself (:mod:`runtime.worker`); a
request labelled ``routeopt-test:crash-server`` makes the server SIGKILL itself right after the
attempt is counted (:mod:`rpc.operations.kinds.solve`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2

from rpc.operations.kinds.solve import CRASH_SERVER_LABEL
from rpc.pb import route_optimization_service_pb2 as pb
from runtime.worker import CRASH_WORKER_LABEL, TEST_HOOKS_ENV_VAR
from tests.rpc.test_jobs_e2e import LONG, Client, metadata, response_of, wait_solving
from tests.rpc.test_server_e2e import ROOT, ServerProcess, check_response, city_request

SOLVE_COMM = "routeopt-solve"
SEARCH_COMM = "routeopt-search"


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid → (parent pid, name)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), comm)
    return found


def descendants(pid: int, table: dict[int, tuple[int, str]] | None = None) -> dict[int, str]:
    """The processes below ``pid``: pid → name (in ``table``, else a new :func:`processes`)."""
    table = processes() if table is None else table
    below: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, comm) in table.items():
            if ppid == parent and child not in below:
                below[child] = comm
                frontier.append(child)
    return below


TASK_COMM = "routeopt-task"
"""The name of a task's worker process (:func:`runtime.worker.task_main`)."""


def named_below(pid: int) -> dict[int, str]:
    """:func:`descendants`, a search counted as one from its fork: a solve's or a task's
    searches are forked from it and carry its name until they name themselves
    ``routeopt-search`` (microseconds later, :func:`engine.parallel.die_with_parent`)."""
    table = processes()
    below = descendants(pid, table)
    forks = (SOLVE_COMM, TASK_COMM)
    return {
        p: SEARCH_COMM if comm in forks and below.get(table[p][0]) == comm else comm
        for p, comm in below.items()
    }


def alive(pids: object) -> set[int]:
    table = processes()
    return {pid for pid in pids if pid in table}  # type: ignore[attr-defined]


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


def serving(srv: ServerProcess) -> bool:
    reply = srv.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def base_args(data: Path) -> tuple[str, ...]:
    return ("--osm", "none", "--workers", "1", "--data-dir", str(data))


def long_request(seed: int = 1) -> pb.OptimizeToursRequest:
    return city_request(60, timeout_s=4, mode=LONG, seed=seed)


def solver_processes(srv: ServerProcess) -> dict[int, str]:
    return {p: c for p, c in named_below(srv.proc.pid).items() if c in (SOLVE_COMM, SEARCH_COMM)}


# -- processes that die ----------------------------------------------------------------------------


def test_kill_9_of_a_worker_runs_the_operation_again_and_leaves_no_orphan(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "server.log", *base_args(tmp_path / "data"),
                        "--solver-processes", "2")  # fmt: skip
    try:
        client = Client(srv)
        request = long_request()
        name = client.submit(request)
        wait_solving(client, name)
        procs = solver_processes(srv)
        workers = [p for p, comm in procs.items() if comm == SOLVE_COMM]
        searches = [p for p, comm in procs.items() if comm == SEARCH_COMM]
        assert len(workers) == 1, procs
        assert len(searches) == 2, procs  # a portfolio of two searches
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: not alive(searches), 5.0, "the worker's searches died with it")
        operation = client.wait(name, timeout_s=60)
        md = metadata(operation)
        assert md.state == pb.SUCCEEDED
        assert md.attempt == 2
        check_response(request, response_of(operation))
        assert serving(srv)
    finally:
        assert srv.terminate() == 0, srv.log()
    assert "worker died (killed by SIGKILL)" in srv.log()
    assert "running it again" in srv.log()


def test_kill_9_of_the_server_leaves_no_orphan_and_the_restart_finishes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProcess(tmp_path / "server.log", *base_args(data), "--solver-processes", "2")
    try:
        client = Client(srv)
        request = long_request()
        name = client.submit(request)
        queued = client.submit(city_request(10, timeout_s=1, seed=5))
        wait_solving(client, name)
        below = descendants(srv.proc.pid)
        assert SOLVE_COMM in below.values()
    finally:
        srv.kill9()
    wait_for(lambda: not alive(below), 10.0, f"orphans left: {alive(below)}")
    srv = ServerProcess(tmp_path / "server.log", *base_args(data))
    try:
        client = Client(srv)
        for op_name, attempt in ((name, 2), (queued, 1)):
            operation = client.wait(op_name, timeout_s=60)
            assert metadata(operation).state == pb.SUCCEEDED
            assert metadata(operation).attempt == attempt
        check_response(request, response_of(client.get(name)))
    finally:
        assert srv.terminate() == 0, srv.log()


KILLED_TEST = """
import os, signal, sys
from pathlib import Path
from tests.rpc.test_server_e2e import ServerProcess
srv = ServerProcess(Path(sys.argv[1]))
print(srv.proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_test_process_killed_leaves_no_server_behind(tmp_path: Path) -> None:
    """``make fuzz`` once had its test process killed out of memory: its server lived on."""
    run = subprocess.run(
        [sys.executable, "-c", KILLED_TEST, str(tmp_path / "server.log")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    server = int(run.stdout.split()[0])
    wait_for(lambda: not alive([server]), 10.0, f"server {server} outlived its test process")


# -- SIGTERM ---------------------------------------------------------------------------------------


def test_sigterm_refuses_new_work_and_a_second_one_exits_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProcess(tmp_path / "server.log", *base_args(data), "--grace", "30")
    client = Client(srv)
    name = client.submit(long_request())
    wait_solving(client, name)
    # A synchronous call in flight keeps the server draining for a while.
    sync = srv.stub.OptimizeTours.future(city_request(30, timeout_s=20, mode=LONG), timeout=60)
    time.sleep(0.5)
    srv.sigterm()
    time.sleep(1.0)
    with pytest.raises(grpc.RpcError) as info:
        client.submit(city_request(5, timeout_s=1))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert srv.proc.poll() is None  # still draining
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(5) == 1
    assert time.monotonic() - started < 3.0
    srv.channel.close()
    assert srv.proc.stdout is not None
    srv.proc.stdout.close()
    del sync
    assert "exiting at once" in srv.log()

    srv = ServerProcess(tmp_path / "server.log", *base_args(data))
    try:
        operation = Client(srv).wait(name, timeout_s=60)
        assert metadata(operation).state == pb.SUCCEEDED  # not lost
    finally:
        assert srv.terminate() == 0, srv.log()


# -- a damaged job database ------------------------------------------------------------------------


def test_a_corrupt_database_is_moved_aside_and_the_server_starts_empty(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "jobs.sqlite3").write_bytes(b"this is not a database\n" * 200)
    log = tmp_path / "server.log"
    srv = ServerProcess(log, *base_args(data))
    try:
        assert serving(srv)
        client = Client(srv)
        name = client.submit(city_request(5, timeout_s=1))
        assert metadata(client.wait(name)).state == pb.SUCCEEDED
    finally:
        assert srv.terminate() == 0, srv.log()
    text = srv.log()
    assert "Traceback" not in text
    damaged = [line for line in text.splitlines() if "is damaged" in line]
    assert len(damaged) == 1
    assert "moved it aside" in damaged[0]
    aside = list(data.glob("jobs.sqlite3.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a database")


# -- poison jobs -----------------------------------------------------------------------------------


def test_a_job_that_kills_its_worker_every_time_ends_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEST_HOOKS_ENV_VAR, "1")  # the server inherits it
    srv = ServerProcess(tmp_path / "server.log", *base_args(tmp_path / "data"))
    try:
        client = Client(srv)
        poison = city_request(5, timeout_s=2)
        poison.model.shipments[2].label = CRASH_WORKER_LABEL
        poisoned = client.submit(poison)
        healthy_request = city_request(8, timeout_s=1, seed=3)
        fine = client.submit(healthy_request)
        operation = client.wait(poisoned, timeout_s=60)
        assert operation.error.code == code_pb2.ABORTED
        assert "the solver worker died (killed by SIGKILL)" in operation.error.message
        assert "each of 3 attempts" in operation.error.message
        md = metadata(operation)
        assert (md.state, md.attempt) == (pb.FAILED, 3)
        check_response(healthy_request, response_of(client.wait(fine)))
        assert serving(srv)
    finally:
        assert srv.terminate() == 0, srv.log()


def _start_until_listening(log: Path, *args: str) -> ServerProcess | None:
    """A server, or None when it died before listening (the poison job killed it)."""
    try:
        return ServerProcess(log, *args)
    except AssertionError as exc:
        if "server exited early" not in str(exc):
            raise
        return None


@pytest.mark.slow
def test_a_job_that_kills_the_server_every_time_ends_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEST_HOOKS_ENV_VAR, "1")
    data = tmp_path / "data"
    log = tmp_path / "server.log"
    srv = ServerProcess(log, *base_args(data))
    client = Client(srv)
    poison = city_request(5, timeout_s=1)
    poison.label = CRASH_SERVER_LABEL
    name = client.submit(poison)
    assert srv.proc.wait(30) == -signal.SIGKILL  # attempt 1 took the server down
    srv.channel.close()
    for _ in range(2):  # attempts 2 and 3: each start runs it again and dies
        again = _start_until_listening(log, *base_args(data))
        if again is not None:
            assert again.proc.wait(30) == -signal.SIGKILL
            again.channel.close()
    srv = ServerProcess(log, *base_args(data))
    try:
        operation = Client(srv).get(name)
        assert operation.done
        assert operation.error.code == code_pb2.ABORTED
        assert metadata(operation).attempt == 3
        assert serving(srv)
    finally:
        assert srv.terminate() == 0, srv.log()


# -- observability ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_json_logs_and_a_private_data_dir(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    srv = ServerProcess(tmp_path / "server.log", *base_args(data),
                        "--metrics-port", str(port), "--log-format", "json")  # fmt: skip
    secret = "sekret-api-key-value-123"
    try:
        client = Client(srv)
        srv.stub.OptimizeTours(city_request(5, timeout_s=1), timeout=30,
                               metadata=(("x-goog-api-key", secret),))  # fmt: skip
        name = client.submit(city_request(5, timeout_s=1, seed=2))
        client.wait(name)
        with pytest.raises(grpc.RpcError):
            client.get("operations/nothing-here")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        metrics = text.decode()
        assert oct(data.stat().st_mode & 0o777) == oct(0o700)  # customer addresses inside
        for path in data.iterdir():
            assert oct(path.stat().st_mode & 0o777) == oct(0o600), path.name
    finally:
        assert srv.terminate() == 0, srv.log()
    ok_solve = 'routeopt_requests_total{code="OK",method="RouteOptimization/OptimizeTours"} 1.0'
    assert ok_solve in metrics
    assert 'routeopt_requests_total{code="NOT_FOUND",method="Operations/GetOperation"} 1.0' in (
        metrics
    )
    assert 'routeopt_request_seconds_count{method="RouteOptimization/OptimizeTours"} 1.0' in (
        metrics
    )
    assert "routeopt_solve_seconds_count" in metrics
    for gauge in ("routeopt_workers 1.0", "routeopt_workers_busy", "routeopt_operations_queued",
                  "routeopt_job_store_bytes", "routeopt_healthy 1.0"):  # fmt: skip
        assert gauge in metrics
    entries = [json.loads(line) for line in srv.log().splitlines()]  # workers' lines too
    assert any(e["message"].startswith("serving on") for e in entries)
    in_calls = [e for e in entries if "request_id" in e]
    assert any("GetOperation code=NOT_FOUND" in e["message"] for e in in_calls)
    assert secret not in srv.log()
    assert "city-5" not in srv.log()  # no payload


def test_a_busy_metrics_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "server.py", "--port", "0", *base_args(tmp_path / "data"),
             "--metrics-port", str(port)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert "cannot serve metrics" in result.stderr
    assert "Traceback" not in result.stderr


# -- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 8 MiB tmpfs (skipped where mounting is not allowed: it needs root or CAP_SYS_ADMIN)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Fill the file system of ``path`` with the file ``path`` until not one byte fits."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_turns_health_not_serving_and_loses_nothing(tiny_fs: Path) -> None:
    data = tiny_fs / "data"
    log = tiny_fs.parent / "server.log"  # the log is not on the tiny file system
    srv = ServerProcess(log, *base_args(data))
    try:
        client = Client(srv)
        request = city_request(120, timeout_s=3, mode=LONG)
        name = client.submit(request)
        wait_solving(client, name)
        filler = tiny_fs / "filler"
        fill(filler)  # the disk is full while it solves
        with pytest.raises(grpc.RpcError) as info:
            client.submit(city_request(150, timeout_s=1, seed=9))
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert "full" in info.value.details()  # type: ignore[attr-defined]
        wait_for(lambda: not serving(srv), 10.0, "health NOT_SERVING")
        time.sleep(4.0)  # the solve ends meanwhile: its result cannot be stored yet
        assert not client.get(name).done
        filler.unlink()  # space again
        wait_for(lambda: serving(srv), 10.0, "health SERVING again")
        operation = client.wait(name, timeout_s=30)
        assert metadata(operation).state == pb.SUCCEEDED  # the result was kept, not lost
        check_response(request, response_of(operation))
    finally:
        assert srv.terminate() == 0, srv.log()
    assert "database or disk is full" in srv.log()
