"""ComputeMatrix: road travel durations and distances between points (like OSRM's table).

The matrix part of the response is encoded in bulk from the arrays (:func:`encode_rows`,
:func:`encode_packed`: protobuf wire bytes built with numpy, then parsed once by the protobuf
runtime) instead of a message per cell in Python, which cost four times the matrix itself at
1000 x 1000.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from engine.errors import FieldViolation, InvalidModelError
from engine.model import TRAVEL_MODE_PROFILES, TravelMode
from engine.roads import RoadContext
from geodata.matrix import max_threads
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["ThreadShare", "compute_matrix", "encode_packed", "encode_rows"]


class ThreadShare:
    """Shares the matrix kernels' threads among concurrent calls: a call that starts while
    ``k - 1`` others run gets ``max(1, total // k)`` threads, so K simultaneous calls do not
    start K × cores threads (which only adds switching on a busy server)."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"total must be at least 1, got {total}")
        self.total = total
        self._lock = threading.Lock()
        self._active = 0

    @contextmanager
    def share(self) -> Iterator[int]:
        """Threads for one call, held until the ``with`` block ends."""
        with self._lock:
            self._active += 1
            threads = max(1, self.total // self._active)
        try:
            yield threads
        finally:
            with self._lock:
                self._active -= 1


_SHARE = ThreadShare(max_threads())


def _coordinates(points: object, name: str, problems: list[FieldViolation]) -> np.ndarray:
    coords = np.array([(p.latitude, p.longitude) for p in points], dtype=np.float64)  # type: ignore[attr-defined]
    coords = coords.reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        bad_lat = ~(np.abs(coords[:, 0]) <= 90)  # NaN compares False: bad too
        bad_lon = ~(np.abs(coords[:, 1]) <= 180)
    for k in np.flatnonzero(bad_lat | bad_lon).tolist():
        if bad_lat[k]:
            problems.append(FieldViolation(f"{name}[{k}].latitude", "must be in [-90, 90]"))
        if bad_lon[k]:
            problems.append(FieldViolation(f"{name}[{k}].longitude", "must be in [-180, 180]"))
    if len(coords) == 0:
        problems.append(FieldViolation(name, "must not be empty"))
    return coords


def _profile_roads(request: pb.ComputeMatrixRequest, roads: RoadContext) -> RoadContext:
    """The roads of the request's ``travel_mode`` (unset: the server's default profile)."""
    try:
        mode = TravelMode(request.travel_mode)
    except ValueError:
        raise InvalidModelError(
            [FieldViolation("travel_mode", f"unknown value {request.travel_mode}")]
        ) from None
    name = TRAVEL_MODE_PROFILES[mode] or roads.spec.profile
    context = roads.for_profile(name)
    if context is None:
        raise InvalidModelError(
            [
                FieldViolation(
                    "travel_mode",
                    f"{mode.name} needs the {name!r} road profile, which this server does not "
                    f"serve (it serves: {', '.join(roads.profiles)})",
                )
            ]
        )
    return context


def compute_matrix(
    request: pb.ComputeMatrixRequest,
    roads: RoadContext,
    *,
    max_cells: int,
    limit_note: str = "on this server in this encoding "
    "(--limit compute_matrix_cells=N, and what fits --max-message-mb)",
) -> pb.ComputeMatrixResponse:
    """Answer ``request`` on ``roads``; :class:`InvalidModelError` lists every bad field (bad
    coordinates, points farther from the road than the server's limit). More than
    ``max_cells`` sources × destinations (:meth:`rpc.limits.Limits.compute_matrix_cap`: the
    limit, and what fits the message size) is refused first, before the points are read;
    ``limit_note`` says whose limit it is (:meth:`rpc.limits.Limits.compute_matrix_where`)."""
    cells = len(request.sources) * len(request.destinations)
    if cells > max_cells:
        raise InvalidModelError(
            [
                FieldViolation(
                    "destinations",
                    f"{len(request.sources):,} × {len(request.destinations):,} cells exceed "
                    f"the limit of {max_cells:,} {limit_note}",
                )
            ]
        )
    problems: list[FieldViolation] = []
    roads = _profile_roads(request, roads)
    src = _coordinates(request.sources, "sources", problems)
    dst = _coordinates(request.destinations, "destinations", problems)
    if problems:
        raise InvalidModelError(problems)
    snapped_src = roads.snap(src[:, 0], src[:, 1])
    # the same points both ways (a square matrix) are snapped once
    same = src.shape == dst.shape and np.array_equal(src, dst)
    snapped_dst = snapped_src if same else roads.snap(dst[:, 0], dst[:, 1])
    for name, snaps in (("sources", snapped_src), ("destinations", snapped_dst)):
        paths = [f"{name}[{k}]" for k in range(len(snaps))]
        problems.extend(roads.off_road_violations(paths, snaps, np.arange(len(snaps))))
    if problems:
        raise InvalidModelError(problems)
    with _SHARE.share() as threads:
        result = roads.matrix(snapped_src, snapped_dst, threads=threads)
    reachable = np.isfinite(result.durations_s)
    if request.encoding == pb.ComputeMatrixRequest.PACKED:
        response = pb.ComputeMatrixResponse()
        response.packed.MergeFromString(
            encode_packed(result.durations_s, result.distances_m, reachable)
        )
    else:
        response = pb.ComputeMatrixResponse.FromString(
            encode_rows(result.durations_s, result.distances_m, reachable)
        )
    for out, snaps in (
        (response.snapped_sources, snapped_src),
        (response.snapped_destinations, snapped_dst),
    ):
        for k in range(len(snaps)):
            loc = out.add(snap_distance_meters=float(snaps.distance_m[k]))
            loc.location.latitude = float(snaps.lat[k])
            loc.location.longitude = float(snaps.lon[k])
    response.unreachable_count = int((~reachable).sum())
    return response


_NANOS = 1_000_000_000


def _varint_sizes(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Bytes of the protobuf varint of each value."""
    sizes = np.ones(values.shape, dtype=np.int64)
    for k in range(1, 10):
        sizes += values >= np.uint64(1 << (7 * k))
    return sizes


def _put_varints(
    buf: npt.NDArray[np.uint8],
    at: npt.NDArray[np.int64],
    values: npt.NDArray[np.uint64],
    sizes: npt.NDArray[np.int64],
) -> None:
    """Write the varint of ``values[k]`` (``sizes[k]`` bytes) at ``buf[at[k]:]``."""
    for k in range(int(sizes.max(initial=0))):
        mask = sizes > k
        byte = (values[mask] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (sizes[mask] > k + 1).astype(np.uint64) << np.uint64(7)
        buf[at[mask] + k] = (byte | more).astype(np.uint8)


def _length_delimited(tag: int, payloads: list[npt.NDArray[np.uint8]]) -> bytes:
    """``payloads`` as consecutive length-delimited fields with key ``tag``."""
    parts: list[bytes] = []
    for body in payloads:
        parts.append(bytes([tag]) + _varint(body.shape[0]) + body.tobytes())
    return b"".join(parts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _duration_cells(
    seconds: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Every cell's ``durations`` entry (key, length, Duration), concatenated row-major, and the
    offset of each cell; the Duration is ``seconds_to_duration``'s (floor seconds, nanoseconds to
    the nearest, half to even)."""
    flat = seconds.ravel()
    whole = np.floor(flat)
    nanos = np.round((flat - whole) * _NANOS).astype(np.int64)
    carry = nanos >= _NANOS
    whole = whole.astype(np.int64) + carry
    nanos = np.where(carry, nanos - _NANOS, nanos)
    sec_u, nano_u = whole.astype(np.uint64), nanos.astype(np.uint64)
    sec_len = np.where(whole != 0, 1 + _varint_sizes(sec_u), 0)
    nano_len = np.where(nanos != 0, 1 + _varint_sizes(nano_u), 0)
    body = sec_len + nano_len  # at most 17 bytes: its length is one varint byte
    cell = 2 + body
    start = np.zeros(flat.shape[0] + 1, dtype=np.int64)
    np.cumsum(cell, out=start[1:])
    buf = np.empty(int(start[-1]), dtype=np.uint8)
    at = start[:-1]
    buf[at] = 0x0A  # Row.durations, field 1, length-delimited
    buf[at + 1] = body.astype(np.uint8)
    has_sec = whole != 0
    buf[at[has_sec] + 2] = 0x08  # Duration.seconds, field 1, varint
    _put_varints(buf, at[has_sec] + 3, sec_u[has_sec], sec_len[has_sec] - 1)
    has_nano = nanos != 0
    nano_at = at[has_nano] + 2 + sec_len[has_nano]
    buf[nano_at] = 0x10  # Duration.nanos, field 2, varint
    _put_varints(buf, nano_at + 1, nano_u[has_nano], nano_len[has_nano] - 1)
    return buf, start


def encode_rows(
    durations_s: npt.NDArray[np.float64],
    distances_m: npt.NDArray[np.float64],
    reachable: npt.NDArray[np.bool_],
) -> bytes:
    """The ``rows`` of a ComputeMatrixResponse as wire bytes (parse with ``FromString``).

    The same message as appending, cell by cell, ``seconds_to_duration(t)``, ``float(d)`` and
    the flag (zero time and distance where unreachable), built with a few numpy passes.
    """
    n_rows, n_cols = durations_s.shape
    seconds = np.where(reachable, durations_s, 0.0)
    meters = np.where(reachable, distances_m, 0.0).astype("<f8")
    cells, start = _duration_cells(seconds)
    flags = reachable.astype(np.uint8)
    rows: list[npt.NDArray[np.uint8]] = []
    meters_key = bytes([0x12]) + _varint(8 * n_cols)  # Row.meters, packed doubles
    flags_key = bytes([0x1A]) + _varint(n_cols)  # Row.reachable, packed bools
    tail_meters = np.frombuffer(meters_key, dtype=np.uint8)
    tail_flags = np.frombuffer(flags_key, dtype=np.uint8)
    for i in range(n_rows):
        parts = [cells[start[i * n_cols] : start[(i + 1) * n_cols]]]
        if n_cols:
            parts += [tail_meters, meters[i].view(np.uint8), tail_flags, flags[i]]
        rows.append(np.concatenate(parts))
    return _length_delimited(0x0A, rows)  # ComputeMatrixResponse.rows, field 1


def encode_packed(
    durations_s: npt.NDArray[np.float64],
    distances_m: npt.NDArray[np.float64],
    reachable: npt.NDArray[np.bool_],
) -> bytes:
    """A ComputeMatrixResponse.Packed as wire bytes: row-major doubles, -1 where unreachable."""
    n = durations_s.size
    head = np.frombuffer(bytes([0x0A]) + _varint(8 * n), dtype=np.uint8)  # Packed.seconds
    width = head.shape[0] + 8 * n
    buf = np.empty(2 * width, dtype=np.uint8)
    unreachable = ~reachable.ravel()
    for k, values in enumerate((durations_s, distances_m)):
        at = k * width
        buf[at : at + head.shape[0]] = head
        buf[at] = 0x0A if k == 0 else 0x12  # Packed.meters: field 2
        cells = buf[at + head.shape[0] : at + width].view("<f8")
        cells[:] = values.ravel()
        cells[unreachable] = -1.0
    return buf.tobytes()
