"""The hand-built main instance of the checker tests and the mutations applied to it.

:func:`main_model` and its hand-written valid :func:`main_solution`, and small functions that
change one field of the model or the solution (each a :data:`Mutation`), which the checker tests
expect to be caught.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from engine.model import (
    BreakRequest,
    DurationDistanceMatrix,
    IncompatibilityMode,
    PrecedenceRule,
    RequirementMode,
    Shipment,
    ShipmentModel,
    ShipmentTypeIncompatibility,
    ShipmentTypeRequirement,
    SoftLoadLimit,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.solution import (
    AggregatedMetrics,
    Break,
    Metrics,
    Route,
    SkippedShipment,
    SkipReason,
    SkipReasonCode,
    Solution,
    SolveStatus,
    Transition,
    VehicleFullness,
    Visit,
)
from tests.checker import check_solution

T = 1_700_000_000.0
"""Start of the horizon of the main instance (epoch seconds, to exercise large times)."""

# --------------------------------------------------------------------------------------------
# Main instance: client matrices, one used vehicle (pickup+delivery, delivery-only shipment,
# break, soft windows) and one unused vehicle, one skipped optional shipment.
# --------------------------------------------------------------------------------------------

SRC_TAGS = ("depot", "depot2", "A", "B", "C")
DST_TAGS = ("depot", "A", "B", "C")
DURATIONS = np.array(
    [
        [0, 300, 600, 900],  # from depot
        [1000, 1000, 1000, 1000],  # from depot2
        [300, 0, 300, 600],  # from A
        [600, 300, 0, 300],  # from B
        [900, 600, 300, 0],  # from C
    ],
    dtype=np.float64,
)


def main_model() -> ShipmentModel:
    """Two matrices (selected by start tag), vehicle 0 twice as slow as the matrix."""
    return ShipmentModel(
        shipments=(
            Shipment(
                pickups=(
                    VisitRequest(
                        tags=("A",),
                        time_windows=(TimeWindow(T + 900, T + 1500),),
                        duration_s=120,
                        label="pA",
                    ),
                ),
                deliveries=(VisitRequest(tags=("B", "other"), duration_s=60, label="dB"),),
                load_demands={"weight": 3, "pallets": 1},
                allowed_vehicle_indices=(0,),
                label="s0",
            ),
            Shipment(
                deliveries=(
                    VisitRequest(
                        tags=("C",),
                        time_windows=(
                            TimeWindow(
                                T,
                                T + 7200,
                                soft_end_time=T + 2500,
                                cost_per_hour_after_soft_end_time=36.0,
                            ),
                        ),
                        duration_s=180,
                        label="dC",
                    ),
                ),
                load_demands={"weight": 2},
                penalty_cost=1000.0,
                label="s1",
            ),
            Shipment(
                pickups=(VisitRequest(tags=("C",), duration_s=30),),
                load_demands={"weight": 100},
                penalty_cost=50.0,
                label="s2",
            ),
        ),
        vehicles=(
            Vehicle(
                start_tags=("depot",),
                end_tags=("depot",),
                start_time_windows=(
                    TimeWindow(
                        T,
                        T + 3600,
                        soft_start_time=T + 60,
                        cost_per_hour_before_soft_start_time=36.0,
                    ),
                ),
                end_time_windows=(TimeWindow(T, T + 7200),),
                travel_duration_multiple=2.0,
                load_limits={"weight": 5},
                cost_per_hour=30.0,
                cost_per_traveled_hour=60.0,
                cost_per_kilometer=1.0,
                fixed_cost=10.0,
                route_duration_limit_s=6000.0,
                route_distance_limit_m=20000.0,
                break_requests=(BreakRequest(T + 1000, T + 2000, 600),),
                label="truck",
            ),
            Vehicle(
                start_tags=("depot2",),
                end_tags=("depot",),
                load_limits={"weight": 10},
                label="spare",
            ),
        ),
        global_start_time=T,
        global_end_time=T + 86400,
        duration_distance_matrices=(
            DurationDistanceMatrix(DURATIONS, DURATIONS * 10, vehicle_start_tag="depot"),
            DurationDistanceMatrix(DURATIONS * 3, DURATIONS * 7, vehicle_start_tag="depot2"),
        ),
        duration_distance_matrix_src_tags=SRC_TAGS,
        duration_distance_matrix_dst_tags=DST_TAGS,
    )


def loads(weight: int, pallets: int) -> dict[str, int]:
    return {"pallets": pallets, "weight": weight}


# Hand-computed schedule of vehicle 0 (travel durations are doubled by the multiple):
#   start T ─ 600 s travel, 300 s wait ─ pickup s0 at A T+900 (120 s)
#   ─ break T+1020 (600 s), 600 s travel ─ delivery s0 at B T+2220 (60 s)
#   ─ 600 s travel ─ delivery s1 at C T+2880 (180 s; 380 s after its soft end)
#   ─ 1800 s travel ─ end T+4860.
ROUTE_COSTS = {
    "model.vehicles.fixed_cost": 10.0,
    "model.vehicles.cost_per_kilometer": 18.0,  # 18 km
    "model.vehicles.cost_per_traveled_hour": 60.0,  # 3600 s of travel
    "model.vehicles.cost_per_hour": 40.5,  # 4860 s
    "model.shipments.deliveries.time_windows.cost_per_hour_after_soft_end_time": 3.8,  # 380 s
    "model.vehicles.start_time_windows.cost_per_hour_before_soft_start_time": 0.6,  # 60 s
}
ROUTE_TOTAL = 132.9
ROUTE_METRICS = AggregatedMetrics(
    performed_shipment_count=2,
    performed_mandatory_shipment_count=1,  # s0; s1 has a penalty_cost
    performed_shipment_penalty_cost_sum=1000.0,
    travel_duration_s=3600,
    wait_duration_s=300,
    delay_duration_s=380,
    break_duration_s=600,
    visit_duration_s=360,
    total_duration_s=4860,
    travel_distance_m=18000,
    max_loads=loads(5, 1),
)


def main_solution() -> Solution:
    """A valid solution of :func:`main_model`, written by hand."""
    route = Route(
        vehicle_index=0,
        vehicle_label="truck",
        vehicle_start_time=T,
        vehicle_end_time=T + 4860,
        visits=(
            # Detours (Google's): pA 900 - 600 of travel from the start (the wait); dB from
            # the end of pA (T+1020), 1200 - 600 of travel (the break); dC from the start,
            # 2880 - 1800 of direct travel from the depot.
            Visit(0, True, 0, T + 900, {"weight": 3, "pallets": 1}, "s0", "pA", 300),
            Visit(0, False, 0, T + 2220, {"weight": -3, "pallets": -1}, "s0", "dB", 600),
            Visit(1, False, 0, T + 2880, {"weight": -2}, "s1", "dC", 1080),
        ),
        transitions=(
            Transition(T, 600, 3000, 300, 0, 900, loads(2, 0)),
            Transition(T + 1020, 600, 3000, 0, 600, 1200, loads(5, 1)),
            Transition(T + 2280, 600, 3000, 0, 0, 600, loads(2, 0)),
            Transition(T + 3060, 1800, 9000, 0, 0, 1800, loads(0, 0)),
        ),
        breaks=(Break(T + 1020, 600),),
        metrics=ROUTE_METRICS,
        route_costs=ROUTE_COSTS,
        route_total_cost=ROUTE_TOTAL,
        # 18 km of 20, 4860 s of 6000, 5 kg of 5, the only used route: its span is the span.
        vehicle_fullness=VehicleFullness(
            max_fullness=1.0, distance=0.9, active_duration=0.81, max_load=1.0, active_span=1.0
        ),
    )
    return Solution(
        routes=(route, Route(vehicle_index=1, vehicle_label="spare")),
        skipped_shipments=(
            SkippedShipment(
                2,
                "s2",
                (SkipReason(SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, 0, "weight"),),
            ),
        ),
        metrics=Metrics(
            aggregated_route_metrics=ROUTE_METRICS,
            skipped_mandatory_shipment_count=0,
            used_vehicle_count=1,
            earliest_vehicle_start_time=T,
            latest_vehicle_end_time=T + 4860,
            costs={**ROUTE_COSTS, "model.shipments.penalty_cost": 50.0},
            total_cost=ROUTE_TOTAL + 50.0,
        ),
        status=SolveStatus.SOLVED,
    )


# ---- mutation helpers -----------------------------------------------------------------------

Case = tuple[ShipmentModel, Solution]
Mutation = Callable[[ShipmentModel, Solution], Case]


def _replace_at(items: tuple[Any, ...], i: int, **changes: Any) -> tuple[Any, ...]:
    return (*items[:i], dataclasses.replace(items[i], **changes), *items[i + 1 :])


def vehicle(i: int, **changes: Any) -> Mutation:
    """Change vehicle i of the model."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        return dataclasses.replace(m, vehicles=_replace_at(m.vehicles, i, **changes)), s

    return mutate


