"""Issue 15, loads: per-visit ``VisitRequest.load_demands`` (Google's field 12), added to the
shipment's ``load_demands``. Small instances whose optimum is known by hand or by brute force
(tests/bruteforce.py), solved by the engine and verified by the independent checker
(tests/checker.py); backend routing, skip reasons, validation and the checker's own rule.

A visit changes the load by its shipment's plus its own demand (a pickup adds, a delivery
removes); delivery-only goods (of the alternative performed) are on board from the start; a
pair whose pickup adds more than its delivery removes leaves the difference on board.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import InvalidModelError, Shipment, ShipmentModel, SkipReasonCode, Vehicle
from engine.model import LoadInterval
from engine.options import SearchMode
from engine.validation import validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, solve_checked
from tests.checker import check_solution, route_loads, visit_demands
from tests.engine.test_optimality import random_tiny_model
from tests.seeds import seeds

POINTS = {"depot": 0.0, "A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}


def model(shipments: list[Shipment], vehicles: list[Vehicle]) -> ShipmentModel:
    return line_model(POINTS, shipments, vehicles, scale=1000.0)


def served(solution: object) -> set[int]:
    return {v.shipment_index for r in solution.routes for v in r.visits}  # type: ignore[attr-defined]


def kg(amount: int) -> dict[str, int]:
    return {"kg": amount}


def test_a_delivery_alternative_whose_own_demand_overloads_is_not_taken() -> None:
    # 2 kg for everybody plus 4 kg at A (6 > 5 kg) or 1 kg at C (3 kg): the van drives to the
    # farther C; the reported visit and start loads include the visit's own demand.
    shipment = Shipment(
        deliveries=(at("A", load_demands=kg(4)), at("C", load_demands=kg(1))),
        load_demands=kg(2),
    )
    vehicle = depot_vehicle(cost_per_kilometer=1.0, load_limits={"kg": 5})
    for backend in ("ortools", "pyvrp"):
        solution = solve_checked(model([shipment], [vehicle]), backend=backend)
        (visit,) = solution.routes[0].visits
        assert visit.visit_request_index == 1
        assert dict(visit.load_demands) == {"kg": -3}
        assert solution.routes[0].transitions[0].vehicle_loads["kg"] == 3
        assert solution.routes[0].transitions[-1].vehicle_loads["kg"] == 0
    # Without the per-visit demands the nearer A is taken: the demands change the optimum.
    plain = dataclasses.replace(shipment, deliveries=(at("A"), at("C")))
    (visit,) = solve_checked(model([plain], [vehicle])).routes[0].visits
    assert visit.visit_request_index == 0


def test_a_pair_that_picks_up_more_than_it_delivers_leaves_the_rest_on_board() -> None:
    # Pick up 1 + 4 = 5 kg at A, deliver 1 + 2 = 3 kg at B: 2 kg stay on board to the end.
    # The cheap van may come back with at most 1 kg, so the dear one takes the pair.
    pair = Shipment(
        pickups=(at("A", load_demands=kg(4)),),
        deliveries=(at("B", load_demands=kg(2)),),
        load_demands=kg(1),
    )
    cheap = depot_vehicle(cost_per_kilometer=1.0, end_load_intervals={"kg": LoadInterval(0, 1)})
    dear = depot_vehicle(cost_per_kilometer=10.0)
    m = model([pair], [cheap, dear])
    solution = solve_checked(m)
    assert solution.backend == "ortools"
    route = solution.routes[1]
    assert [dict(v.load_demands) for v in route.visits] == [{"kg": 5}, {"kg": -3}]
    assert [t.vehicle_loads["kg"] for t in route.transitions] == [0, 5, 2]
    assert not solution.routes[0].visits
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(m), rel=1e-9)
    # Within the interval (at most 2 kg back), the cheap van takes it.
    loose = dataclasses.replace(
        cheap, end_load_intervals={"kg": LoadInterval(0, 2)}, load_limits={"kg": 5}
    )
    solution = solve_checked(dataclasses.replace(m, vehicles=(loose, dear)))
    assert served(solution) == {0}
    assert solution.routes[0].visits


def test_pyvrp_refuses_a_pair_with_unequal_amounts_but_takes_equal_ones() -> None:
    unequal = Shipment(
        pickups=(at("A", load_demands=kg(2)),), deliveries=(at("B"),), load_demands=kg(1)
    )
    vehicle = depot_vehicle(cost_per_kilometer=1.0, load_limits={"kg": 5})
    with pytest.raises(InvalidModelError) as err:
        solve_checked(model([unequal], [vehicle]), backend="pyvrp")
    assert "shipments[0].deliveries[0].load_demands" in str(err.value)
    equal = dataclasses.replace(unequal, deliveries=(at("B", load_demands=kg(2)),))
    solution = solve_checked(model([equal], [vehicle]), backend="pyvrp")
    assert [t.vehicle_loads["kg"] for t in solution.routes[0].transitions] == [0, 3, 0]


def test_a_visit_demand_above_every_capacity_is_skipped_as_over_capacity() -> None:
    # The shipment's own 2 kg fit the 5-kg van; its pickup's extra 4 kg do not (6 > 5).
    over = Shipment(pickups=(at("A", load_demands=kg(4)),), load_demands=kg(2), penalty_cost=None)
    fits = Shipment(pickups=(at("B", load_demands=kg(3)),), load_demands=kg(2), penalty_cost=None)
    vehicle = depot_vehicle(load_limits={"kg": 5})
    solution = solve_checked(model([over, fits], [vehicle]))
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 0
    (reason,) = skipped.reasons
    assert reason.code is SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    assert reason.example_exceeded_capacity_type == "kg"
    assert served(solution) == {1}


def _with_visit_demands(m: ShipmentModel, seed: int, *, balanced: bool) -> ShipmentModel:
    """Part of each shipment's kg moved onto its visits, plus extra per-visit kg; the pair
    picks up more than it delivers unless ``balanced``."""
    rng = np.random.default_rng(7000 + seed)
    shipments = []
    for s in m.shipments:
        q = int(s.load_demands.get("kg", 0))
        moved = int(rng.integers(0, q + 1))
        extra = int(rng.integers(0, 3))
        pickups = tuple(dataclasses.replace(v, load_demands=kg(moved + extra)) for v in s.pickups)
        delivered = moved + extra if balanced or not s.pickups else moved
        deliveries = tuple(dataclasses.replace(v, load_demands=kg(delivered)) for v in s.deliveries)
        shipments.append(
            dataclasses.replace(
                s,
                pickups=pickups,
                deliveries=deliveries,
                load_demands=kg(q - moved),
                penalty_cost=s.penalty_cost or float(rng.integers(100, 400)),
            )
        )
    return dataclasses.replace(m, shipments=tuple(shipments))


@pytest.mark.parametrize("seed", seeds(6, 3))
def test_unbalanced_visit_demands_match_brute_force(seed: int) -> None:
    m = _with_visit_demands(random_tiny_model(seed), seed, balanced=False)
    optimum = brute_force_optimum(m)
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", seeds(6, 3))
def test_balanced_visit_demands_match_brute_force_with_pyvrp(seed: int) -> None:
    m = _with_visit_demands(random_tiny_model(seed, pyvrp_compatible=True), seed, balanced=True)
    optimum = brute_force_optimum(m)
    solution = solve_checked(m, backend="pyvrp", time_limit_s=1.0)
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_the_visit_demands_change_the_random_optima() -> None:
    # The brute-force comparisons above are not vacuous: the per-visit demands change the
    # optimum of the same model on some seeds.
    changed = 0
    for seed in range(6):
        base = random_tiny_model(seed)
        m = _with_visit_demands(base, seed, balanced=False)
        free = dataclasses.replace(
            m,
            shipments=tuple(
                dataclasses.replace(
                    s,
                    load_demands=b.load_demands,
                    pickups=tuple(dataclasses.replace(v, load_demands={}) for v in s.pickups),
                    deliveries=tuple(dataclasses.replace(v, load_demands={}) for v in s.deliveries),
                )
                for s, b in zip(m.shipments, base.shipments, strict=True)
            ),
        )
        changed += brute_force_optimum(m) != pytest.approx(brute_force_optimum(free))
    assert changed >= 2


def test_the_checker_recomputes_loads_with_visit_demands() -> None:
    drops = [
        Shipment(deliveries=(at("A"),), load_demands=kg(2)),
        Shipment(deliveries=(at("B"),), load_demands=kg(2)),
    ]
    vehicle = depot_vehicle(cost_per_kilometer=1.0, load_limits={"kg": 5})
    m = model(drops, [vehicle])
    solution = solve_checked(m)
    assert served(solution) == {0, 1}
    # The same routes against B's delivery carrying 2 kg more: 6 kg on board (> 5) and a
    # visit whose reported demand misses the visit's own 2 kg.
    heavier = dataclasses.replace(
        m,
        shipments=(
            drops[0],
            dataclasses.replace(drops[1], deliveries=(at("B", load_demands=kg(2)),)),
        ),
    )
    with pytest.raises(AssertionError) as err:
        check_solution(heavier, solution)
    assert "exceeds max_load 5" in str(err.value)
    assert "expected {'kg': -4}" in str(err.value)
    assert visit_demands(heavier, (1, False, 0)) == {"kg": 4}
    assert route_loads(heavier, 0, [(0, False, 0), (1, False, 0)])[0]["kg"] == 6


def test_validation_names_each_bad_field() -> None:
    m = model(
        [
            Shipment(deliveries=(at("A", load_demands={"kg": -1, "": 1}),)),
            Shipment(
                pickups=(at("A", load_demands=kg(1)), at("B")),
                deliveries=(at("C", load_demands=kg(1)), at("D")),
                load_demands=kg(2),
            ),
        ],
        [depot_vehicle()],
    )
    assert {v.field for v in validate_model(m)} == {
        "shipments[0].deliveries[0].load_demands[kg].amount",
        "shipments[0].deliveries[0].load_demands",
        # delivers 3 kg where the pickup at B adds only 2
        "shipments[1].deliveries[0].load_demands[kg].amount",
    }
    ok = model(
        [
            Shipment(
                pickups=(at("A", load_demands=kg(1)), at("B", load_demands=kg(2))),
                deliveries=(at("C", load_demands=kg(1)), at("D")),
                load_demands=kg(2),
            )
        ],
        [depot_vehicle()],
    )
    assert validate_model(ok) == []


def test_visit_demands_count_against_the_start_and_end_maxima() -> None:
    # A drop of 1 + 4 kg on a van that may leave with at most 4 kg, and a pickup of 1 + 4 kg
    # on one that may come back with at most 4: both are skipped, with the load type.
    van = depot_vehicle(
        start_load_intervals={"kg": LoadInterval(0, 4)},
        end_load_intervals={"kg": LoadInterval(0, 4)},
    )
    shipments = [
        Shipment(deliveries=(at("A", load_demands=kg(4)),), load_demands=kg(1), penalty_cost=None),
        Shipment(pickups=(at("B", load_demands=kg(4)),), load_demands=kg(1), penalty_cost=None),
        Shipment(deliveries=(at("C", load_demands=kg(3)),), load_demands=kg(1), penalty_cost=None),
    ]
    solution = solve_checked(model(shipments, [van]))
    skipped = {s.index: s.reasons for s in solution.skipped_shipments}
    assert set(skipped) == {0, 1}
    for reasons in skipped.values():
        assert [(r.code, r.example_exceeded_capacity_type) for r in reasons] == [
            (SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, "kg")
        ]
    assert served(solution) == {2}


def test_visit_demands_count_in_the_solvers_load_bound() -> None:
    # The shipments' own demands are tiny; their visits' demands add up beyond 2^53.
    big = 2**52
    m = model(
        [Shipment(deliveries=(at(t, load_demands=kg(big)),), load_demands=kg(1)) for t in "ABC"],
        [depot_vehicle()],
    )
    (violation,) = validate_model(m)
    assert violation.field == "shipments[0].deliveries[0].load_demands[kg].amount"
    small = model(
        [Shipment(deliveries=(at(t, load_demands=kg(2**50)),), load_demands=kg(1)) for t in "ABC"],
        [depot_vehicle()],
    )
    assert validate_model(small) == []
