"""Contraction hierarchies against Dijkstra: preprocessing and N x N matrix query times.

    python -m benchmarks.matrix_ch                              # every graph, N = 100 and 1000
    python -m benchmarks.matrix_ch --graphs heidelberg NY --sizes 100 1000 5000
    python -m benchmarks.matrix_ch --rpc heidelberg      # ComputeMatrix's handler, 1000 points

Graphs: the OSM extracts in ``../shared/data/osm`` (CAR profile, ``geodata.load_network``; times
of the network's prepared graph, i.e. on its exact binary grid) and the PACE-2016 DIMACS road
graphs in ``../shared/data/dimacs/pace16-unweighted`` (NY, BAY, COL, FLA: real topology, no
weights), and ``gridSIDE`` (e.g. ``grid500``, about 250k nodes): the perturbed street grid of
``benchmarks.matrix.synthetic_roads`` (seed 7), on its exact binary grid.
DIMACS weights, deterministic: each undirected edge gets, from
``numpy.random.default_rng(0)`` in file order, a length uniform in [10, 1000] m rounded to 1 m and
a speed drawn from {30, 50, 80, 100} km/h; its time ``length / speed`` is rounded to 1/1024 s;
both directions get the same edge. (Random speeds give a weaker hierarchy than real road classes:
these are harder instances than real roads.)

Per graph: hierarchy build time (CPU and wall), its size (edges, MiB of arrays) and the process's
peak RSS; then per N (random source and target nodes, seed 1): the CH matrix (``threads=1``,
buckets included), the Dijkstra kernel (``geodata.matrix`` one thread) and scipy's Dijkstra. On the
large graphs the Dijkstra methods run on the first ``--dijkstra-rows`` sources only and their time
is scaled to N rows (the work per source is the same; marked ``*``); the CH times are always full
N x N runs. Exactness is checked on those rows: CH durations must equal scipy's bit for bit.
pandana's CH (if installed) is timed on the same pairs (``shortest_path_lengths``, N x N pairs;
float32 weights, not exact). CPU seconds of the process are the measure (single-threaded methods;
the machine is shared), wall seconds are shown too.
"""

from __future__ import annotations

import argparse
import importlib
import lzma
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from geodata.ch import ContractionHierarchy, build_ch, ch_many_to_many
from geodata.matrix import many_to_many_prepared
from geodata.prepared import PreparedGraph, prepare_graph
from geodata.seeds import Seeds

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OSM_GRAPHS = ("monaco", "andorra", "heidelberg", "porto-alegre", "sao-paulo")
DIMACS_GRAPHS = ("NY", "BAY", "COL", "FLA")


@dataclass
class Graph:
    name: str
    prepared: PreparedGraph


def load_osm(name: str) -> Graph | str:
    path = SHARED / "osm" / f"{name}.osm.pbf"
    if not path.is_file():
        return f"{path} not found"
    from geodata import CAR, load_network

    network, _ = load_network(path, CAR)
    return Graph(name, network.prepared())


def dimacs_arrays(name: str) -> tuple[np.ndarray, ...] | str:
    """``(indptr, heads, time_s, length_m, speed_kph)`` of the PACE-2016 graph ``name`` with the
    seeded weights of the module docstring (CSR, both directions of each undirected edge)."""
    path = SHARED / "dimacs" / "pace16-unweighted" / f"{name}.gr.xz"
    if not path.is_file():
        return f"{path} not found"
    with lzma.open(path, "rt") as handle:
        handle.readline()  # "p tw n m"
        pairs = np.loadtxt(handle, dtype=np.int64)
    u, v = pairs[:, 0] - 1, pairs[:, 1] - 1
    n = int(max(u.max(), v.max()) + 1)
    rng = np.random.default_rng(0)
    length = np.round(rng.uniform(10.0, 1000.0, u.shape[0]))
    speed = rng.choice(np.array([30.0, 50.0, 80.0, 100.0]), u.shape[0])
    time_s = np.round(length / (speed / 3.6) * 1024.0) / 1024.0
    tails, heads = np.concatenate([u, v]), np.concatenate([v, u])
    order = np.lexsort((heads, tails))
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(tails, minlength=n))
    both = (np.concatenate([a, a])[order] for a in (time_s, length, speed))
    return (indptr, heads[order].astype(np.int32), *both)


