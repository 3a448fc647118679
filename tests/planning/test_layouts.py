"""Depot layout planning (planning): evaluation, depot capacities, screening, search.

Every evaluated layout goes through :func:`check_layout`: each routed model's solution is
verified by the independent checker (tests/checker.py), every mandatory order is served exactly
once, depot loads are recomputed from the routes and compared with the capacities, and the
reported total cost is recomputed from the parts and the opening costs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from engine.errors import InvalidModelError
from engine.model import LatLng, TimeWindow
from engine.roads import RoadContext, RoadSpec, embedded_extract, load_roads
from planning import (
    CandidateDepot,
    Day,
    Layout,
    LayoutEvaluation,
    LayoutOptions,
    LayoutSearch,
    LayoutStudy,
    Order,
    VehicleType,
    evaluate_layout,
    evaluate_layouts,
    search_layouts,
    validate_study,
)
from planning.backends.ortools_mip import FacilityDay, solve_facility_location
from planning.report import layout_geojson
from tests.checker import check_solution
from tests.road_oracle import as_matrix_model

SPEED = 10.0


def _at(x: float, y: float) -> LatLng:
    """x, y in km east/north of a point in Finland (small areas: close to planar)."""
    return LatLng(60.0 + y / 111.2, 25.0 + x / (111.2 * math.cos(math.radians(60.0))))


def _van(**kwargs: object) -> VehicleType:
    defaults: dict[str, object] = {
        "capacities": {"parcels": 10},
        "fixed_cost": 50.0,
        "cost_per_kilometer": 1.0,
    }
    defaults.update(kwargs)
    return VehicleType("van", **defaults)  # type: ignore[arg-type]


def small_study(
    *,
    capacities: tuple[int, ...] = (100, 100, 100, 100),
    opening: tuple[float, ...] = (30.0, 35.0, 25.0, 60.0),
    seed: int = 1,
    orders: int = 8,
    days: int = 1,
    search: LayoutSearch | None = None,
    layouts: tuple[Layout, ...] = (),
) -> LayoutStudy:
    rng = np.random.default_rng(seed)
    spots = [(0.0, 0.0), (8.0, 0.0), (0.0, 8.0), (8.0, 8.0)]
    depots = tuple(
        CandidateDepot(
            f"D{j}", _at(*spots[j]), capacity={"parcels": capacities[j]}, opening_cost=opening[j]
        )
        for j in range(len(capacities))
    )
    day_list = tuple(
        Day(
            f"day{t}",
            tuple(
                Order(
                    f"o{t}-{i}",
                    _at(*rng.uniform(0, 8, size=2)),
                    demands={"parcels": int(rng.integers(1, 5))},
                    service_s=60.0,
                )
                for i in range(orders)
            ),
            start_time=t * 86400.0,
        )
        for t in range(days)
    )
    return LayoutStudy(
        days=day_list, depots=depots, fleet=(_van(),), layouts=layouts, search=search
    )


def options(**kwargs: object) -> LayoutOptions:
    defaults: dict[str, object] = {
        "time_limit_s": 0.6,
        "geodesic_meters_per_second": SPEED,
        "screening_time_limit_s": 5.0,
    }
    defaults.update(kwargs)
    return LayoutOptions(**defaults)  # type: ignore[arg-type]


def check_layout(study: LayoutStudy, ev: LayoutEvaluation) -> None:
    """The independent checks of one evaluated layout (module docstring); whether the depot
    capacities hold is compared with ``ev.capacity_respected`` (callers assert it)."""
    served: dict[tuple[int, int], str] = {}
    loads: dict[tuple[int, str], dict[str, int]] = {}
    routing = 0.0
    opened = set(ev.layout.depots)
    for part in ev.parts:
        check_solution(part.model, part.solution, geodesic_meters_per_second=SPEED)
        routing += part.solution.metrics.total_cost
        day = study.days[part.day]
        for route in part.solution.routes:
            depot = part.vehicle_depot[route.vehicle_index]
            assert depot in opened, f"a vehicle of closed depot {depot} was routed"
            vehicle = part.model.vehicles[route.vehicle_index]
            where = next(d.location for d in study.depots if d.label == depot)
            assert vehicle.start_location == where == vehicle.end_location
            for visit in route.visits:
                i = part.order_index[visit.shipment_index]
                assert (part.day, i) not in served, f"order {i} of day {part.day} served twice"
                served[part.day, i] = depot
                into = loads.setdefault((part.day, depot), {})
                for name, q in day.orders[i].demands.items():
                    into[name] = into.get(name, 0) + q
    for t, day in enumerate(study.days):
        for i, order in enumerate(day.orders):
            if order.penalty_cost is None:
                assert (t, i) in served, f"mandatory order {order.label} not served"
            assert ev.assignment[t][i] == served.get((t, i), "")
    within = True
    for (t, depot), per in loads.items():
        cap = next(d.capacity for d in study.depots if d.label == depot)
        for name, q in per.items():
            within = within and q <= cap.get(name, math.inf)
            assert ev.depot_loads[t][depot][name] == q
    # An overloaded depot is possible only when the open depots cannot hold the demand, and
    # then it is reported.
    assert ev.capacity_respected == within
    opening = sum(d.opening_cost for d in study.depots if d.label in opened) * len(study.days)
    assert ev.kpis.opening_cost == pytest.approx(opening)
    assert ev.kpis.total_cost == pytest.approx(opening + routing)
    assert ev.kpis.orders_served == len(served)
    assert ev.kpis.vehicles_used == sum(r.is_used for p in ev.parts for r in p.solution.routes)


def test_evaluation_is_feasible_and_accounted_for() -> None:
    study = small_study(days=2, layouts=(Layout("a", ("D0",)), Layout("b", ("D0", "D3"))))
    evaluations = evaluate_layouts(study, study.layouts, options())
    assert [ev.layout.label for ev in evaluations] == ["a", "b"]
    for ev in evaluations:
        check_layout(study, ev)
        assert ev.capacity_respected
        assert ev.kpis.days == 2
        assert ev.kpis.orders == 16
        assert ev.kpis.orders_unserved == 0
        assert 0 < ev.kpis.load_utilisation <= 1
        assert ev.kpis.cost_per_order == pytest.approx(ev.kpis.total_cost / 16)
        assert ev.kpis.max_depot_distance_km >= ev.kpis.mean_depot_distance_km > 0
    # Opening D3 costs 60 a day: twice that in the two-day study.
    assert evaluations[1].kpis.opening_cost - evaluations[0].kpis.opening_cost == 120


def test_depot_capacity_is_respected_by_reassignment() -> None:
    # D0 is next to every order but can ship only 6 parcels; D1 must take the rest.
    depots = (
        CandidateDepot("D0", _at(1, 1), capacity={"parcels": 6}),
        CandidateDepot("D1", _at(9, 9), capacity={"parcels": 100}),
    )
    orders = tuple(Order(f"o{i}", _at(1 + 0.2 * i, 1), demands={"parcels": 2}) for i in range(6))
    study = LayoutStudy((Day("d", orders),), depots, fleet=(_van(),))
    ev = evaluate_layout(study, Layout("both", ("D0", "D1")), options())
    check_layout(study, ev)
    assert ev.capacity_respected
    assert ev.strategy == ("assigned",)
    assert ev.depot_loads[0]["D0"]["parcels"] <= 6
    assert ev.depot_loads[0]["D1"]["parcels"] >= 6


def test_short_capacity_is_reported_not_hidden() -> None:
    depots = (CandidateDepot("D0", _at(0, 0), capacity={"parcels": 3}),)
    orders = tuple(Order(f"o{i}", _at(1, i), demands={"parcels": 2}) for i in range(3))
    study = LayoutStudy((Day("d", orders),), depots, fleet=(_van(),))
    ev = evaluate_layout(study, Layout("only", ("D0",)), options())
    check_layout(study, ev)
    assert not ev.capacity_respected
    assert not ev.feasible


def _brute_force(study: LayoutStudy, sizes: range) -> dict[frozenset[str], float]:
    out = {}
    labels = [d.label for d in study.depots]
    for k in sizes:
        for combo in itertools.combinations(labels, k):
            ev = evaluate_layout(study, Layout("+".join(combo), combo), options())
            check_layout(study, ev)
            if ev.feasible:
                out[frozenset(combo)] = ev.kpis.total_cost
    return out


@pytest.mark.parametrize(
    ("search", "sizes"),
    [
        (LayoutSearch("min_cost"), range(1, 5)),
        (LayoutSearch("exactly", 2), range(2, 3)),
    ],
)
@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_search_finds_the_brute_force_optimum(search: LayoutSearch, sizes: range, seed: int):
    # Capacities make one depot insufficient (22 parcels > 18), so layouts differ in kind.
    study = small_study(seed=seed, capacities=(18, 18, 18, 18), orders=10, search=search)
    costs = _brute_force(study, sizes)
    best = min(costs.values())
    result = search_layouts(study, options(candidates=1, route_cost_factors=(0.5,)))
    for ev in result.evaluations:
        check_layout(study, ev)
    assert result.best is not None
    assert result.best.feasible
    assert result.best.kpis.total_cost == pytest.approx(best, rel=1e-6), (
        f"search: {result.best.layout.depots} {result.best.kpis.total_cost}; "
        f"brute force: {sorted(costs.items(), key=lambda kv: kv[1])[:3]}"
    )
    if search.mode == "exactly":
        assert all(len(ev.layout.depots) == 2 for ev in result.evaluations)


def test_search_keeps_must_open_depots() -> None:
    study = small_study(search=LayoutSearch("at_most", 2, must_open=("D3",)))
    result = search_layouts(study, options(candidates=2))
    for ev in result.evaluations:
        check_layout(study, ev)
        assert "D3" in ev.layout.depots
        assert len(ev.layout.depots) <= 2


def _cflp_brute_force(
    opening: list[float], caps: np.ndarray, day: FacilityDay, sizes: range
) -> float:
    best = math.inf
    n_orders, n_depots = day.costs.shape
    for k in sizes:
        for combo in itertools.combinations(range(n_depots), k):
            for assign in itertools.product(combo, repeat=n_orders):
                load = np.zeros_like(caps)
                for i, j in enumerate(assign):
                    load[j] += day.demands[i]
                if np.all(load <= caps):
                    cost = sum(opening[j] for j in combo) + sum(
                        day.costs[i, j] for i, j in enumerate(assign)
                    )
                    best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("solver_name", ["SCIP", "CP_SAT"])
def test_screening_model_is_optimal_on_small_instances(seed: int, solver_name: str) -> None:
    rng = np.random.default_rng(seed)
    n_orders, n_depots = 6, 3
    opening = list(rng.uniform(5, 30, n_depots))
    caps = rng.integers(4, 12, size=(n_depots, 1)).astype(float)
    day = FacilityDay(
        rng.integers(1, 4, size=(n_orders, 1)).astype(float),
        rng.uniform(1, 20, size=(n_orders, n_depots)),
        np.full(n_orders, np.nan),
    )
    expected = _cflp_brute_force(opening, caps, day, range(1, n_depots + 1))
    result = solve_facility_location(opening, caps, [day], solver_name=solver_name)
    if not math.isfinite(expected):
        assert result is None
        return
    assert result is not None
    assert result.optimal
    assert result.objective == pytest.approx(expected, rel=1e-6)
    # The next-best layouts come out distinct and in order.
    seen = [result.open]
    previous = result.objective
    for _ in range(3):
        nxt = solve_facility_location(opening, caps, [day], exclude=seen, solver_name=solver_name)
        if nxt is None:
            break
        assert nxt.open not in seen
        assert nxt.objective >= previous - 1e-6
        seen.append(nxt.open)
        previous = nxt.objective


def test_screening_respects_open_count_and_fixed_layouts() -> None:
    day = FacilityDay(np.ones((4, 1)), np.arange(12, dtype=float).reshape(4, 3), np.full(4, np.nan))
    caps = np.full((3, 1), np.inf)
    two = solve_facility_location([1.0, 1.0, 1.0], caps, [day], min_open=2, max_open=2)
    assert two is not None
    assert len(two.open) == 2
    fixed = solve_facility_location([1.0, 1.0, 1.0], caps, [day], fixed_open=frozenset({2}))
    assert fixed is not None
    assert fixed.open == {2}
    assert all(j == 2 for j in fixed.assignment[0])
    short = solve_facility_location([0.0] * 3, np.full((3, 1), 1.0), [day], max_open=2)
    assert short is None  # 4 parcels, at most 2 depots of 1


def test_validation_names_every_problem() -> None:
    study = LayoutStudy(
        days=(
            Day(
                "d",
                (
                    Order("a", LatLng(95.0, 0.0), demands={"parcels": -1}),
                    Order("b", None, time_windows=(TimeWindow(10.0, 5.0),)),
                ),
            ),
        ),
        depots=(
            CandidateDepot("D0", LatLng(0, 0), capacity={"parcels": -2}, opening_cost=-1),
            CandidateDepot("D0", LatLng(0, 0), open_s=50000, close_s=40000),
        ),
        fleet=(VehicleType("van", count=-1, max_duration_s=0.0),),
        layouts=(Layout("x", ("D0", "D9")),),
        search=LayoutSearch("exactly", 5),
    )
    fields = {v.field for v in validate_study(study)}
    assert fields == {
        "days[0].orders[0].location",
        "days[0].orders[0].demands.parcels",
        "days[0].orders[1].location",
        "days[0].orders[1].time_windows[0]",
        "depots[0].capacity.parcels",
        "depots[0].opening_cost",
        "depots[1].label",
        "depots[1].closes_at",
        "fleet[0].count",
        "fleet[0].max_duration",
        "layouts[0].depots[1]",
        "search.k",
    }
    with pytest.raises(InvalidModelError):
        evaluate_layout(study, Layout("x", ("D0",)))


def test_parallel_evaluation_matches_the_layouts() -> None:
    study = small_study(layouts=(Layout("a", ("D0",)), Layout("b", ("D1",)), Layout("c", ("D2",))))
    seen: list[str] = []
    evaluations = evaluate_layouts(
        study, study.layouts, options(workers=2), on_done=lambda ev: seen.append(ev.layout.label)
    )
    assert [ev.layout.label for ev in evaluations] == ["a", "b", "c"]
    assert sorted(seen) == ["a", "b", "c"]
    for ev in evaluations:
        check_layout(study, ev)


def test_late_orders_and_several_load_types_are_counted() -> None:
    # Two load types; D0 can ship only 5 kg, so the heavy orders go to D1. Order "late" has a
    # soft end no vehicle can make (opening at 6:00, soft end at 1:00): it is served late.
    depots = (
        CandidateDepot("D0", _at(0, 0), capacity={"parcels": 100, "kg": 5}),
        CandidateDepot("D1", _at(3, 0), capacity={"parcels": 100, "kg": 100}),
    )
    late_window = TimeWindow(
        soft_end_time=3600.0, cost_per_hour_after_soft_end_time=1.0, end_time=86000.0
    )
    orders = (
        Order("light", _at(0.5, 0), demands={"parcels": 1, "kg": 2}),
        Order("heavy1", _at(0.5, 0.5), demands={"parcels": 1, "kg": 20}),
        Order("heavy2", _at(1, 0), demands={"parcels": 1, "kg": 20}),
        Order("late", _at(1, 1), demands={"parcels": 1}, time_windows=(late_window,)),
    )
    fleet = (_van(capacities={"parcels": 10, "kg": 50}),)
    study = LayoutStudy(
        (Day("d", orders),),
        tuple(replace(d, open_s=6 * 3600.0) for d in depots),
        fleet=fleet,
    )
    ev = evaluate_layout(study, Layout("both", ("D0", "D1")), options())
    check_layout(study, ev)
    assert ev.capacity_respected
    assert ev.depot_loads[0].get("D0", {}).get("kg", 0) <= 5
    assert ev.assignment[0][1] == ev.assignment[0][2] == "D1"
    assert ev.kpis.orders_late == 1
    assert ev.kpis.travel_cost > 0


@pytest.fixture(scope="module")
def helsinki() -> RoadContext:
    return load_roads(RoadSpec(str(embedded_extract())))


def test_layouts_over_roads_are_checked_against_a_road_oracle(helsinki: RoadContext) -> None:
    # Points on network nodes: the oracle snaps on its own, exactly where nodes are concerned.
    net = helsinki.network

    def node_near(lat: float, lng: float) -> LatLng:
        k = int(np.argmin((net.lat - lat) ** 2 + ((net.lon - lng) * 0.5) ** 2))
        return LatLng(float(net.lat[k]), float(net.lon[k]))

    spots = [(60.1690, 24.9375), (60.1772, 24.9480), (60.1660, 24.9505)]
    depots = tuple(
        CandidateDepot(f"D{j}", node_near(*p), capacity={"parcels": 8}, opening_cost=10.0)
        for j, p in enumerate(spots)
    )
    rng = np.random.default_rng(5)
    orders = tuple(
        Order(
            f"o{i}",
            node_near(60.166 + rng.uniform(0, 0.01), 24.939 + rng.uniform(0, 0.012)),
            demands={"parcels": 2},
        )
        for i in range(7)
    )
    study = LayoutStudy((Day("d", orders),), depots, fleet=(_van(capacities={"parcels": 6}),))
    opts = options(populate_polylines=True)
    ev = evaluate_layout(study, Layout("two", ("D0", "D2")), opts, roads=helsinki)
    for part in ev.parts:
        assert part.solution.matrix_source == "road"
        check_solution(as_matrix_model(part.model, helsinki.network), part.solution)
    assert ev.capacity_respected
    assert ev.kpis.orders_served == 7
    features = layout_geojson(study, ev)["features"]
    routes = [f for f in features if f["properties"]["kind"] == "route"]
    assert routes
    assert all(f["properties"]["road_geometry"] for f in routes)
    # A location far from every road of the network is named, not silently snapped.
    far = replace(
        study,
        days=(
            Day(
                "d",
                (*orders, Order("far", LatLng(60.30, 25.20))),
            ),
        ),
    )
    with pytest.raises(InvalidModelError) as info:
        evaluate_layout(far, Layout("two", ("D0", "D2")), opts, roads=helsinki)
    assert [v.field for v in info.value.violations] == ["days[0].orders[7].location"]


def test_optional_orders_may_be_left_out_when_depot_capacity_is_tight() -> None:
    # D0 (4 parcels) is next to every order, D1 is 50 km away: one of the three mandatory
    # orders must go to D1 (re-assignment). The optional order's penalty is tiny, so it is left
    # out rather than served from D1.
    depots = (
        CandidateDepot("D0", _at(0, 0), capacity={"parcels": 4}),
        CandidateDepot("D1", _at(50, 0), capacity={"parcels": 100}),
    )
    orders = (
        Order("m1", _at(1, 0), demands={"parcels": 2}),
        Order("m2", _at(1, 1), demands={"parcels": 2}),
        Order("m3", _at(0.5, 1), demands={"parcels": 2}),
        Order("opt", _at(0, 1), demands={"parcels": 2}, penalty_cost=0.01),
    )
    study = LayoutStudy((Day("d", orders),), depots, fleet=(_van(fixed_cost=0.0),))
    ev = evaluate_layout(study, Layout("both", ("D0", "D1")), options())
    check_layout(study, ev)
    assert ev.capacity_respected
    assert ev.strategy == ("assigned",)
    assert sorted(ev.assignment[0][:3]) == ["D0", "D0", "D1"]
    assert ev.assignment[0][3] == ""
    assert ev.kpis.orders_unserved == 1
    assert ev.kpis.mandatory_orders_unserved == 0
    assert ev.kpis.penalty_cost == pytest.approx(0.01)
    assert ev.feasible


def test_order_windows_are_validated_as_the_router_sees_them() -> None:
    study = small_study(orders=3)
    day = study.days[0]
    bad = (
        replace(day.orders[0], time_windows=(TimeWindow(soft_end_time=100.0),)),
        replace(day.orders[1], time_windows=(TimeWindow(10.0, 20.0), TimeWindow(15.0, 30.0))),
        day.orders[2],
    )
    study = replace(study, days=(replace(day, orders=bad),))
    assert [(v.field, v.description) for v in validate_study(study)] == [
        (
            "days[0].orders[0].time_windows[0].cost_per_hour_after_soft_end_time",
            "is required when soft_end_time or cost_per_hour_after_soft_end_time is set",
        ),
        (
            "days[0].orders[1].time_windows[1]",
            "time windows must be sorted by time and must not overlap",
        ),
    ]


def test_screening_stops_proposing_when_stopped_or_late() -> None:
    """Each proposal is a MIP solve: a cancelled or timed-out study starts no further one."""
    import time

    from planning.search import _screen

    calls: list[float] = []

    class Screening:
        def best(self, factor: float, exclude: object = ()) -> frozenset[int]:
            calls.append(factor)
            return frozenset({len(calls)})

    options = LayoutOptions(candidates=50)
    assert len(_screen(Screening(), options)) == 50  # type: ignore[arg-type]
    calls.clear()
    found = _screen(Screening(), options, should_stop=lambda: len(calls) >= 5)  # type: ignore[arg-type]
    assert (len(calls), len(found)) == (5, 5)
    calls.clear()
    late = _screen(Screening(), options, deadline=time.monotonic() - 1)  # type: ignore[arg-type]
    assert (len(calls), len(late)) == (1, 1)  # one layout at least, to report
