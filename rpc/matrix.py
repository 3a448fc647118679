"""ComputeMatrix: road travel durations and distances between points (like OSRM's table)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from engine.errors import FieldViolation, InvalidModelError
from engine.roads import RoadContext
from geodata.matrix import max_threads
from rpc.convert import seconds_to_duration
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["MAX_MATRIX_CELLS", "ThreadShare", "compute_matrix"]

MAX_MATRIX_CELLS = 4_000_000
"""Largest sources × destinations product answered in one call."""


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
    for k, (lat, lon) in enumerate(coords):
        if not (np.isfinite(lat) and -90 <= lat <= 90):
            problems.append(FieldViolation(f"{name}[{k}].latitude", "must be in [-90, 90]"))
        if not (np.isfinite(lon) and -180 <= lon <= 180):
            problems.append(FieldViolation(f"{name}[{k}].longitude", "must be in [-180, 180]"))
    if len(coords) == 0:
        problems.append(FieldViolation(name, "must not be empty"))
    return coords


def compute_matrix(
    request: pb.ComputeMatrixRequest, roads: RoadContext
) -> pb.ComputeMatrixResponse:
    """Answer ``request`` on ``roads``; :class:`InvalidModelError` lists every bad field (bad
    coordinates, points farther from the road than the server's limit, too many cells)."""
    problems: list[FieldViolation] = []
    src = _coordinates(request.sources, "sources", problems)
    dst = _coordinates(request.destinations, "destinations", problems)
    if len(src) * len(dst) > MAX_MATRIX_CELLS:
        problems.append(
            FieldViolation(
                "destinations",
                f"{len(src)} × {len(dst)} cells exceed the limit of {MAX_MATRIX_CELLS:,}",
            )
        )
    if problems:
        raise InvalidModelError(problems)
    snapped_src = roads.snap(src[:, 0], src[:, 1])
    snapped_dst = roads.snap(dst[:, 0], dst[:, 1])
    for name, snaps in (("sources", snapped_src), ("destinations", snapped_dst)):
        paths = [f"{name}[{k}]" for k in range(len(snaps))]
        problems.extend(roads.off_road_violations(paths, snaps, np.arange(len(snaps))))
    if problems:
        raise InvalidModelError(problems)
    with _SHARE.share() as threads:
        result = roads.matrix(snapped_src, snapped_dst, threads=threads)
    response = pb.ComputeMatrixResponse()
    reachable = np.isfinite(result.durations_s)
    for i in range(len(src)):
        row = response.rows.add()
        for j in range(len(dst)):
            ok = bool(reachable[i, j])
            row.durations.append(seconds_to_duration(result.durations_s[i, j] if ok else 0.0))
            row.meters.append(float(result.distances_m[i, j]) if ok else 0.0)
            row.reachable.append(ok)
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
