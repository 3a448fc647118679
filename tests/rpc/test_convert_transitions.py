"""rpc.convert.transitions: Google's ``ShipmentModel.transition_attributes`` (issue 15)
converted to the engine's model, bad values reported as INVALID_ARGUMENT material with Google's
field paths (``model.transition_attributes[k].…``) and validation codes."""

from __future__ import annotations

import pytest

from engine.errors import InvalidModelError
from engine.model import TransitionAttributes
from rpc.convert.request import validation_code
from rpc.google.unknown import unhonoured_fields
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import base_request, convert, dur

TA = "model.transition_attributes"


def test_no_attributes_by_default() -> None:
    model, _ = convert(base_request())
    assert model.transition_attributes == ()


def test_attributes_are_converted_with_googles_fields() -> None:
    request = base_request()
    request.model.transition_attributes.extend(
        [
            pb.TransitionAttributes(
                src_tag="frozen",
                excluded_dst_tag="frozen",
                cost=2.5,
                cost_per_kilometer=0.75,
                distance_limit=pb.DistanceLimit(
                    soft_max_meters=5000, cost_per_kilometer_above_soft_max=1.25
                ),
                delay=dur(600, 500_000_000),
            ),
            pb.TransitionAttributes(excluded_src_tag="a", dst_tag="b"),
        ]
    )
    assert unhonoured_fields(request) == []
    model, _ = convert(request)
    assert model.transition_attributes == (
        TransitionAttributes(
            src_tag="frozen",
            excluded_dst_tag="frozen",
            cost=2.5,
            cost_per_kilometer=0.75,
            distance_limit_soft_max_m=5000.0,
            distance_limit_cost_per_kilometer_above_soft_max=1.25,
            delay_s=600.5,
        ),
        TransitionAttributes(excluded_src_tag="a", dst_tag="b"),
    )


def test_bad_attributes_name_googles_fields() -> None:
    request = base_request()
    request.model.transition_attributes.extend(
        [
            pb.TransitionAttributes(src_tag="a", dst_tag="b"),  # valid
            pb.TransitionAttributes(src_tag="a", excluded_src_tag="b", dst_tag="c"),
            pb.TransitionAttributes(src_tag="a", dst_tag="c", delay=dur(-5)),
            pb.TransitionAttributes(src_tag="a", dst_tag="c", cost=-1.0),
            pb.TransitionAttributes(src_tag="a", dst_tag="c", cost_per_kilometer=float("inf")),
            pb.TransitionAttributes(
                src_tag="a", dst_tag="c", distance_limit=pb.DistanceLimit(max_meters=10)
            ),
            pb.TransitionAttributes(
                src_tag="a", dst_tag="c", distance_limit=pb.DistanceLimit(soft_max_meters=10)
            ),
            pb.TransitionAttributes(src_tag="a"),
            pb.TransitionAttributes(src_tag="a", dst_tag="c", delay=dur(1, -5)),
        ]
    )
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        f"{TA}[1].src_tag",
        f"{TA}[2].delay",
        f"{TA}[3].cost",
        f"{TA}[4].cost_per_kilometer",
        f"{TA}[5].distance_limit.max_meters",
        f"{TA}[6].distance_limit.cost_per_kilometer_above_soft_max",
        f"{TA}[7].dst_tag",
        f"{TA}[8].delay",
    }
    codes = {field: validation_code(field, "")[1] for field in fields}
    assert codes[f"{TA}[2].delay"] == "DURATION_INVALID"
    assert codes[f"{TA}[3].cost"] == "COST_INVALID"
    assert codes[f"{TA}[5].distance_limit.max_meters"] == "DISTANCE_LIMIT_INVALID"


def test_huge_numbers_are_bounded_before_scaling() -> None:
    # A delay within protobuf's Duration range but a cost per km that, on every leg at its
    # longest, overflows the solver's integers: refused by name, not clamped.
    request = base_request()
    request.model.transition_attributes.append(
        pb.TransitionAttributes(
            src_tag="a", excluded_dst_tag="b", cost_per_kilometer=1e9, delay=dur(315_576_000_000)
        )
    )
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    assert {v.field for v in caught.value.violations} == {f"{TA}[0].cost_per_kilometer"}
