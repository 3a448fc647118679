"""From drivable way chains to a :class:`RoadNetwork`: edges, parallel-edge merge, largest SCC.

Readers (OSM, road layers) fill a :class:`WayChains` — node keys and coordinates of each drivable
way, split where a node has no location — and :func:`build_network` does the rest with numpy and
scipy.
"""

from __future__ import annotations

import logging
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from geodata.errors import EmptyNetworkError
from geodata.geo import haversine_m
from geodata.ingest.profiles import Profile
from geodata.ingest.tags import WayRule
from geodata.network import BuildReport, RoadNetwork

__all__ = ["WayChains", "build_network"]

logger = logging.getLogger(__name__)


@dataclass
class WayChains:
    """Growable buffers: one chain per drivable way piece, with its nodes and rule.

    A chain is a run of consecutive way nodes that all have a location; it yields an edge per
    consecutive pair and allowed direction. ``key`` identifies a node (OSM id, or rounded
    coordinates).
    """

    key: array[int] = field(default_factory=lambda: array("q"))
    lat: array[float] = field(default_factory=lambda: array("d"))
    lon: array[float] = field(default_factory=lambda: array("d"))
    chain_end: array[int] = field(default_factory=lambda: array("q"))
    forward: array[int] = field(default_factory=lambda: array("b"))
    backward: array[int] = field(default_factory=lambda: array("b"))
    speed_forward_kph: array[float] = field(default_factory=lambda: array("d"))
    speed_backward_kph: array[float] = field(default_factory=lambda: array("d"))
    highway: array[int] = field(default_factory=lambda: array("b"))
    flags: array[int] = field(default_factory=lambda: array("B"))
    way_id: array[int] = field(default_factory=lambda: array("q"))
    ways_used: int = 0
    ways_rejected: int = 0
    missing_node_refs: int = 0

    def end_chain(self, rule: WayRule, way_id: int) -> None:
        """Close the chain made of the nodes appended since the previous chain (if it has >= 2)."""
        start = self.chain_end[-1] if self.chain_end else 0
        if len(self.key) - start < 2:
            del self.key[start:], self.lat[start:], self.lon[start:]
            return
        self.chain_end.append(len(self.key))
        self.forward.append(rule.forward)
        self.backward.append(rule.backward)
        self.speed_forward_kph.append(rule.speed_forward_kph)
        self.speed_backward_kph.append(rule.speed_backward_kph)
        self.highway.append(rule.highway)
        self.flags.append(rule.flags)
        self.way_id.append(way_id)


def build_network(
    chains: WayChains,
    profile: Profile,
    source: str,
    *,
    started: float,
    synthetic_ids: bool = False,
) -> tuple[RoadNetwork, BuildReport]:
    """Turn way chains into the largest strongly connected road network and its report.

    ``started`` is the ``time.perf_counter()`` value when reading began (for the report's timings).
    With ``synthetic_ids`` node ids are ``-1, -2, ...`` in node order instead of the chain keys.
    """
    if not chains.chain_end:
        raise EmptyNetworkError(
            f"no drivable road for profile {profile.name!r} in {source} "
            f"({chains.ways_rejected} ways with a highway tag rejected by the profile)"
        )
    nodes = _Nodes.of(chains)
    edges, merged = _merge_parallel(_directed_edges(chains, nodes))
    n_all, m_all = nodes.key.shape[0], int(edges["u"].shape[0])
    n_comp, keep_node = _largest_scc(edges["u"], edges["v"], n_all)
    keep_edge = keep_node[edges["u"]] & keep_node[edges["v"]]
    if not np.any(keep_edge):
        raise EmptyNetworkError(
            f"no two drivable nodes of {source} reach each other for profile {profile.name!r} "
            f"({n_all} nodes, {m_all} one-way edges)"
        )
    network = _network(nodes, {k: x[keep_edge] for k, x in edges.items()}, keep_node, profile,
                       synthetic_ids=synthetic_ids)  # fmt: skip
    elapsed = time.perf_counter() - started
    report = BuildReport(
        source=source,
        profile=profile.name,
        ways_used=chains.ways_used,
        ways_rejected=chains.ways_rejected,
        missing_node_refs=chains.missing_node_refs,
        nodes_before_scc=int(n_all),
        edges_before_scc=m_all,
        parallel_edges_merged=merged,
        components=n_comp,
        n_nodes=network.n_nodes,
        n_edges=network.n_edges,
        build_time_s=elapsed,
        load_time_s=elapsed,
    )
    if chains.missing_node_refs:
        logger.warning(
            "%s: %d node references of drivable ways have no location (outside the extract?); "
            "the ways were split there",
            source,
            chains.missing_node_refs,
        )
    logger.info("built road network %s", report.summary())
    return network, report


@dataclass(frozen=True)
class _Nodes:
    """The distinct nodes of the chains: sorted keys, coordinates, and each chain row's node."""

    key: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    node_of: NDArray[np.intp]

    @classmethod
    def of(cls, chains: WayChains) -> _Nodes:
        key = np.frombuffer(chains.key, dtype=np.int64)
        node_key, first, node_of = np.unique(key, return_index=True, return_inverse=True)
        lat_all = np.frombuffer(chains.lat, dtype=np.float64)
        lon_all = np.frombuffer(chains.lon, dtype=np.float64)
        return cls(node_key, lat_all[first], lon_all[first], node_of)


