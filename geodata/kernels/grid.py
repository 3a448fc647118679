"""A uniform grid over road segments and the nearest-segment search on it (numba kernels).

The grid (:mod:`geodata.snap_index` builds it and validates every array before a kernel runs)
covers the segments' bounding box with square cells of side ``cell``, ``nx`` columns by ``ny``
rows, cell ``(i, j)`` spanning ``[x0 + i * cell, x0 + (i + 1) * cell] x [y0 + j * cell, ...]``.
Cell ``c = j * nx + i`` lists the segments that pass through it (CSR: ``cell_items[
cell_start[c]:cell_start[c + 1]]``, ascending segment ids): within each column the segment's
clipped y-range, widened by :data:`PAD_M`, so a segment is listed in every cell it touches (and a
few it only nearly touches, which costs nothing but time).

The search visits rings of cells around the query's cell (clamped to the grid) and stops once the
best distance is below the distance from the query to every cell not yet visited (a lower bound
for every segment not yet seen). Distances are computed as GEOS computes a point-to-segment
distance (``Distance::pointToSegment``, the same rounding), so the nearest segment is the one
shapely's ``STRtree`` found wherever it is unique; equal distances go to the lowest segment id (the
STRtree gave them to whichever its packing visited first).
"""

from __future__ import annotations

import math

import numpy as np

from geodata.arrays import F64, I32, I64
from geodata.kernels.jit import kernel

__all__ = ["PAD_M", "count_cells", "fill_cells", "nearest_segments", "segment_distance"]

PAD_M = 1e-3
"""Each column's y-range of a segment is widened by this much (metres) before it is mapped to
cells: far above the rounding of the coordinates (at most ~2e7 m, an ulp of ~4e-9 m)."""


