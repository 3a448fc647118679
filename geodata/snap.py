"""Snapping points to the nearest drivable edge of a :class:`~geodata.network.RoadNetwork`.

The network is at full OSM resolution, so every edge is a straight segment between its two nodes.
A two-way street is two directed edges (``u -> v`` and ``v -> u``) over one segment. A
:class:`Snapper` indexes each *segment* once in a uniform grid of flat arrays
(:mod:`geodata.snap_index`, numba kernels in :mod:`geodata.kernels.grid`; kept in the network's
cache directory and memory-mapped, so every process serving the network shares one copy) and
answers vectorised nearest-segment queries; the result names a directed edge of the segment
(:attr:`SnapResult.edge`) and, for two-way streets, the opposite one
(:attr:`SnapResult.reverse_edge`, ``-1`` on a one-way street). The point lies at
:attr:`SnapResult.fraction` ``f`` of ``edge`` from its source node and at ``1 - f`` of
``reverse_edge`` from *its* source node.

Projection: nearest segments are found in metres, in an azimuthal equidistant projection (PROJ
``aeqd`` on WGS 84) centred on the middle of the network's bounding box (longitudes averaged on
the circle, so networks across the antimeridian work). Distances from the centre are exact and the
distortion elsewhere is below 0.1 % up to 500 km from the centre, which is negligible for choosing
the nearest segment; a UTM zone would be worse for networks crossing zone borders. The reported
snap distance does not depend on the projection: it is the great-circle distance between the
query point and the snapped point (:func:`geodata.geo.haversine_m`). The snapped point is
interpolated linearly in latitude/longitude between the edge's nodes, consistent with the straight
segments the network stands for, so ``fraction`` 0 and 1 give the node coordinates exactly.

Points farther than ``max_distance_m`` (default :data:`DEFAULT_MAX_SNAP_M`) from every edge are
still snapped, but flagged in :attr:`SnapResult.too_far`; :meth:`SnapResult.require_ok` raises
:class:`SnapTooFarError` naming them, for the caller to turn into an INVALID_ARGUMENT status.

Nearest means the smallest point-to-segment distance in the projection, computed with GEOS's
arithmetic (the distances shapely's ``STRtree`` compared before this index replaced it); among
segments at exactly the same distance (a point on a node shared by several segments) the one with
the lowest segment id wins, i.e. the lowest ``(lower node, higher node)`` pair.

Thread safety: a :class:`Snapper` is immutable after construction; its search kernel releases the
GIL, and pyproj (>= 3.1) transformers can be used from several threads at once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geodata.arrays import F64, I64, Mask
from geodata.errors import EmptyNetworkError
from geodata.geo import haversine_m
from geodata.network import RoadNetwork
from geodata.snap_index import projection, snap_index_for, to_metres

__all__ = [
    "DEFAULT_MAX_SNAP_M",
    "SnapError",
    "SnapResult",
    "SnapTooFarError",
    "SnappedPoint",
    "Snapper",
]

DEFAULT_MAX_SNAP_M = 500.0
"""Default largest distance (metres) between a point and the road it is snapped to."""

_MAX_LISTED = 10  # points named in an error message before "... and N more"


class SnapError(ValueError):
    """Coordinates that cannot be snapped (not finite, out of range, mismatched shapes)."""


class SnapTooFarError(SnapError):
    """Some points lie farther than the maximum snap distance from every drivable road.

    Attributes:
        indices: positions of the offending points in the snapped batch.
        distances_m: their distances to the nearest road, in metres.
        max_distance_m: the limit that was exceeded.
        field_names: the caller's names of the offending points (e.g. field paths), when given.
    """

    def __init__(
        self,
        indices: Sequence[int],
        distances_m: Sequence[float],
        max_distance_m: float,
        field_names: Sequence[str] | None,
        message: str,
    ) -> None:
        self.indices = tuple(indices)
        self.distances_m = tuple(distances_m)
        self.max_distance_m = max_distance_m
        self.field_names = None if field_names is None else tuple(field_names)
        super().__init__(message)


@dataclass(frozen=True)
class SnappedPoint:
    """One snapped point (a row of a :class:`SnapResult`); see there for the fields."""

    edge: int
    fraction: float
    reverse_edge: int
    lat: float
    lon: float
    distance_m: float
    query_lat: float
    query_lon: float
    ok: bool


@dataclass(frozen=True, eq=False)
class SnapResult:
    """Points snapped to directed edges; every array has one entry per point.

    Attributes:
        edge: ``int64``, a directed edge over the nearest segment (for a two-way street, the one
            leaving the lower-numbered node).
        fraction: ``float64`` in ``[0, 1]``, position along ``edge`` from its source node (by
            length: the point is ``fraction * length_m[edge]`` metres along the edge).
        reverse_edge: ``int64``, the opposite directed edge over the same segment, ``-1`` on a
            one-way street; the point is at ``1 - fraction`` along it.
        lat, lon: ``float64``, the snapped point in degrees (WGS 84).
        distance_m: ``float64``, great-circle distance from the query point to the snapped point.
        query_lat, query_lon: ``float64``, the points as given.
        max_distance_m: the limit that decides :attr:`ok` / :attr:`too_far`.
    """

    edge: I64
    fraction: F64
    reverse_edge: I64
    lat: F64
    lon: F64
    distance_m: F64
    query_lat: F64
    query_lon: F64
    max_distance_m: float

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):
            if f.name == "max_distance_m":
                continue
            arr = np.asarray(getattr(self, f.name))
            if arr.ndim != 1:
                raise ValueError(f"SnapResult.{f.name} must be 1-D, got shape {arr.shape}")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(
                    f"SnapResult arrays must have the same length, {f.name} has {arr.shape[0]} "
                    f"entries, edge has {n}"
                )
            arr = arr.astype(np.int64 if f.name in ("edge", "reverse_edge") else np.float64)
            arr.flags.writeable = False
            object.__setattr__(self, f.name, arr)

    def __len__(self) -> int:
        """Number of points."""
        return int(self.edge.shape[0])

    @property
    def ok(self) -> Mask:
        """True where the point lies within :attr:`max_distance_m` of its road."""
        return np.asarray(self.distance_m <= self.max_distance_m)

    @property
    def too_far(self) -> Mask:
        """True where the point lies farther than :attr:`max_distance_m` from every road."""
        return ~self.ok

    def __getitem__(self, i: int) -> SnappedPoint:
        """The ``i``-th point (negative indices count from the end)."""
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise TypeError(f"SnapResult indices must be integers, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"point index {i} out of range for {n} points")
        return SnappedPoint(
            edge=int(self.edge[i]),
            fraction=float(self.fraction[i]),
            reverse_edge=int(self.reverse_edge[i]),
            lat=float(self.lat[i]),
            lon=float(self.lon[i]),
            distance_m=float(self.distance_m[i]),
            query_lat=float(self.query_lat[i]),
            query_lon=float(self.query_lon[i]),
            ok=bool(self.distance_m[i] <= self.max_distance_m),
        )

    def take(self, indices: npt.ArrayLike) -> SnapResult:
        """A new result with the points at ``indices`` (any order, repeats allowed)."""
        idx = np.asarray(indices, dtype=np.int64)
        arrays: dict[str, Any] = {
            f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "max_distance_m"
        }
        return SnapResult(**arrays, max_distance_m=self.max_distance_m)

    @classmethod
    def concat(cls, results: Sequence[SnapResult]) -> SnapResult:
        """The points of several results one after the other (the first one's limit is kept)."""
        if not results:
            raise ValueError("concat needs at least one SnapResult")
        arrays: dict[str, Any] = {
            f.name: np.concatenate([getattr(r, f.name) for r in results])
            for f in fields(cls)
            if f.name != "max_distance_m"
        }
        return cls(**arrays, max_distance_m=results[0].max_distance_m)

    def require_ok(self, field_names: Sequence[str] | None = None) -> None:
        """Raise :class:`SnapTooFarError` if any point is too far from the roads.

        ``field_names`` (one per point, e.g. ``"shipments[3].pickups[0].arrival_location"``)
        name the offending points in the message; without it they are named by position.
        """
        if field_names is not None and len(field_names) != len(self):
            raise ValueError(
                f"field_names has {len(field_names)} entries for {len(self)} snapped points"
            )
        bad = np.flatnonzero(self.too_far)
        if bad.size == 0:
            return
        parts = []
        for i in bad[:_MAX_LISTED].tolist():
            name = field_names[i] if field_names is not None else f"point {i}"
            parts.append(
                f"{name} ({self.query_lat[i]:.6f}, {self.query_lon[i]:.6f}) is "
                f"{self.distance_m[i]:.0f} m away"
            )
        if bad.size > _MAX_LISTED:
            parts.append(f"... and {bad.size - _MAX_LISTED} more")
        noun = "point is" if bad.size == 1 else "points are"
        message = (
            f"{bad.size} {noun} farther than {self.max_distance_m:g} m from any drivable road: "
            + "; ".join(parts)
        )
        raise SnapTooFarError(
            bad.tolist(),
            self.distance_m[bad].tolist(),
            self.max_distance_m,
            None if field_names is None else [field_names[i] for i in bad.tolist()],
            message,
        )


class Snapper:
    """Nearest-edge index of a road network, built once (see the module docstring).

    >>> snapper = Snapper(network)  # doctest: +SKIP
    >>> snaps = snapper.snap([43.7384, 43.7311], [7.4246, 7.4197])  # doctest: +SKIP
    >>> snaps.require_ok(["visits[0].location", "visits[1].location"])  # doctest: +SKIP

    ``cache``: a directory where the index is kept (:func:`geodata.snap_index.snap_index_for`:
    memory-mapped when it matches the network, else built and written there); ``None`` builds it
    in memory.

    Attributes:
        network: the indexed network.
        index: the index arrays (:class:`geodata.snap_index.SnapIndex`).
        crs: the metric projection used for the nearest-segment search.
        n_segments: number of distinct segments (a two-way street counts once).
    """

    def __init__(
        self, network: RoadNetwork, *, cache: str | os.PathLike[str] | None = None
    ) -> None:
        if network.n_edges == 0:
            raise EmptyNetworkError(f"cannot snap to {network!r}: it has no edges")
        self.network = network
        self.index = snap_index_for(network, None if cache is None else Path(cache))
        self.crs = projection(self.index.lat0, self.index.lon0)
        self._to_xy = to_metres(self.crs)
        self.n_segments = self.index.n_segments

    def __repr__(self) -> str:
        return f"Snapper({self.network!r}, n_segments={self.n_segments})"

    def snap(
        self,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        *,
        max_distance_m: float = DEFAULT_MAX_SNAP_M,
    ) -> SnapResult:
        """Snap points (degrees, WGS 84; scalars or 1-D arrays of equal length) to the nearest edge.

        Every point is snapped, however far; those beyond ``max_distance_m`` are flagged in
        :attr:`SnapResult.too_far` (call :meth:`SnapResult.require_ok` to raise).

        Raises:
            SnapError: (a ``ValueError``) coordinates not finite, out of range or of unequal
                lengths, or a negative / NaN ``max_distance_m``.
        """
        qlat, qlon = _check_coords(lat, lon)
        limit = float(max_distance_m)
        if math.isnan(limit) or limit < 0:
            raise SnapError(f"max_distance_m must be >= 0, got {max_distance_m!r}")
        n = qlat.shape[0]
        if n == 0:
            empty_f, empty_i = np.zeros(0), np.zeros(0, dtype=np.int64)
            return SnapResult(
                empty_i, empty_f, empty_i, empty_f, empty_f, empty_f, empty_f, empty_f, limit
            )

        x, y = self._to_xy.transform(qlon, qlat)
        px, py = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        unprojectable = ~(np.isfinite(px) & np.isfinite(py))
        if unprojectable.any():  # only the antipode of the network's centre
            idx = np.flatnonzero(unprojectable)[:_MAX_LISTED].tolist()
            listed = ", ".join(f"point {i} ({qlat[i]}, {qlon[i]})" for i in idx)
            raise SnapError(f"points on the far side of the Earth from the network: {listed}")
        index = self.index
        seg = index.nearest(px, py)

        # Position along lo -> hi of the point's orthogonal projection, clamped to the segment.
        a, b = index.seg_a[seg].astype(np.int64), index.seg_b[seg].astype(np.int64)
        ax, ay = index.node_x[a], index.node_y[a]
        dx, dy = index.node_x[b] - ax, index.node_y[b] - ay
        den = dx * dx + dy * dy
        num = (px - ax) * dx + (py - ay) * dy
        t = np.clip(np.divide(num, den, out=np.zeros(n), where=den > 0), 0.0, 1.0)

        lat_a, lon_a = self.network.lat[a], self.network.lon[a]
        lat_b, lon_b = self.network.lat[b], self.network.lon[b]
        snap_lat = (1.0 - t) * lat_a + t * lat_b
        snap_lon = (1.0 - t) * lon_a + t * lon_b
        crossing = np.abs(lon_b - lon_a) > 180.0  # the segment crosses the antimeridian
        if crossing.any():
            d_lon = (lon_b - lon_a + 180.0) % 360.0 - 180.0
            wrapped = (lon_a + t * d_lon + 180.0) % 360.0 - 180.0
            snap_lon = np.where(crossing & (t > 0.0), np.where(t < 1.0, wrapped, lon_b), snap_lon)
            snap_lon = np.where(crossing & (t == 0.0), lon_a, snap_lon)
        flipped = index.seg_flipped[seg]
        fraction = np.where(flipped, 1.0 - t, t)
        return SnapResult(
            edge=index.seg_edge[seg].astype(np.int64),
            fraction=fraction,
            reverse_edge=index.seg_reverse[seg].astype(np.int64),
            lat=snap_lat,
            lon=snap_lon,
            distance_m=haversine_m(qlat, qlon, snap_lat, snap_lon),
            query_lat=qlat,
            query_lon=qlon,
            max_distance_m=limit,
        )


def _check_coords(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[F64, F64]:
    try:
        qlat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        qlon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise SnapError(f"lat and lon must be numbers or 1-D arrays of numbers: {exc}") from exc
    if qlat.ndim != 1 or qlon.ndim != 1 or qlat.shape != qlon.shape:
        raise SnapError(
            f"lat and lon must be 1-D arrays of the same length, got shapes {qlat.shape} and "
            f"{qlon.shape}"
        )
    bad = ~(np.isfinite(qlat) & np.isfinite(qlon) & (np.abs(qlat) <= 90) & (np.abs(qlon) <= 180))
    if bad.any():
        idx = np.flatnonzero(bad)
        listed = ", ".join(f"point {i} ({qlat[i]}, {qlon[i]})" for i in idx[:_MAX_LISTED].tolist())
        more = f" and {idx.size - _MAX_LISTED} more" if idx.size > _MAX_LISTED else ""
        raise SnapError(
            f"lat must be finite in [-90, 90] and lon finite in [-180, 180] degrees: {listed}{more}"
        )
    return np.ascontiguousarray(qlat), np.ascontiguousarray(qlon)
