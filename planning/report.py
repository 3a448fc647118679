"""Outputs of a depot layout study: comparison table (CSV, JSON, Markdown), GeoJSON per
layout, an HTML map and a PNG cost chart.

- :func:`comparison_rows` — one row per routed layout, best first, with the KPIs of
  :class:`~planning.results.LayoutKpis` (summed over the study's days) and the cost and vehicles
  per day.
- :func:`layout_geojson` — RFC 7946 FeatureCollection of one layout: candidate depots (Points,
  ``open`` and the load shipped per day), orders (Points with their serving depot), order
  assignments (LineStrings depot → order) and routes (LineStrings along the roads when the
  evaluation drew polylines, else straight between stops). Points without coordinates (studies
  on a client matrix) are left out.
- :func:`write_map` — a Leaflet map (folium) with one layer per layout. Leaflet's script and
  style sheet are inlined (from the ``django-js-lib-leaflet`` package, Leaflet 1.9.4), so the
  page needs no network to draw depots, orders and routes; only the OpenStreetMap background
  tiles are fetched from the tile server (``tiles=None`` leaves them out).
- :func:`write_cost_chart` — stacked bars of each layout's cost: opening, vehicle fixed,
  travel, penalties (matplotlib, Agg backend).

folium, django-js-lib-leaflet and matplotlib are the ``layouts`` extra of the package
(``pip install 'routeopt[layouts]'``); they are imported only by the functions that need them.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.export import solution_to_geojson
from engine.roads import OSM_CREDIT
from planning import LayoutEvaluation, LayoutStudy

__all__ = [
    "comparison_rows",
    "layout_geojson",
    "markdown_table",
    "write_cost_chart",
    "write_csv",
    "write_json",
    "write_map",
]

_COLUMNS = (
    "layout", "depots", "total_cost", "cost_per_day", "opening_cost", "vehicle_fixed_cost",
    "travel_cost", "penalty_cost", "vehicles_used", "vehicles_per_day", "distance_km",
    "driver_hours", "orders", "orders_served", "orders_late", "orders_unserved",
    "mean_depot_distance_km", "max_depot_distance_km", "load_utilisation", "cost_per_order",
    "capacity_respected", "strategy", "screening_cost", "evaluation_time_s",
)  # fmt: skip

_COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
)  # fmt: skip


def comparison_rows(evaluations: Sequence[LayoutEvaluation]) -> list[dict[str, Any]]:
    """One row per layout, in the given order (callers pass them best first)."""
    rows = []
    for ev in evaluations:
        k = ev.kpis
        rows.append(
            {
                "layout": ev.layout.label,
                "depots": " ".join(ev.layout.depots),
                "total_cost": round(k.total_cost, 2),
                "cost_per_day": round(k.total_cost / max(k.days, 1), 2),
                "opening_cost": round(k.opening_cost, 2),
                "vehicle_fixed_cost": round(k.vehicle_fixed_cost, 2),
                "travel_cost": round(k.travel_cost, 2),
                "penalty_cost": round(k.penalty_cost, 2),
                "vehicles_used": k.vehicles_used,
                "vehicles_per_day": round(k.vehicles_used / max(k.days, 1), 2),
                "distance_km": round(k.distance_km, 3),
                "driver_hours": round(k.driver_hours, 3),
                "orders": k.orders,
                "orders_served": k.orders_served,
                "orders_late": k.orders_late,
                "orders_unserved": k.orders_unserved,
                "mean_depot_distance_km": round(k.mean_depot_distance_km, 3),
                "max_depot_distance_km": round(k.max_depot_distance_km, 3),
                "load_utilisation": round(k.load_utilisation, 4),
                "cost_per_order": round(k.cost_per_order, 2)
                if math.isfinite(k.cost_per_order)
                else None,
                "capacity_respected": ev.capacity_respected,
                "strategy": ",".join(ev.strategy),
                "screening_cost": None
                if ev.screening_cost is None or not math.isfinite(ev.screening_cost)
                else round(ev.screening_cost, 2),
                "evaluation_time_s": round(ev.time_s, 2),
            }
        )
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def write_json(rows: Sequence[dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(list(rows), indent=1) + "\n")


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "| layout | depots | total cost | per day | opening | vehicles fixed | travel | vehicles | "
        "km | driver h | late | unserved | mean / max km to depot | load use | cost/order |"
    )
    lines = [head, "|---|---|" + "---:|" * 13]
    for r in rows:
        cpo = "" if r["cost_per_order"] is None else f"{r['cost_per_order']:.2f}"
        flag = "" if r["capacity_respected"] else " (depot capacity exceeded)"
        lines.append(
            f"| {r['layout']}{flag} | {r['depots']} | {r['total_cost']:.2f} | "
            f"{r['cost_per_day']:.2f} | "
            f"{r['opening_cost']:.2f} | {r['vehicle_fixed_cost']:.2f} | {r['travel_cost']:.2f} | "
            f"{r['vehicles_used']} | {r['distance_km']:.1f} | {r['driver_hours']:.1f} | "
            f"{r['orders_late']} | {r['orders_unserved']} | "
            f"{r['mean_depot_distance_km']:.2f} / {r['max_depot_distance_km']:.2f} | "
            f"{100 * r['load_utilisation']:.0f} % | {cpo} |"
        )
    return "\n".join(lines) + "\n"


def _point(lat: float, lng: float, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lng, lat]},
        "properties": props,
    }


def layout_geojson(study: LayoutStudy, ev: LayoutEvaluation) -> dict[str, Any]:
    """The FeatureCollection of one layout (module docstring)."""
    features: list[dict[str, Any]] = []
    opened = set(ev.layout.depots)
    where = {d.label: d.location for d in study.depots}
    for depot in study.depots:
        if depot.location is None:
            continue
        loads = [dict(day.get(depot.label, {})) for day in ev.depot_loads]
        features.append(
            _point(
                depot.location.latitude,
                depot.location.longitude,
                {
                    "kind": "depot",
                    "layout": ev.layout.label,
                    "depot": depot.label,
                    "open": depot.label in opened,
                    "capacity": dict(depot.capacity),
                    "opening_cost": depot.opening_cost,
                    "load_per_day": loads,
                },
            )
        )
    for t, day in enumerate(study.days):
        for i, order in enumerate(day.orders):
            if order.location is None:
                continue
            served_by = ev.assignment[t][i]
            props = {
                "kind": "order",
                "layout": ev.layout.label,
                "day": day.label,
                "order": order.label,
                "depot": served_by,
                "demands": dict(order.demands),
            }
            p = order.location
            features.append(_point(p.latitude, p.longitude, props))
            d = where.get(served_by)
            if d is not None:
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [[d.longitude, d.latitude], [p.longitude, p.latitude]],
                        },
                        "properties": {**props, "kind": "assignment"},
                    }
                )
    road = False
    for part in ev.parts:
        routes = solution_to_geojson(part.model, part.solution)
        road = road or "attribution" in routes
        for feature in routes["features"]:
            if feature["properties"]["kind"] != "route":
                continue
            depot = part.vehicle_depot[feature["properties"]["vehicle_index"]]
            feature["properties"].update(
                layout=ev.layout.label, day=study.days[part.day].label, depot=depot
            )
            features.append(feature)
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if road:
        collection["attribution"] = f"Road data {OSM_CREDIT} (ODbL)"
    return collection


def _leaflet_assets() -> tuple[str, str]:
    """Leaflet's script and style sheet, from the django-js-lib-leaflet package."""
    from importlib import resources

    folder = resources.files("js_lib_leaflet") / "static" / "js_lib_leaflet"
    return (folder / "leaflet.js").read_text(), (folder / "leaflet.css").read_text()


