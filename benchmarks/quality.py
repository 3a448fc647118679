"""Route quality against best-known solutions and against the peers, in one run.

    python -m benchmarks.quality --set SOLOMON --time-limit 10 --solvers routeopt,pyvrp,vroom \\
        --out bench-out/solomon

Each (instance, solver) job runs in a Dask worker process with one thread (a LocalCluster of
``--workers`` processes, or an existing cluster with ``--scheduler tcp://host:8786``), so timing
runs never share a core unless ``--workers`` × the processes of a solve exceeds the cores (the
default ``--workers`` keeps them apart). ``--workers 0`` runs inline.

- routeopt: ``engine.solve`` with ``CONSUME_ALL_AVAILABLE_TIME``, the time limit and, like the
  server's default, one search per core (``routeopt-p1``: one search); its solution is checked
  by ``tests/checker.py`` and, like the peers', by ``verify_routes``.
- PyVRP: ``pyvrp.solve(..., stop=MaxRuntime(t), seed)``.
- VROOM: pyvroom over the same matrix, ``exploration_level`` 5, one thread, ``timeout`` = t;
  VROOM usually stops earlier on its own: its time is reported as measured.

Every cost is recomputed from the routes with the set's distance convention (CVRPLIB: nearest
integer; DIMACS: truncated to one decimal); gap = (cost − BKS) / BKS × 100 against the
distance-only BKS of that convention. Sets: CVRP, SOLOMON, GH200, GH1000, HFVRP, MDVRPTW,
PCVRPTW, VRPB (MTVRPTWR is listed as not expressible). Outputs in ``--out``: results.csv,
results.json, results.md, gap.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.instances import (
    DEFAULT_DATA_DIR,
    SETS,
    UNSUPPORTED,
    data_dir_or_exit,
    engine_routes,
    list_instances,
    read_vrp,
    to_model,
    verify_routes,
)
from engine.options import AUTO_SOLVER_PROCESSES, available_cores

SOLVERS = ("routeopt", "pyvrp", "vroom")
"""Solver names; ``routeopt`` also takes variants: ``routeopt-ortools`` / ``routeopt-pyvrp``
force a backend; plain ``routeopt`` runs as many parallel searches as the job has cores (the
server's default, ``solver_processes`` auto), ``-pN`` runs N (``routeopt-p1``,
``routeopt-ortools-p2``), ``-gls`` / ``-sa`` / ``-tabu`` pick OR-Tools' metaheuristic
(``routeopt-ortools-sa``), ``-dec`` / ``-nodec`` force PyVRP's split search (several
processes) on or off (``routeopt-dec``: ``SolveOptions.decompose``)."""

_METAHEURISTICS = {"gls": "GUIDED_LOCAL_SEARCH", "sa": "SIMULATED_ANNEALING", "tabu": "TABU_SEARCH"}


@dataclass(frozen=True)
class RouteoptVariant:
    backend: str = "auto"
    processes: int = AUTO_SOLVER_PROCESSES
    """0: auto, one search per core the job may use."""
    metaheuristic: str | None = None
    decompose: bool | None = None


def routeopt_variant(name: str) -> RouteoptVariant | None:
    """The options of a routeopt solver name, None for another solver."""
    parts = name.split("-")
    if parts[0] != "routeopt":
        return None
    variant = RouteoptVariant()
    for part in parts[1:]:
        if part in ("auto", "ortools", "pyvrp"):
            variant = replace(variant, backend=part)
        elif re.fullmatch(r"p[1-9]\d*", part):
            variant = replace(variant, processes=int(part[1:]))
        elif part in _METAHEURISTICS:
            variant = replace(variant, metaheuristic=_METAHEURISTICS[part])
        elif part in ("dec", "nodec"):
            variant = replace(variant, decompose=part == "dec")
        else:
            raise ValueError(f"unknown routeopt variant {part!r} in {name!r}")
    return variant


@dataclass(frozen=True)
class Job:
    set_name: str
    path: str
    solver: str
    time_limit_s: float
    seed: int = 1


@dataclass
class Row:
    set: str
    instance: str
    n: int
    solver: str
    time_limit_s: float
    status: str
    """ok | infeasible | error | unsupported"""
    cost: float | None = None
    bks: float | None = None
    gap_pct: float | None = None
    vehicles: int | None = None
    bks_vehicles: int | None = None
    time_s: float | None = None
    feasible: bool | None = None
    checked_by: str = ""
    problems: str = ""


def run_job(job: Job) -> dict[str, Any]:
    """Solve one instance with one solver, verify, and return a ``Row`` as a dict. Runs in a
    worker process; reads the instance there (nothing big crosses the wire)."""
    data = read_vrp(Path(job.path), job.set_name)
    row = Row(
        set=job.set_name,
        instance=data.name,
        n=len(data.clients),
        solver=job.solver,
        time_limit_s=job.time_limit_s,
        status="ok",
        bks=data.bks,
        bks_vehicles=data.bks_vehicles,
    )
    checked = ["verify_routes"]
    try:
        started = time.perf_counter()
        variant = routeopt_variant(job.solver)
        if variant is not None:
            from engine import SearchMode, SolveOptions, solve
            from tests.checker import check_solution

            model = to_model(data)
            options = SolveOptions(
                time_limit_s=job.time_limit_s,
                search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
                backend=variant.backend,
                solver_processes=variant.processes,
                seed=job.seed,
                local_search_metaheuristic=variant.metaheuristic,
                decompose=variant.decompose,
            )
            solution = solve(model, options)
            row.time_s = time.perf_counter() - started
            check_solution(model, solution)  # raises AssertionError listing every problem
            checked.insert(0, "tests.checker")
            routes = engine_routes(data, solution)
            engine_cost = solution.metrics.total_cost / data.scale
        else:
            from benchmarks.peers import PEER_KINDS, solve_pyvrp, solve_vroom

            if data.kind not in PEER_KINDS[job.solver]:
                row.status = "unsupported"
                row.problems = f"{job.solver} cannot express {data.kind}"
                return asdict(row)
            solver: Callable[..., Any] = solve_pyvrp if job.solver == "pyvrp" else solve_vroom
            routes = solver(data, job.time_limit_s)
            row.time_s = time.perf_counter() - started
            engine_cost = None
        verified = verify_routes(data, routes)
    except AssertionError as exc:  # the checker rejected the engine's solution
        row.status, row.feasible, row.problems = "infeasible", False, str(exc)[:2000]
        row.checked_by = "tests.checker"
        return asdict(row)
    except Exception as exc:
        row.status, row.problems = "error", f"{type(exc).__name__}: {exc}"[:2000]
        return asdict(row)
    row.cost = verified.cost
    row.vehicles = verified.vehicles
    row.feasible = verified.feasible
    row.checked_by = "+".join(checked)
    problems = list(verified.problems)
    if engine_cost is not None and not math.isclose(
        engine_cost, verified.cost, rel_tol=1e-6, abs_tol=1e-3
    ):
        problems.append(f"engine cost {engine_cost} != recomputed {verified.cost}")
    if problems:
        row.status, row.feasible = "infeasible", False
        row.problems = "; ".join(problems[:20])
    elif data.bks:
        row.gap_pct = (verified.cost - data.bks) / data.bks * 100
    return asdict(row)


# --------------------------------------------------------------------------------------------
# Running jobs: inline or over Dask
# --------------------------------------------------------------------------------------------


def _progress(total: int, desc: str) -> Any:
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="job", file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is in the bench extra

        class _Plain:
            def update(self, _: int) -> None: ...
            def close(self) -> None: ...

        return _Plain()


def run_jobs(jobs: list[Job], *, workers: int, scheduler: str | None) -> Iterable[dict[str, Any]]:
    bar = _progress(len(jobs), "solving")
    try:
        if workers == 0 and scheduler is None:
            for job in jobs:
                yield run_job(job)
                bar.update(1)
            return
        import dask
        from distributed import Client, LocalCluster, as_completed

        # OR-Tools and PyVRP hold the GIL while searching: do not let a busy worker be
        # declared dead.
        dask.config.set({"distributed.scheduler.worker-ttl": None})
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
                env={"OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()},
            )
        client = Client(cluster if cluster is not None else scheduler)
        try:
            futures = [client.submit(run_job, job, pure=False) for job in jobs]
            for future in as_completed(futures):
                yield future.result()
                bar.update(1)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _instance_order(rows: list[dict[str, Any]]) -> list[str]:
    """Instance names by size, then name."""
    sizes = {r["instance"]: r["n"] for r in rows}
    return sorted(sizes, key=lambda name: (sizes[name], name))


def markdown(rows: list[dict[str, Any]], solvers: list[str], header: str) -> str:
    instances = _instance_order(rows)
    by = {(r["instance"], r["solver"]): r for r in rows}
    lines = [header, ""]
    lines.append(
        "| instance | n | BKS | "
        + " | ".join(f"{s} cost | {s} gap % | {s} veh | {s} s" for s in solvers)
        + " |"
    )
    lines.append("|---" * (3 + 4 * len(solvers)) + "|")
    for name in instances:
        first = next(r for r in rows if r["instance"] == name)
        cells = [name, str(first["n"]), _fmt(first["bks"], 1)]
        for s in solvers:
            r = by.get((name, s))
            if r is None:
                cells += ["—"] * 4
            elif r["status"] != "ok":
                cells += [r["status"], "—", "—", _fmt(r["time_s"], 1)]
            else:
                cells += [
                    _fmt(r["cost"], 1),
                    _fmt(r["gap_pct"]),
                    str(r["vehicles"]),
                    _fmt(r["time_s"], 1),
                ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| solver | instances ok | infeasible/error/unsupported | mean gap % | "
        "median gap % | mean time s |",
        "|---|---|---|---|---|---|",
    ]
    for s in solvers:
        mine = [r for r in rows if r["solver"] == s]
        ok = [r for r in mine if r["status"] == "ok" and r["gap_pct"] is not None]
        bad = len(mine) - len(ok)
        gaps = [r["gap_pct"] for r in ok]
        times = [r["time_s"] for r in mine if r["time_s"] is not None]
        all_ok = len(ok) == len(mine)
        mean = _fmt(statistics.fmean(gaps)) if gaps else "—"
        if gaps and not all_ok:
            mean += f" (over {len(ok)} of {len(mine)})"
        lines.append(
            f"| {s} | {len(ok)} | {bad} | {mean} | "
            f"{_fmt(statistics.median(gaps)) if gaps else '—'} | "
            f"{_fmt(statistics.fmean(times), 1) if times else '—'} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], solvers: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    instances = _instance_order(rows)
    by = {(r["instance"], r["solver"]): r for r in rows}
    width = 0.8 / max(1, len(solvers))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(instances) * len(solvers)), 4.5))
    for k, s in enumerate(solvers):
        xs, ys = [], []
        for i, name in enumerate(instances):
            r = by.get((name, s))
            if r is not None and r["gap_pct"] is not None:
                xs.append(i + (k - (len(solvers) - 1) / 2) * width)
                ys.append(r["gap_pct"])
        ax.bar(xs, ys, width=width, label=s)
    ax.set_xticks(range(len(instances)))
    ax.set_xticklabels(instances, rotation=70, fontsize=7)
    ax.set_ylabel("gap to BKS (%)")
    ax.set_title(title)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--set", required=True, type=str.upper, choices=sorted(SETS))
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per solve")
    parser.add_argument("--solvers", default="routeopt,pyvrp,vroom")
    parser.add_argument("--instances", nargs="*", default=None, help="names (default: all)")
    parser.add_argument("--max-n", type=int, default=None, help="at most this many customers")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="LocalCluster processes, one thread each (0: inline, no Dask; default: as many "
        "as leave each solve its cores, e.g. 1 with plain routeopt, 2 with routeopt-p1 on 2 "
        "cores)",
    )
    parser.add_argument("--scheduler", default=None, help="tcp://host:8786 of a Dask cluster")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--allow-shared-cores",
        action="store_true",
        help="allow more workers than cores (timings then share cores)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    try:
        variants = [routeopt_variant(s) for s in solvers]
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    unknown = {s for s, v in zip(solvers, variants, strict=True) if v is None} - set(SOLVERS)
    if unknown:
        raise SystemExit(f"unknown solvers {sorted(unknown)}; choose from {SOLVERS}")
    cores = available_cores()
    per_job = max((v.processes or cores for v in variants if v is not None), default=1)
    if args.workers is None:
        args.workers = max(1, cores // per_job)
    if args.scheduler is None and args.workers * per_job > cores and not args.allow_shared_cores:
        raise SystemExit(
            f"--workers {args.workers} × {per_job} processes per solve > {cores} cores: timed "
            "runs would share cores (pass --allow-shared-cores to do it anyway)"
        )
    data_dir = data_dir_or_exit(args.data_dir)
    if args.set in UNSUPPORTED:
        print(f"{args.set}: not expressible by the engine: {UNSUPPORTED[args.set]}")
        return 0
    paths = list_instances(data_dir, args.set, names=args.instances, max_n=args.max_n)
    if not paths:
        raise SystemExit(f"no instances of {args.set} under {data_dir / SETS[args.set].folder}")
    jobs = [Job(args.set, str(p), s, args.time_limit, args.seed) for p in paths for s in solvers]
    started = datetime.now(UTC)
    rows = list(run_jobs(jobs, workers=args.workers, scheduler=args.scheduler))
    rows.sort(key=lambda r: (r["instance"], solvers.index(r["solver"])))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python -m benchmarks.quality "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "set": args.set,
        "set_note": SETS[args.set].note,
        "time_limit_s": args.time_limit,
        "solvers": solvers,
        "workers": args.workers,
        "scheduler": args.scheduler,
        "started": started.isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {cores} cores, "
        f"Python {platform.python_version()}",
        "versions": _versions(solvers),
    }
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    header = (
        f"### {args.set} — {len(paths)} instances, {args.time_limit:g} s per solve\n\n"
        f"{SETS[args.set].note}. Command: `{meta['command']}`; {meta['machine']}; "
        f"{meta['started']}; {meta['versions']}. Every solution verified "
        "(routeopt: tests/checker.py + route recomputation; peers: route recomputation)."
    )
    table = markdown(rows, solvers, header)
    (out / "results.md").write_text(table)
    plot(rows, solvers, out / "gap.png", f"{args.set}, {args.time_limit:g} s")
    print(table)
    return 0


def _versions(solvers: list[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    packages = {"routeopt": ("ortools", "pyvrp"), "pyvrp": ("pyvrp",), "vroom": ("pyvroom",)}
    names = sorted({p for s in solvers for p in packages[s.split("-")[0]]})
    out = []
    for name in names:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} ?")
    return ", ".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
