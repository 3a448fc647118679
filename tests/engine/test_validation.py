"""Engine validation: every problem is reported with its field path in API names."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from engine import (
    BreakRequest,
    DurationDistanceMatrix,
    InvalidModelError,
    LatLng,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
    solve,
    validate_model,
)

HERE = LatLng(38.7, -9.1)


def base_model() -> ShipmentModel:
    return ShipmentModel(
        shipments=(Shipment(deliveries=(VisitRequest(arrival_location=HERE),)),),
        vehicles=(Vehicle(start_location=HERE),),
        global_start_time=0.0,
        global_end_time=86400.0,
    )


def with_visit(**kwargs) -> ShipmentModel:
    m = base_model()
    visit = replace(m.shipments[0].deliveries[0], **kwargs)
    return replace(m, shipments=(replace(m.shipments[0], deliveries=(visit,)),))


def with_shipment(**kwargs) -> ShipmentModel:
    m = base_model()
    return replace(m, shipments=(replace(m.shipments[0], **kwargs),))


def with_vehicle(**kwargs) -> ShipmentModel:
    m = base_model()
    return replace(m, vehicles=(replace(m.vehicles[0], **kwargs),))


def test_valid_model_has_no_violations():
    assert validate_model(base_model()) == []


BAD = [
    (replace(base_model(), global_end_time=0.0), "global_end_time"),
    (with_shipment(deliveries=()), "shipments[0]"),
    (with_shipment(penalty_cost=-1.0), "shipments[0].penalty_cost"),
    (with_shipment(penalty_cost=math.nan), "shipments[0].penalty_cost"),
    (with_shipment(load_demands={"kg": -1}), "shipments[0].load_demands[kg].amount"),
    (with_shipment(allowed_vehicle_indices=(3,)), "shipments[0].allowed_vehicle_indices[0]"),
    (with_shipment(allowed_vehicle_indices=(0, 0)), "shipments[0].allowed_vehicle_indices[1]"),
    (with_visit(arrival_location=None), "shipments[0].deliveries[0].arrival_location"),
    (
        with_visit(arrival_location=LatLng(91, 0)),
        "shipments[0].deliveries[0].arrival_location.latitude",
    ),
    (
        with_visit(arrival_location=LatLng(0, 181)),
        "shipments[0].deliveries[0].arrival_location.longitude",
    ),
    (with_visit(duration_s=-1.0), "shipments[0].deliveries[0].duration"),
    (with_visit(time_windows=(TimeWindow(10, 5),)), "shipments[0].deliveries[0].time_windows[0]"),
    (
        with_visit(time_windows=(TimeWindow(0, 10**7),)),
        "shipments[0].deliveries[0].time_windows[0].end_time",
    ),
    (
        with_visit(time_windows=(TimeWindow(50, 60), TimeWindow(0, 10))),
        "shipments[0].deliveries[0].time_windows[1]",
    ),
    (
        with_visit(time_windows=(TimeWindow(soft_end_time=5.0),)),
        "shipments[0].deliveries[0].time_windows[0].cost_per_hour_after_soft_end_time",
    ),
    (
        with_visit(
            time_windows=(
                TimeWindow(0, 10, soft_start_time=5.0, cost_per_hour_before_soft_start_time=1.0),
                TimeWindow(20, 30),
            )
        ),
        "shipments[0].deliveries[0].time_windows[0].soft_start_time",
    ),
    (with_vehicle(travel_duration_multiple=0.0), "vehicles[0].travel_duration_multiple"),
    (with_vehicle(cost_per_kilometer=-1.0), "vehicles[0].cost_per_kilometer"),
    (with_vehicle(fixed_cost=math.inf), "vehicles[0].fixed_cost"),
    (with_vehicle(load_limits={"kg": -1}), "vehicles[0].load_limits[kg].max_load"),
    (with_vehicle(route_duration_limit_s=-1.0), "vehicles[0].route_duration_limit.max_duration"),
    (with_vehicle(route_distance_limit_m=-1.0), "vehicles[0].route_distance_limit.max_meters"),
    (with_vehicle(start_time_windows=(TimeWindow(5, 1),)), "vehicles[0].start_time_windows[0]"),
    (
        with_vehicle(break_requests=(BreakRequest(100, 50, 10),)),
        "vehicles[0].break_rule.break_requests[0].latest_start_time",
    ),
    (
        with_vehicle(break_requests=(BreakRequest(100, 150, 0),)),
        "vehicles[0].break_rule.break_requests[0].min_duration",
    ),
    (
        with_vehicle(break_requests=(BreakRequest(10.2, 10.7, 5),)),
        "vehicles[0].break_rule.break_requests[0]",
    ),
]


@pytest.mark.parametrize(("model", "path"), BAD, ids=[p for _, p in BAD])
def test_bad_field_is_reported_with_its_path(model, path):
    paths = [v.field for v in validate_model(model)]
    assert path in paths, paths


def test_every_violation_is_reported_at_once():
    m = with_vehicle(cost_per_hour=-1.0, travel_duration_multiple=-2.0)
    m = replace(m, shipments=(replace(m.shipments[0], penalty_cost=-5.0),))
    with pytest.raises(InvalidModelError) as info:
        solve(m)
    fields = {v.field for v in info.value.violations}
    assert fields == {
        "vehicles[0].cost_per_hour",
        "vehicles[0].travel_duration_multiple",
        "shipments[0].penalty_cost",
    }
    assert isinstance(info.value, ValueError)


def matrix_model(**kwargs) -> ShipmentModel:
    matrix = DurationDistanceMatrix([[0, 1], [1, 0]], [[0, 1], [1, 0]])
    fields = {
        "shipments": (Shipment(deliveries=(VisitRequest(tags=("a",)),)),),
        "vehicles": (Vehicle(start_tags=("depot",)),),
        "duration_distance_matrices": (matrix,),
        "duration_distance_matrix_src_tags": ("depot", "a"),
        "duration_distance_matrix_dst_tags": ("depot", "a"),
    }
    fields.update(kwargs)
    return ShipmentModel(**fields)


def test_matrix_model_is_valid():
    assert validate_model(matrix_model()) == []


MATRIX_BAD = [
    (
        matrix_model(duration_distance_matrices=(DurationDistanceMatrix([[0, 1]], [[0, 1]]),)),
        "duration_distance_matrices[0].rows",
    ),
    (
        matrix_model(
            duration_distance_matrices=(
                DurationDistanceMatrix([[0, -1], [1, 0]], [[0, 1], [1, 0]]),
            )
        ),
        "duration_distance_matrices[0].rows[0].durations[1]",
    ),
    (
        matrix_model(duration_distance_matrix_src_tags=("depot", "depot")),
        "duration_distance_matrix_src_tags[1]",
    ),
    (
        matrix_model(shipments=(Shipment(deliveries=(VisitRequest(tags=("nowhere",)),)),)),
        "shipments[0].deliveries[0].tags",
    ),
    (matrix_model(vehicles=(Vehicle(start_location=HERE),)), "vehicles[0].start_tags"),
    (matrix_model(vehicles=(Vehicle(start_tags=("a", "depot")),)), "vehicles[0].start_tags"),
]


@pytest.mark.parametrize(("model", "path"), MATRIX_BAD, ids=[p for _, p in MATRIX_BAD])
def test_bad_matrix_field_is_reported(model, path):
    paths = [v.field for v in validate_model(model)]
    assert path in paths, paths
