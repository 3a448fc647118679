"""``routeopt``: the command line of routeopt.

``routeopt layouts STUDY.json [--osm FILE|embedded|none] [--out DIR] ...`` compares depot
layouts (or searches the best one) on this machine, without a server: the study file is an
``EvaluateDepotLayoutsRequest`` in protobuf JSON (the same request the ``EvaluateDepotLayouts``
RPC takes; see ``examples/depot_layouts_study.json``). It writes to ``--out``:

- ``comparison.csv``, ``comparison.json``, ``comparison.md``: one row per routed layout, best
  first (costs, vehicles, km, driver hours, late and unserved orders, distance to depot, load
  utilisation, cost per order);
- ``layouts/NAME.geojson``: depots, order assignments and routes of each layout;
- ``map.html``: a Leaflet map of every layout (opens in a browser; Leaflet is inlined);
- ``costs.png``: cost breakdown per layout;
- ``response.json``: the full ``EvaluateDepotLayoutsResponse`` (routes included).

Layouts are evaluated ``--workers`` at once (processes), with a progress bar on stderr.
Exit status: 0 done, 2 invalid study (every problem listed with its field path) or a missing
optional module (the ``layouts`` extra: ``pip install 'routeopt[layouts]'``).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from google.protobuf import json_format

from engine.errors import InvalidModelError
from engine.roads import OSM_CREDIT, RoadContext, RoadSpec, embedded_extract, load_roads
from planning import LayoutEvaluation
from rpc.layouts import request_to_study, result_to_response, run_request
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["main"]


def _layouts_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "layouts",
        help="compare depot layouts or search the best one",
        description="Compare depot layouts, or search the best one, for a study file "
        "(an EvaluateDepotLayoutsRequest in protobuf JSON).",
    )
    p.add_argument("study", type=Path, help="study file (JSON)")
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


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run_layouts(args: argparse.Namespace) -> int:
    from planning.report import (
        comparison_rows,
        layout_geojson,
        markdown_table,
        write_cost_chart,
        write_csv,
        write_json,
        write_map,
    )

    needed = [
        (not args.quiet, "tqdm", "the progress bar (or --quiet)"),
        (not args.no_map, "folium", "map.html (or --no-map)"),
        (not args.no_map, "js_lib_leaflet", "map.html (or --no-map)"),
        (not args.no_chart, "matplotlib", "costs.png (or --no-chart)"),
    ]
    missing = [(name, why) for wanted, name, why in needed if wanted and not _importable(name)]
    if missing:
        for name, why in missing:
            print(f"routeopt layouts: {why} needs the {name} module", file=sys.stderr)
        print("install them with: pip install 'routeopt[layouts]'", file=sys.stderr)
        return 2
    try:
        request = json_format.Parse(args.study.read_text(), pb.EvaluateDepotLayoutsRequest())
    except (OSError, json_format.ParseError) as exc:
        print(f"{args.study}: cannot read the study: {exc}", file=sys.stderr)
        return 2
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
    roads: RoadContext | None = None
    if args.osm != "none" and not request.use_geodesic_distances:
        path = str(embedded_extract()) if args.osm == "embedded" else args.osm
        roads = load_roads(RoadSpec(path, args.profile, args.road_cache_dir))
    try:
        req = request_to_study(request, workers=max(args.workers, 1), roads=roads)
    except InvalidModelError as exc:
        print(f"{args.study}: invalid study", file=sys.stderr)
        for v in exc.violations:
            print(f"  {v.field}: {v.description}", file=sys.stderr)
        return 2
    from dataclasses import replace

    req = replace(req, options=replace(req.options, populate_polylines=roads is not None))
    total = len(req.study.layouts) or None
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="layouts", unit="layout", file=sys.stderr)

    def done(ev: LayoutEvaluation) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{ev.layout.label}: {ev.kpis.total_cost:,.0f}")
            bar.update(1)

    try:
        outcome = run_request(req, roads=roads, on_done=done)
    except InvalidModelError as exc:
        print(f"{args.study}: cannot evaluate", file=sys.stderr)
        for v in exc.violations:
            print(f"  {v.field}: {v.description}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    out: Path = args.out
    (out / "layouts").mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(outcome.evaluations)
    write_csv(rows, out / "comparison.csv")
    write_json(rows, out / "comparison.json")
    table = markdown_table(rows)
    credit = f"\nRoad data {OSM_CREDIT} (ODbL).\n" if roads is not None else ""
    (out / "comparison.md").write_text(table + credit)
    import json

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
    print(table + credit)
    best = outcome.evaluations[0]
    print(f"best layout: {best.layout.label} ({best.kpis.total_cost:,.2f}); outputs in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="routeopt", description="routeopt command line")
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    _layouts_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.command == "layouts":
        return run_layouts(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
