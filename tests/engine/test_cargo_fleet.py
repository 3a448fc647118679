"""Issue 15, cargo rules and fleet/costs: each feature on a tiny line instance whose optimum is
known by brute force (tests/bruteforce.py) or by hand, solved by the engine and verified by the
independent checker; backend routing and validation of the new fields.

Points on a line, 1 unit = 1 km and 1000 s (``scale``); vehicles cost 1 per km unless said.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import InvalidModelError, Shipment, ShipmentModel, SkipReasonCode, Vehicle
from engine.model import (
    IncompatibilityMode,
    PrecedenceRule,
    RequirementMode,
    ShipmentTypeIncompatibility,
    ShipmentTypeRequirement,
    SoftLoadLimit,
)
from engine.options import SearchMode
from engine.validation import validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, route_order, solve_checked
from tests.engine.test_optimality import random_tiny_model

PRECHECK_CODES = {
    SkipReasonCode.NO_VEHICLE,
    SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY,
    SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DISTANCE_LIMIT,
    SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DURATION_LIMIT,
    SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS,
    SkipReasonCode.VEHICLE_NOT_ALLOWED,
    SkipReasonCode.VEHICLE_IGNORED,
    SkipReasonCode.SHIPMENT_IGNORED,
    SkipReasonCode.UNREACHABLE_LOCATION,
}
POINTS = {"depot": 0.0, "A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0, "far": 10.0}
KM = 1000.0


def model(
    shipments: list[Shipment], vehicles: list[Vehicle] | None = None, **kw: object
) -> ShipmentModel:
    if vehicles is None:
        vehicles = [depot_vehicle(cost_per_kilometer=1.0)]
    return line_model(POINTS, shipments, vehicles, scale=KM, **kw)  # type: ignore[arg-type]


def solved_cost(m: ShipmentModel, **options: object) -> float:
    solution = solve_checked(m, backend="ortools", **options)  # type: ignore[arg-type]
    return solution.metrics.total_cost


def incompatible(mode: IncompatibilityMode, *types: str) -> tuple[ShipmentTypeIncompatibility]:
    return (ShipmentTypeIncompatibility(types=types, incompatibility_mode=mode),)


def requires(
    mode: RequirementMode, required: str, dependent: str
) -> tuple[ShipmentTypeRequirement]:
    return (
        ShipmentTypeRequirement(
            required_shipment_type_alternatives=(required,),
            dependent_shipment_types=(dependent,),
            requirement_mode=mode,
        ),
    )


# -- cargo rules -------------------------------------------------------------------------------


def test_hard_incompatibility_puts_the_types_on_different_vehicles() -> None:
    shipments = [
        Shipment(deliveries=(at("A"),), shipment_type="food"),
        Shipment(deliveries=(at("B"),), shipment_type="chem"),
    ]
    two = [depot_vehicle(cost_per_kilometer=1.0), depot_vehicle(cost_per_kilometer=1.0)]
    free = model(shipments, two)
    assert brute_force_optimum(free) == pytest.approx(4.0)  # one vehicle: depot-A-B-depot
    rule = incompatible(IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE, "food", "chem")
    m = model(shipments, two, shipment_type_incompatibilities=rule)
    assert brute_force_optimum(m) == pytest.approx(6.0)  # depot-A-depot + depot-B-depot
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(6.0)
    assert solution.metrics.used_vehicle_count == 2


def test_temporal_incompatibility_lets_one_be_delivered_before_the_other_is_picked_up() -> None:
    shipments = [
        Shipment(pickups=(at("A"),), deliveries=(at("C"),), shipment_type="x"),
        Shipment(pickups=(at("B"),), deliveries=(at("C"),), shipment_type="y"),
    ]
    assert brute_force_optimum(model(shipments)) == pytest.approx(6.0)
    rule = incompatible(IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY, "x", "y")
    m = model(shipments, shipment_type_incompatibilities=rule)
    # depot-A-C (deliver x) -B (pick y) -C-depot = 1 + 2 + 1 + 1 + 3.
    assert brute_force_optimum(m) == pytest.approx(8.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(8.0)
    assert route_order(solution, 0) == [(0, True), (0, False), (1, True), (1, False)]


def test_temporal_incompatibility_of_delivery_only_shipments_is_reported_as_a_skip() -> None:
    # Both are on board from the start: they can never share the only vehicle; one mandatory
    # shipment is skipped.
    shipments = [
        Shipment(deliveries=(at("A"),), shipment_type="x"),
        Shipment(deliveries=(at("B"),), shipment_type="y"),
    ]
    rule = incompatible(IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY, "x", "y")
    m = model(shipments, shipment_type_incompatibilities=rule)
    with pytest.raises(ValueError, match="no feasible assignment"):
        brute_force_optimum(m)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.skipped_mandatory_shipment_count == 1
    (skipped,) = solution.skipped_shipments
    # Not a pre-check reason: each shipment alone fits the vehicle; the search left it out.
    (reason,) = skipped.reasons
    assert reason.code not in PRECHECK_CODES
    assert reason.example_vehicle_index is None


def test_requirement_performed_by_same_vehicle() -> None:
    shipments = [
        Shipment(deliveries=(at("A"),), shipment_type="dependent"),
        Shipment(deliveries=(at("far"),), shipment_type="required"),
    ]
    vehicles = [
        depot_vehicle(cost_per_kilometer=1.0),
        depot_vehicle("far", cost_per_kilometer=1.0),
    ]
    assert brute_force_optimum(model(shipments, vehicles)) == pytest.approx(2.0)
    rule = requires(RequirementMode.PERFORMED_BY_SAME_VEHICLE, "required", "dependent")
    m = model(shipments, vehicles, shipment_type_requirements=rule)
    assert brute_force_optimum(m) == pytest.approx(18.0)  # far-far-A-far
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(18.0)
    assert solution.metrics.used_vehicle_count == 1


def _pickup_delivery_pair() -> list[Shipment]:
    return [
        Shipment(pickups=(at("B"),), deliveries=(at("A"),), shipment_type="required"),
        Shipment(pickups=(at("A"),), deliveries=(at("B"),), shipment_type="dependent"),
    ]


def test_requirement_in_same_vehicle_at_pickup_time() -> None:
    shipments = _pickup_delivery_pair()
    assert brute_force_optimum(model(shipments)) == pytest.approx(4.0)
    rule = requires(RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME, "required", "dependent")
    m = model(shipments, shipment_type_requirements=rule)
    # depot-B (pick required) -A (pick dependent, then deliver required) -B-depot.
    assert brute_force_optimum(m) == pytest.approx(6.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(6.0)
    assert route_order(solution, 0) == [(0, True), (1, True), (0, False), (1, False)]


def test_requirement_in_same_vehicle_at_delivery_time() -> None:
    shipments = [
        Shipment(pickups=(at("A"),), deliveries=(at("C"),), shipment_type="dependent"),
        Shipment(pickups=(at("D"),), deliveries=(at("B"),), shipment_type="required"),
    ]
    assert brute_force_optimum(model(shipments)) == pytest.approx(8.0)
    rule = requires(RequirementMode.IN_SAME_VEHICLE_AT_DELIVERY_TIME, "required", "dependent")
    m = model(shipments, shipment_type_requirements=rule)
    # The required goods must be on board at C: depot-A-D (pick required) -C-B-depot.
    assert brute_force_optimum(m) == pytest.approx(8.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(8.0)
    assert route_order(solution, 0) == [(0, True), (1, True), (0, False), (1, False)]


# -- fleet and costs ---------------------------------------------------------------------------


def test_max_active_vehicles() -> None:
    shipments = [Shipment(deliveries=(at("A"),)), Shipment(deliveries=(at("far"),))]
    vehicles = [
        depot_vehicle(cost_per_kilometer=1.0),
        depot_vehicle("far", cost_per_kilometer=1.0),
    ]
    assert brute_force_optimum(model(shipments, vehicles)) == pytest.approx(2.0)
    m = model(shipments, vehicles, max_active_vehicles=1)
    assert brute_force_optimum(m) == pytest.approx(18.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(18.0)
    assert solution.metrics.used_vehicle_count == 1


def test_ignored_shipment_and_vehicle_are_skipped_with_their_reasons() -> None:
    shipments = [
        Shipment(deliveries=(at("A"),), ignore=True, penalty_cost=50.0),
        Shipment(deliveries=(at("B"),), allowed_vehicle_indices=(1,)),
        Shipment(deliveries=(at("C"),)),
    ]
    vehicles = [
        depot_vehicle(cost_per_kilometer=1.0),
        depot_vehicle(cost_per_kilometer=0.1, ignore=True),
    ]
    m = model(shipments, vehicles)
    solution = solve_checked(m, backend="ortools")
    reasons = {s.index: [r.code for r in s.reasons] for s in solution.skipped_shipments}
    assert reasons == {
        0: [SkipReasonCode.SHIPMENT_IGNORED],
        1: [SkipReasonCode.VEHICLE_NOT_ALLOWED, SkipReasonCode.VEHICLE_IGNORED],
    }
    assert not solution.routes[1].visits
    # No penalty for the ignored shipment; the other mandatory one is counted.
    assert solution.metrics.total_cost == pytest.approx(6.0)
    assert solution.metrics.skipped_mandatory_shipment_count == 1


def test_ignored_vehicle_matches_brute_force() -> None:
    shipments = [Shipment(deliveries=(at("A"),)), Shipment(deliveries=(at("B"),), ignore=True)]
    vehicles = [
        depot_vehicle("far", cost_per_kilometer=1.0),
        depot_vehicle(cost_per_kilometer=1.0, ignore=True),
    ]
    m = model(shipments, vehicles)
    assert brute_force_optimum(m) == pytest.approx(18.0)
    assert solved_cost(m) == pytest.approx(18.0)


def test_visit_request_cost_chooses_the_alternative() -> None:
    # Delivering at A: 2 km + cost 5; at B: 4 km + cost 0.
    shipment = Shipment(deliveries=(at("A", cost=5.0), at("B")))
    solution = solve_checked(model([shipment]), backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(4.0)
    assert solution.routes[0].visits[0].visit_request_index == 1
    cheap_a = Shipment(deliveries=(at("A", cost=1.0), at("B")))
    solution = solve_checked(model([cheap_a]), backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(3.0)
    assert solution.routes[0].route_costs["model.shipments.deliveries.cost"] == pytest.approx(1.0)


def test_visit_cost_and_costs_per_vehicle_match_brute_force() -> None:
    shipments = [
        Shipment(pickups=(at("A", cost=2.0),), deliveries=(at("B", cost=0.5),)),
        Shipment(deliveries=(at("C"),), costs_per_vehicle=(10.0,), costs_per_vehicle_indices=(0,)),
    ]
    vehicles = [depot_vehicle(cost_per_kilometer=1.0), depot_vehicle(cost_per_kilometer=2.0)]
    m = model(shipments, vehicles)
    optimum = brute_force_optimum(m)
    # Visit costs 2.5 in any case. Vehicle 0 (1 per km) does all: 6 + 10 (its cost for s1);
    # vehicle 0 does s0 and vehicle 1 (2 per km) s1: 4 + 12; vehicle 1 does all: 12.
    assert optimum == pytest.approx(2.5 + min(6 + 10, 4 + 12, 12))
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(optimum)


def test_costs_per_vehicle_picks_the_cheaper_vehicle() -> None:
    shipment = Shipment(deliveries=(at("A"),), costs_per_vehicle=(10.0, 1.0))
    two = [depot_vehicle(cost_per_kilometer=1.0), depot_vehicle(cost_per_kilometer=1.0)]
    m = model([shipment], two)
    assert brute_force_optimum(m) == pytest.approx(3.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(3.0)
    assert solution.routes[1].route_costs == {
        "model.shipments.costs_per_vehicle": pytest.approx(1.0),
        "model.vehicles.cost_per_kilometer": pytest.approx(2.0),
    }


def test_global_duration_cost() -> None:
    # One route depot-B-depot: 4000 s of global duration at 3.6 per hour = 4.
    m = model(
        [Shipment(deliveries=(at("B"),))],
        [depot_vehicle()],
        global_duration_cost_per_hour=3.6,
    )
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.costs == {"model.global_duration_cost_per_hour": pytest.approx(4.0)}
    assert solution.metrics.total_cost == pytest.approx(4.0)


# -- routing and validation --------------------------------------------------------------------


def test_auto_routes_cargo_rules_to_ortools_and_pyvrp_rejects_them() -> None:
    shipments = [
        Shipment(deliveries=(at("A"),), shipment_type="food"),
        Shipment(deliveries=(at("B"),), shipment_type="chem"),
    ]
    rule = incompatible(IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE, "food", "chem")
    m = model(shipments, shipment_type_incompatibilities=rule)
    solution = solve_checked(m, backend="auto")
    assert solution.backend == "ortools"
    assert "shipment type incompatibilities" in solution.backend_reason
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    (violation,) = err.value.violations
    assert violation.field == "shipment_type_incompatibilities[0]"
    assert "does not support shipment type incompatibilities" in violation.description


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_active_vehicles": 1}, "max_active_vehicles"),
        ({"global_duration_cost_per_hour": 1.0}, "global_duration_cost_per_hour"),
        ({"vehicle_ignore": True}, "vehicles[1].ignore"),
        ({"visit_cost": 1.0}, "shipments[0].deliveries[0].cost"),
        ({"costs_per_vehicle": (1.0, 2.0)}, "shipments[0].costs_per_vehicle"),
    ],
)
def test_pyvrp_rejects_each_fleet_feature_by_name(changes: dict[str, object], field: str) -> None:
    shipment = Shipment(
        deliveries=(at("A", cost=changes.get("visit_cost", 0.0)),),  # type: ignore[arg-type]
        costs_per_vehicle=changes.get("costs_per_vehicle", ()),  # type: ignore[arg-type]
    )
    vehicles = [
        depot_vehicle(cost_per_kilometer=1.0),
        depot_vehicle(cost_per_kilometer=1.0, ignore=bool(changes.get("vehicle_ignore"))),
    ]
    kw = {
        k: v
        for k, v in changes.items()
        if k in ("max_active_vehicles", "global_duration_cost_per_hour")
    }
    m = model([shipment, Shipment(deliveries=(at("B"),))], vehicles, **kw)
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert [v.field for v in err.value.violations] == [field]
    assert solve_checked(m, backend="auto").backend == "ortools"


def test_validation_names_each_bad_field() -> None:
    shipments = [
        Shipment(
            deliveries=(at("A", cost=-1.0),),
            costs_per_vehicle=(1.0, -2.0),
            costs_per_vehicle_indices=(0, 0),
            shipment_type="a",
        ),
        Shipment(deliveries=(at("B"),), costs_per_vehicle=(1.0,), ignore=True),
    ]
    m = model(
        shipments,
        [depot_vehicle(), depot_vehicle()],
        max_active_vehicles=0,
        global_duration_cost_per_hour=-1.0,
        shipment_type_incompatibilities=(ShipmentTypeIncompatibility(types=("a", "a")),),
        shipment_type_requirements=(
            ShipmentTypeRequirement(("b",), ("a",), RequirementMode.PERFORMED_BY_SAME_VEHICLE),
            ShipmentTypeRequirement(
                ("a",), ("b", ""), RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME
            ),
            ShipmentTypeRequirement((), (), RequirementMode.REQUIREMENT_MODE_UNSPECIFIED),
        ),
    )
    fields = {v.field for v in validate_model(m)}
    assert fields == {
        "max_active_vehicles",
        "global_duration_cost_per_hour",
        "shipments[0].deliveries[0].cost",
        "shipments[0].costs_per_vehicle[1]",
        "shipments[0].costs_per_vehicle_indices[1]",
        "shipments[1].costs_per_vehicle",
        "shipments[1].ignore",
        "shipment_type_incompatibilities[0].types[1]",
        "shipment_type_incompatibilities[0].types",
        "shipment_type_incompatibilities[0].incompatibility_mode",
        "shipment_type_requirements[0].dependent_shipment_types[0]",
        "shipment_type_requirements[1].dependent_shipment_types[0]",
        "shipment_type_requirements[1].dependent_shipment_types[1]",
        "shipment_type_requirements[2].required_shipment_type_alternatives",
        "shipment_type_requirements[2].dependent_shipment_types",
        "shipment_type_requirements[2].requirement_mode",
    }


# -- courier rules -----------------------------------------------------------------------------


def _courier(**limits: float) -> ShipmentModel:
    """An open route from the depot. s0 goes from A to C (2000 s direct); s1 is delivered at B
    and takes 5000 s there. Unlimited, the best route is A, B, C (3 km), where s0 takes 7000 s;
    A, C, B (4 km) takes s0 straight there."""
    shipments = [
        Shipment(pickups=(at("A"),), deliveries=(at("C"),), **limits),  # type: ignore[arg-type]
        Shipment(deliveries=(at("B", duration_s=5000.0),)),
    ]
    return model(shipments, [depot_vehicle(open_end=True, cost_per_kilometer=1.0)])


DIRECT = [(0, True), (0, False), (1, False)]
DETOUR = [(0, True), (1, False), (0, False)]


@pytest.mark.parametrize(
    ("limits", "optimum", "order"),
    [
        ({}, 3.0, DETOUR),
        ({"pickup_to_delivery_absolute_detour_limit_s": 4999.0}, 4.0, DIRECT),
        ({"pickup_to_delivery_absolute_detour_limit_s": 5000.0}, 3.0, DETOUR),
        # ceil(2000 * (1 + 2.4)) = 6800 s < 7000 s; with 2.5 it is 7000 s.
        ({"pickup_to_delivery_relative_detour_limit": 2.4}, 4.0, DIRECT),
        ({"pickup_to_delivery_relative_detour_limit": 2.5}, 3.0, DETOUR),
        ({"pickup_to_delivery_time_limit_s": 6999.0}, 4.0, DIRECT),
        ({"pickup_to_delivery_time_limit_s": 7000.0}, 3.0, DETOUR),
        # The tighter of both detour limits applies.
        (
            {
                "pickup_to_delivery_relative_detour_limit": 2.5,
                "pickup_to_delivery_absolute_detour_limit_s": 100.0,
            },
            4.0,
            DIRECT,
        ),
    ],
)
def test_pickup_to_delivery_limits(
    limits: dict[str, float], optimum: float, order: list[tuple[int, bool]]
) -> None:
    m = _courier(**limits)
    assert brute_force_optimum(m) == pytest.approx(optimum)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(optimum)
    assert route_order(solution, 0) == order


def test_pickup_to_delivery_limit_no_route_can_meet_is_a_search_skip() -> None:
    # The pickup alone lasts 600 s: no schedule meets a 500 s time limit.
    shipment = Shipment(
        pickups=(at("A", duration_s=600.0),),
        deliveries=(at("A"),),
        pickup_to_delivery_time_limit_s=500.0,
    )
    solution = solve_checked(model([shipment, Shipment(deliveries=(at("B"),))]), backend="ortools")
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 0
    (reason,) = skipped.reasons
    assert reason.code not in PRECHECK_CODES
    assert solution.metrics.skipped_mandatory_shipment_count == 1


def test_courier_rules_route_to_ortools_and_are_validated() -> None:
    m = _courier(pickup_to_delivery_time_limit_s=7000.0)
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert [v.field for v in err.value.violations] == ["shipments[0].pickup_to_delivery_time_limit"]
    assert solve_checked(m, backend="auto").backend == "ortools"
    bad = model(
        [
            Shipment(deliveries=(at("A"),), pickup_to_delivery_time_limit_s=10.0),
            Shipment(
                pickups=(at("A"),),
                deliveries=(at("B"),),
                pickup_to_delivery_relative_detour_limit=-1.0,
                pickup_to_delivery_absolute_detour_limit_s=5.0,
            ),
        ],
        [depot_vehicle(), depot_vehicle(travel_duration_multiple=2.0)],
    )
    assert {(v.field, v.description.split(" ")[0]) for v in validate_model(bad)} == {
        ("shipments[0].pickup_to_delivery_time_limit", "needs"),
        ("shipments[1].pickup_to_delivery_relative_detour_limit", "must"),
        ("shipments[1].pickup_to_delivery_relative_detour_limit", "detour"),
        ("shipments[1].pickup_to_delivery_absolute_detour_limit", "detour"),
    }


# -- soft limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(("penalty", "optimum"), [(15.0, 26.0 + 15.0), (30.0, 48.0)])
def test_soft_distance_limit(penalty: float, optimum: float) -> None:
    # C is mandatory (6 km), D optional (8 km with C); 10 per km above 4 km.
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0,
        route_distance_soft_max_m=4000.0,
        route_distance_cost_per_kilometer_above_soft_max=10.0,
    )
    shipments = [
        Shipment(deliveries=(at("C"),)),
        Shipment(deliveries=(at("D"),), penalty_cost=penalty),
    ]
    m = model(shipments, [vehicle])
    assert brute_force_optimum(m) == pytest.approx(optimum)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(optimum)
    key = "model.vehicles.route_distance_limit.cost_per_kilometer_above_soft_max"
    assert solution.metrics.costs[key] == pytest.approx(20.0 if penalty < 20 else 40.0)


@pytest.mark.parametrize("pickup", [False, True])
def test_soft_load_limit_splits_the_load(pickup: bool) -> None:
    # Two loads of 2 at A; 5 per unit above 2 on board. One vehicle: 3 + 2 km + 2 * 5 = 15;
    # two vehicles: 2 * (3 + 2) = 10.
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0,
        fixed_cost=3.0,
        soft_load_limits={"kg": SoftLoadLimit(2, 5.0)},
    )
    visit = {"pickups" if pickup else "deliveries": (at("A"),)}
    shipments = [Shipment(load_demands={"kg": 2}, **visit) for _ in range(2)]  # type: ignore[arg-type]
    m = model(shipments, [vehicle, vehicle])
    assert brute_force_optimum(m) == pytest.approx(10.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(10.0)
    assert solution.metrics.used_vehicle_count == 2
    # With a cheaper excess, one vehicle carries both: 3 + 2 + 2 * 1 = 7.
    cheap = dataclasses.replace(vehicle, soft_load_limits={"kg": SoftLoadLimit(2, 1.0)})
    m = model(shipments, [cheap, cheap])
    assert brute_force_optimum(m) == pytest.approx(7.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.costs["model.vehicles.load_limits.cost_per_unit_above_soft_max"] == (
        pytest.approx(2.0)
    )


@pytest.mark.parametrize(("penalty", "optimum", "served"), [(5.0, 13.0, 2), (3.0, 12.0, 1)])
def test_soft_duration_limit(penalty: float, optimum: float, served: int) -> None:
    # 3.6 per hour (1 per 1000 s) beyond 3000 s. C alone: 6 km, 6000 s: 6 + 3 = 9; with D:
    # 8 + 5 = 13 against 9 + the penalty of D.
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0,
        route_duration_soft_max_s=3000.0,
        route_duration_cost_per_hour_after_soft_max=3.6,
    )
    shipments = [
        Shipment(deliveries=(at("C"),)),
        Shipment(deliveries=(at("D"),), penalty_cost=penalty),
    ]
    solution = solve_checked(model(shipments, [vehicle]), backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(optimum)
    assert solution.metrics.aggregated_route_metrics.performed_shipment_count == served


def test_soft_limits_route_to_ortools_and_are_validated() -> None:
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0,
        route_duration_soft_max_s=3000.0,
        route_duration_cost_per_hour_after_soft_max=3.6,
    )
    m = model([Shipment(deliveries=(at("C"),))], [vehicle])
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert [v.field for v in err.value.violations] == [
        "vehicles[0].route_duration_limit.soft_max_duration"
    ]
    bad = model(
        [
            Shipment(deliveries=(at("A"),), load_demands={"kg": 1}),
            Shipment(pickups=(at("A"),), load_demands={"kg": 1}),
        ],
        [
            depot_vehicle(
                route_duration_limit_s=100.0,
                route_duration_soft_max_s=200.0,
                route_duration_cost_per_hour_after_soft_max=1.0,
                route_distance_soft_max_m=10.0,
                soft_load_limits={"kg": SoftLoadLimit(-1, -2.0)},
            )
        ],
    )
    assert {v.field for v in validate_model(bad)} == {
        "vehicles[0].route_duration_limit.soft_max_duration",
        "vehicles[0].route_distance_limit.cost_per_kilometer_above_soft_max",
        "vehicles[0].load_limits[kg].soft_max_load",
        "vehicles[0].load_limits[kg].cost_per_unit_above_soft_max",
    }


# -- precedence rules ---------------------------------------------------------------------------


def _c_before_a(offset_s: float, vehicles: int) -> ShipmentModel:
    """Open routes from the depot; s0 is delivered at A, s1 at C; A's delivery must start at
    least ``offset_s`` after C's."""
    rule = PrecedenceRule(
        first_index=1,
        second_index=0,
        first_is_delivery=True,
        second_is_delivery=True,
        offset_duration_s=offset_s,
    )
    fleet = [depot_vehicle(open_end=True, cost_per_kilometer=1.0) for _ in range(vehicles)]
    shipments = [Shipment(deliveries=(at("A"),)), Shipment(deliveries=(at("C"),))]
    return model(shipments, fleet, precedence_rules=(rule,))