def _base_map(tiles: str | None) -> Any:
    """An empty folium map with Leaflet inlined and the ``tiles`` background (if any)."""
    import folium  # partly annotated: see the mypy override in pyproject.toml

    fmap = folium.Map(location=None, tiles=None, control_scale=True)
    # No CDN links (Leaflet, jQuery, Bootstrap, icon fonts): Leaflet is inlined below, and the
    # map uses nothing else.
    fmap.default_js = []
    fmap.default_css = []
    script, style = _leaflet_assets()
    root: Any = fmap.get_root()
    root.header.add_child(
        folium.Element(f"<style>{style}</style>\n<script>{script}</script>"), name="leaflet"
    )
    if tiles is not None:
        folium.TileLayer(tiles, attr=f"Map data {OSM_CREDIT}").add_to(fmap)
    return fmap


def _add_routes(group: Any, features: list[dict[str, Any]], colour: dict[str, str]) -> None:
    import folium

    for f in features:
        props, geom = f["properties"], f["geometry"]
        if props["kind"] == "route":
            folium.PolyLine(
                [(lat, lng) for lng, lat in geom["coordinates"]],
                color=colour.get(props["depot"], "#333333"),
                weight=3,
                opacity=0.8,
                tooltip=html.escape(
                    f"{props['vehicle_label']} ({props['day']}): {props['visits']} stops, "
                    f"{props['travel_distance_m'] / 1000:.1f} km"
                ),
            ).add_to(group)


