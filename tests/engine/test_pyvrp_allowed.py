"""Allowed vehicles in the PyVRP backend: a vehicle type and a profile per class of vehicles
that may not serve the same shipments (engine.backends.pyvrp.data)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import pyvrp

from engine import Shipment, ShipmentModel, solve
from engine.backends import choose_backend
from engine.backends import features as features_module
from engine.backends.features import FEATURES, used_features
from engine.backends.pyvrp.data import build_data, route_plans
from engine.errors import InvalidModelError, SolverError
from engine.model import InjectedRoute, InjectedVisit
from engine.options import SearchMode, SolveOptions
from engine.solution import SkipReasonCode
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, solve_checked
from tests.engine.test_backends import city_model, problem_of
from tests.seeds import seeds


def restricted(model: ShipmentModel, allowed: dict[int, tuple[int, ...]]) -> ShipmentModel:
    """``model`` with shipment s restricted to ``allowed[s]``."""
    return dataclasses.replace(
        model,
        shipments=tuple(
            dataclasses.replace(sh, allowed_vehicle_indices=allowed.get(s, ()))
            for s, sh in enumerate(model.shipments)
        ),
    )


def mixed_model() -> ShipmentModel:
    """30 deliveries and 3 pickup-and-delivery pairs on 4 vehicles; every third delivery and
    two pairs restricted, one delivery with two alternatives restricted too."""
    model = city_model(30, seed=8, pairs=3)
    allowed = {s: ((0,) if s % 2 else (1, 2)) for s in range(0, 30, 3)}
    allowed |= {30: (3,), 31: (0, 1)}
    model = restricted(model, allowed)
    shipments = list(model.shipments)
    one = shipments[4].deliveries[0]
    other = shipments[5].deliveries[0]
    shipments[4] = dataclasses.replace(
        shipments[4], deliveries=(one, dataclasses.replace(other)), allowed_vehicle_indices=(2,)
    )
    return dataclasses.replace(model, shipments=tuple(shipments))


def assert_allowed(model: ShipmentModel, solution) -> None:  # type: ignore[no-untyped-def]
    for route in solution.routes:
        for visit in route.visits:
            allowed = model.shipments[visit.shipment_index].allowed_vehicle_indices
            assert not allowed or route.vehicle_index in allowed


def test_pyvrp_serves_allowed_vehicles_with_pairs_and_alternatives():
    model = mixed_model()
    solution = solve_checked(model, time_limit_s=2.0, backend="pyvrp")
    assert solution.backend == "pyvrp"
    assert solution.metrics.skipped_mandatory_shipment_count == 0
    assert_allowed(model, solution)
    served = {v.shipment_index for r in solution.routes for v in r.visits}
    assert {4, 30, 31} <= served


def test_auto_picks_pyvrp_for_allowed_vehicles():
    model = mixed_model()
    choice = choose_backend(problem_of(model), "auto")
    assert choice.name == "pyvrp"
    assert "allowed_vehicles" in used_features(problem_of(model))
    solution = solve_checked(model, time_limit_s=1.0)
    assert solution.backend == "pyvrp"


def test_each_class_gets_a_type_and_a_profile_that_forbids_its_visits():
    model = mixed_model()
    problem = problem_of(model)
    built = build_data(problem)
    data = built.data
    # classes: unrestricted none; vehicle 0, 1, 2, 3 each leave out different shipments
    assert len(built.types) == 4
    assert data.num_profiles == 1 + 4
    base_dur, base_dist = data.duration_matrix(0), data.distance_matrix(0)
    stop_of_location = {data.client(c).location: stop for c, stop in enumerate(built.client_stop)}
    for shipment, (pickup, delivery) in zip(data.shipments(), built.shipment_stops, strict=True):
        stop_of_location[shipment.pickup.location] = pickup
        stop_of_location[shipment.delivery.location] = delivery
    off_diagonal = ~np.eye(data.num_locations, dtype=bool)
    for t, vehicle_type in enumerate(built.types):
        profile = data.vehicle_type(t).profile
        assert profile >= 1  # the base profile 0 stays as it is, for the others
        forbidden = np.array(
            [
                stop_of_location.get(loc) in vehicle_type.forbidden_stops
                for loc in range(data.num_locations)
            ]
        )
        assert forbidden.any()
        durations, distances = data.duration_matrix(profile), data.distance_matrix(profile)
        into = forbidden[None, :] & off_diagonal
        out_of = forbidden[:, None] & off_diagonal
        assert (durations[into | out_of] > problem.horizon).all()
        assert (distances[into | out_of] > base_dist.max() * 10).all()
        kept = ~forbidden[:, None] & ~forbidden[None, :]
        assert (durations[kept] == base_dur[kept]).all()
        assert (distances[kept] == base_dist[kept]).all()
    # a shipment restricted to vehicle 3 is forbidden to the others, reachable for 3
    (pickup, delivery) = built.shipment_stops[0]
    assert built.types[3].vehicles == [3]
    assert pickup not in built.types[3].forbidden_stops
    assert all(pickup in built.types[t].forbidden_stops for t in range(3))
    assert (base_dur <= problem.unreachable_s).all()


def test_a_route_through_a_forbidden_visit_is_infeasible_and_rejected():
    model = mixed_model()
    built = build_data(problem_of(model))
    data = built.data
    client = next(
        c for c, stop in enumerate(built.client_stop) if stop in built.types[0].forbidden_stops
    )
    route = pyvrp.Route(data, [client], 0)
    assert route.time_warp() > 0
    solution = pyvrp.Solution(data, [route])
    assert not solution.is_feasible()
    with pytest.raises(SolverError, match="may not visit"):
        route_plans(built, solution, len(model.vehicles))
    # a pickup-and-delivery pair restricted to vehicle 3, on vehicle type 0
    pair = [
        pyvrp.Activity(pyvrp.ActivityType.PICKUP, 0),
        pyvrp.Activity(pyvrp.ActivityType.DELIVERY, 0),
    ]
    shipment_route = pyvrp.Route(data, pair, 0)
    assert shipment_route.time_warp() > 0
    allowed_route = pyvrp.Route(data, pair, 3)
    assert allowed_route.time_warp() == 0


def tiny_model(allowed: bool) -> ShipmentModel:
    """Two depots far apart; with ``allowed``, the delivery next to depot 1 may only use the
    vehicle of depot 0, a pair and a delivery nearer depot 0 only the vehicle of depot 1."""
    pts = {"d0": 0, "d1": 100, "a": 10, "b": 90, "c": 95, "p": 20, "q": 80, "y": 40}
    only = (lambda v: (v,)) if allowed else (lambda v: ())
    shipments = [
        Shipment(deliveries=(at("a"),)),
        Shipment(deliveries=(at("b"),)),
        Shipment(deliveries=(at("c"),), allowed_vehicle_indices=only(0)),
        Shipment(pickups=(at("p"),), deliveries=(at("q"),), allowed_vehicle_indices=only(1)),
        Shipment(deliveries=(at("y"),), allowed_vehicle_indices=only(1)),
    ]
    vehicles = [
        depot_vehicle("d0", cost_per_kilometer=1.0),
        depot_vehicle("d1", cost_per_kilometer=1.0, fixed_cost=5.0),
    ]
    return line_model(pts, shipments, vehicles, scale=1000.0)


def test_pyvrp_finds_the_brute_force_optimum_that_allowed_vehicles_change():
    free, bound = brute_force_optimum(tiny_model(False)), brute_force_optimum(tiny_model(True))
    assert bound > free + 1.0  # the restriction changes the optimum
    for allowed, optimum in ((False, free), (True, bound)):
        solution = solve_checked(
            tiny_model(allowed),
            time_limit_s=1.0,
            search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
            backend="pyvrp",
            iteration_limit=2000,
        )
        assert solution.backend == "pyvrp"
        assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_allowed_only_on_a_vehicle_too_small_is_skipped_with_the_reasons():
    pts = {"d0": 0, "d1": 1000, "a": 10, "b": 20}
    shipments = [
        Shipment(deliveries=(at("a"),), allowed_vehicle_indices=(1,), load_demands={"kg": 5}),
        Shipment(deliveries=(at("b"),), allowed_vehicle_indices=(0,), load_demands={"kg": 1}),
    ]
    vehicles = [depot_vehicle("d0"), depot_vehicle("d1", load_limits={"kg": 1})]
    solution = solve_checked(line_model(pts, shipments, vehicles), backend="pyvrp")
    assert solution.backend == "pyvrp"
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 0
    assert {r.code for r in skipped.reasons} == {
        SkipReasonCode.VEHICLE_NOT_ALLOWED,
        SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY,
    }
    assert [v.shipment_index for v in solution.routes[0].visits] == [1]


def test_injected_routes_start_pyvrp_with_allowed_vehicles():
    model = restricted(
        city_model(30, seed=8), {s: ((0,) if s % 2 else (1, 2)) for s in range(0, 30, 3)}
    )
    first = InjectedRoute(0, tuple(InjectedVisit(s) for s in (3, 9, 15)))
    second = InjectedRoute(1, tuple(InjectedVisit(s) for s in (0, 6, 1)))
    model = dataclasses.replace(model, injected_first_solution_routes=(first, second))
    solution = solve_checked(model, time_limit_s=1.0, backend="pyvrp")
    assert solution.backend == "pyvrp"
    assert_allowed(model, solution)


def test_split_search_keeps_allowed_vehicles(caplog):
    model = restricted(
        city_model(60, seed=4, n_vehicles=6), dict.fromkeys(range(0, 60, 4), (0, 1, 2))
    )
    model = dataclasses.replace(
        model,
        shipments=tuple(dataclasses.replace(s, penalty_cost=None) for s in model.shipments),
    )
    with caplog.at_level(logging.DEBUG, logger="engine.backends.pyvrp.split"):
        solution = solve_checked(
            model,
            time_limit_s=3.0,
            search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
            backend="pyvrp",
            solver_processes=2,
            decompose=True,
        )
    assert solution.backend == "pyvrp"
    assert "pyvrp split over 2 processes" in caplog.text
    assert_allowed(model, solution)


def test_too_many_classes_go_to_ortools(monkeypatch):
    model = mixed_model()
    monkeypatch.setattr(features_module, "MAX_ALLOWED_PROFILES", 3)
    problem = problem_of(model)
    assert "allowed_vehicle_classes" in used_features(problem)
    choice = choose_backend(problem, "auto")
    assert choice.name == "ortools"
    assert FEATURES["allowed_vehicle_classes"] in choice.reason
    with pytest.raises(InvalidModelError):
        solve(model, SolveOptions(time_limit_s=1.0, backend="pyvrp"))
    monkeypatch.setattr(features_module, "MAX_ALLOWED_PROFILES", 4)
    assert "allowed_vehicle_classes" not in used_features(problem)
    cells = 4 * problem.stops.size**2  # four classes of full matrices
    monkeypatch.setattr(features_module, "MAX_ALLOWED_PROFILE_CELLS", cells)
    assert "allowed_vehicle_classes" not in used_features(problem)
    monkeypatch.setattr(features_module, "MAX_ALLOWED_PROFILE_CELLS", cells - 1)
    assert "allowed_vehicle_classes" in used_features(problem)


@pytest.mark.parametrize("seed", seeds(4, 2))
def test_random_restrictions_are_honoured(seed):
    rng = np.random.default_rng(seed)
    model = city_model(24, seed=seed, pairs=4)
    allowed = {
        int(s): tuple(
            sorted(int(v) for v in rng.choice(4, size=int(rng.integers(1, 4)), replace=False))
        )
        for s in rng.choice(len(model.shipments), size=10, replace=False)
    }
    model = restricted(model, allowed)
    solution = solve_checked(model, time_limit_s=1.0, backend="pyvrp", seed=seed)
    assert solution.backend == "pyvrp"
    assert_allowed(model, solution)