def test_precedence_rule_reorders_a_route() -> None:
    # Depot-A-C is 3 km; C first: depot-C-A, 5 km.
    solution = solve_checked(_c_before_a(0.0, 1), backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(5.0)
    assert route_order(solution, 0) == [(1, False), (0, False)]


def test_precedence_rule_across_vehicles_with_an_offset() -> None:
    # Two open routes (1 + 3 km) beat one (5 km); A's vehicle waits: A starts >= C + 5000 s.
    solution = solve_checked(_c_before_a(5000.0, 2), backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(4.0)
    starts = {v.shipment_index: v.start_time for r in solution.routes for v in r.visits}
    assert starts[0] >= starts[1] + 5000.0


def test_precedence_rule_of_a_skipped_shipment_does_not_apply() -> None:
    m = _c_before_a(0.0, 1)
    cheap = dataclasses.replace(m.shipments[1], penalty_cost=0.5)  # C costs 4 km more
    m = dataclasses.replace(m, shipments=(m.shipments[0], cheap))
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(1.5)
    assert [s.index for s in solution.skipped_shipments] == [1]


def test_precedence_rules_route_to_ortools_and_are_validated() -> None:
    with pytest.raises(InvalidModelError) as err:
        solve_checked(_c_before_a(0.0, 1), backend="pyvrp")
    assert [v.field for v in err.value.violations] == ["precedence_rules[0]"]
    bad = dataclasses.replace(
        _c_before_a(0.0, 1),
        precedence_rules=(
            PrecedenceRule(first_index=2, second_index=0, offset_duration_s=float("nan")),
        ),
    )
    assert {v.field for v in validate_model(bad)} == {
        "precedence_rules[0].first_index",
        "precedence_rules[0].second_is_delivery",
        "precedence_rules[0].offset_duration",
    }


# -- vehicles used when empty --------------------------------------------------------------------


def _depot_to_b(**fields: object) -> Vehicle:
    return Vehicle(start_tags=("depot",), end_tags=("B",), **fields)  # type: ignore[arg-type]


def test_used_if_route_is_empty_makes_the_empty_route_cost() -> None:
    shipments = [Shipment(deliveries=(at("A"),))]
    plain = [
        depot_vehicle(cost_per_kilometer=1.0),
        _depot_to_b(cost_per_kilometer=1.0, fixed_cost=2.0),
    ]
    assert brute_force_optimum(model(shipments, plain)) == pytest.approx(2.0)  # vehicle 0 alone
    # Vehicle 1 drives depot-B (2 km + fixed cost 2) anyway: it may as well deliver at A.
    used = [plain[0], dataclasses.replace(plain[1], used_if_route_is_empty=True)]
    m = model(shipments, used)
    assert brute_force_optimum(m) == pytest.approx(4.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(4.0)
    assert route_order(solution, 1) == [(0, False)]


def test_used_if_route_is_empty_without_shipments() -> None:
    m = model(
        [], [_depot_to_b(cost_per_kilometer=1.0, fixed_cost=2.0, used_if_route_is_empty=True)]
    )
    solution = solve_checked(m, backend="ortools")
    (route,) = solution.routes
    assert route.is_used
    assert not route.visits
    assert len(route.transitions) == 1
    assert route.transitions[0].travel_distance_m == pytest.approx(2000.0)
    assert solution.metrics.total_cost == pytest.approx(4.0)
    assert solution.metrics.used_vehicle_count == 1


def test_max_active_vehicles_does_not_count_empty_used_routes() -> None:
    shipments = [Shipment(deliveries=(at("A"),)), Shipment(deliveries=(at("C"),))]
    fleet = [
        depot_vehicle(cost_per_kilometer=1.0, used_if_route_is_empty=True),
        depot_vehicle(cost_per_kilometer=1.0, used_if_route_is_empty=True),
    ]
    m = model(shipments, fleet, max_active_vehicles=1)
    assert brute_force_optimum(m) == pytest.approx(6.0)
    solution = solve_checked(m, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(6.0)
    assert solution.metrics.used_vehicle_count == 2
    assert sorted(len(r.visits) for r in solution.routes) == [0, 2]


def test_used_if_route_is_empty_routes_to_ortools_and_is_validated() -> None:
    m = model([Shipment(deliveries=(at("A"),))], [depot_vehicle(used_if_route_is_empty=True)])
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert [v.field for v in err.value.violations] == ["vehicles[0].used_if_route_is_empty"]
    bad = model([], [depot_vehicle(used_if_route_is_empty=True, ignore=True)])
    assert [v.field for v in validate_model(bad)] == ["vehicles[0].used_if_route_is_empty"]


# -- all together, against the brute force -------------------------------------------------------


def random_issue15_model(seed: int) -> ShipmentModel:
    """:func:`tests.engine.test_optimality.random_tiny_model` (every shipment optional, so that
    any rule combination has a solution) with random shipment types and rules, visit costs,
    costs_per_vehicle, a soft distance limit and, by seed, max_active_vehicles, an ignored
    shipment or a vehicle used when empty."""
    rng = np.random.default_rng(1000 + seed)
    base = random_tiny_model(seed)
    types = ("a", "b", "c")
    shipments = []
    for s, shipment in enumerate(base.shipments):
        pickups = tuple(
            dataclasses.replace(v, cost=float(rng.integers(0, 3)) * 50.0) for v in shipment.pickups
        )
        shipments.append(
            dataclasses.replace(
                shipment,
                pickups=pickups,
                shipment_type=types[int(rng.integers(0, 3))],
                penalty_cost=shipment.penalty_cost or float(rng.integers(100, 400)),
                costs_per_vehicle=(float(rng.integers(0, 100)),),
                costs_per_vehicle_indices=(int(rng.integers(0, 2)),),
                ignore=seed % 4 == 3 and s == 4,
            )
        )
    incompatibility = ShipmentTypeIncompatibility(
        ("a", "b"), IncompatibilityMode(1 + int(rng.integers(0, 2)))
    )
    requirements = ()
    if seed % 4 != 3:  # Google: no requirement with an ignored shipment
        requirements = (ShipmentTypeRequirement(("a",), ("c",), RequirementMode(1 + seed % 3)),)
    vehicles = (
        dataclasses.replace(
            base.vehicles[0],
            route_distance_soft_max_m=float(rng.integers(100, 300)),
            route_distance_cost_per_kilometer_above_soft_max=2000.0,
        ),
        dataclasses.replace(base.vehicles[1], used_if_route_is_empty=seed % 4 == 1),
    )
    return dataclasses.replace(
        base,
        shipments=tuple(shipments),
        vehicles=vehicles,
        shipment_type_incompatibilities=(incompatibility,),
        shipment_type_requirements=requirements,
        max_active_vehicles=1 if seed % 4 == 2 else None,
    )


@pytest.mark.parametrize("seed", range(8))
def test_rules_and_costs_together_match_brute_force(seed: int) -> None:
    # The rules change the optimum on seeds 2, 4, 6 and 7, the costs on every seed.
    model_ = random_issue15_model(seed)
    optimum = brute_force_optimum(model_)
    solution = solve_checked(
        model_, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME
    )
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_requirement_with_delivery_alternatives() -> None:
    # The dependent shipment goes to A or D; the required one is at far, where vehicle 1 is.
    # Free: vehicle 0 delivers at A (2 km). Same vehicle required: vehicle 1 far-D-far (12 km)
    # beats far-A-far (18) and vehicle 0 taking both (20).
    shipments = [
        Shipment(deliveries=(at("A"), at("D")), shipment_type="dependent"),
        Shipment(deliveries=(at("far"),), shipment_type="required"),
    ]
    vehicles = [
        depot_vehicle(cost_per_kilometer=1.0),
        depot_vehicle("far", cost_per_kilometer=1.0),
    ]
    assert solve_checked(model(shipments, vehicles), backend="ortools").metrics.total_cost == (
        pytest.approx(2.0)
    )
    rule = requires(RequirementMode.PERFORMED_BY_SAME_VEHICLE, "required", "dependent")
    solution = solve_checked(
        model(shipments, vehicles, shipment_type_requirements=rule), backend="ortools"
    )
    assert solution.metrics.total_cost == pytest.approx(12.0)
    (visit,) = [v for v in solution.routes[1].visits if v.shipment_index == 0]
    assert visit.visit_request_index == 1


_TYPES_CHILD = """
from engine import Shipment, SkipReasonCode
from engine.model import IncompatibilityMode as Mode, ShipmentTypeIncompatibility, TimeWindow
from tests.builders import at, depot_vehicle, solve_checked
from tests.engine.test_cargo_fleet import model

never = (TimeWindow(start_time=0.0, end_time=0.0),)  # unreachable: the depot is 1 km away
shipments = [
    Shipment(deliveries=(at("A"),), shipment_type="food"),
    Shipment(deliveries=(at("B", time_windows=never),), shipment_type="chem"),
    Shipment(deliveries=(at("C"),), shipment_type="food"),
]
rules = (
    ShipmentTypeIncompatibility(("food", "chem"), Mode.NOT_PERFORMED_BY_SAME_VEHICLE),
    ShipmentTypeIncompatibility(("food", "ghost"), Mode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY),
)
for _ in range(5):
    m = model(shipments, [depot_vehicle(), depot_vehicle()], shipment_type_incompatibilities=rules)
    solution = solve_checked(m, backend="ortools", time_limit_s=0.3)
    assert [s.index for s in solution.skipped_shipments] == [1], solution.skipped_shipments
print("ok")
"""


def test_an_incompatibility_with_a_type_no_visit_has_does_not_corrupt_ortools() -> None:
    """Regression (fuzz): an incompatibility naming a type that no routable shipment has (none
    has it, or its shipments cannot be performed) made OR-Tools write past its per-type tables:
    heap corruption (``malloc(): invalid next size``), the worker died, INTERNAL. Solved in a
    child process, since the failure kills the process."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", _TYPES_CHILD], cwd=root, capture_output=True, text=True,
        timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "ok"


@pytest.mark.parametrize("backend", ["ortools", "pyvrp"])
def test_a_zero_demand_of_a_type_nothing_limits_is_no_load(backend: str) -> None:
    """Regression (fuzz): a delivery-only shipment demanding 0 of a type that no vehicle limits
    and no other shipment demands made the evaluation fail (KeyError, INTERNAL)."""
    shipments = [
        Shipment(deliveries=(at("A"),), load_demands={"*": 0, "kg": 2}),
        Shipment(deliveries=(at("B"),), load_demands={"gs://": 3}),
    ]
    vehicle = depot_vehicle(cost_per_kilometer=1.0, load_limits={"kg": 5})
    solution = solve_checked(model(shipments, [vehicle]), backend=backend)  # type: ignore[arg-type]
    assert not solution.skipped_shipments
    assert solution.metrics.total_cost == pytest.approx(4.0)
