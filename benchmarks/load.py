"""Load benchmark: start the server, then N concurrent gRPC clients send OptimizeTours.

    python -m benchmarks.load --clients 4 --duration 30 --solve-timeout 2

Starts ``python server.py --port 0 --osm none`` (geodesic travel; ``--osm embedded`` or a file
for road travel) on 127.0.0.1, waits for ``routeopt listening on``, then ``--clients`` threads,
each with its own channel, send random requests of ``--min-stops``–``--max-stops`` shipments
(3–8 vans, time windows on some stops) for ``--duration`` seconds or until ``--max-requests`` in
total. Without roads the stops lie in a box around central Helsinki; with roads they are drawn
from the network the server uses (this process loads it too, from the same build cache): random
road nodes moved by up to ``--jitter-m`` metres, the depot at the node nearest the network's
median point, so every stop snaps within the server's limit. Reports throughput, p50/p95/p99
latency, counts by status code and the server's peak memory (its process tree's RSS, sampled
every 0.1 s). Loopback only.

``--mix`` sends a mix instead of OptimizeTours only: each call is drawn among OptimizeTours,
ComputeMatrix, an OptimizeToursLongRunning submit followed by WaitOperation until done,
OptimizeToursStream read to its end, and bad requests (which must answer INVALID_ARGUMENT);
a call answered RESOURCE_EXHAUSTED or UNAVAILABLE with a ``google.rpc.RetryInfo`` (the server's
back-pressure) is tried again after the delay it names, up to ``--retries`` times, as a well-behaved
client does (the report counts these separately); the report gives latency percentiles and status
codes per method (a retried call's latency includes its waits), and checks at the end that
every operation the clients submitted has drained (ListOperations: none left QUEUED or
RUNNING). ``--ca-file``/``--api-key`` call a server over TLS with a key; ``--server-arg`` passes
flags through to ``server.py`` (e.g. ``--server-arg=--tls-cert=...``).

``--secure`` sets all of that up in a temporary directory: a throwaway CA and a server certificate
for 127.0.0.1 (made with ``openssl``), a data directory with an API key of tenant ``load``
(``rpc.keys``, as ``routeopt keys create`` does), the server started with ``--tls-cert``,
``--tls-key`` and ``--data-dir`` and every client call made over TLS with the key in
``x-goog-api-key``. The issue-13 load run::

    python -m benchmarks.load --mix --secure --clients 32 --duration 60 --osm embedded
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CENTRE = (60.1699, 24.9384)
METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class Sites:
    """Where requests put their stops: ``stop(rng)`` draws one (lat, lng); ``depot`` is fixed."""

    depot: tuple[float, float]
    lat: tuple[float, ...] = ()
    lng: tuple[float, ...] = ()
    jitter_m: float = 0.0

    @classmethod
    def helsinki_box(cls) -> Sites:
        return cls(CENTRE)

    @classmethod
    def from_roads(cls, osm: str, jitter_m: float) -> Sites:
        """Road nodes of the network ``server.py --osm OSM`` loads (same file, profile, cache)."""
        import numpy as np

        from engine.roads import RoadSpec, embedded_extract, load_roads

        path = str(embedded_extract()) if osm == "embedded" else osm
        network = load_roads(RoadSpec(path)).network
        lat, lng = np.asarray(network.lat), np.asarray(network.lon)
        mid_lat, mid_lng = float(np.median(lat)), float(np.median(lng))
        depot = int(
            np.argmin(np.hypot(lat - mid_lat, (lng - mid_lng) * np.cos(np.radians(mid_lat))))
        )
        return cls((float(lat[depot]), float(lng[depot])), tuple(lat), tuple(lng), jitter_m)

    def stop(self, rng: random.Random) -> tuple[float, float]:
        if not self.lat:
            return (
                CENTRE[0] + rng.uniform(-0.05, 0.05),
                CENTRE[1] + rng.uniform(-0.1, 0.1),
            )
        k = rng.randrange(len(self.lat))
        lat = self.lat[k] + rng.uniform(-1, 1) * self.jitter_m / METRES_PER_DEGREE
        scale = METRES_PER_DEGREE * math.cos(math.radians(self.lat[k]))
        return lat, self.lng[k] + rng.uniform(-1, 1) * self.jitter_m / scale


def make_request(rng: random.Random, stops: int, timeout_s: float, sites: Sites) -> Any:
    """A random delivery day of ``stops`` shipments at ``sites`` (locations: lat/lng only)."""
    from google.protobuf import duration_pb2

    from rpc.pb import route_optimization_service_pb2 as pb

    req = pb.OptimizeToursRequest(label=f"load-{stops}")
    req.timeout.CopyFrom(
        duration_pb2.Duration(seconds=int(timeout_s), nanos=int(timeout_s % 1 * 1e9))
    )
    m = req.model
    m.global_start_time.seconds = 1_700_000_000
    m.global_end_time.seconds = 1_700_000_000 + 12 * 3600
    for k in range(stops):
        s = m.shipments.add(label=f"s{k}")
        v = s.deliveries.add()
        v.arrival_location.latitude, v.arrival_location.longitude = sites.stop(rng)
        v.duration.seconds = rng.choice([120, 300, 600])
        if rng.random() < 0.3:
            start = 1_700_000_000 + rng.randrange(0, 8) * 3600
            w = v.time_windows.add()
            w.start_time.seconds = start
            w.end_time.seconds = start + 3 * 3600
        s.load_demands["weight"].amount = rng.randint(1, 20)
    vans = max(3, min(8, stops // 25))
    capacity = max(50, sum(s.load_demands["weight"].amount for s in m.shipments) // vans + 40)
    for k in range(vans):
        v = m.vehicles.add(label=f"van{k}")
        v.start_location.latitude, v.start_location.longitude = sites.depot
        v.end_location.latitude, v.end_location.longitude = sites.depot
        v.load_limits["weight"].max_load = capacity
        v.cost_per_kilometer = 1.0
        v.cost_per_hour = 20.0
    return req


@dataclass
class Stats:
    """Latencies of successful calls and status codes, per method (one lock for all)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    codes: dict[str, Counter[str]] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    retries: dict[str, Counter[str]] = field(default_factory=dict)
    """Busy answers with a RetryInfo that the client honoured (waited, then tried again)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, code: str, elapsed: float) -> None:
        with self.lock:
            self.codes.setdefault(method, Counter())[code] += 1
            if code == "OK":
                self.latencies.setdefault(method, []).append(elapsed)

    def note_retry(self, method: str, code: str) -> None:
        with self.lock:
            self.retries.setdefault(method, Counter())[code] += 1

    def all_latencies(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]

    def all_codes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for codes in self.codes.values():
            total.update(codes)
        return total


MIX = (
    ("OptimizeTours", 0.3),
    ("ComputeMatrix", 0.2),
    ("LongRunning+Wait", 0.2),
    ("OptimizeToursStream", 0.15),
    ("BadRequest", 0.15),
)
"""Methods of ``--mix`` and their shares of the calls."""


def bad_request(rng: random.Random, sites: Sites) -> tuple[str, Any]:
    """One request the server must refuse with INVALID_ARGUMENT: (method, request)."""
    from rpc.pb import route_optimization_service_pb2 as pb

    req = make_request(rng, 5, 1.0, sites)
    kind = rng.randrange(5)
    if kind == 0:
        req.model.vehicles[0].cost_per_kilometer = -1.0
    elif kind == 1:
        req.model.shipments[0].allowed_vehicle_indices.append(len(req.model.vehicles) + 3)
    elif kind == 2:
        req.timeout.seconds = -5
    elif kind == 3:
        req.model.shipments[1].deliveries[0].arrival_location.latitude = 123.0
    else:
        matrix = pb.ComputeMatrixRequest()
        matrix.sources.add(latitude=sites.depot[0], longitude=999.0)
        matrix.destinations.add(latitude=sites.depot[0], longitude=sites.depot[1])
        return "ComputeMatrix", matrix
    return "OptimizeTours", req


def matrix_request(rng: random.Random, sites: Sites, n: int) -> Any:
    """A ComputeMatrixRequest of ``n`` sources and ``n`` destinations at ``sites``."""
    from rpc.pb import route_optimization_service_pb2 as pb

    req = pb.ComputeMatrixRequest()
    for _ in range(n):
        lat, lng = sites.stop(rng)
        req.sources.add(latitude=lat, longitude=lng)
        lat, lng = sites.stop(rng)
        req.destinations.add(latitude=lat, longitude=lng)
    return req


def open_channel(target: str, args: argparse.Namespace) -> Any:
    """An insecure channel, or a TLS one trusting ``--ca-file``."""
    import grpc

    if not args.ca_file:
        return grpc.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(root_certificates=args.ca_file.read_bytes())
    return grpc.secure_channel(target, credentials)


def _metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...] | None:
    return (("x-goog-api-key", args.api_key),) if args.api_key else None


def _wait_done(
    operations: Any, op: Any, args: argparse.Namespace, budget_s: float, stats: Stats
) -> Any:
    """``op`` once done (WaitOperation in 5 s polls), or raises TimeoutError after ``budget_s``.
    A poll answered busy with a RetryInfo (the server's long-poll slots are full) waits the delay
    it names and polls again: never a new submission."""
    import grpc
    from google.longrunning import operations_pb2

    end = time.monotonic() + budget_s
    while not op.done and time.monotonic() < end:
        wait = operations_pb2.WaitOperationRequest(name=op.name)
        wait.timeout.seconds = 5
        try:
            op = operations.WaitOperation(wait, timeout=10, metadata=_metadata(args))
        except grpc.RpcError as exc:
            delay = retry_delay(exc)
            if exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or delay is None:
                raise
            stats.note_retry("WaitOperation", exc.code().name)
            time.sleep(delay)
    if not op.done:
        raise TimeoutError(op.name)
    return op


def _call_mixed(
    method: str,
    stub: Any,
    operations: Any,
    rng: random.Random,
    args: argparse.Namespace,
    sites: Sites,
    stats: Stats,
) -> None:
    """One call of ``method`` (tried again while the server answers busy with a RetryInfo); its
    outcome recorded in ``stats``."""
    started = time.perf_counter()
    for _attempt in range(args.retries + 1):
        code, delay = _attempt_mixed(method, stub, operations, rng, args, sites, stats)
        if code is None:
            return  # recorded already
        if delay is None or time.perf_counter() - started + delay > args.deadline_slack:
            break
        # back-pressure the server asked us to honour: RESOURCE_EXHAUSTED/UNAVAILABLE + RetryInfo
        stats.note_retry(method, code)
        time.sleep(delay)
    stats.record(method, code, time.perf_counter() - started)


def retry_delay(exc: Any) -> float | None:
    """The delay of the ``google.rpc.RetryInfo`` in a call's error details, if any."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(exc)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def _attempt_mixed(
    method: str,
    stub: Any,
    operations: Any,
    rng: random.Random,
    args: argparse.Namespace,
    sites: Sites,
    stats: Stats,
) -> tuple[str | None, float | None]:
    """One attempt of a call of ``method``: its status code (None: recorded already) and, when
    the server answered busy with a RetryInfo, the delay to wait before trying again."""
    import grpc

    metadata = _metadata(args)
    deadline = args.solve_timeout + args.deadline_slack
    stops = rng.randint(args.min_stops, args.max_stops)
    delay: float | None = None
    try:
        if method == "OptimizeTours":
            req = make_request(rng, stops, args.solve_timeout, sites)
            stub.OptimizeTours(req, timeout=deadline, metadata=metadata)
        elif method == "ComputeMatrix":
            req = matrix_request(rng, sites, rng.randint(10, args.matrix_points))
            stub.ComputeMatrix(req, timeout=deadline, metadata=metadata)
        elif method == "OptimizeToursStream":
            req = make_request(rng, stops, args.solve_timeout, sites)
            for _event in stub.OptimizeToursStream(req, timeout=deadline, metadata=metadata):
                pass
        elif method == "LongRunning+Wait":
            req = make_request(rng, stops, args.solve_timeout, sites)
            op = stub.OptimizeToursLongRunning(req, timeout=deadline, metadata=metadata)
            with stats.lock:
                stats.operations.append(op.name)
            # an operation may wait in the queue behind every other solve: up to --drain-timeout
            op = _wait_done(operations, op, args, max(deadline, args.drain_timeout), stats)
            if op.HasField("error"):
                code_name = next(c.name for c in grpc.StatusCode if c.value[0] == op.error.code)
                stats.record(method, f"operation {code_name}", 0.0)
                return None, None
        else:
            name, req = bad_request(rng, sites)
            getattr(stub, name)(req, timeout=deadline, metadata=metadata)
            stats.record(method, "ACCEPTED (should be INVALID_ARGUMENT)", 0.0)
            return None, None
        code = "OK"
    except grpc.RpcError as exc:
        code = exc.code().name
        if method == "BadRequest" and code == "INVALID_ARGUMENT":
            code = "OK"  # the intended answer
        if code in ("RESOURCE_EXHAUSTED", "UNAVAILABLE"):
            delay = retry_delay(exc)
    except TimeoutError:
        code = "NOT_DONE"
    return code, delay