@kernel(inline="always")
def segment_distance(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    """Distance from ``p`` to the segment ``a b``, with GEOS's arithmetic (same rounding)."""
    if ax == bx and ay == by:
        return math.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        return math.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    if r >= 1.0:
        return math.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return abs(s) * math.sqrt(len2)


@kernel(inline="always")
def _column_rows(
    ax: float, ay: float, bx: float, by: float, i: int, grid: tuple[float, float, float, int, int]
) -> tuple[int, int]:
    """The first and last row of column ``i`` that the segment ``a b`` may touch (clamped).

    The segment's x-range is clipped to the column widened by :data:`PAD_M` on both sides, so a
    rounding error in a crossing's x (even on a near-vertical segment) cannot lose a cell.
    """
    x0, y0, cell, _, ny = grid
    lo_x = max(min(ax, bx), x0 + i * cell - PAD_M)
    hi_x = min(max(ax, bx), x0 + (i + 1) * cell + PAD_M)
    hi_x = max(hi_x, lo_x)
    if ax == bx:
        ya, yb = ay, by
    else:
        slope = (by - ay) / (bx - ax)
        ya = ay + (lo_x - ax) * slope
        yb = ay + (hi_x - ax) * slope
    lo_y = max(min(ya, yb), min(ay, by))
    hi_y = min(max(ya, yb), max(ay, by))
    if hi_y < lo_y:
        lo_y, hi_y = hi_y, lo_y
    j0 = math.floor((lo_y - PAD_M - y0) / cell)
    j1 = math.floor((hi_y + PAD_M - y0) / cell)
    return max(j0, 0), min(j1, ny - 1)


@kernel(inline="always")
def _columns(ax: float, bx: float, grid: tuple[float, float, float, int, int]) -> tuple[int, int]:
    """The first and last column the segment with end x-coordinates ``ax``, ``bx`` may touch."""
    x0, _, cell, nx, _ = grid
    i0 = math.floor((min(ax, bx) - PAD_M - x0) / cell)
    i1 = math.floor((max(ax, bx) + PAD_M - x0) / cell)
    return max(i0, 0), min(i1, nx - 1)


@kernel()
def count_cells(
    node_x: F64,
    node_y: F64,
    seg_a: I32,
    seg_b: I32,
    grid: tuple[float, float, float, int, int],
    cell_start: I64,
) -> None:
    """Add the number of segments of cell ``c`` to ``cell_start[c + 1]`` (zeros on entry)."""
    nx = grid[3]
    for s in range(seg_a.shape[0]):
        ax, ay = node_x[seg_a[s]], node_y[seg_a[s]]
        bx, by = node_x[seg_b[s]], node_y[seg_b[s]]
        i0, i1 = _columns(ax, bx, grid)
        for i in range(i0, i1 + 1):
            j0, j1 = _column_rows(ax, ay, bx, by, i, grid)
            for j in range(j0, j1 + 1):
                cell_start[j * nx + i + 1] += 1


@kernel()
def fill_cells(
    node_x: F64,
    node_y: F64,
    seg_a: I32,
    seg_b: I32,
    grid: tuple[float, float, float, int, int],
    cell_start: I64,
    cell_items: I32,
) -> None:
    """List the segments of every cell, ascending, given ``cell_start`` (prefix sums of
    :func:`count_cells`)."""
    nx = grid[3]
    fill = cell_start[:-1].copy()
    for s in range(seg_a.shape[0]):
        ax, ay = node_x[seg_a[s]], node_y[seg_a[s]]
        bx, by = node_x[seg_b[s]], node_y[seg_b[s]]
        i0, i1 = _columns(ax, bx, grid)
        for i in range(i0, i1 + 1):
            j0, j1 = _column_rows(ax, ay, bx, by, i, grid)
            for j in range(j0, j1 + 1):
                c = j * nx + i
                cell_items[fill[c]] = s
                fill[c] += 1


@kernel(inline="always")
def _rect_distance(px: float, py: float, rx0: float, ry0: float, rx1: float, ry1: float) -> float:
    dx = max(rx0 - px, 0.0, px - rx1)
    dy = max(ry0 - py, 0.0, py - ry1)
    return math.sqrt(dx * dx + dy * dy)


@kernel(inline="always")
def _scan_cell(
    c: int,
    qx: float,
    qy: float,
    node_x: F64,
    node_y: F64,
    seg_a: I32,
    seg_b: I32,
    cell_start: I64,
    cell_items: I32,
    best_d: float,
    best_s: int,
) -> tuple[float, int]:
    """The best ``(distance, segment)`` after the segments of cell ``c``."""
    for t in range(cell_start[c], cell_start[c + 1]):
        s = cell_items[t]
        a, b = seg_a[s], seg_b[s]
        d = segment_distance(qx, qy, node_x[a], node_y[a], node_x[b], node_y[b])
        if d < best_d or (d == best_d and s < best_s):
            best_d = d
            best_s = s
    return best_d, best_s


@kernel(inline="always")
def _span(
    q: float, origin: float, cell: float, gap: float, reach: float, lo: int, hi: int
) -> tuple[int, int]:
    """The cells ``lo..hi`` of a ring's row (or column) that the disk of radius ``reach`` around
    the query can touch, given the row's distance ``gap`` from the query (``lo > hi``: none)."""
    if reach == np.inf:
        return lo, hi
    if gap > reach:
        return 1, 0
    half = math.sqrt(reach * reach - gap * gap)
    first = max(float(lo), math.floor((q - half - origin) / cell))
    last = min(float(hi), math.floor((q + half - origin) / cell))
    return int(first), int(last)


@kernel()
def nearest_segments(
    px: F64,
    py: F64,
    node_x: F64,
    node_y: F64,
    seg_a: I32,
    seg_b: I32,
    grid: tuple[float, float, float, int, int],
    cell_start: I64,
    cell_items: I32,
    out_seg: I64,
) -> None:
    """The nearest segment of every point (``out_seg[k]``); ties go to the lowest segment id.

    Within each ring only the cells the disk of the best distance so far (plus :data:`PAD_M`)
    can touch are read, so a point far off the network costs the rings and the cells of that disk
    in the grid, not every cell of every ring.
    """
    x0, y0, cell, nx, ny = grid
    gx1, gy1 = x0 + nx * cell, y0 + ny * cell
    for k in range(px.shape[0]):
        qx, qy = px[k], py[k]
        ci = min(max(math.floor((qx - x0) / cell), 0), nx - 1)
        cj = min(max(math.floor((qy - y0) / cell), 0), ny - 1)
        best_d = np.inf
        best_s = -1
        r = 0
        while True:
            # The ring of cells at Chebyshev distance r from (ci, cj), clipped to the grid: its
            # bottom and top rows, then its left and right columns between them.
            for j in (cj - r, cj + r):
                if j < 0 or j >= ny or (r == 0 and j != cj - r):
                    continue
                gap = max(y0 + j * cell - qy, 0.0, qy - (y0 + (j + 1) * cell))
                lo, hi = _span(
                    qx, x0, cell, gap, best_d + PAD_M, max(ci - r, 0), min(ci + r, nx - 1)
                )
                for i in range(lo, hi + 1):
                    best_d, best_s = _scan_cell(
                        j * nx + i, qx, qy, node_x, node_y, seg_a, seg_b, cell_start,
                        cell_items, best_d, best_s,
                    )  # fmt: skip
            if r > 0:
                for i in (ci - r, ci + r):
                    if i < 0 or i >= nx:
                        continue
                    gap = max(x0 + i * cell - qx, 0.0, qx - (x0 + (i + 1) * cell))
                    lo, hi = _span(
                        qy,
                        y0,
                        cell,
                        gap,
                        best_d + PAD_M,
                        max(cj - r + 1, 0),
                        min(cj + r - 1, ny - 1),
                    )
                    for j in range(lo, hi + 1):
                        best_d, best_s = _scan_cell(
                            j * nx + i, qx, qy, node_x, node_y, seg_a, seg_b, cell_start,
                            cell_items, best_d, best_s,
                        )  # fmt: skip
            # Every cell not visited yet lies in one of four strips; stop when all are empty or
            # farther than the best segment (ties must be seen, so strictly farther).
            bound = np.inf
            if ci - r > 0:
                bound = min(bound, _rect_distance(qx, qy, x0, y0, x0 + (ci - r) * cell, gy1))
            if ci + r < nx - 1:
                bound = min(bound, _rect_distance(qx, qy, x0 + (ci + r + 1) * cell, y0, gx1, gy1))
            if cj - r > 0:
                bound = min(bound, _rect_distance(qx, qy, x0, y0, gx1, y0 + (cj - r) * cell))
            if cj + r < ny - 1:
                bound = min(bound, _rect_distance(qx, qy, x0, y0 + (cj + r + 1) * cell, gx1, gy1))
            if bound == np.inf or best_d < bound:
                break
            r += 1
        out_seg[k] = best_s