def _directed_edges(chains: WayChains, nodes: _Nodes) -> dict[str, NDArray[Any]]:
    """One edge per consecutive node pair of a chain and allowed direction, with its attributes."""
    ends = np.frombuffer(chains.chain_end, dtype=np.int64)
    node_of, lat, lon = nodes.node_of, nodes.lat, nodes.lon
    chain_of = np.repeat(np.arange(ends.shape[0]), np.diff(ends, prepend=0))
    pair = chain_of[:-1] == chain_of[1:]
    a, b, c = node_of[:-1][pair], node_of[1:][pair], chain_of[:-1][pair]
    proper = a != b  # a way listing the same node twice in a row has no length there
    a, b, c = a[proper], b[proper], c[proper]
    seg_len = haversine_m(lat[a], lon[a], lat[b], lon[b])

    fwd = np.frombuffer(chains.forward, dtype=np.int8)[c].astype(bool)
    bwd = np.frombuffer(chains.backward, dtype=np.int8)[c].astype(bool)
    spd_f = np.frombuffer(chains.speed_forward_kph, dtype=np.float64)[c]
    spd_b = np.frombuffer(chains.speed_backward_kph, dtype=np.float64)[c]
    hwy = np.frombuffer(chains.highway, dtype=np.int8)[c]
    way = np.frombuffer(chains.way_id, dtype=np.int64)[c]
    flag = np.frombuffer(chains.flags, dtype=np.uint8)[c]

    travel_fwd = seg_len / (spd_f / 3.6)
    travel_bwd = seg_len / (spd_b / 3.6)
    return {
        "u": np.concatenate([a[fwd], b[bwd]]).astype(np.int64),
        "v": np.concatenate([b[fwd], a[bwd]]).astype(np.int64),
        "length": np.concatenate([seg_len[fwd], seg_len[bwd]]),
        "speed": np.concatenate([spd_f[fwd], spd_b[bwd]]),
        "travel": np.concatenate([travel_fwd[fwd], travel_bwd[bwd]]),
        "highway": np.concatenate([hwy[fwd], hwy[bwd]]),
        "way_id": np.concatenate([way[fwd], way[bwd]]),
        "flags": np.concatenate([flag[fwd], flag[bwd]]),
    }


def _merge_parallel(edges: dict[str, NDArray[Any]]) -> tuple[dict[str, NDArray[Any]], int]:
    """Keep the fastest edge of each ``(u, v)``, sorted by ``(u, v)``; also return how many went.

    The kept edge keeps its own flags: where a toll and a free way join the same two nodes
    (rare: two ways sharing two consecutive nodes), avoiding tolls loses the free one too."""
    order = np.lexsort((edges["travel"], edges["v"], edges["u"]))  # the last key is the primary
    edges = {k: x[order] for k, x in edges.items()}
    u, v = edges["u"], edges["v"]
    first_of_pair = np.ones(u.shape[0], dtype=bool)
    first_of_pair[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    merged = int(u.shape[0] - np.count_nonzero(first_of_pair))
    return {k: x[first_of_pair] for k, x in edges.items()}, merged


def _largest_scc(
    u: NDArray[np.int64], v: NDArray[np.int64], n: int
) -> tuple[int, NDArray[np.bool_]]:
    """The number of strongly connected components and the mask of the largest one's nodes.

    Ties go to the lowest label, so the choice is deterministic. ``u`` must be sorted.
    """
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=n), out=indptr[1:])
    graph = csr_array((np.ones(u.shape[0], dtype=np.int8), v, indptr), shape=(n, n))
    n_comp, labels = connected_components(graph, directed=True, connection="strong")
    return int(n_comp), labels == int(np.argmax(np.bincount(labels)))


def _network(
    nodes: _Nodes,
    kept: dict[str, NDArray[Any]],
    keep_node: NDArray[np.bool_],
    profile: Profile,
    *,
    synthetic_ids: bool,
) -> RoadNetwork:
    """The network of the kept nodes and edges, nodes renumbered in key order."""
    new_id = np.cumsum(keep_node) - 1  # monotone, so edges stay sorted by (u, v)
    n = int(np.count_nonzero(keep_node))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(new_id[kept["u"]], minlength=n), out=indptr[1:])
    osm_id = -np.arange(1, n + 1, dtype=np.int64) if synthetic_ids else nodes.key[keep_node]
    return RoadNetwork(
        indptr=indptr,
        indices=new_id[kept["v"]].astype(np.int32),
        travel_time_s=kept["travel"],
        length_m=kept["length"],
        speed_kph=kept["speed"],
        way_id=kept["way_id"],
        highway=kept["highway"],
        lat=nodes.lat[keep_node],
        lon=nodes.lon[keep_node],
        osm_id=osm_id,
        profile=profile.name,
        flags=kept["flags"],
    )
