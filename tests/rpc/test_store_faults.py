"""The job manager when its store fails (disk full, database locked): no operation stuck, no
result lost, health follows; and the store's upkeep (permissions, damaged file, size cap).

The failing store is the real :class:`JobStore` whose writes raise the error SQLite raises on a
full disk while :attr:`FlakyStore.failing` is set; the solves run in a real
:class:`~runtime.local.SolveExecutor`."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.longrunning import operations_pb2
from google.rpc import code_pb2, error_details_pb2

from rpc.errors import status_of
from rpc.operations import manager as manager_module
from rpc.operations.manager import JobManager
from rpc.operations.store import QUEUED, RUNNING, SUCCEEDED, JobStore, NewJob
from rpc.pb import route_optimization_service_pb2 as pb
from runtime import SolveExecutor
from tests.rpc.test_server_e2e import city_request

DISK_FULL = "database or disk is full"


class FlakyStore(JobStore):
    """A job store whose writes fail while :attr:`failing` is set (``only``: those writes)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.failing = False
        self.only: set[str] | None = None
        self.failures = 0

    def _check(self, what: str) -> None:
        if self.failing and (self.only is None or what in self.only):
            self.failures += 1
            raise sqlite3.OperationalError(DISK_FULL)

    def insert(self, *args: Any, **kwargs: Any) -> None:
        self._check("insert")
        super().insert(*args, **kwargs)

    def mark_running(self, *args: Any, **kwargs: Any) -> bool:
        self._check("mark_running")
        return super().mark_running(*args, **kwargs)

    def update_progress(self, *args: Any, **kwargs: Any) -> bool:
        self._check("update_progress")
        return super().update_progress(*args, **kwargs)

    def finish(self, *args: Any, **kwargs: Any) -> bool:
        if kwargs.get("response") is not None:
            self._check("finish_response")
        self._check("finish")
        return super().finish(*args, **kwargs)

    def probe(self, now: float) -> None:
        self._check("probe")
        super().probe(now)


@pytest.fixture(scope="module")
def executor() -> Iterator[SolveExecutor]:
    with SolveExecutor(max_workers=1, max_queued=0) as ex:
        ex.warm_up()
        yield ex


class Harness:
    def __init__(self, store: FlakyStore, executor: SolveExecutor) -> None:
        self.store = store
        self.health: list[bool] = []
        self.jobs = JobManager(
            store, executor, default_timeout_s=5.0, default_geodesic_meters_per_second=10.0
        )
        self.jobs.on_health = self.health.append
        self.jobs.start()

    def state(self, name: str) -> int:
        rec = self.store.get(name)
        assert rec is not None
        return rec.state

    def operation(self, name: str) -> operations_pb2.Operation:
        return self.jobs.get(name)


@pytest.fixture
def harness(tmp_path: Path, executor: SolveExecutor) -> Iterator[Harness]:
    store = FlakyStore(tmp_path / "data")
    h = Harness(store, executor)
    yield h
    store.failing = False
    h.jobs.stop()
    h.jobs.wait_idle(10.0)
    store.close()


def until(condition: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)


def quick_request() -> pb.OptimizeToursRequest:
    return city_request(5, timeout_s=1, mode=pb.OptimizeToursRequest.RETURN_FAST)


def test_a_result_that_cannot_be_stored_is_retried_and_health_follows(harness: Harness) -> None:
    name = harness.jobs.submit(city_request(20, timeout_s=2)).name
    until(lambda: harness.state(name) == RUNNING, what="running")
    harness.store.failing = True  # the disk fills up while it solves
    until(lambda: not harness.jobs.healthy, what="unhealthy")
    assert harness.health == [False]
    time.sleep(3.0)  # the solve has ended meanwhile: its result waits in memory
    assert harness.state(name) == RUNNING
    assert not harness.jobs.healthy
    harness.store.failing = False  # space again
    until(lambda: harness.state(name) == SUCCEEDED, what="stored at last")
    until(lambda: harness.jobs.healthy, what="healthy again")
    assert harness.health == [False, True]
    response = pb.OptimizeToursResponse()
    assert harness.operation(name).response.Unpack(response)
    assert sum(len(r.visits) for r in response.routes) == 20


def test_a_result_too_big_for_the_disk_ends_failed_with_a_clear_status(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "STORE_RETRY_S", 1.0)
    harness.store.only = {"finish_response", "update_progress"}  # small writes still fit
    harness.store.failing = True
    name = harness.jobs.submit(quick_request()).name
    until(lambda: harness.operation(name).done, what="done")
    op = harness.operation(name)
    assert op.error.code == code_pb2.UNAVAILABLE
    assert "could not record the result" in op.error.message
    assert DISK_FULL in op.error.message
    until(lambda: harness.jobs.healthy, what="healthy again")  # the store writes small rows


def test_the_dispatcher_survives_a_store_that_cannot_start_a_job(harness: Harness) -> None:
    harness.store.only = {"mark_running", "probe"}
    harness.store.failing = True
    name = harness.jobs.submit(quick_request()).name  # stored: inserts still work
    until(lambda: not harness.jobs.healthy, what="unhealthy")
    time.sleep(1.5)  # the dispatcher keeps trying; the job waits at the head of the queue
    assert harness.state(name) == QUEUED
    assert harness.jobs.queued_count == 1
    harness.store.failing = False
    until(lambda: harness.state(name) == SUCCEEDED, what="solved")
    until(lambda: harness.jobs.healthy, what="healthy again")
    md = pb.OptimizeToursMetadata()
    assert harness.operation(name).metadata.Unpack(md)
    assert md.attempt == 1


