"""The routeopt gRPC server: ``python server.py --help`` (or ``routeopt-server``).

Serves ``routeopt.v1.RouteOptimization``, Google's
``google.maps.routeoptimization.v1.RouteOptimization`` on the same engine (:mod:`rpc.google`),
``google.longrunning.Operations`` (the operations of OptimizeToursLongRunning,
BatchOptimizeTours and OptimizeToursUri of both, kept in a SQLite job store in ``--data-dir``),
``grpc.health.v1.Health`` (overall ``""`` and each service) and server reflection. Solves run in
worker processes (:class:`runtime.local.SolveExecutor`): OR-Tools holds the GIL while it
searches, so the gRPC threads stay free for health checks, validation and rejections.

With ``--dask-scheduler`` the solves run on a Dask cluster
(:class:`runtime.dask_executor.DaskExecutor`) instead of local worker processes.

Lifecycle: health is NOT_SERVING until a warm-up solve has gone through a worker and the job
store has been recovered (unfinished operations queued again), then SERVING, and one line
``routeopt listening on HOST:PORT`` is printed to stdout. While serving, health turns
NOT_SERVING when the job store fails to write or the dispatcher fails, and SERVING again when
they recover (:attr:`~rpc.operations.manager.JobManager.healthy`). On SIGTERM or SIGINT health
turns NOT_SERVING, new operations are refused (UNAVAILABLE), running operations are stopped and
queued again in the store without spending an attempt (the next start runs them), the server
stops taking calls, in-flight calls get up to ``--grace`` seconds to finish (then they are
cancelled and their solves stopped), the workers are shut down and the process exits 0. A second
SIGTERM or SIGINT exits at once (status 1; the operations are recovered on the next start as
after a crash).

Operations (:func:`_setup_logging`, :func:`_setup_metrics`): ``--log-format json`` writes one
JSON object per log line with the call's request id; ``--metrics-port`` serves Prometheus
metrics (:mod:`rpc.observability`); ``--max-store-mb`` caps the finished operations kept.

The flags and their checks are :mod:`rpc.config` (:func:`~rpc.config.parse_args`).

Transport and identity (:mod:`rpc.auth`): with ``--tls-cert``/``--tls-key`` the port speaks TLS
only (``--tls-client-ca``: mutual TLS); every call except health checks is authenticated by
:class:`~rpc.auth.AuthInterceptor` once the data directory holds an API key (or with a client
CA), and carries its tenant to the handlers. Beyond loopback the server refuses to start (exit
2) without TLS and client identity, unless ``--insecure``.

``--max-message-mb`` limits both received and sent messages (requests with large client
matrices and responses with many routes); gRPC's own default would be 4 MiB for receiving.

Limits (``--limit NAME=VALUE``, :mod:`rpc.limits`): request sizes and timeouts are checked before
conversion; the calls that hold a thread for long take a call slot of their kind
(:class:`~rpc.admission.AdmissionInterceptor`, after authentication) and the gRPC pool has a
thread per slot plus :data:`~rpc.admission.FREE_THREADS`, so health checks and short calls are
always served.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType

import grpc
from google.longrunning import operations_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.options import available_cores
from engine.roads import RoadContext, load_roads
from rpc.admission import AdmissionInterceptor, CallSlots, pool_size, slot_counts
from rpc.auth import Authenticator, AuthInterceptor, exposure_problem, server_credentials
from rpc.config import ServerConfig, default_data_dir, parse_args
from rpc.decoding import DecodeInterceptor
from rpc.google.reflection import reflection_pool
from rpc.google.service import GOOGLE_SERVICE_NAME, google_handler
from rpc.google.storage import Storage
from rpc.keys import KeyStore, TenantQuota, keys_exist
from rpc.observability import Metrics, ObservabilityInterceptor, RequestIdFilter
from rpc.operations.layouts import TASK_MODULES
from rpc.operations.manager import JobManager
from rpc.operations.service import OPERATIONS_SERVICE_NAME, OperationsServicer
from rpc.operations.store import JobStore
from rpc.page_tokens import PageTokens
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc
from rpc.quotas import SolveSlots, TenantLimits
from rpc.servicer import RouteOptimizationServicer
from runtime import Executor, SolveExecutor
from runtime.base import SlotExecutor
from runtime.logs import LOG_FORMAT_ENV_VAR, JsonFormatter

__all__ = ["SERVICE_NAME", "Server", "bind", "build_server", "main"]

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RouteOptimization"].full_name
"""``routeopt.v1.RouteOptimization``."""


HEALTH_SERVICES = ("", SERVICE_NAME, GOOGLE_SERVICE_NAME, OPERATIONS_SERVICE_NAME)


@dataclass
class Server:
    """A built server and what it runs on; see :func:`build_server`."""

    grpc_server: grpc.Server
    health: health.HealthServicer
    executor: Executor
    jobs: JobManager
    store: JobStore
    keys: KeyStore | None = None
    credentials: grpc.ServerCredentials | None = None
    """TLS (None: plaintext)."""
    solve_slots: SolveSlots | None = None
    """Synchronous solves per tenant."""
    metrics: Metrics | None = None
    call_slots: CallSlots | None = None
    """The slots of long calls (:mod:`rpc.admission`)."""


def _executor(config: ServerConfig, roads: RoadContext | None) -> Executor:
    spec = roads.spec if roads is not None else None
    if config.dask_scheduler:
        from runtime.dask_executor import DaskExecutor

        return DaskExecutor(
            config.dask_scheduler,
            max_workers=config.workers or None,
            max_queued=config.queue_size if config.max_queued is not None else None,
            roads=roads,
        )
    return SolveExecutor(
        max_workers=config.workers,
        max_queued=config.queue_size,
        roads=spec,
        cores=min(available_cores(), config.max_solver_processes),
        preload=TASK_MODULES,
    )


def _identity(config: ServerConfig, data_dir: str) -> tuple[KeyStore, AuthInterceptor]:
    """The key store of ``data_dir`` and the interceptor that authenticates calls with it."""
    keys = KeyStore(data_dir)
    authenticator = Authenticator(keys, certificate_tenants=config.tls_client_ca is not None)
    return keys, AuthInterceptor(authenticator)


def build_server(
    config: ServerConfig, roads: RoadContext | None = None, *, executor: Executor | None = None
) -> Server:
    """A server with every service registered (health NOT_SERVING), not bound nor started;
    its solve executor (not warmed up; ``executor``: this one instead of one made from
    ``config``) and its job store (open, not recovered: see :meth:`JobManager.start`). With
    ``roads``, OptimizeTours travels on them and ComputeMatrix answers; the workers load the
    same network. Raises :class:`DataDirInUseError` when another server holds the data
    directory, ValueError when a TLS file is unusable. See :func:`bind` and :func:`main`."""
    data_dir = config.data_dir or default_data_dir()
    credentials = _credentials(config)
    store = JobStore(data_dir)
    try:
        keys, interceptor = _identity(config, data_dir)
    except BaseException:
        store.close()
        raise
    try:
        executor = executor if executor is not None else _executor(config, roads)
    except BaseException:
        store.close()
        keys.close()
        raise
    workers = executor.max_workers

    def quotas(tenant: str) -> TenantQuota:
        return keys.quota(tenant).over(config.default_quota)

    solve_slots = SolveSlots(quotas)
    tenant_limits = TenantLimits(config.limits, quotas)

    jobs = JobManager(
        store,
        executor,
        default_timeout_s=config.default_timeout_s,
        default_geodesic_meters_per_second=config.geodesic_meters_per_second,
        retention_s=config.job_retention_s,
        max_jobs=config.max_jobs,
        solver_processes=config.solver_processes,
        max_solver_processes=config.max_solver_processes,
        roads=roads,
        layout_workers=max(1, workers),
        storage=Storage(config.storage_root or None),
        quotas=quotas,
        page_tokens=PageTokens(keys.server_secret("page_tokens")),
        max_store_bytes=_max_store_bytes(config),
        limits=config.limits,
        tenant_limits=tenant_limits,
    )
    max_bytes = config.max_message_mb * 1024 * 1024
    slots = slot_counts(config.limits, workers + executor.max_queued)
    call_slots = CallSlots(slots)
    metrics = _metrics(config, executor, jobs, store, call_slots)
    server = grpc.server(
        # A thread per call slot and FREE_THREADS that no long call can hold (rpc.admission).
        ThreadPoolExecutor(max_workers=pool_size(slots), thread_name_prefix="grpc"),
        # Observability first: refused (UNAUTHENTICATED, RESOURCE_EXHAUSTED) calls are counted
        # too; authentication before admission: a call without credentials takes no slot;
        # decoding before admission too: a request that does not parse takes none either.
        interceptors=[
            ObservabilityInterceptor(metrics),
            interceptor,
            DecodeInterceptor(),
            AdmissionInterceptor(call_slots),
        ],
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.so_reuseport", 0),  # fail to bind a port that another server uses
        ],
    )
    servicer = RouteOptimizationServicer(
        executor,
        default_timeout_s=config.default_timeout_s,
        default_geodesic_meters_per_second=config.geodesic_meters_per_second,
        roads=roads,
        solver_processes=config.solver_processes,
        max_solver_processes=config.max_solver_processes,
        jobs=jobs,
        solve_slots=solve_slots,
        limits=config.limits,
        max_message_bytes=max_bytes,
        tenant_limits=tenant_limits,
    )
    pb_grpc.add_RouteOptimizationServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((google_handler(servicer),))  # Google's service, same engine
    operations_pb2_grpc.add_OperationsServicer_to_server(OperationsServicer(jobs), server)
    health_servicer = health.HealthServicer()
    for name in HEALTH_SERVICES:
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflected = (
        SERVICE_NAME,
        GOOGLE_SERVICE_NAME,
        OPERATIONS_SERVICE_NAME,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )  # Google's as Google describes it (rpc.google.reflection)
    reflection.enable_server_reflection(reflected, server, pool=reflection_pool(reflected))
    return Server(
        server,
        health_servicer,
        executor,
        jobs,
        store,
        keys,
        credentials,
        solve_slots,
        metrics,
        call_slots,
    )


def _max_store_bytes(config: ServerConfig) -> int | None:
    return None if config.max_store_mb is None else int(config.max_store_mb * 1024 * 1024)


def _metrics(
    config: ServerConfig,
    executor: Executor,
    jobs: JobManager,
    store: JobStore,
    call_slots: CallSlots,
) -> Metrics | None:
    """The server's metrics when ``--metrics-port`` is set (served by :func:`_setup_metrics`)."""
    if config.metrics_port is None:
        return None
    metrics = Metrics()
    if isinstance(executor, SlotExecutor):
        executor.on_job_end = metrics.solve_time.observe
    metrics.gauge("routeopt_workers", "solver workers", lambda: executor.max_workers)
    metrics.gauge("routeopt_workers_busy", "solver workers solving", lambda: executor.running_count)
    metrics.gauge(
        "routeopt_solves_queued", "solves waiting for a worker", lambda: executor.queued_count
    )
    metrics.gauge("routeopt_operations_queued", "operations queued", lambda: jobs.queued_count)
    metrics.gauge("routeopt_operations_running", "operations running", lambda: jobs.running_count)
    metrics.gauge("routeopt_job_store_bytes", "job store size on disk", store.size_bytes)
    metrics.gauge("routeopt_healthy", "1 while the store and dispatcher work", lambda: jobs.healthy)
    for kind, count in call_slots.slots.items():
        metrics.gauge(
            f"routeopt_call_slots_{kind}",
            f"call slots of kind {kind} taken (of {count}; rpc.admission)",
            lambda kind=kind: call_slots.held(kind),  # type: ignore[misc]
        )
    return metrics


