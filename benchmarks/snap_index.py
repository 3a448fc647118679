"""The snap index (uniform grid of flat arrays, numba) against shapely's STRtree it replaced.

    python -m benchmarks.snap_index                     # Heidelberg and FLA (/tmp/routeopt-fla)
    python -m benchmarks.snap_index --graphs heidelberg --points 1000 --repeats 7

For each network: building the index in memory (CPU seconds, the RSS it adds, and the size of its
arrays), loading it from the cache directory (memory-mapped), and the nearest-segment search of
``--points`` points within ~20 m of random nodes plus 1 % up to 30 km off the network, grid and
STRtree alternately ``--repeats`` times (CPU seconds, best and median). Every point's segment
is compared: where the two differ, the distances (shapely's) must be equal,
an exact tie that the grid gives to the lowest segment id and the STRtree to the first it finds.
Last, 100 points 300 km south of the network (the grid's worst case: rings up to its far side).
FLA is the network file of :mod:`benchmarks.server_ch` (built there once).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import shapely

from benchmarks.matrix_ch import SHARED
from geodata import CAR, RoadNetwork, load_network
from geodata.npz import load_npz
from geodata.snap_index import build_snap_index, load_snap_index, save_snap_index, to_metres
from geodata.snap_index import projection as index_projection


def network(name: str, fla: Path) -> RoadNetwork | str:
    if name == "FLA":
        if not fla.is_file():
            return f"{fla} is absent: run python -m benchmarks.server_ch once"
        arrays = load_npz(fla)
        profile = str(arrays.pop("profile"))
        return RoadNetwork(**arrays, profile=profile)
    path = SHARED / "osm" / f"{name}.osm.pbf"
    if not path.is_file():
        return f"{path} is absent"
    return load_network(path, CAR)[0]


def cpu(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.process_time()
    out = fn(*args)
    return time.process_time() - started, out


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def bench(name: str, net: RoadNetwork, points: int, repeats: int) -> None:
    build_snap_index(net)  # compiles (or loads) the kernels
    before = rss()
    build_s, index = cpu(build_snap_index, net)
    grid_rss = rss() - before
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.snap"
        save_snap_index(index, net, path)
        load_s, loaded = cpu(load_snap_index, net, path)
        assert loaded is not None
        assert isinstance(loaded.cell_items, np.memmap)

    ends = np.stack(
        [
            np.column_stack([index.node_x[index.seg_a], index.node_y[index.seg_a]]),
            np.column_stack([index.node_x[index.seg_b], index.node_y[index.seg_b]]),
        ],
        axis=1,
    )
    before = rss()
    tree_s, tree = cpu(lambda: shapely.STRtree(shapely.linestrings(ends)))
    tree_rss = rss() - before

    rng = np.random.default_rng(0)
    nodes = rng.integers(0, net.n_nodes, points)
    lat = net.lat[nodes] + rng.uniform(-2e-4, 2e-4, points)
    lon = net.lon[nodes] + rng.uniform(-2e-4, 2e-4, points)
    far = rng.random(points) < 0.01
    lat[far] += rng.uniform(-0.3, 0.3, int(far.sum()))
    x, y = to_metres(index_projection(index.lat0, index.lon0)).transform(lon, lat)
    px, py = np.asarray(x), np.asarray(y)
    geoms = shapely.points(px, py)

    def strtree() -> np.ndarray:
        hits = tree.query_nearest(geoms, all_matches=False)
        out = np.empty(points, dtype=np.int64)
        out[hits[0]] = hits[1]
        return out

    grid_times, tree_times = [], []
    for _ in range(repeats):
        t, grid_seg = cpu(index.nearest, px, py)
        grid_times.append(t)
        t, tree_seg = cpu(strtree)
        tree_times.append(t)
    # 100 points 300 km south of the network (rejected by the server, but snapped first)
    far_lat = np.full(100, float(net.lat.min()) - 2.7)
    far_lon = np.linspace(float(net.lon.min()), float(net.lon.max()), 100)
    fx, fy = to_metres(index_projection(index.lat0, index.lon0)).transform(far_lon, far_lat)
    fx, fy = np.asarray(fx), np.asarray(fy)
    far_grid_s, far_grid = cpu(index.nearest, fx, fy)
    far_tree_s, far_hits = cpu(tree.query_nearest, shapely.points(fx, fy))
    far_tree = np.empty(100, dtype=np.int64)
    far_tree[far_hits[0]] = far_hits[1]

    lines = shapely.linestrings(ends)
    far_points = shapely.points(fx, fy)
    far_differ = int(np.count_nonzero(far_grid != far_tree))
    far_ties = bool(
        np.array_equal(
            shapely.distance(far_points, lines[far_grid]),
            shapely.distance(far_points, lines[far_tree]),
        )
    )
    differ = grid_seg != tree_seg
    d_grid = shapely.distance(geoms, lines[grid_seg])
    d_tree = shapely.distance(geoms, lines[tree_seg])
    ties_only = bool(np.array_equal(d_grid, d_tree))
    print(
        f"| {name} | {net.n_nodes:,} | {index.n_segments:,} | grid {index.nx}×{index.ny}, "
        f"{index.cell:.0f} m | {build_s:.2f} / {tree_s:.2f} | {load_s:.3f} | "
        f"{index.nbytes / 2**20:.0f} MiB (+{grid_rss / 2**20:.0f}) / +{tree_rss / 2**20:.0f} MiB | "
        f"{min(grid_times):.4f} / {statistics.median(grid_times):.4f} | "
        f"{min(tree_times):.4f} / {statistics.median(tree_times):.4f} | "
        f"{statistics.median(tree_times) / statistics.median(grid_times):.1f}× | "
        f"{int(differ.sum())} ({'all exact ties' if ties_only else 'NOT ties'}) | "
        f"{far_grid_s:.4f} / {far_tree_s:.4f} ({far_differ} on another segment, "
        f"{'all exact ties' if far_ties else 'NOT ties'}) |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", nargs="+", default=["heidelberg", "FLA"])
    parser.add_argument(
        "--fla", type=Path, default=Path(tempfile.gettempdir()) / "routeopt-fla" / "FLA.npz"
    )
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"- load average before: {Path('/proc/loadavg').read_text().split()[:3]}\n")
    print(
        "| network | nodes | segments | grid | build CPU s (grid / STRtree) "
        "| load from cache (mmap) s | memory (grid arrays, RSS) / STRtree RSS "
        f"| grid {args.points} points CPU s best / median | STRtree best / median "
        "| speed-up (median) | points on another segment "
        "| 100 points 300 km off, CPU s grid / STRtree |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.graphs:
        net = network(name, args.fla)
        if isinstance(net, str):
            print(f"| {name} | {net} |")
            continue
        bench(name, net, args.points, args.repeats)
    print(f"\n- load average after: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