def test_a_submission_the_store_refuses_is_unavailable(harness: Harness) -> None:
    harness.store.failing = True
    with pytest.raises(sqlite3.OperationalError) as info:
        harness.jobs.submit(quick_request())
    status = status_of(info.value, action="OptimizeToursLongRunning")
    assert status.code == code_pb2.UNAVAILABLE
    assert DISK_FULL in status.message
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds > 0
    assert harness.jobs.queued_count == 0  # nothing half-submitted
    until(lambda: not harness.jobs.healthy, what="unhealthy")
    harness.store.failing = False
    until(lambda: harness.jobs.healthy, what="healthy again (the probe writes)")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_dispatcher_is_restarted(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = harness.jobs._dispatcher
    assert dispatcher is not None
    died = threading.Event()

    def dies(state: object) -> None:
        died.set()
        raise SystemExit("the dispatcher thread ends")  # not an Exception: the thread ends

    monkeypatch.setattr(harness.jobs, "_dispatch", dies)
    name = harness.jobs.submit(quick_request()).name
    until(died.is_set, what="the dispatcher died")
    monkeypatch.undo()
    until(lambda: harness.jobs._dispatcher is not dispatcher, what="restarted")
    until(lambda: harness.state(name) == SUCCEEDED, what="solved by the new dispatcher")
    until(lambda: harness.jobs.healthy, what="healthy again")
    assert harness.health == [False, True]


def test_health_comes_back_when_the_restarted_dispatcher_has_nothing_to_do(
    harness: Harness,
) -> None:
    """A dispatcher that died with no job queued: the watch restarts it and, the new one
    running, health is SERVING again without waiting for a dispatch to prove it."""
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    harness.jobs._dispatcher = ended  # what the watch sees after the thread died
    until(lambda: harness.health[:1] == [False], what="NOT_SERVING")
    until(lambda: harness.jobs.healthy, what="healthy again, nothing queued")
    assert harness.health == [False, True]
    assert harness.jobs.queued_count == 0


# -- the store's upkeep ----------------------------------------------------------------------------


def test_data_dir_and_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # an existing, too open directory
    store = JobStore(data)
    try:
        store.insert([NewJob("operations/p", "tours", request=b"address")], now=1.0)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = sorted(p.name for p in data.iterdir())
        assert {"jobs.sqlite3", "jobs.sqlite3-wal", "lock"} <= set(files)
        for path in data.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    finally:
        store.close()


def test_a_damaged_database_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    store = JobStore(data)
    store.insert([NewJob("operations/lost", "tours", request=b"x")], now=1.0)
    store.close()
    db = data / "jobs.sqlite3"
    damaged = bytearray(db.read_bytes())
    damaged[:100] = b"\x00" * 100  # the header
    db.write_bytes(bytes(damaged))
    store = JobStore(data)
    try:
        assert store.moved_aside is not None
        assert store.moved_aside.name.startswith("jobs.sqlite3.corrupt-")
        assert store.moved_aside.read_bytes() == bytes(damaged)
        assert store.list() == []
        store.insert([NewJob("operations/new", "tours", request=b"y")], now=2.0)
    finally:
        store.close()
    assert "is damaged" in caplog.text
    assert "moved it aside" in caplog.text


def test_size_cap_deletes_the_oldest_finished_operations(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "data")
    try:
        for i in range(5):
            name = f"operations/{i}"
            store.insert([NewJob(name, "tours", request=b"r" * 1000)], now=float(i))
            store.finish(name, SUCCEEDED, float(i), response=b"s" * 1000, error=None,
                         expire_time=None)  # fmt: skip
        store.insert([NewJob("operations/running", "tours", request=b"r" * 5000)], now=9.0)
        store.insert(
            [
                NewJob("operations/b", "batch"),
                NewJob("operations/b0", "tours", request=b"q" * 500, batch="operations/b",
                       item_index=0),
            ],
            now=10.0,
        )  # fmt: skip
        store.finish("operations/b0", SUCCEEDED, 10.0, response=b"t" * 500, error=None,
                     expire_time=None)  # fmt: skip
        store.finish("operations/b", SUCCEEDED, 10.0, response=b"", error=None,
                     expire_time=None)  # fmt: skip
        assert store.trim_finished(5000) == 3  # operations/0, /1, /2 (2000 bytes each)
        names = [r.name for r in store.list()]
        assert names == ["operations/3", "operations/4", "operations/running", "operations/b",
                         "operations/b0"]  # fmt: skip
        assert store.trim_finished(500) == 4  # the batch goes with its item; running stays
        assert [r.name for r in store.list()] == ["operations/running"]
        before = store.size_bytes()
        store.vacuum()
        assert store.size_bytes() <= before
    finally:
        store.close()


def test_a_locked_database_is_an_error_not_damage(tmp_path: Path) -> None:
    """Only a damaged file is moved aside: a database another process locks is left alone."""
    data = tmp_path / "data"
    store = JobStore(data)
    store.insert([NewJob("operations/kept", "tours", request=b"x")], now=1.0)
    store.close()
    other = sqlite3.connect(data / "jobs.sqlite3", isolation_level=None)
    try:
        other.execute("PRAGMA locking_mode=EXCLUSIVE")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(OSError, match=r"cannot open the job store .* database is locked"):
            JobStore(data)
    finally:
        other.close()
    assert not list(data.glob("*.corrupt-*"))
    store = JobStore(data)  # the lock file was released too
    try:
        assert store.moved_aside is None
        assert [r.name for r in store.list()] == ["operations/kept"]
    finally:
        store.close()
