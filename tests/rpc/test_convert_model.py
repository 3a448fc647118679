"""rpc.convert.model: the ShipmentModel converted field by field (defaults, every field set,
client matrices)."""

from __future__ import annotations

import numpy as np

from engine.model import (
    DEFAULT_GLOBAL_END_TIME,
    DEFAULT_GLOBAL_START_TIME,
    BreakRequest,
    LatLng,
    TimeWindow,
)
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import T0, convert, dur, latlng, matrix_request, ts


def test_model_defaults_when_unset() -> None:
    request = pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            shipments=[
                pb.Shipment(deliveries=[pb.Shipment.VisitRequest(arrival_location=latlng(1, 2))])
            ],
            vehicles=[pb.Vehicle(load_limits={"kg": pb.Vehicle.LoadLimit()})],
        )
    )
    model, _ = convert(request)
    assert model.global_start_time == DEFAULT_GLOBAL_START_TIME
    assert model.global_end_time == DEFAULT_GLOBAL_END_TIME
    assert model.duration_distance_matrices == ()
    shipment = model.shipments[0]
    assert shipment.penalty_cost is None
    assert shipment.pickups == ()
    assert shipment.load_demands == {}
    visit = shipment.deliveries[0]
    assert visit.time_windows == ()
    assert visit.duration_s == 0.0
    vehicle = model.vehicles[0]
    assert vehicle.start_location is None
    assert vehicle.end_location is None
    assert vehicle.travel_duration_multiple == 1.0
    assert vehicle.load_limits == {}  # unset max_load: unlimited, so absent
    assert vehicle.route_duration_limit_s is None
    assert vehicle.route_distance_limit_m is None
    assert vehicle.break_requests == ()


def full_shipment() -> pb.Shipment:
    """A shipment that sets every field."""
    return pb.Shipment(
        label="s0",
        pickups=[
            pb.Shipment.VisitRequest(
                arrival_location=latlng(38.5, -9.25),
                duration=dur(90, 250_000_000),
                tags=["p", "x"],
                label="pick",
                time_windows=[
                    pb.TimeWindow(
                        start_time=ts(T0 + 100, 1),
                        end_time=ts(T0 + 200),
                        soft_start_time=ts(T0 + 120),
                        soft_end_time=ts(T0 + 180, 750_000_000),
                        cost_per_hour_before_soft_start_time=2.5,
                        cost_per_hour_after_soft_end_time=0.0,
                    )
                ],
            )
        ],
        deliveries=[
            pb.Shipment.VisitRequest(arrival_location=latlng(38.6, -9.1)),
            pb.Shipment.VisitRequest(
                arrival_location=latlng(-90, 180),
                time_windows=[
                    pb.TimeWindow(end_time=ts(T0 + 1000)),
                    pb.TimeWindow(start_time=ts(T0 + 2000)),
                ],
            ),
        ],
        load_demands={
            "kg": pb.Shipment.Load(amount=7),
            "pallets": pb.Shipment.Load(amount=0),
        },
        penalty_cost=0.0,
        allowed_vehicle_indices=[0],
    )


def full_vehicle() -> pb.Vehicle:
    """A vehicle that sets every field."""
    return pb.Vehicle(
        label="v0",
        start_location=latlng(90, -180),
        end_location=latlng(38.7, -9.2),
        start_tags=["depot"],
        end_tags=["depot", "end"],
        start_time_windows=[pb.TimeWindow(start_time=ts(T0 + 10))],
        end_time_windows=[pb.TimeWindow(end_time=ts(T0 + 80000))],
        travel_duration_multiple=1.25,
        load_limits={
            "kg": pb.Vehicle.LoadLimit(max_load=100),
            "pallets": pb.Vehicle.LoadLimit(max_load=0),
        },
        cost_per_hour=20.0,
        cost_per_traveled_hour=5.5,
        cost_per_kilometer=0.4,
        fixed_cost=30.0,
        route_duration_limit=pb.Vehicle.DurationLimit(max_duration=dur(3600, 1)),
        route_distance_limit=pb.DistanceLimit(max_meters=50_000),
        break_rule=pb.BreakRule(
            break_requests=[
                pb.BreakRule.BreakRequest(
                    earliest_start_time=ts(T0 + 3600),
                    latest_start_time=ts(T0 + 7200, 100),
                    min_duration=dur(900, 500_000_000),
                )
            ]
        ),
    )