def shipment(i: int, **changes: Any) -> Mutation:
    """Change shipment i of the model."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        return dataclasses.replace(m, shipments=_replace_at(m.shipments, i, **changes)), s

    return mutate


def pickup_windows(*windows: TimeWindow) -> Mutation:
    """Change the time windows of shipment 0's pickup."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        pickups = _replace_at(m.shipments[0].pickups, 0, time_windows=windows)
        return shipment(0, pickups=pickups)(m, s)

    return mutate


def delivery_windows(*windows: TimeWindow) -> Mutation:
    """Change the time windows of shipment 1's delivery."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        deliveries = _replace_at(m.shipments[1].deliveries, 0, time_windows=windows)
        return shipment(1, deliveries=deliveries)(m, s)

    return mutate


def model_field(**changes: Any) -> Mutation:
    return lambda m, s: (dataclasses.replace(m, **changes), s)


def solution_field(**changes: Any) -> Mutation:
    return lambda m, s: (m, dataclasses.replace(s, **changes))


def route(i: int, **changes: Any) -> Mutation:
    """Change route i of the solution."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        return m, dataclasses.replace(s, routes=_replace_at(s.routes, i, **changes))

    return mutate


def visit(k: int, **changes: Any) -> Mutation:
    """Change visit k of route 0."""
    return lambda m, s: route(0, visits=_replace_at(s.routes[0].visits, k, **changes))(m, s)


