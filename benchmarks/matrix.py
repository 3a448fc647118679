"""Many-to-many matrix timings: geodata's numba kernels against scipy, igraph and networkx.

    python -m benchmarks.matrix            # full run (about 15 minutes on 2 cores)
    python -m benchmarks.matrix --quick    # Monaco and a 100x100 synthetic grid, N = 100 and 1000

For each graph (the OSM extracts in ``../shared/data/osm`` loaded with ``geodata.load_network`` and
the CAR profile, plus a synthetic road-like graph) and each N, one random set of N source nodes and
one of N target nodes (fixed seed) is used by every method:

* ``scipy``: ``scipy.sparse.csgraph.dijkstra(graph, indices=sources, min_only=False)``, columns of
  the targets taken afterwards (in chunks of sources when the dense ``N x n`` output would exceed
  ``--scipy-chunk-bytes``; the work per source is the same);
* ``numba 1T`` / ``numba {k}T``: :func:`geodata.matrix.many_to_many` with ``threads=1`` and with
  all threads (durations *and* distances, input validation included);
* ``igraph``: ``Graph.distances(sources, targets, weights=...)`` if python-igraph is installed;
* ``networkx``: one ``single_source_dijkstra_path_length`` per source, only for N <= 100 on graphs
  with at most ``--networkx-max-nodes`` nodes.

Results are compared with scipy's before any time is reported: numba's durations must be
bit-identical, igraph's and networkx's within 1e-9 relative; numba's distances are checked for a
few sources against the lengths along scipy's predecessor paths. Each method runs ``--repeat``
times (default 1), interleaved with the other methods; the fastest run counts. Building each
library's graph is not timed. Prints a Markdown table with wall-clock seconds and the speed-up
relative to scipy (> 1 is faster than scipy), plus process CPU seconds and the CPU-time speed-up:
on a machine shared with other jobs, CPU time is the steadier measure for single-threaded methods
(for a k-thread run it is the total work, so its "CPU speed-up" shows the parallel overhead).

Kernel design decisions, measured with the kernel alone (CPU time, fastest of 8-40 interleaved
runs, 300 or 30 random sources and targets) on the 2-core development machine while other jobs ran:

===========================================  =================================================
change                                       effect
===========================================  =================================================
``inline="always"`` on the heap sifts        Monaco 0.244 -> 0.208 s (LLVM left ``_sift_down``
                                             as a call per pop)
binary / 8-ary instead of 4-ary heap         binary 18 % slower (128x128 grid); 8-ary equal
                                             (Heidelberg, 250k grid)
lazy heap without decrease-key               Monaco 0.424 -> 0.551 s (slower)
bottom-up pop, branch-free min of 4          no gain (within noise, slightly slower)
packed edges (record array w, len, target)   Heidelberg 0.514 -> 0.681 s (slower)
packed node state (time, dist) pairs         no gain
int64 instead of int32 heap/pos arrays       no gain (within noise), twice the memory
node order: RCM or lat/lon bands             no gain on the OSM extracts (loader order is
                                             already local); a random order is 2.8x slower
                                             on the 250k grid
walk chains of interior nodes (shape points  Heidelberg 300 x 300: 1.46-1.70 -> 0.62-0.85 s;
between junctions) instead of queueing them  the heap holds only junctions (8-17 % of the
                                             nodes of the OSM extracts); kept
chain walk in a tuple-returning inline       200x200 grid (99.5 % junctions) 0.66 -> 1.08 s:
helper                                       the relaxation is written out in ``_search``
===========================================  =================================================

Replacing the heap by a FIFO queue (wrong results, same memory traffic) cut Heidelberg from 0.353
to 0.127 s (before chains): about two thirds of the time was heap work. Walking chains removes
most of it on road graphs at full resolution; on the synthetic grid, where nearly every node is a
junction, the kernel is plain Dijkstra with a 4-ary heap and runs at scipy's speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra

from geodata import matrix

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm"
OSM_GRAPHS = ("monaco", "andorra", "heidelberg")
SIZES = (100, 1000, 2000)
SEED = 20251127


@dataclass(frozen=True)
class Graph:
    """A CSR road graph as the kernels take it (no parallel edges)."""

    name: str
    indptr: np.ndarray
    indices: np.ndarray
    travel_time_s: np.ndarray
    length_m: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    def scipy_csr(self) -> sp.csr_array:
        n = self.n_nodes
        return sp.csr_array((self.travel_time_s, self.indices, self.indptr), shape=(n, n))

    def sources(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_nodes), np.diff(self.indptr))


# ------------------------------------------------------------------------------------------ #
# Graphs
# ------------------------------------------------------------------------------------------ #


def load_osm(name: str, cache_dir: Path | None) -> Graph | str:
    """The CAR network of ``DATA_DIR/{name}.osm.pbf``, or why it is not available."""
    path = DATA_DIR / f"{name}.osm.pbf"
    if not path.is_file():
        return f"{path} not found"
    try:
        from geodata import CAR, load_network
    except ImportError as exc:
        return f"geodata.load_network not available: {exc}"
    network, _ = load_network(path, CAR, cache_dir=cache_dir)
    return Graph(
        name,
        np.asarray(network.indptr),
        np.asarray(network.indices),
        np.asarray(network.travel_time_s),
        np.asarray(network.length_m),
    )


def synthetic_roads(side: int, seed: int = 7) -> Graph:
    """A perturbed ``side x side`` street grid, about 100 m blocks, with one-ways and arterials.

    Node positions are jittered by up to 30 m; every 10th row and column is a two-way arterial at
    60 km/h, other streets run at 30 km/h (with +-20 % per edge), 20 % of them are one-way in a
    random direction and 3 % are missing. The largest strongly connected component is kept (as
    ``geodata.load_network`` does), so every pair is reachable.
    """
    rng = np.random.default_rng(seed)
    n = side * side
    x = (np.arange(n) % side) * 100.0 + rng.uniform(-30, 30, n)
    y = (np.arange(n) // side) * 100.0 + rng.uniform(-30, 30, n)
    ids = np.arange(n).reshape(side, side)
    a = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    b = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    row_a, col_a = a // side, a % side
    horizontal = np.arange(a.size) < ids[:, :-1].size
    arterial = np.where(horizontal, row_a % 10 == 0, col_a % 10 == 0)
    keep = rng.random(a.size) > 0.03
    one_way = ~arterial & (rng.random(a.size) < 0.2)
    flip = rng.random(a.size) < 0.5
    fwd_u, fwd_v = np.where(flip, b, a), np.where(flip, a, b)
    u = np.concatenate([fwd_u[keep], fwd_v[keep & ~one_way]])
    v = np.concatenate([fwd_v[keep], fwd_u[keep & ~one_way]])
    art = np.concatenate([arterial[keep], arterial[keep & ~one_way]])
    length = np.hypot(x[u] - x[v], y[u] - y[v])
    speed_ms = np.where(art, 60.0, 30.0) / 3.6 * rng.uniform(0.8, 1.2, u.size)
    graph = sp.csr_array((np.ones(u.size), (u, v)), shape=(n, n))
    _, label = connected_components(graph, directed=True, connection="strong")
    big = label == np.bincount(label).argmax()
    new_id = np.cumsum(big) - 1
    ok = big[u] & big[v]
    u, v, length, time_s = new_id[u[ok]], new_id[v[ok]], length[ok], length[ok] / speed_ms[ok]
    order = np.lexsort((v, u))
    u, v, length, time_s = u[order], v[order], length[order], time_s[order]
    m = int(big.sum())
    indptr = np.zeros(m + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(u, minlength=m))
    return Graph(f"synthetic {side}x{side}", indptr, v.astype(np.int32), time_s, length)


# ------------------------------------------------------------------------------------------ #
# Methods
# ------------------------------------------------------------------------------------------ #


def run_scipy(graph: Graph, csr: sp.csr_array, s: np.ndarray, t: np.ndarray, chunk: int) -> Any:
    rows = max(1, chunk // (8 * graph.n_nodes))
    parts = [
        dijkstra(csr, directed=True, indices=s[i : i + rows], min_only=False)[:, t]
        for i in range(0, s.size, rows)
    ]
    return np.vstack(parts)


def igraph_of(graph: Graph) -> Any:
    import igraph

    g = igraph.Graph(
        n=graph.n_nodes, edges=np.column_stack([graph.sources(), graph.indices]), directed=True
    )
    g.es["weight"] = graph.travel_time_s
    return g


def networkx_of(graph: Graph) -> Any:
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(range(graph.n_nodes))
    g.add_weighted_edges_from(
        zip(
            graph.sources().tolist(),
            graph.indices.tolist(),
            graph.travel_time_s.tolist(),
            strict=True,
        )
    )
    return g


def run_igraph(g: Any, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.asarray(g.distances(s.tolist(), t.tolist(), weights="weight"), dtype=np.float64)


def run_networkx(g: Any, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    import networkx as nx

    out = np.full((s.size, t.size), np.inf)
    targets = t.tolist()
    for i, src in enumerate(s.tolist()):
        lengths = nx.single_source_dijkstra_path_length(g, src, weight="weight")
        out[i] = [lengths.get(x, np.inf) for x in targets]
    return out


def check_distances(
    graph: Graph, csr: sp.csr_array, s: np.ndarray, t: np.ndarray, got: Any
) -> None:
    """numba's distances equal the length along scipy's fastest path, for a few sources."""
    k = min(5, s.size)
    _, pred = dijkstra(csr, directed=True, indices=s[:k], return_predecessors=True)
    src_of_edge = graph.sources()
    for i in range(k):
        for j in range(0, t.size, max(1, t.size // 50)):
            node, hops = int(t[j]), []
            while node != s[i]:
                prev = int(pred[i, node])
                lo, hi = graph.indptr[prev], graph.indptr[prev + 1]
                e = lo + int(np.searchsorted(graph.indices[lo:hi], node))
                if src_of_edge[e] != prev or graph.indices[e] != node:
                    raise AssertionError(f"scipy's path uses a missing edge {prev} -> {node}")
                hops.append(e)
                node = prev
            total = 0.0
            for e in reversed(hops):
                total += float(graph.length_m[e])
            if not np.isclose(got.distances_m[i, j], total, rtol=1e-12, atol=0.0):
                raise AssertionError(
                    f"distance mismatch at ({i}, {j}): {got.distances_m[i, j]} != {total}"
                )


@dataclass
class Row:
    graph: str
    nodes: int
    edges: int
    n: int
    method: str
    seconds: float
    scipy_seconds: float
    cpu_seconds: float
    scipy_cpu_seconds: float
    note: str = ""


def timed(fn: Callable[..., Any]) -> tuple[float, float, Any]:
    """Wall-clock and process CPU seconds of ``fn()``, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def agrees(got: np.ndarray, ref: np.ndarray, method: str, graph: Graph) -> str:
    """'' when bit-identical, a note when within 1e-9 relative; raise otherwise."""
    if np.array_equal(got, ref):
        return ""
    if np.allclose(got, ref, rtol=1e-9, atol=0.0) and np.array_equal(np.isinf(got), np.isinf(ref)):
        return "(≤1e-9 rel.)"
    raise AssertionError(f"{method} durations differ from scipy on {graph.name}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Context:
    """Per-graph state shared by the node-set sizes: the graph in every library's format."""

    def __init__(self, graph: Graph, args: argparse.Namespace) -> None:
        self.graph = graph
        self.args = args
        self.csr = graph.scipy_csr()
        self.arrays = (graph.indptr, graph.indices, graph.travel_time_s, graph.length_m)
        self.igraph: Any = None
        if not args.no_igraph:
            try:
                self.igraph = igraph_of(graph)
            except ImportError:
                log("python-igraph is not installed: igraph skipped")
        self._networkx: Any = None

    def networkx(self) -> Any:
        if self._networkx is None:
            self._networkx = networkx_of(self.graph)
        return self._networkx


def bench_size(ctx: Context, s: np.ndarray, t: np.ndarray) -> list[Row]:
    """Time every method on one node set; repeats are interleaved, the fastest run counts."""
    graph, args = ctx.graph, ctx.args
    all_threads = matrix.max_threads()
    methods: dict[str, Callable[[], Any]] = {
        "scipy": lambda: run_scipy(graph, ctx.csr, s, t, args.scipy_chunk_bytes)
    }
    for threads in [1] if all_threads == 1 else [1, all_threads]:
        methods[f"numba {threads}T"] = partial(
            matrix.many_to_many, *ctx.arrays, s, t, threads=threads
        )
    if ctx.igraph is not None:
        methods["igraph"] = partial(run_igraph, ctx.igraph, s, t)
    if not args.no_networkx and s.size <= 100 and graph.n_nodes <= args.networkx_max_nodes:
        methods["networkx"] = partial(run_networkx, ctx.networkx(), s, t)

    best = dict.fromkeys(methods, float("inf"))
    best_cpu = dict.fromkeys(methods, float("inf"))
    notes = dict.fromkeys(methods, "")
    ref: np.ndarray | None = None
    for rep in range(args.repeat):
        for name, fn in methods.items():
            secs, cpu, got = timed(fn)
            best[name] = min(best[name], secs)
            best_cpu[name] = min(best_cpu[name], cpu)
            log(f"  N={s.size} run {rep + 1}: {name} {secs:.3f} s (CPU {cpu:.3f} s)")
            if rep:
                continue
            if ref is None:
                ref = got
            elif name.startswith("numba"):
                if not np.array_equal(got.durations_s, ref):
                    raise AssertionError(f"{name} is not bit-identical to scipy on {graph.name}")
                if name == "numba 1T":
                    check_distances(graph, ctx.csr, s, t, got)
            else:
                notes[name] = agrees(got, ref, name, graph)
    base = (graph.name, graph.n_nodes, graph.n_edges, s.size)
    if all_threads > 1:
        scaling = best["numba 1T"] / best[f"numba {all_threads}T"]
        notes[f"numba {all_threads}T"] = f"({scaling:.2f}× the 1T speed)"
    return [
        Row(*base, name, best[name], best["scipy"], best_cpu[name], best_cpu["scipy"], notes[name])
        for name in methods
    ]


def bench_graph(graph: Graph, sizes: tuple[int, ...], args: argparse.Namespace) -> list[Row]:
    ctx = Context(graph, args)
    rng = np.random.default_rng(SEED)
    rows: list[Row] = []
    for n in sizes:
        if n > graph.n_nodes:
            continue
        s = rng.choice(graph.n_nodes, n, replace=False)
        t = rng.choice(graph.n_nodes, n, replace=False)
        rows += bench_size(ctx, s, t)
    return rows


def table(rows: list[Row]) -> str:
    """Markdown: wall seconds and speed-up vs scipy; CPU seconds and CPU speed-up for 1-thread
    methods (robust to other jobs time-sharing the cores; for k threads CPU time is the work)."""
    out = [
        "| graph | nodes | edges | N | method | seconds | speed-up vs scipy | CPU s | "
        "CPU speed-up |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.graph} | {r.nodes:,} | {r.edges:,} | {r.n} | {r.method} | {r.seconds:.3f} | "
            f"{r.scipy_seconds / r.seconds:.2f}× {r.note}".rstrip()
            + f" | {r.cpu_seconds:.3f} | {r.scipy_cpu_seconds / r.cpu_seconds:.2f}× |"
        )
    return "\n".join(out)


def machine() -> str:
    from geodata.kernels.config import THREADING_LAYER

    try:
        import igraph

        ig_version = igraph.__version__
    except ImportError:
        ig_version = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load} at the end); Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"numba {numba.__version__} (threading layer {THREADING_LAYER}, "
        f"{matrix.max_threads()} threads), python-igraph {ig_version}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Monaco + 100x100 grid, N=100,1000")
    parser.add_argument(
        "--graphs", nargs="*", help="subset of: " + ", ".join(OSM_GRAPHS) + ", synthetic"
    )
    parser.add_argument("--sizes", nargs="*", type=int, help=f"node-set sizes (default {SIZES})")
    parser.add_argument(
        "--side", type=int, default=500, help="synthetic grid side (500: ~250k nodes)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the fastest counts")
    parser.add_argument("--no-igraph", action="store_true")
    parser.add_argument("--no-networkx", action="store_true")
    parser.add_argument("--networkx-max-nodes", type=int, default=70_000)
    parser.add_argument("--scipy-chunk-bytes", type=int, default=1 << 30)
    parser.add_argument("--cache-dir", type=Path, default=None, help="road network cache")
    args = parser.parse_args(argv)

    names = args.graphs or [*OSM_GRAPHS, "synthetic"]
    sizes = tuple(args.sizes or SIZES)
    side = args.side
    if args.quick:
        names = args.graphs or ["monaco", "synthetic"]
        sizes = tuple(args.sizes or (100, 1000))
        side = 100 if args.side == 500 else args.side

    log(f"compiling kernels: {matrix.warm_up():.1f} s")
    rows: list[Row] = []
    skipped: list[str] = []
    for name in names:
        graph = synthetic_roads(side) if name == "synthetic" else load_osm(name, args.cache_dir)
        if isinstance(graph, str):
            skipped.append(f"{name}: {graph}")
            continue
        log(f"{graph.name}: {graph.n_nodes} nodes, {graph.n_edges} edges")
        rows += bench_graph(graph, sizes, args)

    shown = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"Command: `python -m benchmarks.matrix {shown}`".replace(" `", "`"))
    print(f"Machine: {machine()}\n")
    print(table(rows))
    for line in skipped:
        print(f"\nSkipped {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
