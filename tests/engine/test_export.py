"""GeoJSON and GeoDataFrame export of solutions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine import SolveOptions, solve
from engine.export import solution_to_geodataframes, solution_to_geojson
from tests.engine.test_roads import helsinki, node_model


def check_geojson(collection: dict) -> None:
    assert collection["type"] == "FeatureCollection"
    json.dumps(collection)  # serialisable as is
    for feature in collection["features"]:
        geometry = feature["geometry"]
        coords = np.asarray(geometry["coordinates"], dtype=float).reshape(-1, 2)
        assert geometry["type"] in {"LineString", "Point"}
        if geometry["type"] == "LineString":
            assert len(coords) >= 2
        assert np.all((coords[:, 0] >= -180) & (coords[:, 0] <= 180))
        assert np.all((coords[:, 1] >= -90) & (coords[:, 1] <= 90))


@pytest.mark.parametrize("polylines", [True, False])
def test_geojson_of_a_road_solution(polylines):
    roads = helsinki()
    model = node_model(roads, 8, n=6)
    options = SolveOptions(time_limit_s=2.0, populate_polylines=polylines)
    solution = solve(model, options, roads=roads)
    collection = solution_to_geojson(model, solution)
    check_geojson(collection)
    assert "OpenStreetMap" in collection["attribution"]
    kinds = [f["properties"]["kind"] for f in collection["features"]]
    used = [r for r in solution.routes if r.visits]
    assert kinds.count("route") == len(used)
    assert kinds.count("delivery") == 6
    assert kinds.count("start") == kinds.count("end") == len(used)
    lines = [f for f in collection["features"] if f["geometry"]["type"] == "LineString"]
    for line in lines:
        n_points = len(line["geometry"]["coordinates"])
        visits = line["properties"]["visits"]
        # Road geometry follows the streets; without it the line joins the stops directly.
        assert n_points > visits + 2 if polylines else n_points == visits + 2
        assert line["properties"]["road_geometry"] is polylines


def test_geodataframes():
    roads = helsinki()
    model = node_model(roads, 9, n=5)
    solution = solve(model, SolveOptions(time_limit_s=0.5), roads=roads)
    routes, stops = solution_to_geodataframes(model, solution)
    assert routes.crs.to_epsg() == 4326
    assert set(routes.geom_type) == {"LineString"}
    assert set(stops.geom_type) == {"Point"}
    assert (stops["kind"] == "delivery").sum() == 5
    assert routes["travel_distance_m"].sum() == pytest.approx(
        solution.metrics.aggregated_route_metrics.travel_distance_m
    )