def transition(k: int, **changes: Any) -> Mutation:
    """Change transition k of route 0."""
    return lambda m, s: route(0, transitions=_replace_at(s.routes[0].transitions, k, **changes))(
        m, s
    )


def route_metrics(**changes: Any) -> Mutation:
    return route(0, metrics=dataclasses.replace(ROUTE_METRICS, **changes))


def metrics(**changes: Any) -> Mutation:
    return lambda m, s: (
        m,
        dataclasses.replace(s, metrics=dataclasses.replace(s.metrics, **changes)),
    )


def route_costs(**changes: float) -> Mutation:
    """Change route 0's costs; keys use '__' for '.'."""
    costs = {**ROUTE_COSTS, **{k.replace("__", "."): v for k, v in changes.items()}}
    return route(0, route_costs=costs)


def swap_visits(m: ShipmentModel, s: Solution) -> Case:
    visits = s.routes[0].visits
    return route(0, visits=(visits[1], visits[0], visits[2]))(m, s)


def split_pair(m: ShipmentModel, s: Solution) -> Case:
    visits = s.routes[0].visits
    m, s = route(0, visits=(visits[0], visits[2]))(m, s)
    return route(1, visits=(visits[1],))(m, s)


def swap_routes(m: ShipmentModel, s: Solution) -> Case:
    return m, dataclasses.replace(s, routes=(s.routes[1], s.routes[0]))


def swap_matrix_tags(m: ShipmentModel, s: Solution) -> Case:
    a, b = m.duration_distance_matrices
    matrices = (
        DurationDistanceMatrix(a.durations_s, a.distances_m, vehicle_start_tag="depot2"),
        DurationDistanceMatrix(b.durations_s, b.distances_m, vehicle_start_tag="depot"),
    )
    return dataclasses.replace(m, duration_distance_matrices=matrices), s


def skipped(*entries: SkippedShipment) -> Mutation:
    return solution_field(skipped_shipments=entries)


S2_SKIPPED = SkippedShipment(2, "s2", (SkipReason(SkipReasonCode.CODE_UNSPECIFIED),))