def _client(
    target: str,
    args: argparse.Namespace,
    seed: int,
    stop_at: float,
    budget: list[int],
    stats: Stats,
    sites: Sites,
) -> None:
    from google.longrunning import operations_pb2_grpc

    from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc

    rng = random.Random(seed)
    methods = [m for m, _ in MIX] if args.mix else ["OptimizeTours"]
    weights = [w for _, w in MIX] if args.mix else [1.0]
    with open_channel(target, args) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        operations = operations_pb2_grpc.OperationsStub(channel)
        while time.monotonic() < stop_at:
            with stats.lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            method = rng.choices(methods, weights)[0]
            _call_mixed(method, stub, operations, rng, args, sites, stats)


def not_drained(target: str, args: argparse.Namespace, names: list[str], wait_s: float) -> int:
    """How many of the operations ``names`` are still not done after waiting up to ``wait_s``."""
    from google.longrunning import operations_pb2, operations_pb2_grpc

    end = time.monotonic() + wait_s
    pending = list(names)
    with open_channel(target, args) as channel:
        operations = operations_pb2_grpc.OperationsStub(channel)
        while pending and time.monotonic() < end:
            req = operations_pb2.GetOperationRequest(name=pending[0])
            if operations.GetOperation(req, timeout=10, metadata=_metadata(args)).done:
                pending.pop(0)
            else:
                time.sleep(0.2)
    return len(pending)


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def _openssl(*argv: str, cwd: Path) -> None:
    subprocess.run(["openssl", *argv], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_secure_setup(directory: Path) -> tuple[list[str], Path, str]:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a data directory with a
    new API key, in ``directory``: the server flags, the CA file and the key."""
    from rpc.keys import KeyStore

    ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    _openssl("genpkey", *ec, "-out", "ca.key", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=routeopt-load-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory,
    )  # fmt: skip
    _openssl("genpkey", *ec, "-out", "server.key", cwd=directory)
    _openssl(
        "req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    data_dir = directory / "data"
    store = KeyStore(data_dir)
    try:
        key = store.create("load", label="benchmarks.load").key
    finally:
        store.close()
    flags = [
        f"--tls-cert={directory / 'server.pem'}",
        f"--tls-key={directory / 'server.key'}",
        f"--data-dir={data_dir}",
    ]
    return flags, directory / "ca.pem", key


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        str(REPO / "server.py"),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--osm",
        args.osm,
        "--log-level",
        "WARNING",
    ]
    if args.server_workers:
        cmd += ["--workers", str(args.server_workers)]
    cmd += args.server_arg
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + args.startup_timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            continue
        match = re.search(r"routeopt listening on (\S+)", line)
        if match:
            return proc, match.group(1)
    proc.terminate()
    raise SystemExit(f"server not ready after {args.startup_timeout} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=1000)
    parser.add_argument("--min-stops", type=int, default=50)
    parser.add_argument("--max-stops", type=int, default=200)
    parser.add_argument(
        "--solve-timeout", type=float, default=2.0, help="OptimizeToursRequest.timeout (s)"
    )
    parser.add_argument(
        "--deadline-slack",
        type=float,
        default=30.0,
        help="call deadline = timeout + this (queueing included)",
    )
    parser.add_argument("--osm", default="none", help="server --osm (none: geodesic)")
    parser.add_argument(
        "--jitter-m",
        type=float,
        default=30.0,
        help="with roads: stops lie up to this far from a road node (server snaps within 500 m)",
    )
    parser.add_argument("--server-workers", type=int, default=0, help="server --workers")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--json", type=Path, default=None, help="write the report here too")
    parser.add_argument(
        "--mix",
        action="store_true",
        help="mix OptimizeTours, ComputeMatrix, LRO + Wait, streams and bad requests",
    )
    parser.add_argument(
        "--matrix-points", type=int, default=200, help="--mix: ComputeMatrix of 10..this points"
    )
    parser.add_argument("--ca-file", type=Path, default=None, help="TLS: trust this CA (PEM)")
    parser.add_argument("--api-key", default=None, help="sent as x-goog-api-key")
    parser.add_argument(
        "--secure",
        action="store_true",
        help="TLS with a throwaway CA and an API key, both made for this run (see above)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="one more server.py argument (repeatable), e.g. --server-arg=--tls-cert=cert.pem",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=5,
        help="--mix: how often a call answered busy with a RetryInfo is tried again (after the "
        "delay the server asked for, within --deadline-slack)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="--mix: how long the submitted operations may take to finish after the load",
    )
    args = parser.parse_args(argv)
    if args.retries < 0:
        raise SystemExit("--retries must not be negative")
    if args.secure and (args.ca_file or args.api_key):
        raise SystemExit("--secure makes its own CA and key: leave out --ca-file and --api-key")
    if args.clients < 1 or args.clients > 256 or args.duration > 3600:
        raise SystemExit("--clients in 1..256 and --duration at most 3600 s")
    return args


def run_load(
    args: argparse.Namespace, proc: subprocess.Popen[str], target: str, sites: Sites
) -> tuple[Stats, float, int]:
    """Run the clients against the server until the duration or the request budget is spent;
    the statistics, the wall time and the server's peak memory (bytes, its process tree)."""
    peak = [_tree_rss(proc.pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stats = Stats()
    budget = [args.max_requests]
    started = time.monotonic()
    stop_at = started + args.duration
    threads = [
        threading.Thread(
            target=_client, args=(target, args, 1000 + k, stop_at, budget, stats, sites)
        )
        for k in range(args.clients)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    finally:
        done.set()
        sampler.join()
    return stats, wall, peak[0]


def _latency(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": round(percentile(values, 50), 3) if values else None,
        "p95": round(percentile(values, 95), 3) if values else None,
        "p99": round(percentile(values, 99), 3) if values else None,
        "mean": round(statistics.fmean(values), 3) if values else None,
    }


def report_of(
    args: argparse.Namespace,
    target: str,
    stats: Stats,
    wall: float,
    peak: int,
    exit_code: int,
    not_done: int | None = None,
) -> dict[str, object]:
    lat = stats.all_latencies()
    codes = stats.all_codes()
    report: dict[str, object] = {
        "target": target,
        "osm": args.osm,
        "clients": args.clients,
        "stops": [args.min_stops, args.max_stops],
        "solve_timeout_s": args.solve_timeout,
        "tls": bool(args.ca_file),
        "api_key": bool(args.api_key),
        "wall_s": round(wall, 2),
        "requests": sum(codes.values()),
        "ok": len(lat),
        "throughput_ok_per_s": round(len(lat) / wall, 3) if wall else 0.0,
        "latency_s": _latency(lat),
        "status_codes": dict(codes),
        "server_peak_rss_mib": round(peak / 2**20, 1),
        "server_exit_code": exit_code,
    }
    if args.mix:
        report["methods"] = {
            method: {
                "status_codes": dict(stats.codes[method]),
                "retried_after_retry_info": dict(stats.retries.get(method, {})),
                "latency_s": _latency(stats.latencies.get(method, [])),
            }
            for method in sorted(stats.codes)
        }
        report["wait_polls_retried_after_retry_info"] = dict(stats.retries.get("WaitOperation", {}))
        report["operations_submitted"] = len(stats.operations)
        report["operations_not_drained"] = not_done
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sites = (
        Sites.helsinki_box() if args.osm == "none" else Sites.from_roads(args.osm, args.jitter_m)
    )
    with tempfile.TemporaryDirectory(prefix="routeopt-load-") as tmp:
        if args.secure:
            flags, args.ca_file, args.api_key = make_secure_setup(Path(tmp))
            args.server_arg = [*args.server_arg, *flags]
        return _run(args, sites)


def _run(args: argparse.Namespace, sites: Sites) -> int:
    proc, target = start_server(args)
    try:
        stats, wall, peak = run_load(args, proc, target, sites)
        not_done = (
            not_drained(target, args, stats.operations, args.drain_timeout) if args.mix else None
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = json.dumps(
        report_of(args, target, stats, wall, peak, proc.returncode, not_done), indent=1
    )
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