def _setup_metrics(built: Server, config: ServerConfig) -> bool:
    """Serve ``/metrics`` if configured; False (logged) when its port cannot be bound."""
    if built.metrics is None or config.metrics_port is None:
        return True
    try:
        port = built.metrics.serve(config.metrics_host, config.metrics_port)
    except OSError as exc:
        log.error(
            "cannot serve metrics on %s:%d: %s", config.metrics_host, config.metrics_port, exc
        )
        return False
    log.info("metrics at http://%s:%d/metrics", config.metrics_host, port)
    return True


def _setup_logging(config: ServerConfig) -> None:
    """Log to stderr at ``--log-level``, as text or JSON (``--log-format``), with request ids."""
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
        os.environ[LOG_FORMAT_ENV_VAR] = "json"  # the solve workers, forked later, too
    else:
        os.environ.pop(LOG_FORMAT_ENV_VAR, None)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=config.log_level, handlers=[handler])


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """The server's TLS credentials (None: plaintext); ValueError if a file is unusable."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    return server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)


def check_exposure(config: ServerConfig) -> str | None:
    """Why the server must not start as configured (None: it may): a TLS file that is
    unusable, or an address beyond loopback without TLS and client identity
    (:func:`rpc.auth.exposure_problem`; ``--insecure`` overrides it, with warnings)."""
    try:
        _credentials(config)
        keys = keys_exist(config.data_dir or default_data_dir())
    except (ValueError, OSError) as exc:
        return str(exc)
    return exposure_problem(
        config.host,
        tls=config.tls_cert is not None,
        client_ca=config.tls_client_ca is not None,
        keys=keys,
        insecure=config.insecure,
    )


def bind(
    server: grpc.Server, config: ServerConfig, credentials: grpc.ServerCredentials | None = None
) -> int:
    """Listen on ``config.address`` (with TLS when ``credentials``); returns the port (useful
    with port 0)."""
    try:
        if credentials is not None:
            port = int(server.add_secure_port(config.address, credentials))
        else:
            port = int(server.add_insecure_port(config.address))
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {config.address}: {exc}") from exc
    if port == 0:  # older gRPC versions report failure this way
        raise OSError(f"cannot listen on {config.address}")
    return port


def _warm_up_roads(roads: RoadContext) -> float:
    """Compile the kernels ComputeMatrix uses (parallel matrix, on the network's own read-only
    arrays, which numba types apart from writable ones); returns the seconds it took."""
    started = time.monotonic()
    lat, lon = float(roads.network.lat[0]), float(roads.network.lon[0])
    roads.matrix(roads.snap([lat, lat], [lon, lon]), threads=None)
    return time.monotonic() - started


def _set_serving(health_servicer: health.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in HEALTH_SERVICES:
        health_servicer.set(name, status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; returns the exit code."""
    config = parse_args(argv)
    _setup_logging(config)
    problem = check_exposure(config)
    if problem is not None:
        log.error("%s", problem)
        print(f"routeopt-server: error: {problem}", file=sys.stderr)
        return 2
    stop_requested = _stop_on_signals()
    try:
        spec = config.road_spec()
        roads = load_roads(spec) if spec is not None else None
    except (OSError, ValueError) as exc:
        log.error("cannot load the road network: %s", exc)
        return 1
    if roads is not None:
        _prepare_roads(roads)
    try:
        built = build_server(config, roads)
    except (OSError, ValueError) as exc:  # data dir in use or unusable, cluster unreachable
        log.error("%s", exc)
        return 1
    try:
        port = bind(built.grpc_server, config, built.credentials)
    except OSError as exc:
        log.error("%s", exc)
        built.executor.shutdown()
        built.store.close()
        _close_keys(built)
        return 1
    _log_identity(built, config)
    if not _setup_metrics(built, config):
        built.executor.shutdown()
        built.store.close()
        return 1
    if not _start(built):
        return 1
    if not stop_requested.is_set():
        _serve(built, config, port, stop_requested)
    _shut_down(built, config)
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set on SIGTERM or SIGINT (logged)."""
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop_requested.is_set():
            log.warning("%s again: exiting at once", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(1)  # the store is crash-safe: the next start recovers the operations
        else:
            log.info("%s received: shutting down", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop_requested


def _prepare_roads(roads: RoadContext) -> None:
    """Log the road network's build report and compile its kernels."""
    if roads.report is not None:
        log.info("%s", roads.report.summary())
    log.info("road kernels compiled in %.2f s", _warm_up_roads(roads))


