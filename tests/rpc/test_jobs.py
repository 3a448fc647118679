"""The job store and the ListOperations filter, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpc.errors import FilterError
from rpc.operations.filter import MAX_PAGE_SIZE, parse_filter, parse_page
from rpc.operations.store import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    DataDirInUseError,
    JobStore,
    NewJob,
)


def test_filter_terms() -> None:
    assert parse_filter("").states == ()
    assert parse_filter("state=RUNNING").states == (RUNNING,)
    assert parse_filter('state = "queued" OR state=RUNNING').states == (QUEUED, RUNNING)
    assert parse_filter("done=true").states == (SUCCEEDED, FAILED, CANCELLED)
    assert parse_filter("done=false AND kind=batch").states == (QUEUED, RUNNING)
    assert parse_filter("done=false AND kind=batch").kind == "batch"
    assert parse_filter("batch=operations/abc").batch == "operations/abc"


@pytest.mark.parametrize(
    "text",
    ["state=BORED", "state=JOB_STATE_UNSPECIFIED", "done=maybe", "colour=red", "state RUNNING",
     "state=RUNNING OR done=true", "kind=everything"],
)  # fmt: skip
def test_bad_filters(text: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(text)


def test_pages() -> None:
    assert parse_page(0, "") == (50, 0)
    assert parse_page(10, "42") == (10, 42)
    assert parse_page(10**6, "") == (MAX_PAGE_SIZE, 0)
    assert parse_page(10, str(2**63 - 1)) == (10, 2**63 - 1)
    beyond_int64 = (str(2**63), "9" * 20, "18446744073709551615", "9" * 5000)
    odd = ("next", "-1", " 7", "1_0", "+3", "\u0663", "1e5")
    for size, token in ((-1, ""), *((10, t) for t in (*beyond_int64, *odd))):
        with pytest.raises(FilterError) as info:
            parse_page(size, token)
        assert info.value.field == ("page_size" if size < 0 else "page_token")


def test_a_page_token_beyond_int64_is_invalid_argument_not_internal(tmp_path: Path) -> None:
    """Regression (fuzz): a token decoding to a seq above int64 reached SQLite (OverflowError,
    INTERNAL), with plain tokens and with a sealed token the server never gave."""
    from google.rpc import code_pb2

    from rpc.errors import status_of
    from rpc.operations.manager import JobManager
    from rpc.page_tokens import PageTokens

    class NoExecutor:
        max_workers = 0
        max_queued = 0
        running_count = 0
        queued_count = 0

    store = JobStore(tmp_path)
    tokens = PageTokens(b"s" * 32)
    try:
        for page_tokens, token in (
            (None, str(2**64)),
            (None, str(2**63)),
            (tokens, tokens.seal(2**64 - 1, "")),
        ):
            jobs = JobManager(
                store,
                NoExecutor(),  # type: ignore[arg-type]
                default_timeout_s=1.0,
                default_geodesic_meters_per_second=10.0,
                page_tokens=page_tokens,
            )
            with pytest.raises(FilterError) as info:
                jobs.list("", 10, token)
            assert status_of(info.value).code == code_pb2.INVALID_ARGUMENT
            assert info.value.field == "page_token"
    finally:
        store.close()


def test_store_round_trip_listing_and_expiry(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    try:
        store.insert([NewJob("operations/a", "tours", "A", b"req-a")], now=100.0)
        store.insert(
            [
                NewJob("operations/b", "batch", "B"),
                NewJob("operations/b1", "tours", request=b"r1", batch="operations/b", item_index=0),
                NewJob("operations/b2", "tours", request=b"r2", batch="operations/b", item_index=1),
            ],
            now=101.0,
        )
        with pytest.raises(DataDirInUseError):
            JobStore(tmp_path)
        assert store.mark_running("operations/a", 102.0)
        assert not store.mark_running("operations/a", 102.0)  # running already
        store.update_progress(
            "operations/a", 103.0, elapsed_s=1.0, solution_count=5, best_cost=9.5,
            used_vehicles=2, skipped_shipments=1, response=b"best",
        )  # fmt: skip
        a = store.get("operations/a")
        assert a is not None
        assert (a.state, a.attempt, a.solution_count, a.best_cost) == (RUNNING, 1, 5, 9.5)
        assert a.response == b"best"
        assert [r.name for r in store.unfinished("tours")] == [
            "operations/a", "operations/b1", "operations/b2"
        ]  # fmt: skip
        assert [r.name for r in store.items("operations/b")] == ["operations/b1", "operations/b2"]
        page = store.list(limit=2)
        assert [r.name for r in page] == ["operations/a", "operations/b"]
        rest = store.list(after_seq=page[-1].seq)
        assert [r.name for r in rest] == ["operations/b1", "operations/b2"]
        assert [r.name for r in store.list(kind="batch")] == ["operations/b"]
        store.finish("operations/a", SUCCEEDED, 110.0, response=b"final", error=None,
                     expire_time=200.0)  # fmt: skip
        for item in ("operations/b1", "operations/b2"):
            store.finish(item, FAILED, 111.0, response=None, error=b"e", expire_time=None)
        store.finish("operations/b", SUCCEEDED, 112.0, response=b"r", error=None, expire_time=150.0)
        assert [r.name for r in store.list(states=[FAILED])] == ["operations/b1", "operations/b2"]
        assert store.expire(149.0) == 0
        assert store.expire(150.0) == 3  # the batch and its items
        assert store.get("operations/b1") is None
        assert store.expire(200.0) == 1
        assert store.list() == []
    finally:
        store.close()
    JobStore(tmp_path).close()  # the lock is released on close


def test_store_survives_reopening(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.insert([NewJob("operations/x", "tours", request=b"x")], now=1.0)
    store.close()
    store = JobStore(tmp_path)
    try:
        record = store.get("operations/x")
        assert record is not None
        assert record.request == b"x"
        assert record.state == QUEUED
        assert store.list()[0].name == "operations/x"
    finally:
        store.close()


def test_a_job_interrupted_too_often_fails(tmp_path: Path) -> None:
    """Recovery runs a job again after a crash, but not forever (it may cause the crashes)."""
    from google.rpc import code_pb2

    from rpc.operations.manager import MAX_ATTEMPTS, JobManager
    from rpc.pb import route_optimization_service_pb2 as pb

    store = JobStore(tmp_path)
    try:
        store.insert([NewJob("operations/again", "tours", request=b"")], now=1.0)
        store.insert([NewJob("operations/doomed", "tours", request=b"")], now=1.0)
        for _ in range(MAX_ATTEMPTS):  # each start found it running: queued it again
            store.set_state("operations/doomed", QUEUED, 2.0)
            assert store.mark_running("operations/doomed", 2.0)
        store.mark_running("operations/again", 2.0)

        class NoExecutor:
            max_workers = 0  # nothing is dispatched
            max_queued = 0
            running_count = 0
            queued_count = 0

        jobs = JobManager(
            store,
            NoExecutor(),  # type: ignore[arg-type]
            default_timeout_s=1.0,
            default_geodesic_meters_per_second=10.0,
        )
        jobs.start()
        try:
            doomed = jobs.get("operations/doomed")
            assert doomed.done
            assert doomed.error.code == code_pb2.ABORTED
            again = jobs.get("operations/again")
            assert not again.done
            md = pb.OptimizeToursMetadata()
            assert again.metadata.Unpack(md)
            assert md.state == pb.QUEUED
        finally:
            jobs.stop()
    finally:
        store.close()
