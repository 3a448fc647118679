"""Issue 15, response details: ``Visit.detour`` (Google's definition), computed by the engine's
evaluation and verified by the independent checker on every solved test; here by hand.

Points on a line; 1 unit = 1 h of driving.
"""

from __future__ import annotations

import pytest

from engine import Shipment
from engine.model import TimeWindow
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
