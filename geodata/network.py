"""The road network as compact immutable arrays (CSR), and the report of how it was built.

Nodes are numbered ``0 .. n_nodes-1``; the out-edges of node ``u`` are ``indptr[u]:indptr[u+1]``,
each going to ``indices[e]`` (scipy's CSR names). Within a row the targets are strictly increasing,
so there is at most one edge per ordered pair: where the data had parallel edges, the one with the
minimum travel time was kept (with its length). There are no self-loops.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

import geodata.ch_cache
import geodata.prepared_cache
from geodata.ch import ContractionHierarchy
from geodata.errors import RoadNetworkError
from geodata.ingest.profiles import HIGHWAY_CLASSES
from geodata.prepared import PreparedGraph

__all__ = [
    "EDGE_FERRY",
    "EDGE_INDOOR",
    "EDGE_TOLL",
    "HIGHWAY_CODES",
    "BuildReport",
    "RoadNetwork",
]

EDGE_TOLL = 1
"""``flags`` bit: a toll road (OSM ``toll=yes``; for trucks also ``toll:hgv=yes``)."""
EDGE_FERRY = 2
"""``flags`` bit: a ferry crossing (OSM ``route=ferry``)."""
EDGE_INDOOR = 4
"""``flags`` bit: an indoor way (OSM ``indoor=*`` other than ``no``, or ``highway=corridor``)."""

HIGHWAY_CODES = frozenset(
    HIGHWAY_CLASSES.index(name) for name in ("motorway", "motorway_link", "trunk", "trunk_link")
)
"""``highway`` codes of the roads Google's ``avoid_highways`` avoids (motorways and trunk roads,
with their links)."""

_NODE_ARRAYS: dict[str, type[np.generic]] = {
    "lat": np.float64,
    "lon": np.float64,
    "osm_id": np.int64,
}
_EDGE_ARRAYS: dict[str, type[np.generic]] = {
    "indices": np.int32,
    "travel_time_s": np.float64,
    "length_m": np.float64,
    "speed_kph": np.float64,
    "way_id": np.int64,
    "highway": np.int8,
    "flags": np.uint8,
}


@dataclass(frozen=True, eq=False)
class RoadNetwork:
    """A directed road graph for one profile, validated once on construction; arrays are read-only.

    Attributes:
        indptr: ``int64[n_nodes + 1]``, row offsets of each node's out-edges.
        indices: ``int32[n_edges]``, target node of each edge.
        travel_time_s: ``float64[n_edges]``, seconds to drive the edge (``length_m / speed``).
        length_m: ``float64[n_edges]``, great-circle length in metres.
        speed_kph: ``float64[n_edges]``, speed used for ``travel_time_s``.
        way_id: ``int64[n_edges]``, OSM way the edge comes from (row number for road layers).
        highway: ``int8[n_edges]``, road class, an index into :data:`geodata.HIGHWAY_CLASSES`.
        lat, lon: ``float64[n_nodes]``, node coordinates in degrees (WGS 84).
        osm_id: ``int64[n_nodes]``, OSM node id (negative synthetic ids for road layers).
        profile: name of the profile the network was built for.
        flags: ``uint8[n_edges]``, what the edge is, for route modifiers: :data:`EDGE_TOLL`,
            :data:`EDGE_FERRY`, :data:`EDGE_INDOOR` bits (None: no flags, all zero).
    """

    indptr: NDArray[np.int64]
    indices: NDArray[np.int32]
    travel_time_s: NDArray[np.float64]
    length_m: NDArray[np.float64]
    speed_kph: NDArray[np.float64]
    way_id: NDArray[np.int64]
    highway: NDArray[np.int8]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    osm_id: NDArray[np.int64]
    profile: str
    flags: NDArray[np.uint8] = None  # type: ignore[assignment]  # None: all zero (__post_init__)

    def __post_init__(self) -> None:
        if self.flags is None:
            object.__setattr__(self, "flags", np.zeros(np.shape(self.indices), dtype=np.uint8))
        all_arrays: dict[str, type[np.generic]] = {
            "indptr": np.int64,
            **_EDGE_ARRAYS,
            **_NODE_ARRAYS,
        }
        for name, dtype in all_arrays.items():
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype, name))
        problems = _validate(self)
        if problems:
            raise RoadNetworkError("invalid road network: " + "; ".join(problems))
        # The prepared form (see prepared()); not a dataclass field, so not pickled or compared.
        object.__setattr__(self, "_prepared", None)
        object.__setattr__(self, "_prepare_lock", threading.Lock())
        object.__setattr__(self, "_hierarchy", None)
        object.__setattr__(self, "_hierarchy_lock", threading.Lock())
        object.__setattr__(self, "_hierarchy_cache", None)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.lat.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of directed edges."""
        return int(self.indices.shape[0])

    def prepared(self) -> PreparedGraph:
        """The graph prepared for the matrix and path searches, built on first use, then reused.

        Holds the validated kernel arrays and the chain layout
        (:func:`geodata.prepared.prepare_graph`, O(edges), ~5 ms on Heidelberg), so matrix and
        path calls on this network no longer rebuild them. Its times are ``travel_time_s`` on the
        finest binary grid where every path sum is exact (``time_bits``; changes below 1e-8 s
        per edge), so that the Dijkstra kernels and the contraction hierarchy
        (:meth:`hierarchy`) give the same times bit for bit. With a cache named
        (:meth:`use_hierarchy_cache`), its arrays are kept beside the hierarchy (``NAME.prep/``,
        :mod:`geodata.prepared_cache`) and memory-mapped by every process that loads the network.
        Thread-safe: concurrent first calls build it once (the others wait), and the result is
        immutable.
        """
        cached: PreparedGraph | None = self.__dict__["_prepared"]
        if cached is None:
            with self.__dict__["_prepare_lock"]:
                cached = self.__dict__["_prepared"]
                if cached is None:
                    csr = (self.indptr, self.indices, self.travel_time_s, self.length_m)
                    directory = self.__dict__["_hierarchy_cache"]
                    cached = geodata.prepared_cache.prepared_for(
                        csr, None if directory is None else directory.with_suffix(".prep")
                    )
                    object.__setattr__(self, "_prepared", cached)
        return cached

    def hierarchy(self) -> ContractionHierarchy:
        """The contraction hierarchy of :meth:`prepared`'s graph, built or loaded once, then reused.

        Loaded from (or written to) the file :meth:`use_hierarchy_cache` named, when one was
        named and it matches this graph (:mod:`geodata.ch_cache`); built otherwise (seconds on a
        city, about a minute on a 1M-node network; logged). Thread-safe like :meth:`prepared`.
        """
        cached: ContractionHierarchy | None = self.__dict__["_hierarchy"]
        if cached is None:
            with self.__dict__["_hierarchy_lock"]:
                cached = self.__dict__["_hierarchy"]
                if cached is None:
                    cached = geodata.ch_cache.hierarchy_for(
                        self.prepared(), self.__dict__["_hierarchy_cache"]
                    )
                    object.__setattr__(self, "_hierarchy", cached)
        return cached

    def has_hierarchy(self) -> bool:
        """Whether :meth:`hierarchy` is built (or loaded) already."""
        return self.__dict__["_hierarchy"] is not None

    def use_hierarchy_cache(self, path: str | os.PathLike[str] | None) -> None:
        """Keep :meth:`hierarchy` in the cache directory ``path``, and :meth:`prepared` beside it
        (``path`` with the suffix ``.prep``); ``None``: build both in memory."""
        object.__setattr__(self, "_hierarchy_cache", None if path is None else Path(path))

    def hierarchy_cache(self) -> Path | None:
        """The cache directory :meth:`use_hierarchy_cache` named (None: in memory)."""
        path: Path | None = self.__dict__["_hierarchy_cache"]
        return path

    def sources(self) -> NDArray[np.int32]:
        """Source node of every edge (the CSR row expanded), ``int32[n_edges]``."""
        counts = np.diff(self.indptr)
        return np.repeat(np.arange(self.n_nodes, dtype=np.int32), counts)

    def edge_index(self, u: int, v: int) -> int:
        """Index of the edge ``u -> v``; ``KeyError`` when there is none."""
        lo, hi = int(self.indptr[u]), int(self.indptr[u + 1])
        pos = lo + int(np.searchsorted(self.indices[lo:hi], v))
        if pos < hi and int(self.indices[pos]) == v:
            return pos
        raise KeyError(f"no edge {u} -> {v}")

    def avoided_edges(
        self,
        *,
        tolls: bool = False,
        highways: bool = False,
        ferries: bool = False,
        indoor: bool = False,
    ) -> NDArray[np.bool_]:
        """Mask of the edges a route that avoids the named kinds of road may not use: toll roads
        (:data:`EDGE_TOLL`), motorways and trunk roads with their links (:data:`HIGHWAY_CODES`),
        ferries (:data:`EDGE_FERRY`), indoor ways (:data:`EDGE_INDOOR`)."""
        bits = (EDGE_TOLL if tolls else 0) | (EDGE_FERRY if ferries else 0)
        bits |= EDGE_INDOOR if indoor else 0
        mask: NDArray[np.bool_] = (self.flags & np.uint8(bits)) != 0
        if highways:
            mask |= np.isin(self.highway, np.fromiter(HIGHWAY_CODES, dtype=np.int8))
        return mask

    def without_edges(self, drop: NDArray[np.bool_], profile: str | None = None) -> RoadNetwork:
        """The same nodes (same numbering) with the edges of ``drop`` removed: a view for route
        modifiers, which may leave nodes unreachable (not re-reduced to one strongly connected
        component). ``profile`` names it (default: this network's)."""
        keep = ~np.asarray(drop, dtype=np.bool_)
        counts = np.bincount(self.sources()[keep], minlength=self.n_nodes)
        indptr = np.zeros(self.n_nodes + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        edge = {name: getattr(self, name)[keep] for name in _EDGE_ARRAYS}
        nodes = {name: getattr(self, name) for name in _NODE_ARRAYS}
        return RoadNetwork(indptr=indptr, **edge, **nodes, profile=profile or self.profile)

    def highway_names(self) -> NDArray[np.str_]:
        """Road class name of every edge (``highway`` codes decoded)."""
        return np.asarray(HIGHWAY_CLASSES)[self.highway]

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Every array by field name (what the cache stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "profile"}

    def equals(self, other: RoadNetwork) -> bool:
        """Same profile and identical arrays (NaN never occurs, so exact comparison is fine)."""
        mine, theirs = self.arrays(), other.arrays()
        return self.profile == other.profile and all(
            np.array_equal(mine[k], theirs[k]) for k in mine
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through __init__ so an unpickled network is validated and read-only again.
        return (_rebuild, (self.arrays(), self.profile))

    def __repr__(self) -> str:
        return (
            f"RoadNetwork(profile={self.profile!r}, n_nodes={self.n_nodes}, n_edges={self.n_edges})"
        )


def _rebuild(arrays: dict[str, NDArray[Any]], profile: str) -> RoadNetwork:
    return RoadNetwork(**arrays, profile=profile)


def _frozen(value: ArrayLike, dtype: type[np.generic], name: str) -> NDArray[Any]:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise RoadNetworkError(f"invalid road network: {name} must be 1-D, got shape {arr.shape}")
    if arr.dtype != dtype:
        if np.issubdtype(dtype, np.integer):
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise RoadNetworkError(
                    f"invalid road network: {name} must hold integers, got dtype {arr.dtype}"
                )
            info = np.iinfo(np.dtype(dtype))
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise RoadNetworkError(f"invalid road network: {name} does not fit in {info.dtype}")
        arr = arr.astype(dtype)  # a fresh copy
    elif arr.flags.writeable:
        arr = arr.copy()  # never freeze the caller's array
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def _validate(net: RoadNetwork) -> list[str]:
    problems: list[str] = []
    n, m = net.lat.shape[0], net.indices.shape[0]
    if n == 0:
        problems.append("it has no nodes")
    for name in _NODE_ARRAYS:
        if getattr(net, name).shape[0] != n:
            problems.append(f"{name} has {getattr(net, name).shape[0]} entries, lat has {n}")
    for name in _EDGE_ARRAYS:
        if getattr(net, name).shape[0] != m:
            problems.append(f"{name} has {getattr(net, name).shape[0]} entries, indices has {m}")
    if net.indptr.shape[0] != n + 1:
        problems.append(f"indptr has {net.indptr.shape[0]} entries, expected n_nodes + 1 = {n + 1}")
    elif net.indptr[0] != 0 or net.indptr[-1] != m or np.any(np.diff(net.indptr) < 0):
        problems.append("indptr must start at 0, never decrease and end at n_edges")
    if problems:
        return problems  # the checks below need consistent shapes

    if m and (net.indices.min() < 0 or net.indices.max() >= n):
        problems.append(f"indices must lie in [0, {n})")
    else:
        src = net.sources().astype(np.int64)
        if np.any(src == net.indices):
            problems.append(f"{int(np.sum(src == net.indices))} self-loop edges")
        key = src * n + net.indices
        if np.any(np.diff(key) <= 0):
            problems.append(
                "targets must be strictly increasing within each row (no parallel edges)"
            )
    for name in ("travel_time_s", "length_m"):
        arr = getattr(net, name)
        if not np.all(np.isfinite(arr) & (arr >= 0)):
            problems.append(f"{name} must be finite and >= 0")
    if not np.all(np.isfinite(net.speed_kph) & (net.speed_kph > 0)):
        problems.append("speed_kph must be finite and > 0")
    if m and (net.highway.min() < 0 or net.highway.max() >= len(HIGHWAY_CLASSES)):
        problems.append(f"highway codes must lie in [0, {len(HIGHWAY_CLASSES)})")
    if not (np.all(np.abs(net.lat) <= 90) and np.all(np.abs(net.lon) <= 180)):
        problems.append("lat must lie in [-90, 90] and lon in [-180, 180] (degrees, WGS 84)")
    ids = np.sort(net.osm_id)  # 0.06 s on 1M nodes; np.unique (hashing, numpy 2.4) takes 1 s
    if np.any(ids[1:] == ids[:-1]):
        problems.append("osm_id must be unique")
    if not net.profile:
        problems.append("profile must be named")
    return problems


@dataclass(frozen=True)
class BuildReport:
    """How a network was obtained: counts before and after filtering, timings, cache use.

    ``ways_used`` counts the ways (features) the profile drives, ``ways_rejected`` those with a
    ``highway`` tag it may not drive (footways, closed access...), ``missing_node_refs`` the way
    node references without a location (ways are split there). ``nodes_before_scc`` and
    ``edges_before_scc`` count the drivable graph (edges after merging parallel ones, of which
    there were ``parallel_edges_merged``); ``n_nodes``/``n_edges`` what is left in the largest of
    the ``components`` strongly connected components.
    ``build_time_s`` is the time the build took (when served from the cache: the original build's
    time, as recorded in the cache); ``load_time_s`` is the time this call took.
    """

    source: str
    profile: str
    ways_used: int
    ways_rejected: int
    missing_node_refs: int
    nodes_before_scc: int
    edges_before_scc: int
    parallel_edges_merged: int
    components: int
    n_nodes: int
    n_edges: int
    build_time_s: float
    load_time_s: float
    from_cache: bool = False
    cache_path: str | None = None

    @property
    def dropped_nodes(self) -> int:
        """Nodes outside the largest strongly connected component."""
        return self.nodes_before_scc - self.n_nodes

    @property
    def dropped_edges(self) -> int:
        """Edges outside the largest strongly connected component."""
        return self.edges_before_scc - self.n_edges

    def summary(self) -> str:
        """One human-readable line."""
        origin = f"from cache {self.cache_path}" if self.from_cache else "built"
        return (
            f"{self.source} [{self.profile}]: {self.n_nodes} nodes, {self.n_edges} edges "
            f"({origin} in {self.load_time_s:.2f} s; build {self.build_time_s:.2f} s); "
            f"dropped {self.dropped_nodes} nodes and {self.dropped_edges} edges outside the "
            f"largest strongly connected component (of {self.components})"
        )
