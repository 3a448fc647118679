"""Engine solutions → OptimizeToursResponse messages: :func:`solution_to_response`."""

from __future__ import annotations

from engine.solution import (
    AggregatedMetrics,
    Route,
    SkippedShipment,
    SkipReasonCode,
    Solution,
    Transition,
    VehicleFullness,
    Visit,
)
from engine.solve import PRECHECK_BACKEND
from rpc.convert.common import seconds_to_duration, seconds_to_timestamp
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["solution_to_response"]

_SEARCH_SKIPS = frozenset(
    {SkipReasonCode.NOT_WORTH_ITS_PENALTY_OR_NO_ROOM, SkipReasonCode.ZERO_PENALTY_COST}
)
"""Reasons that the search (not the pre-check) gives: no proof of infeasibility."""


def solution_to_response(solution: Solution, *, request_label: str) -> pb.OptimizeToursResponse:
    """The OptimizeTours response for an engine solution."""
    response = pb.OptimizeToursResponse(request_label=request_label)
    if solution.backend == PRECHECK_BACKEND:  # DETECT_SOME_INFEASIBLE_SHIPMENTS
        for skipped in solution.skipped_shipments:
            if any(r.code not in _SEARCH_SKIPS for r in skipped.reasons):
                _fill_skipped(response.skipped_shipments.add(), skipped)
        return response
    for route in solution.routes:
        _fill_route(response.routes.add(), route)
    for skipped in solution.skipped_shipments:
        _fill_skipped(response.skipped_shipments.add(), skipped)
    metrics = solution.metrics
    out = response.metrics
    _fill_aggregated(out.aggregated_route_metrics, metrics.aggregated_route_metrics)
    out.skipped_mandatory_shipment_count = metrics.skipped_mandatory_shipment_count
    out.used_vehicle_count = metrics.used_vehicle_count
    if metrics.earliest_vehicle_start_time is not None:
        out.earliest_vehicle_start_time.CopyFrom(
            seconds_to_timestamp(metrics.earliest_vehicle_start_time)
        )
    if metrics.latest_vehicle_end_time is not None:
        out.latest_vehicle_end_time.CopyFrom(seconds_to_timestamp(metrics.latest_vehicle_end_time))
    out.costs.update(metrics.costs)
    out.total_cost = metrics.total_cost
    info = response.solve_info
    info.status = pb.SolveInfo.Status.Value(solution.status.name)
    info.backend = solution.backend
    info.backend_reason = solution.backend_reason
    info.solver_processes = solution.solver_processes
    info.matrix_source = solution.matrix_source
    info.matrix_duration.CopyFrom(seconds_to_duration(solution.matrix_time_s))
    info.solve_duration.CopyFrom(seconds_to_duration(solution.solve_time_s))
    info.solver_time_limit.CopyFrom(seconds_to_duration(solution.solver_time_limit_s))
    return response


def _fill_route(out: pb.ShipmentRoute, route: Route) -> None:
    out.vehicle_index = route.vehicle_index
    out.vehicle_label = route.vehicle_label
    if not route.is_used:
        return
    if route.vehicle_start_time is not None:
        out.vehicle_start_time.CopyFrom(seconds_to_timestamp(route.vehicle_start_time))
    if route.vehicle_end_time is not None:
        out.vehicle_end_time.CopyFrom(seconds_to_timestamp(route.vehicle_end_time))
    for visit in route.visits:
        _fill_visit(out.visits.add(), visit)
    for transition in route.transitions:
        _fill_transition(out.transitions.add(), transition)
    if route.polyline:
        out.route_polyline.points = route.polyline
    for b in route.breaks:
        out.breaks.add(
            start_time=seconds_to_timestamp(b.start_time),
            duration=seconds_to_duration(b.duration_s),
        )
    _fill_aggregated(out.metrics, route.metrics)
    out.route_costs.update(route.route_costs)
    out.route_total_cost = route.route_total_cost
    _fill_fullness(out.vehicle_fullness, route.vehicle_fullness)


def _fill_fullness(out: pb.VehicleFullness, fullness: VehicleFullness) -> None:
    """The ratios that are set (issue 15); an unset ratio stays absent, as in Google's."""
    for name in (
        "max_fullness",
        "distance",
        "travel_duration",
        "active_duration",
        "max_load",
        "active_span",
    ):
        value = getattr(fullness, name)
        if value is not None:
            setattr(out, name, value)


def _fill_visit(out: pb.ShipmentRoute.Visit, visit: Visit) -> None:
    out.shipment_index = visit.shipment_index
    out.is_pickup = visit.is_pickup
    out.visit_request_index = visit.visit_request_index
    out.start_time.CopyFrom(seconds_to_timestamp(visit.start_time))
    for name, amount in visit.load_demands.items():
        out.load_demands[name].amount = amount
    out.shipment_label = visit.shipment_label
    out.visit_label = visit.visit_label
    out.detour.CopyFrom(seconds_to_duration(visit.detour_s))


def _fill_transition(out: pb.ShipmentRoute.Transition, t: Transition) -> None:
    out.travel_duration.CopyFrom(seconds_to_duration(t.travel_duration_s))
    out.travel_distance_meters = t.travel_distance_m
    out.wait_duration.CopyFrom(seconds_to_duration(t.wait_duration_s))
    out.delay_duration.CopyFrom(seconds_to_duration(t.delay_duration_s))  # issue 15
    out.break_duration.CopyFrom(seconds_to_duration(t.break_duration_s))
    out.total_duration.CopyFrom(seconds_to_duration(t.total_duration_s))
    out.start_time.CopyFrom(seconds_to_timestamp(t.start_time))
    for name, amount in t.vehicle_loads.items():
        out.vehicle_loads[name].amount = amount
    if t.polyline:
        out.route_polyline.points = t.polyline


def _fill_aggregated(out: pb.AggregatedMetrics, m: AggregatedMetrics) -> None:
    out.performed_shipment_count = m.performed_shipment_count
    out.performed_mandatory_shipment_count = m.performed_mandatory_shipment_count
    out.performed_shipment_penalty_cost_sum = m.performed_shipment_penalty_cost_sum
    out.travel_duration.CopyFrom(seconds_to_duration(m.travel_duration_s))
    out.wait_duration.CopyFrom(seconds_to_duration(m.wait_duration_s))
    # The engine's delay is lateness after soft end times: routeopt's late_duration. Google's
    # delay_duration is the transitions' delays (transition_attributes, issue 15).
    out.late_duration.CopyFrom(seconds_to_duration(m.delay_duration_s))
    out.delay_duration.CopyFrom(seconds_to_duration(m.transition_delay_duration_s))
    out.break_duration.CopyFrom(seconds_to_duration(m.break_duration_s))
    out.visit_duration.CopyFrom(seconds_to_duration(m.visit_duration_s))
    out.total_duration.CopyFrom(seconds_to_duration(m.total_duration_s))
    out.travel_distance_meters = m.travel_distance_m
    for name, amount in m.max_loads.items():
        out.max_loads[name].amount = amount


def _fill_skipped(out: pb.SkippedShipment, skipped: SkippedShipment) -> None:
    out.index = skipped.index
    out.label = skipped.label
    if skipped.penalty_cost is not None:
        out.penalty_cost = skipped.penalty_cost
    for reason in skipped.reasons:
        r = out.reasons.add(
            code=pb.SkippedShipment.Reason.Code.Value(reason.code.name),
            example_exceeded_capacity_type=reason.example_exceeded_capacity_type,
        )
        if reason.example_vehicle_index is not None:
            r.example_vehicle_index = reason.example_vehicle_index