def full_request() -> pb.OptimizeToursRequest:
    return pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            global_start_time=ts(T0, 500_000_000),
            global_end_time=ts(T0 + 86400),
            shipments=[full_shipment()],
            vehicles=[full_vehicle()],
        )
    )


def test_full_model_global_times() -> None:
    model, _ = convert(full_request())
    assert model.global_start_time == T0 + 0.5
    assert model.global_end_time == T0 + 86400.0


def test_full_shipment_field_by_field() -> None:
    model, _ = convert(full_request())
    (shipment,) = model.shipments
    assert shipment.label == "s0"
    assert shipment.load_demands == {"kg": 7, "pallets": 0}
    assert shipment.penalty_cost == 0.0  # set to zero: optional, not mandatory
    assert not shipment.is_mandatory
    assert shipment.allowed_vehicle_indices == (0,)
    (pickup,) = shipment.pickups
    assert pickup.arrival_location == LatLng(38.5, -9.25)
    assert pickup.duration_s == 90.25
    assert pickup.tags == ("p", "x")
    assert isinstance(pickup.tags, tuple)
    assert pickup.label == "pick"
    (window,) = pickup.time_windows
    assert window == TimeWindow(
        start_time=T0 + 100 + 1e-9,
        end_time=T0 + 200.0,
        soft_start_time=T0 + 120.0,
        soft_end_time=T0 + 180.75,
        cost_per_hour_before_soft_start_time=2.5,
        cost_per_hour_after_soft_end_time=0.0,
    )
    assert len(shipment.deliveries) == 2
    assert shipment.deliveries[1].time_windows == (
        TimeWindow(end_time=T0 + 1000.0),
        TimeWindow(start_time=T0 + 2000.0),
    )


def test_full_vehicle_field_by_field() -> None:
    model, _ = convert(full_request())
    (vehicle,) = model.vehicles
    assert vehicle.label == "v0"
    assert vehicle.start_location == LatLng(90.0, -180.0)
    assert vehicle.end_location == LatLng(38.7, -9.2)
    assert vehicle.start_tags == ("depot",)
    assert vehicle.end_tags == ("depot", "end")
    assert vehicle.start_time_windows == (TimeWindow(start_time=T0 + 10.0),)
    assert vehicle.end_time_windows == (TimeWindow(end_time=T0 + 80000.0),)
    assert vehicle.travel_duration_multiple == 1.25
    assert vehicle.load_limits == {"kg": 100, "pallets": 0}
    assert vehicle.cost_per_hour == 20.0
    assert vehicle.cost_per_traveled_hour == 5.5
    assert vehicle.cost_per_kilometer == 0.4
    assert vehicle.fixed_cost == 30.0
    assert vehicle.route_duration_limit_s == 3600 + 1e-9
    assert vehicle.route_distance_limit_m == 50_000.0
    assert vehicle.break_requests == (
        BreakRequest(
            earliest_start_time=T0 + 3600.0,
            latest_start_time=T0 + 7200 + 100e-9,
            min_duration_s=900.5,
        ),
    )


def test_matrices_become_float64_arrays() -> None:
    model, _ = convert(matrix_request())
    assert model.duration_distance_matrix_src_tags == ("depot", "a")
    assert model.duration_distance_matrix_dst_tags == ("depot", "a")
    (matrix,) = model.duration_distance_matrices
    assert matrix.vehicle_start_tag == ""
    assert matrix.durations_s.dtype == np.float64
    assert matrix.distances_m.dtype == np.float64
    np.testing.assert_array_equal(matrix.durations_s, [[0.0, 100.5], [90.0, 0.0]])
    np.testing.assert_array_equal(matrix.distances_m, [[0.0, 1000.0], [950.0, 0.0]])
    (shipment,) = model.shipments
    assert shipment.deliveries[0].tags == ("a",)
    assert shipment.deliveries[0].arrival_location is None