def assert_caught(mutation: Mutation, expected: str) -> None:
    """The checker rejects the main solution changed by ``mutation``, saying ``expected``."""
    model, solution = mutation(main_model(), main_solution())
    with pytest.raises(AssertionError) as excinfo:
        check_solution(model, solution)
    assert expected in str(excinfo.value)


# --------------------------------------------------------------------------------------------
# Cargo rules, fleet and costs (issue 15). On the main solution, route 0 picks up s0 (A),
# delivers it (B), then delivers s1 (C); s1 has no pickup, so it is on board from the start:
# s0 and s1 are on board together. s2 is skipped.
# --------------------------------------------------------------------------------------------


def typed(**changes: Any) -> Mutation:
    """Types x, y, z on shipments 0, 1, 2 and ``changes`` (the rules) on the model."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        shipments = tuple(
            dataclasses.replace(sh, shipment_type=t)
            for sh, t in zip(m.shipments, ("x", "y", "z"), strict=True)
        )
        return dataclasses.replace(m, shipments=shipments, **changes), s

    return mutate


def then(first: Mutation, second: Mutation) -> Mutation:
    """``first``, then ``second``."""
    return lambda m, s: second(*first(m, s))


def incompatibility(mode: IncompatibilityMode, *types: str) -> Mutation:
    return typed(shipment_type_incompatibilities=(ShipmentTypeIncompatibility(types, mode),))


def requirement(mode: RequirementMode, required: str, dependent: str) -> Mutation:
    rule = ShipmentTypeRequirement((required,), (dependent,), mode)
    return typed(shipment_type_requirements=(rule,))


S2_IGNORED = SkippedShipment(2, "s2", (SkipReason(SkipReasonCode.SHIPMENT_IGNORED),))

VALID_CARGO_FLEET: list[Mutation] = [
    incompatibility(IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE, "x", "z"),
    incompatibility(IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY, "y", "z"),
    requirement(RequirementMode.PERFORMED_BY_SAME_VEHICLE, "y", "x"),
    requirement(RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME, "y", "x"),
    requirement(RequirementMode.IN_SAME_VEHICLE_AT_DELIVERY_TIME, "y", "x"),
    # s1 has no pickup: the pickup-time rule does not constrain it.
    requirement(RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME, "z", "y"),
    model_field(max_active_vehicles=1),
    vehicle(1, ignore=True),
    shipment(0, pickup_to_delivery_time_limit_s=86400.0),
    shipment(0, pickup_to_delivery_absolute_detour_limit_s=3600.0),
    model_field(precedence_rules=(PrecedenceRule(0, 1, second_is_delivery=True),)),
    model_field(precedence_rules=(PrecedenceRule(1, 2, True, False, 1e9),)),  # s2 is skipped
    # Soft limits the route stays within: no cost.
    vehicle(0, soft_load_limits={"weight": SoftLoadLimit(5, 1.0)}),
    vehicle(
        0, route_distance_soft_max_m=20000.0, route_distance_cost_per_kilometer_above_soft_max=1.0
    ),
]
"""Rules the main solution satisfies: the checker must accept it."""

CARGO_FLEET_MUTATIONS = [
    pytest.param(
        incompatibility(IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE, "x", "y"),
        "shipments 0 ('x') and 1 ('y') share a vehicle",
        id="hard-incompatibility",
    ),
    pytest.param(
        incompatibility(IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY, "x", "y"),
        "shipments 0 ('x') and 1 ('y') are on board together",
        id="temporal-incompatibility",
    ),
    pytest.param(
        requirement(RequirementMode.PERFORMED_BY_SAME_VEHICLE, "z", "x"),
        "shipment 0 ('x') has no shipment of a required type on its route",
        id="requirement-same-vehicle",
    ),
    pytest.param(
        requirement(RequirementMode.IN_SAME_VEHICLE_AT_DELIVERY_TIME, "x", "y"),
        "shipment 1 ('y') has no shipment of a required type on board at its delivery",
        id="requirement-at-delivery",
    ),
    pytest.param(
        requirement(RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME, "z", "x"),
        "shipment 0 ('x') has no shipment of a required type on board at its pickup",
        id="requirement-at-pickup",
    ),
    pytest.param(
        model_field(max_active_vehicles=0),
        "1 vehicles are active, max_active_vehicles is 0",
        id="max-active-vehicles",
    ),
    pytest.param(
        vehicle(0, ignore=True),
        "the vehicle is ignored but its route is used",
        id="vehicle-ignored",
    ),
    pytest.param(shipment(0, ignore=True), "is ignored but performed", id="shipment-ignored"),
    pytest.param(
        vehicle(1, used_if_route_is_empty=True),
        "routes[1]: the vehicle is used_if_route_is_empty but its route is not used",
        id="used-if-route-is-empty",
    ),
    pytest.param(
        shipment(2, ignore=True),
        "the shipment is ignored but SHIPMENT_IGNORED is not a reason",
        id="ignored-without-reason",
    ),
    pytest.param(
        skipped(S2_IGNORED),
        "SHIPMENT_IGNORED for a shipment that is not ignored",
        id="reason-without-ignore",
    ),
    pytest.param(
        then(shipment(2, ignore=True), skipped(S2_IGNORED)),
        "costs['model.shipments.penalty_cost'] is 50.0, expected 0",
        id="ignored-penalty",
    ),
    pytest.param(
        lambda m, s: shipment(
            0, pickups=(dataclasses.replace(m.shipments[0].pickups[0], cost=5.0),)
        )(m, s),
        "costs['model.shipments.pickups.cost'] is 0.0, expected 5.0",
        id="visit-cost",
    ),
    pytest.param(
        shipment(1, costs_per_vehicle=(2.0, 7.0)),
        "costs['model.shipments.costs_per_vehicle'] is 0.0, expected 2.0",
        id="costs-per-vehicle",
    ),
    pytest.param(
        shipment(1, costs_per_vehicle=(7.0,), costs_per_vehicle_indices=(0,)),
        "costs['model.shipments.costs_per_vehicle'] is 0.0, expected 7.0",
        id="costs-per-vehicle-indices",
    ),
    pytest.param(
        model_field(precedence_rules=(PrecedenceRule(1, 0, first_is_delivery=True),)),
        "precedence_rules[0]: second event starts at",
        id="precedence",
    ),
    pytest.param(
        model_field(
            precedence_rules=(PrecedenceRule(0, 1, second_is_delivery=True, offset_duration_s=1e5),)
        ),
        "precedence_rules[0]: second event starts at",
        id="precedence-offset",
    ),
    pytest.param(
        shipment(0, pickup_to_delivery_time_limit_s=1.0),
        "more than 1.0 s (pickup_to_delivery_time_limit)",
        id="pickup-to-delivery-time-limit",
    ),
    pytest.param(
        shipment(0, pickup_to_delivery_relative_detour_limit=0.0),
        "(pickup_to_delivery_relative_detour_limit)",
        id="relative-detour-limit",
    ),
    pytest.param(
        shipment(0, pickup_to_delivery_absolute_detour_limit_s=0.0),
        "(pickup_to_delivery_absolute_detour_limit)",
        id="absolute-detour-limit",
    ),
    pytest.param(
        vehicle(0, route_duration_soft_max_s=0.0, route_duration_cost_per_hour_after_soft_max=1.0),
        "costs['model.vehicles.route_duration_limit.cost_per_hour_after_soft_max'] is 0.0",
        id="soft-duration",
    ),
    pytest.param(
        vehicle(
            0, route_distance_soft_max_m=0.0, route_distance_cost_per_kilometer_above_soft_max=1.0
        ),
        "costs['model.vehicles.route_distance_limit.cost_per_kilometer_above_soft_max'] is 0.0",
        id="soft-distance",
    ),
    pytest.param(
        vehicle(0, soft_load_limits={"weight": SoftLoadLimit(0, 1.0)}),
        "costs['model.vehicles.load_limits.cost_per_unit_above_soft_max'] is 0.0, expected 5.0",
        id="soft-load",
    ),
    pytest.param(
        model_field(global_duration_cost_per_hour=1.0),
        "costs['model.global_duration_cost_per_hour'] is 0",
        id="global-duration-cost",
    ),
]
"""Each breaks one rule of issue 15 on the main solution; the checker must say so."""