def _start(built: Server) -> bool:
    """Start the bound server, warm up the solver and recover the jobs; False (everything
    stopped) when that fails."""
    built.grpc_server.start()
    try:
        built.executor.warm_up()
        built.jobs.start()
    except Exception:
        log.exception("solver warm-up failed")
        built.grpc_server.stop(None)
        built.jobs.stop()
        built.executor.shutdown(cancel_running=True)
        built.store.close()
        _close_keys(built)
        return False
    return True


def _serve(built: Server, config: ServerConfig, port: int, stop_requested: threading.Event) -> None:
    """Report SERVING and the address, then wait for a stop signal."""
    _set_serving(built.health, built.jobs.healthy)
    built.jobs.on_health = lambda healthy: _on_health(built, healthy)
    log.info(
        "serving on %s:%d with %d solver workers, %d queued at most; job store %s",
        config.host, port, built.executor.max_workers, built.executor.max_queued,
        built.store.path,
    )  # fmt: skip
    print(f"routeopt listening on {config.host}:{port}", flush=True)
    while not stop_requested.wait(1.0):
        pass


def _on_health(built: Server, healthy: bool) -> None:
    """The job store or dispatcher failed or recovered: health follows (after a graceful
    shutdown began, health stays NOT_SERVING)."""
    _set_serving(built.health, healthy)
    if not healthy:
        log.error("health NOT_SERVING: %s", "; ".join(built.jobs.faults().values()))
    else:
        log.warning("health SERVING again")


