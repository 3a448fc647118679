"""rpc.convert.loads: the load rules of Google's API (issue 15:
``load_limits[type].start_load_interval``, ``end_load_interval`` and the load-dependent costs
``cost_per_kilometer`` / ``cost_per_traveled_hour``) converted to the engine's
model, bad values reported with Google's field paths and validation codes."""

from __future__ import annotations

import pytest

from engine.errors import InvalidModelError
from engine.model import LoadCost, LoadInterval, UnloadingPolicy
from rpc.convert.request import validation_code
from rpc.google.unknown import unhonoured_fields
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import base_request, convert

V0 = "model.vehicles[0]"


def test_unset_intervals_are_empty() -> None:
    model, _ = convert(base_request())
    assert model.vehicles[0].start_load_intervals == {}
    assert model.vehicles[0].end_load_intervals == {}


def test_intervals_are_converted_per_load_type() -> None:
    request = base_request()
    limits = request.model.vehicles[0].load_limits
    limits["kg"].start_load_interval.max = 7
    limits["kg"].end_load_interval.SetInParent()  # set, all defaults: [0, unrestricted]
    limits["l"].max_load = 30
    limits["l"].end_load_interval.max = 0
    assert unhonoured_fields(request) == []
    model, _ = convert(request)
    v = model.vehicles[0]
    assert v.start_load_intervals == {"kg": LoadInterval(0, 7)}
    assert v.end_load_intervals == {"kg": LoadInterval(0, None), "l": LoadInterval(0, 0)}
    assert v.load_limits == {"kg": 10, "l": 30}  # base_request: 10 kg


def test_bad_intervals_name_googles_fields_with_the_load_code() -> None:
    request = base_request()
    limits = request.model.vehicles[0].load_limits
    limits["kg"].start_load_interval.min = 4
    limits["kg"].start_load_interval.max = 3
    limits["kg"].end_load_interval.max = -2
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        f"{V0}.load_limits[kg].start_load_interval.min",
        f"{V0}.load_limits[kg].end_load_interval.max",
    }
    for field in fields:
        assert validation_code(field, "")[1] == "LOAD_INVALID"


# -- load-dependent costs ----------------------------------------------------------------------


def test_load_costs_are_converted_per_load_type() -> None:
    request = base_request()
    limits = request.model.vehicles[0].load_limits
    limits["kg"].cost_per_kilometer.load_threshold = 15
    limits["kg"].cost_per_kilometer.cost_per_unit_below_threshold = 2.0
    limits["kg"].cost_per_kilometer.cost_per_unit_above_threshold = 10.0
    limits["l"].cost_per_traveled_hour.cost_per_unit_above_threshold = 0.5
    assert unhonoured_fields(request) == []
    model, _ = convert(request)
    v = model.vehicles[0]
    assert v.load_costs_per_kilometer == {"kg": LoadCost(15, 2.0, 10.0)}
    assert v.load_costs_per_traveled_hour == {"l": LoadCost(0, 0.0, 0.5)}
    assert v.load_limits == {"kg": 10}  # a LoadLimit with costs only sets no maximum


def test_bad_load_costs_name_googles_fields_with_their_codes() -> None:
    request = base_request()
    limits = request.model.vehicles[0].load_limits
    limits["kg"].cost_per_kilometer.load_threshold = -1
    limits["kg"].cost_per_traveled_hour.cost_per_unit_below_threshold = -2.0
    limits["kg"].cost_per_traveled_hour.cost_per_unit_above_threshold = float("nan")
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    codes = {v.field: validation_code(v.field, "")[1] for v in caught.value.violations}
    path = f"{V0}.load_limits[kg]"
    assert codes == {
        f"{path}.cost_per_kilometer.load_threshold": "LOAD_INVALID",
        f"{path}.cost_per_traveled_hour.cost_per_unit_below_threshold": "COST_INVALID",
        f"{path}.cost_per_traveled_hour.cost_per_unit_above_threshold": "COST_INVALID",
    }


# -- visit types -------------------------------------------------------------------------------


def test_visit_types_and_extra_durations_are_converted() -> None:
    request = base_request()
    request.model.shipments[0].deliveries[0].visit_types.extend(["stairs", "fragile"])
    extras = request.model.vehicles[0].extra_visit_duration_for_visit_type
    extras["stairs"].seconds = 600
    extras["fragile"].seconds = 90
    extras["fragile"].nanos = 500_000_000
    assert unhonoured_fields(request) == []
    model, _ = convert(request)
    assert model.shipments[0].deliveries[0].visit_types == ("stairs", "fragile")
    assert model.vehicles[0].extra_visit_duration_for_visit_type == {
        "fragile": 90.5,
        "stairs": 600.0,
    }


def test_bad_visit_types_name_googles_fields() -> None:
    request = base_request()
    request.model.shipments[0].deliveries[0].visit_types.extend(["x", "x"])
    request.model.vehicles[0].extra_visit_duration_for_visit_type["x"].seconds = -5
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    fields = {v.field for v in caught.value.violations}
    assert "model.shipments[0].deliveries[0].visit_types" in fields
    assert any(f.startswith(f"{V0}.extra_visit_duration_for_visit_type[x]") for f in fields)
    assert validation_code(f"{V0}.extra_visit_duration_for_visit_type[x]", "")[1] == (
        "DURATION_INVALID"
    )


# -- unloading policy --------------------------------------------------------------------------


def test_unloading_policy_is_converted_and_an_unknown_value_named() -> None:
    request = base_request()
    request.model.vehicles[0].unloading_policy = pb.Vehicle.LAST_IN_FIRST_OUT
    model, _ = convert(request)
    assert model.vehicles[0].unloading_policy is UnloadingPolicy.LAST_IN_FIRST_OUT
    request.model.vehicles[0].unloading_policy = 7  # type: ignore[assignment]
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    assert {v.field for v in caught.value.violations} == {f"{V0}.unloading_policy"}
