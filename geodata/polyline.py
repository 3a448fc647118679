"""Google's encoded polyline algorithm format (precision 5 by default; 6 is what OSRM/Valhalla call
"polyline6").

Each coordinate is rounded to ``10**-precision`` degrees; the first point is stored as is and every
later one as the difference to the previous *rounded* point (so rounding errors never accumulate).
Each signed integer is zig-zag encoded, cut into 5-bit chunks (least significant first), every
chunk but the last is OR-ed with ``0x20`` and every chunk is offset by 63 into printable ASCII.
Latitude comes before longitude, as in Google's documentation:
https://developers.google.com/maps/documentation/utilities/polylinealgorithm

>>> encode_polyline([(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)])
'_p~iF~ps|U_ulLnnqC_mqNvxq`@'
>>> decode_polyline('_p~iF~ps|U_ulLnnqC_mqNvxq`@')
[(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_PRECISION", "PolylineError", "decode_polyline", "encode_polyline"]

DEFAULT_PRECISION = 5
"""Decimal digits kept per coordinate (Google's format; about 1.1 m of latitude)."""

_MAX_PRECISION = 10


class PolylineError(ValueError):
    """A polyline string that cannot be decoded, or coordinates that cannot be encoded."""


def _check_precision(precision: int) -> int:
    if isinstance(precision, bool) or not isinstance(precision, int | np.integer):
        raise PolylineError(f"precision must be an int, got {precision!r}")
    if not 0 <= precision <= _MAX_PRECISION:
        raise PolylineError(f"precision must lie in [0, {_MAX_PRECISION}], got {precision}")
    return int(precision)


def _round_half_up(value: float) -> int:
    """``Math.round`` of Google's reference implementation (halves go towards +infinity)."""
    return math.floor(value + 0.5)


def _encode_value(value: int, out: list[str]) -> None:
    value = ~(value << 1) if value < 0 else value << 1  # zig-zag
    while value >= 0x20:
        out.append(chr((0x20 | (value & 0x1F)) + 63))
        value >>= 5
    out.append(chr(value + 63))


def encode_polyline(
    coords: Iterable[Sequence[float]] | npt.ArrayLike, *, precision: int = DEFAULT_PRECISION
) -> str:
    """Encode ``(lat, lon)`` pairs in degrees as a polyline string.

    Parameters
    ----------
    coords : iterable of (lat, lon) pairs, or array of shape (k, 2)
        Points in order; an empty sequence encodes as ``""``.
    precision : int, keyword-only
        Decimal digits kept (5 for Google's format, 6 for "polyline6").

    Raises
    ------
    PolylineError
        (a ``ValueError``) when ``coords`` is not a ``(k, 2)`` array of finite numbers.
    """
    factor = 10 ** _check_precision(precision)
    try:
        arr = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PolylineError(f"coords must be (lat, lon) pairs of numbers: {exc}") from exc
    if arr.size == 0:
        return ""
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise PolylineError(f"coords must have shape (k, 2) of (lat, lon), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(arr), axis=1))[0])
        raise PolylineError(f"coords must be finite, coords[{bad}] = {arr[bad].tolist()}")
    out: list[str] = []
    prev_lat = prev_lon = 0
    for lat, lon in arr.tolist():
        ilat, ilon = _round_half_up(lat * factor), _round_half_up(lon * factor)
        _encode_value(ilat - prev_lat, out)
        _encode_value(ilon - prev_lon, out)
        prev_lat, prev_lon = ilat, ilon
    return "".join(out)


def decode_polyline(
    encoded: str, *, precision: int = DEFAULT_PRECISION
) -> list[tuple[float, float]]:
    """Decode a polyline string into ``(lat, lon)`` pairs in degrees.

    Raises
    ------
    PolylineError
        (a ``ValueError``) on a character outside ``'?'..'~'``, a value cut off at the end, or an
        odd number of values (a latitude without its longitude).
    """
    factor = 10 ** _check_precision(precision)
    if not isinstance(encoded, str):
        raise PolylineError(f"encoded polyline must be a str, got {type(encoded).__name__}")
    values: list[int] = []
    shift = result = 0
    for i, char in enumerate(encoded):
        chunk = ord(char) - 63
        if not 0 <= chunk < 64:
            raise PolylineError(
                f"invalid polyline character {char!r} at position {i} (allowed: '?' to '~')"
            )
        result |= (chunk & 0x1F) << shift
        if chunk & 0x20:
            shift += 5
            continue
        values.append(~(result >> 1) if result & 1 else result >> 1)
        shift = result = 0
    if shift:
        raise PolylineError("truncated polyline: the last value is cut off")
    if len(values) % 2:
        raise PolylineError("truncated polyline: a latitude without its longitude at the end")
    coords: list[tuple[float, float]] = []
    lat = lon = 0
    for k in range(0, len(values), 2):
        lat += values[k]
        lon += values[k + 1]
        coords.append((lat / factor, lon / factor))
    return coords
