"""``routeopt layouts``: depot layouts on this machine, without a server.

``routeopt layouts STUDY [--osm FILE|embedded|none] [--out DIR] ...`` compares depot
layouts (or searches the best one). The study is a folder of CSV files or one XLSX workbook
(orders, depots, vehicles, layouts, search: :mod:`rpc.sheets`; ``routeopt layouts template
DIR`` writes a template with a README of the columns), or an ``EvaluateDepotLayoutsRequest`` in
protobuf JSON (the same request the ``EvaluateDepotLayouts`` RPC takes; see
``examples/depot_layouts_study.json``). It writes to ``--out``:

- ``comparison.csv``, ``comparison.json``, ``comparison.md``: one row per routed layout, best
  first (costs, vehicles, km, driver hours, late and unserved orders, distance to depot, load
  utilisation, cost per order);
- ``layouts/NAME.geojson``: depots, order assignments and routes of each layout;
- ``map.html``: a Leaflet map of every layout (opens in a browser; Leaflet is inlined);
- ``costs.png``: cost breakdown per layout;
- ``response.json``: the full ``EvaluateDepotLayoutsResponse`` (routes included).

Layouts are evaluated ``--workers`` at once (processes), with a progress bar on stderr.
Exit status: 0 done, 2 invalid study (every problem listed with its field path, or for
spreadsheets its ``FILE:ROW:COLUMN``) or a missing optional module (the ``layouts`` extra:
``pip install 'routeopt[layouts]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import json_format

from engine.errors import FieldViolation, InvalidModelError
from engine.roads import OSM_CREDIT, RoadContext, RoadSpec, embedded_extract, load_roads
from planning import LayoutEvaluation
from rpc.layouts import (
    LayoutOutcome,
    LayoutRequest,
    request_to_study,
    result_to_response,
    run_request,
)
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.sheets import locate, write_template

__all__ = ["add_layouts_parser", "run_layouts", "run_template"]

OnDone = Callable[[LayoutEvaluation], None]


class SubCommands(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as a sub-command needs it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def add_layouts_parser(sub: SubCommands) -> None:
    """Add the ``layouts`` sub-command and its flags to ``sub``."""
    p = sub.add_parser(
        "layouts",
        help="compare depot layouts or search the best one",
        description="Compare depot layouts, or search the best one, for a study: a folder of "
        "CSV files or an XLSX workbook (routeopt layouts template DIR writes one to start "
        "from), or an EvaluateDepotLayoutsRequest in protobuf JSON.",
    )
    p.add_argument(
        "study", type=Path, help="study: a folder of CSV files, an .xlsx workbook or a .json file"
    )
    p.add_argument(
        "--osm",
        default="embedded",
        help="road network: an .osm.pbf/.osm file or road layer, 'embedded' (central Helsinki, "
        "the default) or 'none' (geodesic travel)",
    )
    p.add_argument("--profile", default="car", choices=["car", "truck"])
    p.add_argument("--road-cache-dir", default=None)
    p.add_argument("--out", type=Path, default=Path("layouts-out"), help="output folder")
    p.add_argument("--workers", type=int, default=1, help="layouts evaluated at once")
    p.add_argument("--layout-timeout", type=float, help="seconds per layout (overrides the file)")
    p.add_argument("--final-timeout", type=float, help="search: seconds for the best layout")
    p.add_argument("--timeout", type=float, help="search: overall budget in seconds")
    p.add_argument("--no-map", action="store_true", help="skip map.html")
    p.add_argument("--no-chart", action="store_true", help="skip costs.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", label) or "layout"


def _missing_modules(args: argparse.Namespace) -> bool:
    """Report the optional modules the requested outputs need and that are not installed."""
    needed = [
        (not args.quiet, "tqdm", "the progress bar (or --quiet)"),
        (not args.no_map, "folium", "map.html (or --no-map)"),
        (not args.no_map, "js_lib_leaflet", "map.html (or --no-map)"),
        (not args.no_chart, "matplotlib", "costs.png (or --no-chart)"),
    ]
    missing = [
        (name, why)
        for wanted, name, why in needed
        if wanted and importlib.util.find_spec(name) is None
    ]
    for name, why in missing:
        print(f"routeopt layouts: {why} needs the {name} module", file=sys.stderr)
    if missing:
        print("install them with: pip install 'routeopt[layouts]'", file=sys.stderr)
    return bool(missing)


def _read_request(args: argparse.Namespace) -> pb.EvaluateDepotLayoutsRequest | None:
    """The study with the flags' timeouts and travel (None: unreadable, reported). A folder of
    CSV files or a workbook goes into the request's ``sheets``, as a client of the API would
    send it."""
    path: Path = args.study
    request = pb.EvaluateDepotLayoutsRequest()
    try:
        if path.is_dir():
            csvs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
            if not csvs:
                print(f"{path}: no .csv files in this folder", file=sys.stderr)
                return None
            for p in csvs:
                request.sheets.files.add(name=p.name, content=p.read_bytes())
        elif path.suffix.lower() == ".xlsx":
            request.sheets.files.add(name=path.name, content=path.read_bytes())
        else:
            request = json_format.Parse(path.read_text(), request)
    except (OSError, json_format.ParseError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read the study: {exc}", file=sys.stderr)
        return None
    for flag, name in (
        ("layout_timeout", "layout_timeout"),
        ("final_timeout", "final_layout_timeout"),
        ("timeout", "timeout"),
    ):
        value = getattr(args, flag)
        if value is not None:
            getattr(request, name).FromNanoseconds(int(value * 1e9))
    if args.osm == "none":
        request.use_geodesic_distances = True
    return request


def _roads(args: argparse.Namespace, request: pb.EvaluateDepotLayoutsRequest) -> RoadContext | None:
    """The road network of ``--osm`` (None: geodesic travel)."""
    if args.osm == "none" or request.use_geodesic_distances:
        return None
    path = str(embedded_extract()) if args.osm == "embedded" else args.osm
    return load_roads(RoadSpec(path, args.profile, args.road_cache_dir))


def _report(study: Path, what: str, violations: tuple[FieldViolation, ...]) -> int:
    """Print every problem with its field path; the exit status 2."""
    print(f"{study}: {what}", file=sys.stderr)
    for v in violations:
        print(f"  {v.field}: {v.description}", file=sys.stderr)
    return 2


@contextmanager
def _progress(args: argparse.Namespace, total: int | None) -> Iterator[OnDone]:
    """A progress bar on stderr (none with ``--quiet``), advanced per routed layout."""
    if args.quiet:
        yield lambda ev: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc="layouts", unit="layout", file=sys.stderr)

    def done(ev: LayoutEvaluation) -> None:
        bar.set_postfix_str(f"{ev.layout.label}: {ev.kpis.total_cost:,.0f}")
        bar.update(1)

    try:
        yield done
    finally:
        bar.close()


def _write_outputs(
    args: argparse.Namespace, req: LayoutRequest, outcome: LayoutOutcome, roads: bool
) -> str:
    """Write every output to ``--out`` (module docstring); the Markdown table with its credit."""
    from planning.report import (
        comparison_rows,
        layout_geojson,
        markdown_table,
        write_cost_chart,
        write_csv,
        write_json,
        write_map,
    )

    out: Path = args.out
    (out / "layouts").mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(outcome.evaluations)
    write_csv(rows, out / "comparison.csv")
    write_json(rows, out / "comparison.json")
    table = markdown_table(rows) + (f"\nRoad data {OSM_CREDIT} (ODbL).\n" if roads else "")
    (out / "comparison.md").write_text(table)
    for ev in outcome.evaluations:
        collection = layout_geojson(req.study, ev)
        target = out / "layouts" / f"{_file_name(ev.layout.label)}.geojson"
        target.write_text(json.dumps(collection) + "\n")
    response = result_to_response(outcome, label=req.label)
    (out / "response.json").write_text(json_format.MessageToJson(response) + "\n")
    if not args.no_map:
        write_map(req.study, outcome.evaluations, out / "map.html")
    if not args.no_chart:
        write_cost_chart(outcome.evaluations, out / "costs.png")
    return table


def run_layouts(args: argparse.Namespace) -> int:
    """The ``layouts`` sub-command (module docstring); the exit status."""
    if _missing_modules(args):
        return 2
    request = _read_request(args)
    if request is None:
        return 2
    roads = _roads(args, request)
    try:
        req = request_to_study(request, workers=max(args.workers, 1), roads=roads)
    except InvalidModelError as exc:
        return _report(args.study, "invalid study", exc.violations)
    req = replace(req, options=replace(req.options, populate_polylines=roads is not None))
    with _progress(args, len(req.study.layouts) or None) as done:
        try:
            outcome = run_request(req, roads=roads, on_done=done)
        except InvalidModelError as exc:
            return _report(args.study, "cannot evaluate", locate(exc.violations, req.origins))
    table = _write_outputs(args, req, outcome, roads is not None)
    print(table)
    best = outcome.evaluations[0]
    print(f"best layout: {best.layout.label} ({best.kpis.total_cost:,.2f}); outputs in {args.out}")
    return 0


def run_template(argv: list[str]) -> int:
    """``routeopt layouts template DIR``: write a study template (CSV files, a README of the
    columns and the same study as ``study.xlsx``); the exit status."""
    parser = argparse.ArgumentParser(
        prog="routeopt layouts template",
        description="Write a depot-layout study template to DIR: orders.csv, depots.csv, "
        "vehicles.csv, layouts.csv, search.csv, README.txt (the columns and units) and "
        "study.xlsx (the same study as one workbook).",
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--no-xlsx", action="store_true", help="CSV files only")
    args = parser.parse_args(argv)
    existing = list(args.folder.glob("*.csv")) if args.folder.is_dir() else []
    if existing:
        print(f"{args.folder}: already holds CSV files; choose an empty folder", file=sys.stderr)
        return 2
    for path in write_template(args.folder, workbook=not args.no_xlsx):
        print(path)
    return 0
