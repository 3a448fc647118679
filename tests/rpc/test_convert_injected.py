"""rpc.convert.injected: the injected solutions of a request → the engine model (what routes
say, relaxations), their violations at request paths (not under ``model``), their validation
code."""

from __future__ import annotations

import pytest

from engine.errors import InvalidModelError
from engine.model import (
    InjectedRoute,
    InjectedSkippedShipment,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
)
from rpc.convert import violations_to_validation_errors
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import T0, base_request, convert, dur, ts

Relax = pb.InjectedSolutionConstraint.ConstraintRelaxation.Relaxation


def _route() -> pb.ShipmentRoute:
    return pb.ShipmentRoute(
        vehicle_index=0,
        vehicle_label="van",
        vehicle_start_time=ts(T0),
        vehicle_end_time=ts(T0 + 3000),
        visits=[
            pb.ShipmentRoute.Visit(
                shipment_index=0,
                visit_request_index=0,
                start_time=ts(T0 + 600, 500_000_000),
                shipment_label="s",
            )
        ],
        breaks=[pb.ShipmentRoute.Break(start_time=ts(T0 + 1200), duration=dur(900))],
        route_total_cost=12.0,  # a previous response's details: ignored
        transitions=[pb.ShipmentRoute.Transition(travel_distance_meters=5.0)],
    )


def test_injected_fields_convert() -> None:
    request = base_request()
    request.interpret_injected_solutions_using_labels = True
    request.injected_solution_constraint.routes.append(_route())
    request.injected_solution_constraint.skipped_shipments.add(index=3, label="gone")
    group = request.injected_solution_constraint.constraint_relaxations.add(vehicle_indices=[0])
    group.relaxations.add(level=Relax.RELAX_VISIT_TIMES_AFTER_THRESHOLD, threshold_visit_count=2)
    group.relaxations.add(level=Relax.RELAX_ALL_AFTER_THRESHOLD, threshold_time=ts(T0 + 900))
    model, _ = convert(request)
    constraint = model.injected_solution_constraint
    assert constraint is not None
    assert model.interpret_injected_solutions_using_labels
    assert constraint.routes == (
        InjectedRoute(
            vehicle_index=0,
            visits=(InjectedVisit(0, False, 0, T0 + 600.5, "s"),),
            vehicle_start_time=float(T0),
            vehicle_end_time=float(T0 + 3000),
            vehicle_label="van",
            breaks=((float(T0 + 1200), 900.0),),
        ),
    )
    assert constraint.skipped_shipments == (InjectedSkippedShipment(3, "gone"),)
    (converted,) = constraint.constraint_relaxations
    assert converted.vehicle_indices == (0,)
    assert converted.relaxations == (
        Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD, None, 2),
        Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, float(T0 + 900), 0),
    )
    first = base_request()
    first.injected_first_solution_routes.append(_route())
    assert convert(first)[0].injected_first_solution_routes[0].vehicle_label == "van"
    refresh = base_request()
    refresh.refresh_details_routes.append(_route())
    assert convert(refresh)[0].refresh_details_routes[0].visits[0].shipment_index == 0


def _violations(request: pb.OptimizeToursRequest) -> dict[str, str]:
    with pytest.raises(InvalidModelError) as info:
        convert(request)
    return {v.field: v.description for v in info.value.violations}


def test_violations_have_request_paths() -> None:
    request = base_request()
    route = request.injected_solution_constraint.routes.add()
    route.CopyFrom(_route())
    route.vehicle_index = 5
    route.visits[0].start_time.nanos = -1
    relaxation = request.injected_solution_constraint.constraint_relaxations.add()
    relaxation.relaxations.add(level=7)  # type: ignore[arg-type]
    found = _violations(request)
    assert "injected_solution_constraint.routes[0].vehicle_index" in found
    assert "injected_solution_constraint.routes[0].visits[0].start_time" in found
    assert found["injected_solution_constraint.constraint_relaxations[0].relaxations[0].level"] == (
        "unknown value 7"
    )
    assert not any(path.startswith("model.") for path in found)
    labels = base_request()
    labels.interpret_injected_solutions_using_labels = True
    labels.model.shipments.add().CopyFrom(labels.model.shipments[0])
    labels.injected_first_solution_routes.append(_route())
    assert "model.shipments[1].label" in _violations(labels)


def test_validation_code_of_injected_solutions() -> None:
    request = base_request()
    request.injected_first_solution_routes.add(vehicle_index=9)
    request.solving_mode = pb.OptimizeToursRequest.VALIDATE_ONLY
    with pytest.raises(InvalidModelError) as info:
        convert(request)
    (error,) = violations_to_validation_errors(info.value.violations)
    assert error.code == 120
    assert error.display_name == "INJECTED_SOLUTION_INVALID"
    assert error.field_path == "injected_first_solution_routes[0].vehicle_index"
    assert error.fields[0].name == "injected_first_solution_routes"
    assert error.fields[0].sub_field.name == "vehicle_index"
