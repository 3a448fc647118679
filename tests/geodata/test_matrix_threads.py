"""Matrix kernels on several threads: serial and parallel agree, concurrent calls, the threading
layer, thread counts, warm-up and compiled signatures (geodata.matrix, geodata.kernels)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import pytest

from geodata.kernels import many_to_many as kernels
from geodata.kernels.config import PARALLEL_THREADSAFE, THREADING_LAYER
from geodata.matrix import MatrixResult, Seeds, many_to_many, max_threads, warm_up
from geodata.prepared import prepare_graph
from tests.geodata.test_matrix import ROOT, EdgeList, run

# ------------------------------------------------------------------------------------------ #
# Serial vs parallel, threads
# ------------------------------------------------------------------------------------------ #


def grid(side: int, seed: int = 3) -> EdgeList:
    rng = np.random.default_rng(seed)
    ids = np.arange(side * side).reshape(side, side)
    a = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    b = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    u, v = np.concatenate([a, b]), np.concatenate([b, a])
    keep = rng.random(u.size) > 0.1  # some one-way streets
    return EdgeList(
        side * side,
        u[keep],
        v[keep],
        rng.uniform(1, 60, keep.sum()),
        rng.uniform(5, 900, keep.sum()),
    )


def test_serial_and_parallel_kernels_agree_bit_for_bit() -> None:
    edges = grid(30)
    rng = np.random.default_rng(0)
    sources, targets = rng.integers(0, edges.n, 37), rng.integers(0, edges.n, 23)
    serial = run(edges, sources, targets, threads=1)
    threaded = run(edges, sources, targets, threads=None)
    np.testing.assert_array_equal(serial.durations_s, threaded.durations_s)
    np.testing.assert_array_equal(serial.distances_m, threaded.distances_m)
    # More workers than threads and than sources still covers every row exactly once.
    for workers in (3, 5, 40):
        out = parallel_kernel(edges, sources, targets, workers)
        np.testing.assert_array_equal(out.durations_s, serial.durations_s)
        np.testing.assert_array_equal(out.distances_m, serial.distances_m)


def parallel_kernel(edges: EdgeList, sources: Any, targets: Any, workers: int) -> MatrixResult:
    """Call the parallel kernel directly, with input arrays read-only as the wrapper passes them."""
    prepared = prepare_graph(*edges.csr())
    src, tgt = Seeds.from_nodes(sources), Seeds.from_nodes(targets)
    n = edges.n
    mark, n_marked = prepared.chains.core_targets(tgt.node)
    out_t = np.full((len(src), len(tgt)), -1.0)
    out_d = np.full((len(src), len(tgt)), -1.0)
    workspace = (
        np.empty((workers, n)), np.empty((workers, n)), np.empty((workers, n), np.int32),
        np.empty((workers, n), np.int32), np.empty((workers, n)), np.empty((workers, n), np.int32),
    )  # fmt: skip
    kernels.many_to_many_parallel(
        prepared.kernel_arrays(), src.kernel_arrays(), tgt.kernel_arrays(), (mark, n_marked),
        workspace, (out_t, out_d),
    )  # fmt: skip
    return MatrixResult(out_t, out_d)


def test_concurrent_calls_from_python_threads() -> None:
    """Several Python threads run the parallel kernel at once (the gRPC server's situation)."""
    edges = grid(25)
    rng = np.random.default_rng(1)
    jobs = [(rng.integers(0, edges.n, 20), rng.integers(0, edges.n, 15)) for _ in range(8)]
    expected = [run(edges, s, t, threads=1).durations_s for s, t in jobs]
    start = threading.Barrier(4)

    def work(job: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        if job is jobs[0] or job is jobs[1] or job is jobs[2] or job is jobs[3]:
            start.wait(timeout=60)  # the first four calls start together
        return run(edges, *job, threads=None).durations_s

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(work, jobs))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e, g)


def test_threading_layer_is_pinned_to_a_threadsafe_one() -> None:
    assert THREADING_LAYER in {"omp", "tbb", "threadsafe", "safe"} or not PARALLEL_THREADSAFE
    if PARALLEL_THREADSAFE:
        run(grid(5), [0, 1], [2], threads=None)  # make sure the layer is started
        assert numba.threading_layer() in {"omp", "tbb"}


def test_an_unsafe_threading_layer_falls_back_to_the_serial_kernel() -> None:
    """With NUMBA_THREADING_LAYER=workqueue set by an operator, calls never start that layer."""
    code = (
        "from geodata import matrix\nfrom geodata.kernels import config as c\n"
        "assert (c.THREADING_LAYER, c.PARALLEL_THREADSAFE) == ('workqueue', False)\n"
        "r = matrix.many_to_many([0, 1, 1], [1], [2.0], [3.0], [0, 1, 0], [1], threads=None)\n"
        "assert r.durations_s.tolist() == [[2.0], [0.0], [2.0]]\n"
        "import numba.np.ufunc.parallel as p\n"
        "assert not p._is_initialized\n"
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("threads", [1, 2, 1000, None])
def test_thread_counts_are_capped(threads: int | None) -> None:
    edges = grid(6)
    assert run(edges, [0, 5], [7], threads=threads).durations_s.shape == (2, 1)
    assert max_threads() >= 1


def test_warm_up_compiles_and_self_checks() -> None:
    assert warm_up() >= 0.0


def test_one_compiled_signature_whatever_the_input_arrays() -> None:
    """Lists, int64/int32, writable or read-only arrays: all reach the kernels warm_up compiled."""
    warm_up()
    edges = grid(4)
    indptr, indices, w, length = edges.csr()
    frozen = [a.copy() for a in (indptr, indices, w, length)]
    for a in frozen:
        a.flags.writeable = False
    for graph in (
        (indptr, indices, w, length),
        tuple(frozen),
        (indptr.tolist(), indices.astype(np.int64), w.tolist(), length.astype(np.float32)),
    ):
        for threads in (1, None):
            many_to_many(*graph, np.array([0, 3], np.int32), [5, 6], threads=threads)
    assert len(kernels.many_to_many_serial.signatures) == 1  # type: ignore[attr-defined]
    if PARALLEL_THREADSAFE and max_threads() > 1:
        assert len(kernels.many_to_many_parallel.signatures) == 1  # type: ignore[attr-defined]
