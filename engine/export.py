"""Export a solution for maps and analysis: GeoJSON and GeoDataFrames.

Routes become LineStrings (their road geometry when the solve drew it, otherwise straight lines
between consecutive stop locations) and stops become Points, each with properties (vehicle,
shipment, times, loads, costs). Results over OpenStreetMap roads carry the ODbL credit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.model import LatLng, ShipmentModel
from engine.roads import OSM_CREDIT
from engine.solution import Route, Solution
from geodata.polyline import decode_polyline

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["solution_to_geodataframes", "solution_to_geojson"]


def _lnglat(p: LatLng) -> list[float]:
    return [p.longitude, p.latitude]


def _stops(model: ShipmentModel, route: Route) -> list[tuple[str, LatLng | None, dict[str, Any]]]:
    """(kind, location, properties) of the route's stops: start, visits, end."""
    vehicle = model.vehicles[route.vehicle_index]
    out: list[tuple[str, LatLng | None, dict[str, Any]]] = [
        ("start", vehicle.start_location, {"time": route.vehicle_start_time})
    ]
    for k, visit in enumerate(route.visits):
        shipment = model.shipments[visit.shipment_index]
        alternatives = shipment.pickups if visit.is_pickup else shipment.deliveries
        request = alternatives[visit.visit_request_index]
        props = {
            "sequence": k + 1,
            "shipment_index": visit.shipment_index,
            "shipment_label": visit.shipment_label,
            "visit_label": visit.visit_label,
            "time": visit.start_time,
            "duration_s": request.duration_s,
            "load_demands": dict(visit.load_demands),
        }
        out.append(("pickup" if visit.is_pickup else "delivery", request.arrival_location, props))
    out.append(("end", vehicle.end_location, {"time": route.vehicle_end_time}))
    return out


def _route_line(model: ShipmentModel, route: Route) -> list[list[float]]:
    if route.polyline:
        return [[lng, lat] for lat, lng in decode_polyline(route.polyline)]
    return [_lnglat(loc) for _, loc, _ in _stops(model, route) if loc is not None]


def solution_to_geojson(model: ShipmentModel, solution: Solution) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (RFC 7946, longitude first) of the used routes and their
    stops. Stops without a location (client matrices with tags only) are left out."""
    features: list[dict[str, Any]] = []
    for route in solution.routes:
        if not route.is_used:
            continue
        base = {"vehicle_index": route.vehicle_index, "vehicle_label": route.vehicle_label}
        line = _route_line(model, route)
        if len(line) >= 2:
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "LineString", "coordinates": line},
                    "properties": {
                        **base,
                        "kind": "route",
                        "start_time": route.vehicle_start_time,
                        "end_time": route.vehicle_end_time,
                        "visits": len(route.visits),
                        "travel_distance_m": route.metrics.travel_distance_m,
                        "travel_duration_s": route.metrics.travel_duration_s,
                        "total_cost": route.route_total_cost,
                        "road_geometry": bool(route.polyline),
                    },
                }
            )
        for kind, loc, props in _stops(model, route):
            if loc is None:
                continue
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": _lnglat(loc)},
                    "properties": {**base, "kind": kind, **props},
                }
            )
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if solution.matrix_source == "road":
        collection["attribution"] = f"Road data {OSM_CREDIT} (ODbL)"
    return collection


def solution_to_geodataframes(
    model: ShipmentModel, solution: Solution
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """(routes, stops) as GeoDataFrames in EPSG:4326, with the GeoJSON properties as columns."""
    import geopandas as gpd

    features = solution_to_geojson(model, solution)["features"]

    def frame(rows: list[dict[str, Any]]) -> gpd.GeoDataFrame:
        if not rows:
            return gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")
        return gpd.GeoDataFrame.from_features(rows, crs="EPSG:4326")

    return (
        frame([f for f in features if f["properties"]["kind"] == "route"]),
        frame([f for f in features if f["properties"]["kind"] != "route"]),
    )