def load_dimacs(name: str) -> Graph | str:
    """The PACE-2016 graph ``name`` with the seeded weights of the module docstring."""
    arrays = dimacs_arrays(name)
    if isinstance(arrays, str):
        return arrays
    indptr, heads, time_s, length, _ = arrays
    return Graph(name, prepare_graph(indptr, heads, time_s, length, exact_grid=True))


def load_grid(name: str) -> Graph | str:
    """``gridSIDE``: the synthetic street grid of :func:`benchmarks.matrix.synthetic_roads`."""
    from benchmarks.matrix import synthetic_roads

    side = name.removeprefix("grid")
    if not side.isdigit() or not 2 <= int(side) <= 2000:
        return f"{name}: a grid is gridSIDE with SIDE from 2 to 2000"
    grid = synthetic_roads(int(side))
    return Graph(
        name,
        prepare_graph(
            grid.indptr, grid.indices, grid.travel_time_s, grid.length_m, exact_grid=True
        ),
    )


def load_graph(name: str) -> Graph | str:
    if name in DIMACS_GRAPHS:
        return load_dimacs(name)
    if name.startswith("grid"):
        return load_grid(name)
    return load_osm(name)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return time.process_time() - cpu, time.perf_counter() - wall, out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pandana_of(graph: Graph) -> Any:
    try:
        pandana = importlib.import_module("pandana")
        pd = importlib.import_module("pandas")
    except ImportError:
        return None
    g = graph.prepared.graph
    n = g.n_nodes
    tails = np.repeat(np.arange(n), np.diff(g.indptr))
    nodes = pd.Index(np.arange(n))
    edges = pd.DataFrame({"w": g.weight})
    x = np.zeros(n)
    return pandana.Network(nodes.to_series() * 0.0 + x, x, tails, g.indices, edges, twoway=False)


def bench(
    graph: Graph, sizes: list[int], dijkstra_rows: int, use_pandana: bool, pandana_max_n: int
) -> list[str]:
    g = graph.prepared.graph
    n = g.n_nodes
    rows: list[str] = []
    cpu, wall, ch = timed(build_ch, g)
    assert isinstance(ch, ContractionHierarchy)
    rows.append(
        f"| {graph.name} | {n:,} | {g.indices.shape[0]:,} | build | {cpu:.1f} | {wall:.1f} | "
        f"{ch.n_edges:,} CH edges, {ch.nbytes / 2**20:.0f} MiB arrays, peak RSS "
        f"{peak_rss_mib():.0f} MiB |"
    )
    print(rows[-1], flush=True)
    csr = sp.csr_array((g.weight, g.indices, g.indptr), shape=(n, n))
    pan = pandana_of(graph) if use_pandana else None
    rng = np.random.default_rng(1)
    for size in sizes:
        src = rng.integers(0, n, size)
        tgt = rng.integers(0, n, size)
        s_seeds, t_seeds = Seeds.from_nodes(src), Seeds.from_nodes(tgt)
        ch_many_to_many(ch, Seeds.from_nodes(src[:2]), Seeds.from_nodes(tgt[:2]))  # compiled
        cpu_ch, wall_ch, (times, _) = timed(ch_many_to_many, ch, s_seeds, t_seeds)
        k = min(size, dijkstra_rows)
        scale = size / k
        mark = "*" if k < size else ""
        sub = Seeds.from_nodes(src[:k])
        cpu_dk, _, _ = timed(many_to_many_prepared, graph.prepared, sub, t_seeds, threads=1)
        cpu_sp, _, ref = timed(dijkstra, csr, indices=src[:k])
        ref = ref[:, tgt]
        exact = bool(np.array_equal(times[:k], ref))
        cells = [
            f"CH {cpu_ch:.3f} s ({wall_ch:.3f} wall)",
            f"Dijkstra kernel{mark} {cpu_dk * scale:.2f} s",
            f"scipy{mark} {cpu_sp * scale:.2f} s",
            f"x{cpu_sp * scale / cpu_ch:.0f} vs scipy, x{cpu_dk * scale / cpu_ch:.0f} vs kernel",
            f"exact on {k} rows: {exact}",
        ]
        if pan is not None and size <= pandana_max_n:
            a, b = np.repeat(src, size), np.tile(tgt, size)
            cpu_pd, _, _ = timed(pan.shortest_path_lengths, a, b, imp_name="w")
            cells.append(f"pandana {cpu_pd:.2f} s")
        rows.append(
            f"| {graph.name} | | | N={size} | {cpu_ch:.3f} | {wall_ch:.3f} | "
            + "; ".join(cells)
            + " |"
        )
        print(rows[-1], flush=True)
    return rows


