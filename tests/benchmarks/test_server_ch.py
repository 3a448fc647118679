"""benchmarks.server_ch's graph layout: the positions it gives a coordinate-less graph keep
neighbours close (what snapping on a laid-out DIMACS graph relies on)."""

from __future__ import annotations

import numpy as np

from benchmarks.server_ch import layout


def grid_csr(n: int) -> tuple[np.ndarray, np.ndarray]:
    """An ``n x n`` grid, both directions of each street, CSR sorted by head."""
    pairs = []
    for y in range(n):
        for x in range(n):
            u = y * n + x
            if x + 1 < n:
                pairs += [(u, u + 1), (u + 1, u)]
            if y + 1 < n:
                pairs += [(u, u + n), (u + n, u)]
    pairs.sort()
    tails = np.array([a for a, _ in pairs])
    heads = np.array([b for _, b in pairs], dtype=np.int32)
    indptr = np.zeros(n * n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(tails, minlength=n * n))
    return indptr, heads


def test_the_layout_keeps_neighbours_close() -> None:
    indptr, heads = grid_csr(30)
    xy = layout(indptr, heads, pivots=8)
    tails = np.repeat(np.arange(900), np.diff(indptr))
    edge = np.linalg.norm(xy[tails] - xy[heads], axis=1)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 900, (2, 2000))
    random_pairs = np.linalg.norm(xy[a] - xy[b], axis=1)
    assert np.median(edge) * 5 < np.median(random_pairs)
    # a grid's layout spans two dimensions, not a line
    spread = np.ptp(xy, axis=0)
    assert spread.min() > 0.3 * spread.max()
