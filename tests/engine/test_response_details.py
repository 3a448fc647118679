"""Issue 15, response details: ``Visit.detour`` and ``ShipmentRoute.vehicle_fullness`` (Google's
definitions), computed by the engine's evaluation and verified by the independent checker on
every solved test; here by hand.

Points on a line; 1 unit = 1 h of driving.
"""

from __future__ import annotations

import pytest

from engine import Shipment
from engine.model import DurationLimit, TimeWindow
from tests.builders import at, depot_vehicle, line_model, route_order, solve_checked

H = 3600.0
POINTS = {"depot": 0.0, "A": 1.0, "B": 2.0, "C": 3.0}


def test_detours_by_hand() -> None:
    # A parcel picked up at A (30 min) and dropped at C, a drop at B that opens at 3 h, and
    # the visit-type extra of 1 h at B (stairs). The only order: A, B, C.
    #   A: 1 h after the start, direct travel 1 h → detour 0.
    #   B: waits until 3 h; from the start, 2 h of direct travel → detour 1 h.
    #   C (delivery of A's parcel): B ends 3 h + 1 h, C at 5 h; from A's end (1 h 30) with 2 h
    #   of direct travel → detour 5 - 1.5 - 2 = 1 h 30.
    shipments = [
        Shipment(pickups=(at("A", duration_s=0.5 * H),), deliveries=(at("C"),)),
        Shipment(
            deliveries=(
                at(
                    "B",
                    time_windows=(TimeWindow(start_time=3 * H, end_time=3 * H),),
                    visit_types=("stairs",),
                ),
            )
        ),
    ]
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0,
        start_time_windows=(TimeWindow(start_time=0.0, end_time=0.0),),
        extra_visit_duration_for_visit_type={"stairs": H},
    )
    m = line_model(POINTS, shipments, [vehicle], scale=H)
    solution = solve_checked(m, backend="ortools")
    assert route_order(solution, 0) == [(0, True), (1, False), (0, False)]
    detours = [v.detour_s for v in solution.routes[0].visits]
    assert detours == pytest.approx([0.0, 1 * H, 1.5 * H])


def test_vehicle_fullness_by_hand() -> None:
    # v0 serves A (out and back: 2 h and 7200 m at this scale) within limits of 4 h of route,
    # 8 h of travel, 14400 m and 10 kg (it carries 4 kg); v1 serves C (6 h) with no limits but
    # a 0 load limit on a type nobody carries (ratio 1, Google's rule for a limit of 0). Both
    # start at 0 (fixed start windows): the solution spans 6 h.
    fixed = (TimeWindow(start_time=0.0, end_time=0.0),)
    v0 = depot_vehicle(
        cost_per_kilometer=1.0,
        start_time_windows=fixed,
        route_duration_limit_s=4 * H,
        route_distance_limit_m=4 * H,  # meters
        travel_duration_limit=DurationLimit(max_duration_s=8 * H),
        load_limits={"kg": 10},
    )
    v1 = depot_vehicle(cost_per_kilometer=1.0, start_time_windows=fixed, load_limits={"l": 0})
    shipments = [
        Shipment(deliveries=(at("A"),), load_demands={"kg": 4}, allowed_vehicle_indices=(0,)),
        Shipment(deliveries=(at("C"),), allowed_vehicle_indices=(1,)),
    ]
    solution = solve_checked(line_model(POINTS, shipments, [v0, v1], scale=H))
    f0, f1 = (r.vehicle_fullness for r in solution.routes)
    assert f0.distance == pytest.approx(0.5)
    assert f0.travel_duration == pytest.approx(0.25)
    assert f0.active_duration == pytest.approx(0.5)
    assert f0.max_load == pytest.approx(0.4)
    assert f0.active_span == pytest.approx(2 / 6)
    assert f0.max_fullness == pytest.approx(0.5)
    assert (f1.distance, f1.travel_duration, f1.active_duration) == (None, None, None)
    assert f1.max_load == 1.0
    assert f1.active_span == pytest.approx(1.0)
    assert f1.max_fullness == 1.0


def test_an_unused_vehicle_has_no_fullness() -> None:
    vehicle = depot_vehicle(route_distance_limit_m=10.0)
    solution = solve_checked(line_model(POINTS, [], [vehicle], scale=H))
    assert solution.routes[0].vehicle_fullness.max_fullness is None
