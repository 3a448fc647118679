"""The server on a 1M-node road network: start-up, memory, ComputeMatrix and a first solution.

    python -m benchmarks.server_ch                          # FLA (1.07M nodes), everything
    python -m benchmarks.server_ch --graph NY --out /tmp/routeopt-ny --no-cold
    python -m benchmarks.server_ch --no-cold --startup-only   # warm start, memory, snapping

What a user does to serve a network that is not OpenStreetMap: build a
:class:`geodata.RoadNetwork` from the arrays, write it with :func:`engine.roads.save_prebuilt` and
start the server on that file (``server.py --osm FILE.npz``); the contraction hierarchy is built
at the first start and kept beside the file (``FILE.ch/``, memory-mapped on later starts, by the
server and by its solve workers' forkserver alike), and so is the snap index (``FILE.snap/``);
the network's own arrays are memory-mapped from ``FILE.npz``.

The network: the PACE-2016 DIMACS graph with the seeded weights of :mod:`benchmarks.matrix_ch`
(the same graph and hierarchy as measured there). The DIMACS coordinate files are not in
``../shared``, so node positions are a layout of the graph (high-dimensional embedding, Harel &
Koren 2002: hop distances from ``--pivots`` farthest-first pivot nodes, projected on their two
principal axes, scaled to a 600 km box around Florida, a seeded jitter of 30 m): neighbours lie
close together, so snapping and its index behave as on a road map, but edge lengths are the
seeded ones, not the distances between the positions.

Measured, each with the server as a user runs it (a subprocess, ``--workers 1``):

* start-up to "listening" (every worker ready) from a cold cache (hierarchy built and saved)
  and from a warm one (memory-mapped), and the memory of the server and its forkserver (RSS and
  PSS: pages shared between them count half in each);
* ComputeMatrix, ``--points`` × ``--points`` points near random nodes (PACKED encoding): through
  gRPC with the generated (binary) client, against the same snap + matrix in this process with
  the server's thread count; the split of the difference (the handler's encoding, the transport
  and the client's parsing);
* a ``--stops``-stop OptimizeToursStream (deliveries near random nodes in a 5 km disc, 5
  vans, ``progress_routes_interval`` 0): the time from the call to the first event that carries
  a solution, and to the final response with polylines; the private memory of the solve worker
  while it runs (what it did not share with the forkserver);
* in this process: what loading the network costs (RSS, the snap index alone), snapping
  ``--points`` points (``--startup-only`` stops here), and leg paths
  (``geodata.route_paths``) between random points from the hierarchy against the Dijkstra path
  search (same coordinates and times checked).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
import scipy.sparse as sp
from google.protobuf import duration_pb2
from scipy.sparse.csgraph import shortest_path

from benchmarks.matrix_ch import DIMACS_GRAPHS, dimacs_arrays
from engine.roads import RoadContext, RoadSpec, load_roads, save_prebuilt
from geodata import HIGHWAY_CLASSES, RoadNetwork
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
CENTRE = (28.0, -82.0)
BOX_M = 600_000.0
M_PER_DEG = 111_320.0
SPEED_CLASS = {30.0: "residential", 50.0: "tertiary", 80.0: "primary", 100.0: "trunk"}
MAX_MESSAGE = 256 * 1024 * 1024
WARM_CALLS = 3
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


def layout(indptr: np.ndarray, heads: np.ndarray, pivots: int, seed: int = 0) -> np.ndarray:
    """``(n, 2)`` positions in hop units: hop distances to farthest-first pivots, PCA to 2-D."""
    n = indptr.shape[0] - 1
    graph = sp.csr_array((np.ones(heads.shape[0]), heads, indptr), shape=(n, n))
    rng = np.random.default_rng(seed)
    hops = np.empty((pivots, n), dtype=np.float64)
    nearest = np.full(n, np.inf)
    pivot = int(rng.integers(n))
    for k in range(pivots):
        hops[k] = shortest_path(graph, unweighted=True, indices=pivot)
        nearest = np.minimum(nearest, hops[k])
        pivot = int(np.argmax(nearest))
    centred = hops.T - hops.mean(axis=1)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    xy: np.ndarray = centred @ vectors[:, -2:]
    return xy


def dimacs_network(name: str, pivots: int) -> RoadNetwork:
    """The DIMACS graph as a road network (seeded weights, laid-out positions; see above)."""
    arrays = dimacs_arrays(name)
    if isinstance(arrays, str):
        raise SystemExit(arrays)
    indptr, heads, time_s, length, speed = arrays
    xy = layout(indptr, heads, pivots)
    xy -= xy.mean(axis=0)
    xy *= BOX_M / float(np.ptp(xy, axis=0).max())
    xy += np.random.default_rng(1).uniform(-30.0, 30.0, xy.shape)
    lat = CENTRE[0] + xy[:, 1] / M_PER_DEG
    lon = CENTRE[1] + xy[:, 0] / (M_PER_DEG * np.cos(np.radians(CENTRE[0])))
    codes = {s: HIGHWAY_CLASSES.index(c) for s, c in SPEED_CLASS.items()}
    highway = np.zeros(heads.shape[0], dtype=np.int8)
    for s, code in codes.items():
        highway[speed == s] = code
    n = indptr.shape[0] - 1
    return RoadNetwork(
        indptr=indptr, indices=heads, travel_time_s=time_s, length_m=length, speed_kph=speed,
        way_id=np.arange(heads.shape[0], dtype=np.int64), highway=highway, lat=lat, lon=lon,
        osm_id=np.arange(1, n + 1, dtype=np.int64), profile="car",
    )  # fmt: skip


def network_file(name: str, out: Path, pivots: int) -> Path:
    """``out/NAME.npz``, written once."""
    path = out / f"{name}.npz"
    if not path.is_file():
        started = time.perf_counter()
        network = dimacs_network(name, pivots)
        save_prebuilt(network, path)
        elapsed = time.perf_counter() - started
        print(
            f"- network file {path}: {network.n_nodes:,} nodes, {network.n_edges:,} edges, "
            f"{path.stat().st_size / 2**20:.0f} MiB, written in {elapsed:.0f} s"
        )
    return path


class Server:
    """``server.py --osm FILE`` in a subprocess; its log goes to ``log``."""

    def __init__(self, network: Path, data_dir: Path, log: Path) -> None:
        cmd = [
            sys.executable, str(ROOT / "server.py"), "--osm", str(network), "--port", "0",
            "--data-dir", str(data_dir), "--workers", "1", "--max-message-mb", "256",
        ]  # fmt: skip
        self.started = time.perf_counter()
        self.log_path = log
        self.log_offset = (
            len(re.findall("ComputeMatrix code=OK", log.read_text())) if log.is_file() else 0
        )
        self._log = log.open("a")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=ROOT
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("routeopt listening on"):
                self.port = int(line.rsplit(":", 1)[1])
                break
        else:
            raise SystemExit(f"the server exited ({self.proc.wait()}), see {log}")
        self.startup_s = time.perf_counter() - self.started

    def memory(self) -> list[tuple[str, float, float, float]]:
        """``(process, RSS MiB, PSS MiB, CPU s)`` of the server and each child."""
        main = psutil.Process(self.proc.pid)
        out = []
        for k, proc in enumerate([main, *main.children(recursive=True)]):
            try:
                info = proc.memory_full_info()
                cmdline = " ".join(proc.cmdline())
                name = "server" if k == 0 else "forkserver" if "forkserver" in cmdline else ""
                name = name or ("resource tracker" if "resource_tracker" in cmdline else "child")
            except psutil.Error:
                continue
            times = proc.cpu_times()
            out.append((name, info.rss / 2**20, info.pss / 2**20, times.user + times.system))
        return out

    def handler_latencies(self) -> list[float]:
        """Seconds of each ComputeMatrix call the server logged, in order."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        found = re.findall(r"ComputeMatrix code=OK latency_ms=([0-9.]+)", text)
        return [float(ms) / 1000.0 for ms in found[self.log_offset :]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def points_near_nodes(
    network: RoadNetwork, count: int, seed: int, radius_m: float | None = None
) -> np.ndarray:
    """``(count, 2)`` (lat, lon) within ~20 m of random nodes (within ``radius_m`` of the
    first one when given)."""
    rng = np.random.default_rng(seed)
    nodes = rng.integers(0, network.n_nodes, count)
    if radius_m is not None:
        centre = np.radians([network.lat[nodes[0]], network.lon[nodes[0]]])
        lat, lon = np.radians(network.lat), np.radians(network.lon)
        near = np.flatnonzero(
            (lat - centre[0]) ** 2 + ((lon - centre[1]) * np.cos(centre[0])) ** 2
            < (radius_m / 6_371_000.0) ** 2
        )
        nodes = rng.choice(near, count, replace=near.shape[0] < count)
    jitter = rng.normal(0.0, 20.0 / M_PER_DEG, (count, 2))
    return np.column_stack([network.lat[nodes], network.lon[nodes]]) + jitter


def matrix_request(points: np.ndarray) -> pb.ComputeMatrixRequest:
    request = pb.ComputeMatrixRequest(encoding=pb.ComputeMatrixRequest.PACKED)
    for lat, lon in points.tolist():
        request.sources.add(latitude=lat, longitude=lon)
        request.destinations.add(latitude=lat, longitude=lon)
    return request


def bench_matrix(server: Server, roads: RoadContext, points: np.ndarray, repeats: int) -> None:
    from geodata.matrix import max_threads
    from rpc.matrix import compute_matrix

    request = matrix_request(points)
    wire = request.SerializeToString()
    threads = max_threads()

    def query() -> None:
        snaps = roads.snap(points[:, 0], points[:, 1])
        roads.matrix(snaps, snaps, threads=threads)

    def handler() -> bytes:
        request = pb.ComputeMatrixRequest.FromString(wire)
        return compute_matrix(request, roads, max_cells=len(points) ** 2).SerializeToString()

    with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        raw = channel.unary_unary(
            "/routeopt.v1.RouteOptimization/ComputeMatrix",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        for _ in range(WARM_CALLS):
            stub.ComputeMatrix(request, timeout=120)
            handler()
        keys = ("query", "handler", "rpc", "raw", "parse")
        times: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(repeats):
            times["query"].append(timed(query)[0])
            times["handler"].append(timed(handler)[0])
            elapsed, response = timed(stub.ComputeMatrix, request, timeout=120)
            times["rpc"].append(elapsed)
            elapsed, body = timed(raw, wire, timeout=120)
            times["raw"].append(elapsed)
            times["parse"].append(timed(pb.ComputeMatrixResponse.FromString, body)[0])
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    n = points.shape[0]
    print(f"\n### ComputeMatrix {n} x {n} (PACKED, {threads} threads)\n")
    print(f"best and median of {repeats} interleaved runs, after {WARM_CALLS} warm-up calls\n")
    print("| what | best s | median s | × query (best) |")
    print("|---|---:|---:|---:|")
    rows = [
        ("snap + matrix in process (the kernel query)", "query"),
        ("handler in process (request bytes to response bytes)", "handler"),
        ("RPC, generated client (request message to response message)", "rpc"),
        ("RPC, response left as bytes", "raw"),
        ("client parsing the response bytes", "parse"),
    ]
    logged = server.handler_latencies()[-2 * repeats :: 2]  # the generated client's calls
    if logged:
        best["server"], med["server"] = min(logged), statistics.median(logged)
        rows.insert(2, ("handler in the server (its call log, rpc calls)", "server"))
    for label, key in rows:
        print(f"| {label} | {best[key]:.3f} | {med[key]:.3f} | {best[key] / best['query']:.2f} |")
    print(f"\nresponse {len(body) / 1e6:.1f} MB, unreachable {response.unreachable_count}")


def tours_request(points: np.ndarray, timeout_s: float, polylines: bool) -> pb.OptimizeToursRequest:
    depot, stops = points[0], points[1:]
    request = pb.OptimizeToursRequest()
    request.timeout.CopyFrom(duration_pb2.Duration(seconds=int(timeout_s)))
    request.populate_polylines = polylines
    request.progress_routes_interval.CopyFrom(duration_pb2.Duration(seconds=0))
    model = request.model
    model.global_start_time.FromJsonString("2026-12-03T06:00:00Z")
    model.global_end_time.FromJsonString("2026-12-03T20:00:00Z")
    for k, (lat, lon) in enumerate(stops.tolist()):
        shipment = model.shipments.add(label=f"stop-{k}")
        visit = shipment.deliveries.add()
        visit.arrival_location.latitude = lat
        visit.arrival_location.longitude = lon
        visit.duration.FromSeconds(120)
        shipment.load_demands["parcels"].amount = 1
    for k in range(5):
        vehicle = model.vehicles.add(label=f"van-{k}", cost_per_kilometer=1.0, cost_per_hour=30.0)
        for loc in (vehicle.start_location, vehicle.end_location):
            loc.latitude, loc.longitude = float(depot[0]), float(depot[1])
        vehicle.load_limits["parcels"].max_load = 30
    return request


def worker_memory(server: Server, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """Poll the solve worker (a child of the forkserver) for its RSS and private memory (USS)."""
    main = psutil.Process(server.proc.pid)
    while not stop.wait(0.05):
        for proc in main.children(recursive=True):
            try:
                if proc.parent() is not None and proc.parent().pid != main.pid:
                    info = proc.memory_full_info()
                    out.append((info.rss / 2**20, info.uss / 2**20))
            except psutil.Error:
                continue


def bench_tours(server: Server, network: RoadNetwork, stops: int, repeats: int) -> None:
    print(f"\n### OptimizeToursStream, {stops} stops, 5 vans\n")
    print("| run | first event with a solution (s) | its routes | final response (s) | polylines |"
          " worker RSS / private MiB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        for run in range(repeats):
            points = points_near_nodes(network, stops + 1, seed=10 + run, radius_m=5000.0)
            request = tours_request(points, timeout_s=3.0, polylines=True)
            memory: list[tuple[float, float]] = []
            stop = threading.Event()
            poller = threading.Thread(target=worker_memory, args=(server, stop, memory))
            poller.start()
            started = time.perf_counter()
            first_s, first_routes, final = None, 0, None
            for event in stub.OptimizeToursStream(request, timeout=60):
                if first_s is None and event.HasField("response") and event.response.routes:
                    first_s = time.perf_counter() - started
                    first_routes = sum(1 for r in event.response.routes if r.visits)
                if event.done:
                    final = event.response
            final_s = time.perf_counter() - started
            stop.set()
            poller.join()
            assert final is not None
            drawn = sum(1 for r in final.routes if r.route_polyline.points)
            rss = max((r for r, _ in memory), default=0.0)
            uss = max((u for _, u in memory), default=0.0)
            print(
                f"| {run + 1} | {first_s:.3f} | {first_routes} | {final_s:.2f} | {drawn} routes |"
                f" {rss:.0f} / {uss:.0f} |"
            )


def load_in_process(network_path: Path, points: int) -> RoadContext:
    """The server's road context in this process, what it costs in memory, and snapping."""
    from geodata.snap import Snapper

    proc = psutil.Process()
    before = proc.memory_info().rss
    elapsed, roads = timed(load_roads, RoadSpec(str(network_path), prebuilt=True))
    loaded = proc.memory_info().rss
    cpu_started = time.process_time()
    snap_s, snapper = timed(Snapper, roads.network)  # a second index, built in memory
    snap_cpu = time.process_time() - cpu_started
    index = proc.memory_info().rss - loaded
    del snapper
    ch = roads.network.hierarchy()
    grown = (loaded - before) / 2**20
    mapped = roads.snapper.index
    print(
        f"\n- in this process: load_roads {elapsed:.1f} s, RSS +{grown:.0f} MiB; the snap index "
        f"{mapped.nbytes / 2**20:.0f} MiB of memory-mapped files (memmap: "
        f"{isinstance(mapped.cell_items, np.memmap)}), built in memory in {snap_s:.1f} s "
        f"({snap_cpu:.1f} s CPU, RSS +{index / 2**20:.0f} MiB); the hierarchy "
        f"{ch.nbytes / 2**20:.0f} MiB of memory-mapped files (memmap: "
        f"{isinstance(ch.up_head, np.memmap)})"
    )
    sample = points_near_nodes(roads.network, points, seed=5)
    roads.snap(sample[:2, 0], sample[:2, 1])
    times = []
    for _ in range(5):
        started = time.process_time()
        roads.snap(sample[:, 0], sample[:, 1])
        times.append(time.process_time() - started)
    print(
        f"- snapping {points} points near random nodes: {min(times):.4f} s CPU best, "
        f"{statistics.median(times):.4f} median of 5"
    )
    return roads


def bench_paths(roads: RoadContext, legs: int, dijkstra_legs: int) -> None:
    """Leg paths from the hierarchy against the Dijkstra path search, points anywhere."""
    import geodata.paths

    net = roads.network
    points = points_near_nodes(net, legs + 1, seed=3)
    snaps = roads.snap(points[:, 0], points[:, 1])
    geodata.paths.route_paths(net, snaps, [0, 1])  # warm
    ch_s, ch_legs = timed(geodata.paths.route_paths, net, snaps)
    original = geodata.paths.uses_hierarchy
    geodata.paths.uses_hierarchy = lambda _: False  # type: ignore[assignment]
    try:
        order = np.arange(dijkstra_legs + 1)
        dk_s, dk_legs = timed(geodata.paths.route_paths, net, snaps, order)
    finally:
        geodata.paths.uses_hierarchy = original
    same = all(
        a.coords.tolist() == b.coords.tolist() and a.time_s == b.time_s
        for a, b in zip(ch_legs, dk_legs, strict=False)
    )
    nodes = np.mean([leg.nodes.size for leg in ch_legs])
    print(f"\n### Leg paths, random points of the whole network ({nodes:.0f} nodes per leg)\n")
    print("| search | legs | s | s per leg |")
    print("|---|---:|---:|---:|")
    print(f"| hierarchy (shortcuts unpacked) | {legs} | {ch_s:.3f} | {ch_s / legs:.4f} |")
    print(f"| Dijkstra | {dijkstra_legs} | {dk_s:.3f} | {dk_s / dijkstra_legs:.4f} |")
    print(f"\nsame coordinates and times on the {dijkstra_legs} legs compared: {same}")


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default="FLA", choices=DIMACS_GRAPHS)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "routeopt-fla")
    parser.add_argument("--pivots", type=int, default=16)
    parser.add_argument("--no-cold", action="store_true", help="keep a cached hierarchy")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--stops", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--legs", type=int, default=100)
    parser.add_argument("--dijkstra-legs", type=int, default=20)
    parser.add_argument(
        "--startup-only", action="store_true", help="start-up, memory and snapping only"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"- machine load before: {Path('/proc/loadavg').read_text().split()[:3]}")
    network_path = network_file(args.graph, args.out, args.pivots)
    hierarchy = network_path.with_suffix(".ch")
    log = args.out / "server.log"
    data_dir = Path(tempfile.mkdtemp(prefix="routeopt-bench-"))
    print("\n| start | start-up to listening (s) | process | RSS MiB | PSS MiB | CPU s |")
    print("|---|---:|---|---:|---:|---:|")
    starts = ["warm"] if args.no_cold else ["cold", "warm"]
    for kind in starts:
        if kind == "cold":
            shutil.rmtree(hierarchy, ignore_errors=True)
        server = Server(network_path, data_dir / kind, log)
        for k, (name, rss, pss, cpu_s) in enumerate(server.memory()):
            first = f"{kind} | {server.startup_s:.1f}" if k == 0 else " | "
            print(f"| {first} | {name} | {rss:.0f} | {pss:.0f} | {cpu_s:.1f} |")
        print(f"\n- load average: {Path('/proc/loadavg').read_text().split()[:3]}")
        if kind != starts[-1] or args.startup_only:
            server.stop()
    roads = load_in_process(network_path, args.points)  # mmaps the hierarchy and snap index
    if args.startup_only:
        shutil.rmtree(data_dir, ignore_errors=True)
        return 0
    try:
        bench_matrix(server, roads, points_near_nodes(roads.network, args.points, 0), args.repeats)
        bench_tours(server, roads.network, args.stops, args.repeats)
        server.stop()
        bench_paths(roads, args.legs, args.dijkstra_legs)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"\n- machine load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(json.dumps({"network": str(network_path), "server_log": str(log)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