def _shut_down(built: Server, config: ServerConfig) -> None:
    """The graceful shutdown (module docstring)."""
    started = time.monotonic()
    built.health.enter_graceful_shutdown()  # NOT_SERVING for every service, for good
    built.jobs.stop()  # running operations stay unfinished in the store: the next start runs them
    built.grpc_server.stop(config.grace_s).wait()
    built.executor.shutdown(cancel_running=True)
    if not built.jobs.wait_idle(10.0):
        log.warning("some operations were still completing; the next start recovers them")
    built.store.close()
    _close_keys(built)
    log.info("stopped in %.2f s", time.monotonic() - started)


def _log_identity(built: Server, config: ServerConfig) -> None:
    """Say how calls are protected."""
    transport = "plaintext"
    if built.credentials is not None:
        transport = "mutual TLS" if config.tls_client_ca else "TLS"
    keys = built.keys is not None and built.keys.enabled()
    clients = "API keys" if keys else ""
    if config.tls_client_ca:
        clients += (" or " if clients else "") + "client certificates"
    log.info(
        "transport: %s; callers: %s",
        transport,
        f"authenticated by {clients}" if clients else "not authenticated (one default tenant)",
    )


def _close_keys(built: Server) -> None:
    if built.keys is not None:
        built.keys.close()