def _add_points(group: Any, features: list[dict[str, Any]], colour: dict[str, str]) -> None:
    import folium

    for f in features:
        props, geom = f["properties"], f["geometry"]
        lng, lat = geom["coordinates"] if geom["type"] == "Point" else (0.0, 0.0)
        if props["kind"] == "order":
            folium.CircleMarker(
                (lat, lng),
                radius=4,
                color=colour.get(props["depot"], "#000000"),
                fill=True,
                fill_opacity=0.9,
                tooltip=html.escape(
                    f"{props['order']} ({props['day']}): {props['depot'] or 'unserved'}"
                ),
            ).add_to(group)
        elif props["kind"] == "depot":
            is_open = props["open"]
            folium.CircleMarker(
                (lat, lng),
                radius=10 if is_open else 6,
                color=colour.get(props["depot"], "#555555") if is_open else "#555555",
                weight=3,
                fill=True,
                fill_color="#ffffff" if not is_open else colour[props["depot"]],
                fill_opacity=0.9 if is_open else 0.4,
                tooltip=html.escape(
                    f"depot {props['depot']} ({'open' if is_open else 'closed'}), "
                    f"opening cost {props['opening_cost']:,.0f}"
                ),
            ).add_to(group)


def write_map(
    study: LayoutStudy,
    evaluations: Sequence[LayoutEvaluation],
    path: Path,
    *,
    tiles: str | None = "OpenStreetMap",
) -> None:
    """A self-contained Leaflet map of the layouts (module docstring); the first layout's
    layer is shown, the others can be switched on in the layer control."""
    import folium

    points = [d.location for d in study.depots if d.location is not None] + [
        o.location for day in study.days for o in day.orders if o.location is not None
    ]
    if not points:
        raise ValueError("the study has no coordinates to map (it uses a travel matrix)")
    fmap = _base_map(tiles)
    for k, ev in enumerate(evaluations):
        group = folium.FeatureGroup(
            name=f"{ev.layout.label}: {ev.kpis.total_cost:,.0f}", show=k == 0
        )
        features = layout_geojson(study, ev)["features"]
        colour = {d: _COLOURS[n % len(_COLOURS)] for n, d in enumerate(ev.layout.depots)}
        _add_routes(group, features, colour)
        _add_points(group, features, colour)
        group.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    lats = [p.latitude for p in points]
    lngs = [p.longitude for p in points]
    fmap.fit_bounds([(min(lats), min(lngs)), (max(lats), max(lngs))])
    fmap.save(str(path))


def write_cost_chart(evaluations: Sequence[LayoutEvaluation], path: Path) -> None:
    """Stacked bars of each layout's cost breakdown (module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [ev.layout.label for ev in evaluations]
    parts = {
        "opening": [ev.kpis.opening_cost for ev in evaluations],
        "vehicles (fixed)": [ev.kpis.vehicle_fixed_cost for ev in evaluations],
        "travel (distance, time)": [ev.kpis.travel_cost for ev in evaluations],
        "penalties": [ev.kpis.penalty_cost for ev in evaluations],
    }
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(labels) + 2), 4.5))
    bottom = [0.0] * len(labels)
    for name, values in parts.items():
        ax.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("total cost")
    ax.set_title("Cost per depot layout")
    ax.legend()
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
