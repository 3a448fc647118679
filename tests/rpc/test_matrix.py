"""ComputeMatrix shares the kernels' threads among concurrent calls (rpc.matrix.ThreadShare)."""

from __future__ import annotations

import threading

import pytest

from rpc.matrix import ThreadShare


def test_a_lone_call_gets_every_thread_and_concurrent_calls_split_them():
    share = ThreadShare(4)
    with share.share() as first:
        assert first == 4
        with share.share() as second:
            assert second == 2
            with share.share() as third, share.share() as fourth:
                assert (third, fourth) == (1, 1)
            with share.share() as again:  # two others still run
                assert again == 1
    with share.share() as alone:  # everything released
        assert alone == 4


def test_never_fewer_than_one_thread_and_released_on_errors():
    share = ThreadShare(2)

    def failing_call() -> None:
        with share.share():
            raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError):
        failing_call()
    with share.share() as threads:  # the failed call gave its share back
        assert threads == 2
    with share.share(), share.share(), share.share() as third:
        assert third == 1
    with pytest.raises(ValueError, match="at least 1"):
        ThreadShare(0)


def test_simultaneous_calls_get_total_divided_by_their_rank():
    share = ThreadShare(8)
    barrier = threading.Barrier(6)
    seen: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        with share.share() as threads:
            with lock:
                seen.append(threads)
            barrier_inner.wait()

    barrier_inner = threading.Barrier(6)
    workers = [threading.Thread(target=call) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    # The k-th concurrent call gets total // k: 8, 4, 2, 2, 1, 1 in some order of arrival.
    assert sorted(seen, reverse=True) == [8, 4, 2, 2, 1, 1]
