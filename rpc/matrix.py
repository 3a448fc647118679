"""ComputeMatrix: road travel durations and distances between points (like OSRM's table)."""

from __future__ import annotations

import numpy as np

from engine.errors import FieldViolation, InvalidModelError
from engine.roads import RoadContext
from rpc.convert import seconds_to_duration
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["MAX_MATRIX_CELLS", "compute_matrix"]

MAX_MATRIX_CELLS = 4_000_000
"""Largest sources × destinations product answered in one call."""


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
    result = roads.matrix(snapped_src, snapped_dst, threads=None)
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
