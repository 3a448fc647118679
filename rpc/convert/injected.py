"""Injected solutions of a request (Google's ``injected_first_solution_routes``,
``injected_solution_constraint``, ``refresh_details_routes``,
``interpret_injected_solutions_using_labels``) → the engine's
:class:`~engine.model.InjectedRoute` and :class:`~engine.model.InjectedSolutionConstraint`
(fields of :class:`~engine.model.ShipmentModel`, checked by :mod:`engine.injected`).

Of a ``ShipmentRoute`` only what says what the route does is read: ``vehicle_index`` /
``vehicle_label``, ``vehicle_start_time``, ``vehicle_end_time``, ``breaks`` and, per visit,
``shipment_index`` / ``shipment_label``, ``is_pickup``, ``visit_request_index``,
``start_time``; the rest of a previous response (transitions, metrics, costs) is ignored.
"""

from __future__ import annotations

from typing import Any

from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    InjectedSkippedShipment,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
)
from rpc.convert.common import FieldConverter, each
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["injected_fields"]

_LEVELS = {level.value for level in RelaxationLevel}


def injected_fields(conv: FieldConverter, request: pb.OptimizeToursRequest) -> dict[str, Any]:
    """The engine model's injected-solution fields of ``request`` (problems recorded in
    ``conv``, paths relative to the request)."""
    out: dict[str, Any] = {
        "interpret_injected_solutions_using_labels": (
            request.interpret_injected_solutions_using_labels
        )
    }
    if request.injected_first_solution_routes:
        out["injected_first_solution_routes"] = each(
            request.injected_first_solution_routes,
            "injected_first_solution_routes",
            lambda r, p: _route(conv, r, p),
        )
    if request.refresh_details_routes:
        out["refresh_details_routes"] = each(
            request.refresh_details_routes,
            "refresh_details_routes",
            lambda r, p: _route(conv, r, p),
        )
    if request.HasField("injected_solution_constraint"):
        c = request.injected_solution_constraint
        path = "injected_solution_constraint"
        out["injected_solution_constraint"] = InjectedSolutionConstraint(
            routes=each(c.routes, f"{path}.routes", lambda r, p: _route(conv, r, p)),
            skipped_shipments=tuple(
                InjectedSkippedShipment(index=s.index, label=s.label) for s in c.skipped_shipments
            ),
            constraint_relaxations=each(
                c.constraint_relaxations,
                f"{path}.constraint_relaxations",
                lambda g, p: _group(conv, g, p),
            ),
        )
    return out


def _route(conv: FieldConverter, r: pb.ShipmentRoute, path: str) -> InjectedRoute:
    return InjectedRoute(
        vehicle_index=r.vehicle_index,
        vehicle_label=r.vehicle_label,
        vehicle_start_time=conv.opt_timestamp(r, "vehicle_start_time", path),
        vehicle_end_time=conv.opt_timestamp(r, "vehicle_end_time", path),
        visits=each(r.visits, f"{path}.visits", lambda v, p: _visit(conv, v, p)),
        breaks=tuple(
            (
                conv.timestamp(b.start_time, f"{path}.breaks[{k}].start_time"),
                conv.duration(b.duration, f"{path}.breaks[{k}].duration"),
            )
            for k, b in enumerate(r.breaks)
        ),
    )


def _visit(conv: FieldConverter, v: pb.ShipmentRoute.Visit, path: str) -> InjectedVisit:
    return InjectedVisit(
        shipment_index=v.shipment_index,
        is_pickup=v.is_pickup,
        visit_request_index=v.visit_request_index,
        start_time=conv.opt_timestamp(v, "start_time", path),
        shipment_label=v.shipment_label,
    )


def _group(
    conv: FieldConverter,
    g: pb.InjectedSolutionConstraint.ConstraintRelaxation,
    path: str,
) -> ConstraintRelaxation:
    return ConstraintRelaxation(
        relaxations=each(
            g.relaxations, f"{path}.relaxations", lambda r, p: _relaxation(conv, r, p)
        ),
        vehicle_indices=tuple(g.vehicle_indices),
    )


def _relaxation(
    conv: FieldConverter,
    r: pb.InjectedSolutionConstraint.ConstraintRelaxation.Relaxation,
    path: str,
) -> Relaxation:
    level = RelaxationLevel.LEVEL_UNSPECIFIED
    if r.level in _LEVELS:
        level = RelaxationLevel(r.level)
    else:
        conv.add(f"{path}.level", f"unknown value {r.level}")
    return Relaxation(
        level=level,
        threshold_time=conv.opt_timestamp(r, "threshold_time", path),
        threshold_visit_count=r.threshold_visit_count,
    )
