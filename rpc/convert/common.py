"""Shared pieces of the ``routeopt.v1`` ⇄ engine conversion: the well-known types (Timestamp,
Duration, LatLng) and :class:`FieldConverter`, which converts fields while collecting every
proto-level problem as a :class:`~engine.errors.FieldViolation` (paths relative to the request).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.type import latlng_pb2

from engine.errors import FieldViolation
from engine.model import LatLng

__all__ = [
    "FieldConverter",
    "duration_to_seconds",
    "each",
    "seconds_to_duration",
    "seconds_to_timestamp",
    "timestamp_to_seconds",
]

# Ranges of the well-known types (google/protobuf/timestamp.proto and duration.proto).
_MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS = 315_576_000_000  # about 10 000 years
_NANOS_PER_SECOND = 1_000_000_000

_T = TypeVar("_T")
_M = TypeVar("_M")


def timestamp_to_seconds(ts: timestamp_pb2.Timestamp) -> float:
    """Seconds since the Unix epoch (no range check)."""
    return ts.seconds + ts.nanos / _NANOS_PER_SECOND


def duration_to_seconds(d: duration_pb2.Duration) -> float:
    """Seconds (no range check)."""
    return d.seconds + d.nanos / _NANOS_PER_SECOND


def _split_seconds(value: float) -> tuple[int, int]:
    """``value`` as (whole seconds rounded down, nanoseconds in [0, 1e9))."""
    seconds = math.floor(value)
    nanos = round((value - seconds) * _NANOS_PER_SECOND)  # value - floor(value) is exact
    if nanos >= _NANOS_PER_SECOND:
        seconds, nanos = seconds + 1, nanos - _NANOS_PER_SECOND
    return seconds, nanos


def seconds_to_timestamp(value: float) -> timestamp_pb2.Timestamp:
    """Epoch seconds as a Timestamp, to the nearest nanosecond."""
    seconds, nanos = _split_seconds(value)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def seconds_to_duration(value: float) -> duration_pb2.Duration:
    """Seconds as a Duration, to the nearest nanosecond (seconds and nanos share their sign)."""
    seconds, nanos = _split_seconds(value)
    if seconds < 0 and nanos > 0:
        seconds, nanos = seconds + 1, nanos - _NANOS_PER_SECOND
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def each(items: Sequence[_M], path: str, convert: Callable[[_M, str], _T]) -> tuple[_T, ...]:
    """``convert(item, "path[i]")`` for every item of a repeated field, as a tuple."""
    return tuple(convert(item, f"{path}[{i}]") for i, item in enumerate(items))


class FieldConverter:
    """Converts scalar and well-known-type fields while collecting proto-level violations.

    Every method returns a usable value: an invalid one is recorded in :attr:`violations` and
    replaced by a neutral one (the nearest valid time, 0, the default), so that conversion goes
    on and every problem of a request is found at once. Subclasses convert message families
    (:class:`rpc.convert.model.ModelConverter`).
    """

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, path: str, description: str) -> None:
        """Record a violation at ``path``."""
        self.violations.append(FieldViolation(path, description))

    # -- scalars and well-known types --

    def number(self, value: float, path: str, default: float) -> float:
        """A finite double, or ``default`` after recording a violation."""
        if math.isfinite(value):
            return value
        self.add(path, f"must be a finite number, got {value}")
        return default

    def timestamp(self, ts: timestamp_pb2.Timestamp, path: str) -> float:
        """Epoch seconds; an invalid Timestamp is recorded and replaced by the nearest valid one."""
        seconds, nanos = ts.seconds, ts.nanos
        if not _MIN_TIMESTAMP_SECONDS <= seconds <= _MAX_TIMESTAMP_SECONDS:
            self.add(
                path,
                "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z "
                f"(seconds {seconds})",
            )
            seconds = min(max(seconds, _MIN_TIMESTAMP_SECONDS), _MAX_TIMESTAMP_SECONDS)
        if not 0 <= nanos < _NANOS_PER_SECOND:
            self.add(path, f"nanos must be in [0, 999999999], got {nanos}")
            nanos = min(max(nanos, 0), _NANOS_PER_SECOND - 1)
        return seconds + nanos / _NANOS_PER_SECOND

    def opt_timestamp(self, parent: Message, name: str, path: str) -> float | None:
        if not parent.HasField(name):
            return None
        ts: timestamp_pb2.Timestamp = getattr(parent, name)
        return self.timestamp(ts, f"{path}.{name}")

    def duration(self, d: duration_pb2.Duration, path: str) -> float:
        """Non-negative seconds, or 0 after recording a violation."""
        if not -_MAX_DURATION_SECONDS <= d.seconds <= _MAX_DURATION_SECONDS:
            self.add(path, f"seconds must be within ±{_MAX_DURATION_SECONDS}, got {d.seconds}")
            return 0.0
        if not -_NANOS_PER_SECOND < d.nanos < _NANOS_PER_SECOND:
            self.add(path, f"nanos must be in [-999999999, 999999999], got {d.nanos}")
            return 0.0
        if (d.seconds > 0 and d.nanos < 0) or (d.seconds < 0 and d.nanos > 0):
            self.add(path, "seconds and nanos must have the same sign")
            return 0.0
        value = duration_to_seconds(d)
        if value < 0:
            self.add(path, f"must not be negative, got {value:g}s")
            return 0.0
        return value

    def latlng(self, p: latlng_pb2.LatLng, path: str) -> LatLng:
        lat, lng = p.latitude, p.longitude
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            self.add(f"{path}.latitude", f"must be in [-90, 90], got {lat}")
            lat = 0.0
        if not (math.isfinite(lng) and -180 <= lng <= 180):
            self.add(f"{path}.longitude", f"must be in [-180, 180], got {lng}")
            lng = 0.0
        return LatLng(latitude=lat, longitude=lng)

    def opt_latlng(self, parent: Message, name: str, path: str) -> LatLng | None:
        if not parent.HasField(name):
            return None
        p: latlng_pb2.LatLng = getattr(parent, name)
        return self.latlng(p, f"{path}.{name}")

    def opt_number(self, parent: Message, name: str, path: str) -> float | None:
        """A proto3 ``optional double``: None when unset."""
        if not parent.HasField(name):
            return None
        value: float = getattr(parent, name)
        return self.number(value, f"{path}.{name}", 0.0)
