"""The pieces of the layout planner on their own: layout neighbourhoods, vehicle counts, the
routing model of a layout-day, how its models are solved, loads and capacities, the screening
cost estimate and the ranking of evaluations."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from engine import ShipmentModel, Solution, SolveOptions
from engine.model import TimeWindow
from engine.roads import RoadContext
from planning import Layout, TravelMatrix, VehicleType, build_day_model, evaluate_layout
from planning.day_model import Router, vehicle_count
from planning.loads import add_load, capacity_matrix, demand_matrix, load_types, over_capacity
from planning.results import rank_key
from planning.search import middle_factor, neighbours
from planning.study import SECONDS_PER_DAY
from planning.travel import DayTravel, estimate_costs
from tests.planning.test_layouts import options, small_study


@pytest.mark.parametrize(
    ("lo", "hi", "must"), [(1, 4, frozenset()), (2, 3, frozenset({0})), (2, 2, frozenset())]
)
def test_neighbours_are_every_layout_one_move_away(lo: int, hi: int, must: frozenset[int]) -> None:
    n = 5
    allowed = [
        frozenset(c)
        for r in range(max(lo, 1), hi + 1)
        for c in itertools.combinations(range(n), r)
        if must <= set(c)
    ]
    for current in allowed:
        expected = {
            other
            for other in allowed
            if len(current ^ other) == 1
            or (len(current ^ other) == 2 and len(other) == len(current))
        }
        assert neighbours(current, n, lo, hi, must) == expected


def test_vehicle_count_cannot_bind() -> None:
    day = small_study(orders=10).days[0]
    orders = range(10)
    total = sum(o.demands["parcels"] for o in day.orders)
    assert vehicle_count(VehicleType("v", count=3, capacities={"parcels": 1}), day, orders) == 3
    van = VehicleType("v", capacities={"parcels": 10})
    assert vehicle_count(van, day, orders) == min(10, 2 * math.ceil(total / 10) + 2)
    assert vehicle_count(replace(van, max_duration_s=3600.0), day, orders) == 10
    assert vehicle_count(VehicleType("v"), day, orders) == 10  # no capacities: one per order
    windowed = replace(day.orders[0], time_windows=(TimeWindow(0.0, 3600.0),))
    day = replace(day, orders=(windowed, *day.orders[1:]))
    assert vehicle_count(van, day, orders) == 10


def test_a_huge_vehicle_count_is_capped_at_one_per_order() -> None:
    """Regression (fuzz): ``count`` 2^31 - 1 (the proto's int32 maximum) built that many
    vehicles; a vehicle beyond one per order can never be used."""
    day = small_study(orders=10).days[0]
    huge = VehicleType("v", count=2**31 - 1, capacities={"parcels": 1})
    assert vehicle_count(huge, day, range(10)) == 10
    assert vehicle_count(huge, day, range(3)) == 3
    assert vehicle_count(huge, day, ()) == 1
    assert vehicle_count(replace(huge, count=0), day, range(10)) == 0
    study = small_study(orders=6)
    fleet = tuple(replace(vt, count=2**31 - 1) for vt in study.fleet)
    model, _ = build_day_model(replace(study, fleet=fleet), study.days[0], [0], range(6))
    assert len(model.vehicles) == 6 * len(fleet)


def test_day_model_has_the_orders_and_the_fleets_of_the_depots() -> None:
    study = small_study(orders=6)
    study = replace(
        study, depots=(replace(study.depots[0], open_s=3600.0, close_s=90000.0), *study.depots[1:])
    )
    day = study.days[0]
    model, vehicle_depot = build_day_model(study, day, [0, 2], [1, 3, 5])
    assert [s.label for s in model.shipments] == [day.orders[i].label for i in (1, 3, 5)]
    assert [s.deliveries[0].arrival_location for s in model.shipments] == [
        day.orders[i].location for i in (1, 3, 5)
    ]
    assert set(vehicle_depot) == {"D0", "D2"}
    assert len(vehicle_depot) == len(model.vehicles)
    for vehicle, depot in zip(model.vehicles, vehicle_depot, strict=True):
        where = study.depots[study.depot_index()[depot]]
        assert vehicle.start_location == vehicle.end_location == where.location
        assert vehicle.label.startswith(f"{depot}/van#")
        assert vehicle.start_time_windows[0].start_time == day.start_time + where.open_s
    assert model.global_start_time == day.start_time
    assert model.global_end_time == day.start_time + 90000.0 > day.start_time + SECONDS_PER_DAY


def test_day_model_on_a_study_matrix_uses_tags() -> None:
    study = small_study(orders=3)
    tags = tuple(f"p{k}" for k in range(7))
    study = replace(
        study,
        depots=tuple(replace(d, location=None, tag=tags[j]) for j, d in enumerate(study.depots)),
        days=tuple(
            replace(
                day,
                orders=tuple(
                    replace(o, location=None, tag=tags[4 + i]) for i, o in enumerate(day.orders)
                ),
            )
            for day in study.days
        ),
        matrix=TravelMatrix(tags, np.ones((7, 7)), np.ones((7, 7))),
    )
    model, _ = build_day_model(study, study.days[0], [1], [0, 2])
    assert [s.deliveries[0].tags for s in model.shipments] == [("p4",), ("p6",)]
    assert all(v.start_tags == v.end_tags == ("p1",) for v in model.vehicles)
    assert model.duration_distance_matrix_src_tags == tags


def test_router_passes_the_layout_options_to_the_solve_function() -> None:
    seen: list[tuple[SolveOptions, RoadContext | None]] = []

    def record(
        model: ShipmentModel, solve_options: SolveOptions, roads: RoadContext | None
    ) -> Solution:
        seen.append((solve_options, roads))
        raise StopIteration

    study = small_study(orders=2)
    model, _ = build_day_model(study, study.days[0], [0], [0, 1])
    router = Router(options(seed=7, populate_polylines=True), None, record)
    for limit, offset in ((0.05, 0), (3.0, 1)):
        with pytest.raises(StopIteration):
            router.solve(model, limit, seed_offset=offset)
    assert [(o.time_limit_s, o.seed) for o, _ in seen] == [(0.2, 7), (3.0, 8)]
    assert not any(o.populate_polylines for o, _ in seen)  # no road network, no polylines


def test_loads_and_capacities() -> None:
    study = small_study(capacities=(5, 100, 100, 100))
    assert load_types(study) == ("parcels",)
    assert capacity_matrix(study, ("parcels", "pallets")).tolist() == [
        [5.0, math.inf],
        [100.0, math.inf],
        [100.0, math.inf],
        [100.0, math.inf],
    ]
    day = study.days[0]
    assert demand_matrix(day, ("parcels",))[:, 0].tolist() == [
        o.demands["parcels"] for o in day.orders
    ]
    loads: dict[str, dict[str, int]] = {}
    add_load(loads, "D0", {"parcels": 3})
    add_load(loads, "D0", {"parcels": 2, "pallets": 1})
    assert loads == {"D0": {"parcels": 5, "pallets": 1}}
    assert not over_capacity(study, loads)  # no pallet capacity: unlimited
    add_load(loads, "D0", {"parcels": 1})
    assert over_capacity(study, loads)


def test_screening_estimate() -> None:
    study = small_study(orders=3)
    van = VehicleType("van", capacities={"parcels": 4}, fixed_cost=40.0, cost_per_kilometer=2.0)
    study = replace(study, fleet=(van,))
    day = study.days[0]
    big = replace(day.orders[2], demands={"parcels": 5})  # more than a van carries
    day = replace(day, orders=(*day.orders[:2], big))
    n = len(study.depots)
    out_m = np.arange(n * 3, dtype=np.float64).reshape(n, 3) * 1000.0
    travel = DayTravel(out_m / 10.0, out_m, out_m.T / 10.0, out_m.T.copy())
    costs = estimate_costs(study, day, travel, 0.5)
    for i in range(2):
        share = day.orders[i].demands["parcels"] / 4
        for j in range(n):
            star = 2.0 * (out_m[j, i] + out_m[j, i]) / 1000.0
            assert costs[i, j] == pytest.approx(0.5 * star + 40.0 * share)
    assert np.all(np.isinf(costs[2]))


def test_evaluations_rank_feasible_first_then_cheapest() -> None:
    study = small_study(capacities=(10, 100, 100, 100))
    opts = options()
    tight = evaluate_layout(study, Layout("D0", ("D0",)), opts)
    roomy = evaluate_layout(study, Layout("D1", ("D1",)), opts)
    cheap_but_over = replace(
        tight, capacity_respected=False, kpis=replace(tight.kpis, total_cost=0.0)
    )
    assert sorted([cheap_but_over, roomy], key=rank_key)[0] is roomy
    dearer = replace(roomy, kpis=replace(roomy.kpis, total_cost=roomy.kpis.total_cost + 1))
    assert sorted([dearer, roomy], key=rank_key)[0] is roomy
    assert middle_factor(opts) == 0.5
    assert middle_factor(replace(opts, route_cost_factors=(2.0,))) == 2.0
