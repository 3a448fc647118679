"""rpc.convert.hours: the driver-hours fields of Google's API (issue 15:
``break_rule.frequency_constraints``, ``travel_duration_limit``, the quadratic soft part of
``route_duration_limit``) converted to the engine's model, bad values reported with Google's
field paths and validation codes."""

from __future__ import annotations

import pytest

from engine.errors import InvalidModelError
from engine.model import DurationLimit, FrequencyConstraint
from rpc.convert.request import validation_code
from rpc.google.unknown import unhonoured_fields
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import base_request, convert, dur

V0 = "model.vehicles[0]"


def _violations(request: pb.OptimizeToursRequest) -> dict[str, str]:
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    return {v.field: v.description for v in caught.value.violations}


def test_unset_driver_hours_fields_are_the_engine_defaults() -> None:
    model, _ = convert(base_request())
    v = model.vehicles[0]
    assert v.break_frequency_constraints == ()
    assert v.travel_duration_limit is None
    assert v.route_duration_quadratic_soft_max_s is None
    assert v.route_duration_cost_per_square_hour_after_quadratic_soft_max is None


def test_driver_hours_fields_are_converted() -> None:
    request = base_request()
    v = request.model.vehicles[0]
    v.break_rule.frequency_constraints.add(
        min_break_duration=dur(2700), max_inter_break_duration=dur(16200)
    )
    v.route_duration_limit.max_duration.CopyFrom(dur(10 * 3600))
    v.route_duration_limit.quadratic_soft_max_duration.CopyFrom(dur(8 * 3600))
    v.route_duration_limit.cost_per_square_hour_after_quadratic_soft_max = 1000.0
    v.travel_duration_limit.max_duration.CopyFrom(dur(9 * 3600))
    v.travel_duration_limit.soft_max_duration.CopyFrom(dur(7 * 3600))
    v.travel_duration_limit.cost_per_hour_after_soft_max = 12.5
    v.travel_duration_limit.quadratic_soft_max_duration.CopyFrom(dur(8 * 3600, 500_000_000))
    v.travel_duration_limit.cost_per_square_hour_after_quadratic_soft_max = 700.0
    assert unhonoured_fields(request) == []
    model, _ = convert(request)
    vehicle = model.vehicles[0]
    assert vehicle.break_frequency_constraints == (FrequencyConstraint(2700.0, 16200.0),)
    assert vehicle.route_duration_quadratic_soft_max_s == 8 * 3600.0
    assert vehicle.route_duration_cost_per_square_hour_after_quadratic_soft_max == 1000.0
    assert vehicle.travel_duration_limit == DurationLimit(
        max_duration_s=9 * 3600.0,
        soft_max_duration_s=7 * 3600.0,
        cost_per_hour_after_soft_max=12.5,
        quadratic_soft_max_duration_s=8 * 3600.0 + 0.5,
        cost_per_square_hour_after_quadratic_soft_max=700.0,
    )


def test_an_empty_travel_duration_limit_limits_nothing() -> None:
    request = base_request()
    request.model.vehicles[0].travel_duration_limit.SetInParent()
    model, _ = convert(request)
    assert model.vehicles[0].travel_duration_limit == DurationLimit()


def test_bad_driver_hours_values_name_googles_fields() -> None:
    request = base_request()
    v = request.model.vehicles[0]
    v.break_rule.frequency_constraints.add(min_break_duration=dur(600))  # no max: required
    v.break_rule.frequency_constraints.add(
        min_break_duration=dur(-5), max_inter_break_duration=dur(0)
    )
    v.travel_duration_limit.soft_max_duration.CopyFrom(dur(3600))  # without its cost
    v.travel_duration_limit.cost_per_square_hour_after_quadratic_soft_max = float("nan")
    v.route_duration_limit.max_duration.CopyFrom(dur(3 * 86400))
    v.route_duration_limit.quadratic_soft_max_duration.CopyFrom(dur(3600))
    v.route_duration_limit.cost_per_square_hour_after_quadratic_soft_max = -1.0
    found = _violations(request)
    fc = f"{V0}.break_rule.frequency_constraints"
    travel = f"{V0}.travel_duration_limit"
    route = f"{V0}.route_duration_limit"
    assert found[f"{fc}[0].max_inter_break_duration"] == "is required"
    assert "must not be negative" in found[f"{fc}[1].min_break_duration"]
    assert "positive" in found[f"{fc}[1].max_inter_break_duration"]
    assert "go together" in found[f"{travel}.cost_per_hour_after_soft_max"]
    assert "finite" in found[f"{travel}.cost_per_square_hour_after_quadratic_soft_max"]
    assert "one day" in found[f"{route}.quadratic_soft_max_duration"]
    assert "non-negative" in found[f"{route}.cost_per_square_hour_after_quadratic_soft_max"]
    # a quadratic cost without its soft maximum
    assert "go together" in found[f"{travel}.quadratic_soft_max_duration"]
    assert len(found) == 8, found


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"{V0}.break_rule.frequency_constraints[0].min_break_duration", (80, "BREAK_INVALID")),
        (
            f"{V0}.break_rule.frequency_constraints[1].max_inter_break_duration",
            (80, "BREAK_INVALID"),
        ),
        (f"{V0}.travel_duration_limit.max_duration", (30, "DURATION_INVALID")),
        (f"{V0}.travel_duration_limit", (30, "DURATION_INVALID")),
        (f"{V0}.route_duration_limit.quadratic_soft_max_duration", (30, "DURATION_INVALID")),
        (
            f"{V0}.travel_duration_limit.cost_per_square_hour_after_quadratic_soft_max",
            (70, "COST_INVALID"),
        ),
    ],
)
def test_validation_codes_of_the_driver_hours_fields(path: str, code: tuple[int, str]) -> None:
    assert validation_code(path, "must be ...") == code
