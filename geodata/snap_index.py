"""The snapping index of a road network as flat arrays: built once, kept on disk, memory-mapped.

:class:`geodata.snap.Snapper` finds the nearest segment of a point with a uniform grid over the
network's segments in a metric projection (:mod:`geodata.kernels.grid`). Everything it needs is a
handful of arrays (:class:`SnapIndex`): the nodes projected to metres, the segments (a two-way
street once) with the directed edges they stand for, and the grid's cells in CSR form. On
Florida's 1.07M-node graph that is 61 MiB, built in ~2 s of CPU (a shapely ``STRtree`` of the
same segments held ~300-550 MB of private memory in each process and took 5-7 s to build there).

The arrays are kept in a directory beside the network's cache file (``NAME.snap/``, one ``.npy``
per array plus ``meta.json``), like the contraction hierarchy (:mod:`geodata.ch_cache`), and
opened with ``mmap_mode="r"``: the server, its forkserver and every solve worker share one copy
of the pages. ``meta.json`` holds :data:`SNAP_INDEX_FORMAT_VERSION`, the PROJ version and a
SHA-256 fingerprint of the arrays the index depends on (CSR structure and node coordinates); a
directory that does not match is rebuilt, and loaded arrays are checked (:meth:`SnapIndex.check`)
before any kernel reads them. Writes go to a temporary directory renamed into place.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
from pyproj import CRS, Transformer

from geodata.array_dir import cached, read_array_dir, sha256_of, write_array_dir
from geodata.arrays import F64, I32, I64, Mask
from geodata.errors import EmptyNetworkError
from geodata.kernels.grid import count_cells, fill_cells, nearest_segments
from geodata.network import RoadNetwork

__all__ = [
    "SNAP_INDEX_FORMAT_VERSION",
    "SnapIndex",
    "build_snap_index",
    "load_snap_index",
    "network_fingerprint",
    "projection",
    "save_snap_index",
    "snap_index_for",
]

logger = logging.getLogger(__name__)

SNAP_INDEX_FORMAT_VERSION = 1
"""Bump when the layout or meaning of the index arrays changes."""

Grid = tuple[float, float, float, int, int]
"""``(x0, y0, cell, nx, ny)``: lower-left corner (m), cell side (m), columns, rows."""


def projection(lat0: float, lon0: float) -> CRS:
    """The metric frame of the index: azimuthal equidistant on WGS 84 centred on ``lat0, lon0``."""
    return CRS.from_dict(
        {"proj": "aeqd", "lat_0": lat0, "lon_0": lon0, "datum": "WGS84", "units": "m"}
    )


def to_metres(crs: CRS) -> Transformer:
    """The transformer from (lon, lat) degrees to ``crs`` (thread-safe with pyproj >= 3.1)."""
    return Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)


def centre(lat: F64, lon: F64) -> tuple[float, float]:
    """Middle of the bounding box; longitude as the circular middle (antimeridian-safe)."""
    lat0 = 0.5 * (float(lat.min()) + float(lat.max()))
    rad = np.radians(lon)
    lon_mean = math.degrees(math.atan2(float(np.sin(rad).mean()), float(np.cos(rad).mean())))
    offsets = (lon - lon_mean + 180.0) % 360.0 - 180.0  # longitudes relative to the mean
    lon0 = lon_mean + 0.5 * (float(offsets.min()) + float(offsets.max()))
    lon0 = (lon0 + 180.0) % 360.0 - 180.0
    return lat0, lon0


@dataclass(frozen=True, eq=False)
class SnapIndex:
    """The arrays of a network's snapping index (see the module docstring); read-only.

    Attributes:
        node_x, node_y: ``float64[n_nodes]``, the nodes in the projection (metres).
        seg_a, seg_b: ``int32[n_segments]``, the segment's lower- and higher-numbered node.
        seg_edge: ``int32``, the directed edge a snap names: ``a -> b`` when it exists, else
            ``b -> a`` (then :attr:`seg_flipped`).
        seg_reverse: ``int32``, the opposite edge, ``-1`` on a one-way street.
        seg_flipped: ``bool``, ``seg_edge`` runs ``b -> a`` (the fraction is ``1 - t``).
        cell_start: ``int64[nx * ny + 1]``, CSR offsets of the cells (``c = j * nx + i``).
        cell_items: ``int32``, the segments of each cell, ascending within a cell.
        lat0, lon0: the projection's centre (:func:`projection`).
        x0, y0, cell, nx, ny: the grid (:data:`Grid`).
        build_time_s: how long the build took.
    """

    node_x: F64
    node_y: F64
    seg_a: I32
    seg_b: I32
    seg_edge: I32
    seg_reverse: I32
    seg_flipped: Mask
    cell_start: I64
    cell_items: I32
    lat0: float
    lon0: float
    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    build_time_s: float = 0.0

    @staticmethod
    def array_names() -> tuple[str, ...]:
        """The names of the array fields (one ``.npy`` file each in the cache)."""
        return tuple(f.name for f in fields(SnapIndex) if f.type in {"F64", "I32", "I64", "Mask"})

    def arrays(self) -> dict[str, Any]:
        """Every array by name."""
        return {name: getattr(self, name) for name in self.array_names()}

    @property
    def n_segments(self) -> int:
        """Number of distinct segments (a two-way street counts once)."""
        return int(self.seg_a.shape[0])

    @property
    def grid(self) -> Grid:
        """``(x0, y0, cell, nx, ny)`` as the kernels take it."""
        return (self.x0, self.y0, self.cell, self.nx, self.ny)

    @property
    def nbytes(self) -> int:
        """Total size of the arrays in bytes."""
        return int(sum(arr.nbytes for arr in self.arrays().values()))

    def check(self, network: RoadNetwork) -> None:
        """Raise ``ValueError`` unless the arrays are consistent with each other and ``network``.

        Every index a kernel follows is checked here (the kernels do not check bounds).
        """
        expected = {
            "node_x": np.float64,
            "node_y": np.float64,
            "seg_a": np.int32,
            "seg_b": np.int32,
            "seg_edge": np.int32,
            "seg_reverse": np.int32,
            "seg_flipped": np.bool_,
            "cell_start": np.int64,
            "cell_items": np.int32,
        }
        for name, dtype in expected.items():
            arr = getattr(self, name)
            if arr.dtype != dtype or arr.ndim != 1 or not arr.flags.c_contiguous:
                raise ValueError(f"snap index array {name} must be contiguous 1-D {dtype.__name__}")
        n, m, s = network.n_nodes, network.n_edges, self.n_segments
        if self.node_x.shape[0] != n or self.node_y.shape[0] != n:
            raise ValueError(f"snap index has {self.node_x.shape[0]} nodes, the network {n}")
        if not (np.isfinite(self.node_x).all() and np.isfinite(self.node_y).all()):
            raise ValueError("snap index node coordinates must be finite")
        if s == 0 or any(
            getattr(self, name).shape[0] != s
            for name in ("seg_b", "seg_edge", "seg_reverse", "seg_flipped")
        ):
            raise ValueError("snap index segment arrays must be non-empty and of equal length")
        for name, lo, hi in (
            ("seg_a", 0, n),
            ("seg_b", 0, n),
            ("seg_edge", 0, m),
            ("seg_reverse", -1, m),
            ("cell_items", 0, s),
        ):
            arr = getattr(self, name)
            if arr.shape[0] and (int(arr.min()) < lo or int(arr.max()) >= hi):
                raise ValueError(f"snap index {name} must lie in [{lo}, {hi})")
        if not (math.isfinite(self.cell) and self.cell > 0 and self.nx >= 1 and self.ny >= 1):
            raise ValueError(f"snap index grid {self.grid} is invalid")
        if not (math.isfinite(self.x0) and math.isfinite(self.y0)):
            raise ValueError(f"snap index grid {self.grid} is invalid")
        start = self.cell_start
        if (
            start.shape[0] != self.nx * self.ny + 1
            or start[0] != 0
            or start[-1] != self.cell_items.shape[0]
            or np.any(start[1:] < start[:-1])
        ):
            raise ValueError("snap index cell offsets must be CSR offsets of nx * ny cells")

    def nearest(self, px: F64, py: F64) -> I64:
        """The nearest segment of each projected point (finite ``float64`` arrays, same length);
        equal distances go to the lowest segment id."""
        px = np.ascontiguousarray(px, dtype=np.float64)
        py = np.ascontiguousarray(py, dtype=np.float64)
        if px.ndim != 1 or px.shape != py.shape:
            raise ValueError(f"points must be 1-D of one length, got {px.shape} and {py.shape}")
        if not (np.isfinite(px).all() and np.isfinite(py).all()):
            raise ValueError("projected points must be finite")
        out = np.empty(px.shape[0], dtype=np.int64)
        nearest_segments(
            px,
            py,
            self.node_x,
            self.node_y,
            self.seg_a,
            self.seg_b,
            self.grid,
            self.cell_start,
            self.cell_items,
            out,
        )
        return out


def _read_only(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def build_snap_index(network: RoadNetwork) -> SnapIndex:
    """Project ``network``'s nodes, list its segments and grid them (O(segments)).

    Raises:
        EmptyNetworkError: the network has no edges.
    """
    started = time.perf_counter()
    if network.n_edges == 0:
        raise EmptyNetworkError(f"cannot snap to {network!r}: it has no edges")
    lat0, lon0 = centre(network.lat, network.lon)
    x, y = to_metres(projection(lat0, lon0)).transform(network.lon, network.lat)
    node_x = np.ascontiguousarray(x, dtype=np.float64)
    node_y = np.ascontiguousarray(y, dtype=np.float64)

    src = network.sources().astype(np.int64)
    dst = network.indices.astype(np.int64)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    keys, inverse = np.unique(lo * network.n_nodes + hi, return_inverse=True)
    n_seg = keys.shape[0]
    forward = src < dst
    edge_ids = np.arange(network.n_edges, dtype=np.int64)
    seg_fwd = np.full(n_seg, -1, dtype=np.int64)  # lo -> hi
    seg_bwd = np.full(n_seg, -1, dtype=np.int64)  # hi -> lo
    seg_fwd[inverse[forward]] = edge_ids[forward]
    seg_bwd[inverse[~forward]] = edge_ids[~forward]
    seg_a = (keys // network.n_nodes).astype(np.int32)
    seg_b = (keys % network.n_nodes).astype(np.int32)
    has_fwd = seg_fwd >= 0

    # Square cells, about one per segment, over the segments' bounding box (a line of nodes
    # gets cells along its length).
    x0, x1 = float(node_x.min()), float(node_x.max())
    y0, y1 = float(node_y.min()), float(node_y.max())
    w, h = x1 - x0, y1 - y0
    cell = max(math.sqrt(w * h / n_seg), max(w, h) / n_seg, 1.0)
    nx, ny = int(w // cell) + 1, int(h // cell) + 1
    grid: Grid = (x0, y0, cell, nx, ny)
    cell_start = np.zeros(nx * ny + 1, dtype=np.int64)
    count_cells(node_x, node_y, seg_a, seg_b, grid, cell_start)
    np.cumsum(cell_start, out=cell_start)
    cell_items = np.empty(int(cell_start[-1]), dtype=np.int32)
    fill_cells(node_x, node_y, seg_a, seg_b, grid, cell_start, cell_items)
    index = SnapIndex(
        node_x=_read_only(node_x),
        node_y=_read_only(node_y),
        seg_a=_read_only(seg_a),
        seg_b=_read_only(seg_b),
        seg_edge=_read_only(np.where(has_fwd, seg_fwd, seg_bwd).astype(np.int32)),
        seg_reverse=_read_only(np.where(has_fwd, seg_bwd, -1).astype(np.int32)),
        seg_flipped=_read_only(~has_fwd),
        cell_start=_read_only(cell_start),
        cell_items=_read_only(cell_items),
        lat0=lat0,
        lon0=lon0,
        x0=x0,
        y0=y0,
        cell=cell,
        nx=nx,
        ny=ny,
        build_time_s=time.perf_counter() - started,
    )
    logger.info(
        "snap index of %d segments (%d directed edges, %d x %d cells of %.0f m, %.0f MB) "
        "built in %.2f s",
        n_seg, network.n_edges, nx, ny, cell, index.nbytes / 1e6, index.build_time_s,
    )  # fmt: skip
    return index


def network_fingerprint(network: RoadNetwork) -> str:
    """SHA-256 of what the index depends on: the CSR structure and the node coordinates."""
    return sha256_of((network.indptr, network.indices, network.lat, network.lon))


def _key(network: RoadNetwork) -> dict[str, object]:
    return {
        "format": SNAP_INDEX_FORMAT_VERSION,
        "proj": pyproj.proj_version_str,
        "network_sha256": network_fingerprint(network),
    }


_SCALARS = ("lat0", "lon0", "x0", "y0", "cell", "nx", "ny", "build_time_s")


def save_snap_index(index: SnapIndex, network: RoadNetwork, path: Path) -> None:
    """Write ``index`` (built from ``network``) to the directory ``path``, atomically."""
    meta = {**_key(network), **{k: getattr(index, k) for k in _SCALARS}}
    write_array_dir(path, index.arrays(), meta)


def load_snap_index(network: RoadNetwork, path: Path) -> SnapIndex | None:
    """The index in ``path``, memory-mapped, if it was built from ``network`` by this format
    (checked with :meth:`SnapIndex.check`), else ``None``."""

    def make(arrays: dict[str, Any], meta: dict[str, Any]) -> SnapIndex:
        index = SnapIndex(
            **arrays,
            lat0=float(meta["lat0"]),
            lon0=float(meta["lon0"]),
            x0=float(meta["x0"]),
            y0=float(meta["y0"]),
            cell=float(meta["cell"]),
            nx=int(meta["nx"]),
            ny=int(meta["ny"]),
            build_time_s=float(meta["build_time_s"]),
        )
        index.check(network)
        return index

    return read_array_dir(
        path,
        _key(network),
        SnapIndex.array_names(),
        make,
        what="snap index",
        source="network",
        log=logger,
    )


def snap_index_for(network: RoadNetwork, cache: Path | None) -> SnapIndex:
    """The snap index of ``network`` from the directory ``cache``, or built (and saved there)."""
    return cached(
        cache,
        lambda path: load_snap_index(network, path),
        lambda: build_snap_index(network),
        lambda index, path: save_snap_index(index, network, path),
        what="snap index",
        log=logger,
        built_in=lambda index: index.build_time_s,
    )
