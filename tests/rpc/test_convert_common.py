"""rpc.convert.common: engine seconds to protobuf Timestamp and Duration."""

from __future__ import annotations

import pytest

from rpc.convert import seconds_to_duration, seconds_to_timestamp
from tests.rpc.convert_helpers import dur, ts


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        (0.0, 0, 0),
        (1_700_000_000.25, 1_700_000_000, 250_000_000),
        (12.5, 12, 500_000_000),
        (0.001, 0, 1_000_000),
        (3.9999999999, 4, 0),
        (-1.5, -2, 500_000_000),
    ],
)
def test_seconds_to_timestamp(value: float, seconds: int, nanos: int) -> None:
    assert seconds_to_timestamp(value) == ts(seconds, nanos)


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        (0.0, 0, 0),
        (90.25, 90, 250_000_000),
        (0.000000001, 0, 1),
        (-1.5, -1, -500_000_000),
        (-0.25, 0, -250_000_000),
        (-2.0, -2, 0),
    ],
)
def test_seconds_to_duration(value: float, seconds: int, nanos: int) -> None:
    assert seconds_to_duration(value) == dur(seconds, nanos)