def bench_rpc(osm: str, n_points: int) -> None:
    """``rpc.matrix.compute_matrix`` (request bytes to response bytes) against snap + matrix."""
    from engine.roads import RoadSpec, load_roads
    from geodata.matrix import warm_up
    from rpc.matrix import compute_matrix
    from rpc.pb import route_optimization_service_pb2 as pb

    warm_up()
    roads = load_roads(RoadSpec(path=str(SHARED / "osm" / f"{osm}.osm.pbf")))
    net = roads.network
    rng = np.random.default_rng(0)
    idx = rng.integers(0, net.n_nodes, n_points)
    lat = net.lat[idx] + rng.normal(0, 2e-4, n_points)
    lon = net.lon[idx] + rng.normal(0, 2e-4, n_points)
    for name in ("ROWS", "PACKED"):
        request = pb.ComputeMatrixRequest(encoding=getattr(pb.ComputeMatrixRequest, name))
        for a, b in zip(lat.tolist(), lon.tolist(), strict=True):
            request.sources.add(latitude=a, longitude=b)
            request.destinations.add(latitude=a, longitude=b)
        wire = request.SerializeToString()
        compute_matrix(request, roads, max_cells=n_points * n_points)  # warm

        def query() -> None:
            snaps = roads.snap(lat, lon)
            roads.matrix(snaps, snaps, threads=1)

        def handler(wire: bytes = wire) -> bytes:
            parsed = pb.ComputeMatrixRequest.FromString(wire)
            return compute_matrix(parsed, roads, max_cells=n_points * n_points).SerializeToString()

        cpu_q, _, _ = timed(query)
        cpu_h, _, out = timed(handler)
        print(
            f"| {osm} | {n_points} x {n_points} | {name} | snap + matrix {cpu_q:.3f} s | "
            f"handler {cpu_h:.3f} s | {cpu_h / cpu_q:.2f}x | {len(out) / 1e6:.1f} MB |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", nargs="*", default=[*OSM_GRAPHS, *DIMACS_GRAPHS])
    parser.add_argument("--sizes", nargs="*", type=int, default=[100, 1000])
    parser.add_argument("--dijkstra-rows", type=int, default=100)
    parser.add_argument("--no-pandana", action="store_true")
    parser.add_argument("--pandana-max-n", type=int, default=1000, help="N x N pairs take long")
    parser.add_argument(
        "--rpc", metavar="OSM", help="time ComputeMatrix's handler on this extract instead"
    )
    parser.add_argument("--rpc-points", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.rpc:
        bench_rpc(args.rpc, args.rpc_points)
        return 0
    print("| graph | nodes | edges | what | CPU s | wall s | notes |")
    print("|---|---:|---:|---|---:|---:|---|")
    for name in args.graphs:
        graph = load_graph(name)
        if isinstance(graph, str):
            print(f"| {name} | | | skipped | | | {graph} |")
            continue
        bench(graph, args.sizes, args.dijkstra_rows, not args.no_pandana, args.pandana_max_n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
