"""Headed points: reached and left in one direction of travel only, no U-turn on their street.

A *headed* point is a snapped point (:class:`geodata.snap.SnapResult`) without an opposite edge
(``reverse_edge == -1``) that must not be turned around at: the vehicle arrives along its directed
edge ``u -> v`` and leaves along it. The network has no turn model, so a search could still turn
around at ``v`` (a shape point of the street a few metres on); a headed point therefore reaches
the road network only at the ends of its *chain*, the run of edges through interior nodes
(:class:`geodata.prepared.Chains`: shape points, no junction) that holds its edge: it leaves
through the downstream junction ``d`` (seed: the rest of the chain) and is reached from the
upstream junction ``c`` (entry: the chain up to the point). Points on the chain itself, on the
right side, are connected directly along it (:func:`chain_cost`). A U-turn at a junction (or at
a dead end) stays possible: that is where the road graph can express turning.

A point exactly on a junction (fraction 0 at ``c`` or 1 at ``d``) also starts from / arrives at
that junction at zero cost, in any direction: the network cannot tell the turns apart there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geodata.network import RoadNetwork
from geodata.snap import SnapResult

__all__ = ["Chain", "chain_candidates", "chain_cost", "headed_chains", "headed_groups"]

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Chain:
    """The chain of a headed point: its directed edges from junction ``c`` to junction ``d``
    (the point's edge is ``edges[at]``), their gridded times and lengths."""

    edges: tuple[int, ...]
    at: int
    time_s: tuple[float, ...]
    length_m: tuple[float, ...]

    def offset(self, k: int, fraction: float, network: RoadNetwork) -> tuple[float, float]:
        """Time and length from ``c`` to fraction ``fraction`` of ``edges[k]``."""
        grid = network.prepared().seed_times
        part = np.array([fraction * self.time_s[k]])
        return (
            float(sum(self.time_s[:k]) + grid(part)[0]),
            float(sum(self.length_m[:k]) + fraction * self.length_m[k]),
        )

    def nodes(self, network: RoadNetwork) -> list[int]:
        """The nodes ``c, ..., d``."""
        first = int(_tail(network, self.edges[0]))
        return [first, *(int(network.indices[e]) for e in self.edges)]


def _tail(network: RoadNetwork, edge: int) -> int:
    return int(np.searchsorted(network.indptr, edge, side="right")) - 1


def _walk(network: RoadNetwork, edge: int) -> list[int]:
    """The edges after ``edge`` through interior nodes, up to a junction (exclusive of ``edge``)."""
    is_core = network.prepared().chains.is_core
    indptr, indices = network.indptr, network.indices
    out: list[int] = []
    prev, node = _tail(network, edge), int(indices[edge])
    while not is_core[node] and len(out) <= indices.shape[0]:
        onward = [e for e in range(int(indptr[node]), int(indptr[node + 1])) if indices[e] != prev]
        if len(onward) != 1:  # pragma: no cover - interior nodes have one way on
            break
        out.append(onward[0])
        prev, node = node, int(indices[onward[0]])
    return out


def _chain(network: RoadNetwork, edge: int) -> Chain:
    chains = network.prepared().chains
    up: list[int] = []
    tail = _tail(network, edge)
    if not chains.is_core[tail]:
        # the junction this chain starts from is one whose walks pass through ``tail``
        for origin in (int(chains.origin_a[tail]), int(chains.origin_b[tail])):
            if origin < 0:
                continue
            for first in range(int(network.indptr[origin]), int(network.indptr[origin + 1])):
                walk = [first, *_walk(network, first)]
                if edge in walk:
                    up = walk[: walk.index(edge)]
                    break
            if up:
                break
    edges = (*up, edge, *_walk(network, edge))
    weight, length = network.prepared().graph.weight, network.prepared().graph.length
    return Chain(
        edges=tuple(int(e) for e in edges),
        at=len(up),
        time_s=tuple(float(weight[e]) for e in edges),
        length_m=tuple(float(length[e]) for e in edges),
    )


def headed_chains(
    network: RoadNetwork, points: SnapResult, headed: Mask | None
) -> dict[int, Chain]:
    """The chain of every headed point (``headed[i]``; they must have no opposite edge)."""
    if headed is None:
        return {}
    out: dict[int, Chain] = {}
    for i in np.flatnonzero(headed).tolist():
        if points.reverse_edge[i] >= 0:
            raise ValueError(f"headed point {i} has an opposite edge: it has no single heading")
        out[i] = _chain(network, int(points.edge[i]))
    return out


def chain_cost(
    network: RoadNetwork,
    chain: Chain,
    headed_is_source: bool,
    points: SnapResult,
    i: int,
    other: SnapResult,
    j: int,
) -> tuple[float, float]:
    """Time and length along ``chain`` (of headed point ``points[i]``) between it and
    ``other[j]`` (from it when ``headed_is_source``, else to it), ``inf`` unless ``other[j]`` lies
    on the chain downstream (upstream) of it."""
    mine = chain.offset(chain.at, float(points.fraction[i]), network)
    best = (np.inf, np.inf)
    positions = [(int(other.edge[j]), float(other.fraction[j]))]
    if other.reverse_edge[j] >= 0:
        positions.append((int(other.reverse_edge[j]), 1.0 - float(other.fraction[j])))
    for edge, fraction in positions:
        if edge not in chain.edges:
            continue
        theirs = chain.offset(chain.edges.index(edge), fraction, network)
        start, end = (mine, theirs) if headed_is_source else (theirs, mine)
        if end[0] >= start[0] and end[1] >= start[1] and end[0] - start[0] < best[0]:
            best = (end[0] - start[0], end[1] - start[1])
    return best


def headed_groups(
    network: RoadNetwork,
    points: SnapResult,
    chains: dict[int, Chain],
    plain: list[list[tuple[int, float, float]]],
    *,
    leaving: bool,
) -> list[list[tuple[int, float, float]]]:
    """``plain`` (every point's seed or entry rows) with the headed points' rows replaced: the
    downstream junction (leaving) or the upstream one (arriving), plus the point's own node when
    it is exactly on a junction."""
    is_core = network.prepared().chains.is_core
    out = list(plain)
    for i, chain in chains.items():
        f = float(points.fraction[i])
        time_s, dist_m = chain.offset(chain.at, f, network)
        nodes = chain.nodes(network)
        if leaving:
            rows = [(nodes[-1], sum(chain.time_s) - time_s, sum(chain.length_m) - dist_m)]
            here = nodes[chain.at] if f == 0.0 else None
        else:
            rows = [(nodes[0], time_s, dist_m)]
            here = nodes[chain.at + 1] if f == 1.0 else None
        if here is not None and is_core[here] and here != rows[0][0]:
            rows.append((here, 0.0, 0.0))
        out[i] = rows
    return out


def chain_candidates(
    network: RoadNetwork,
    sources: SnapResult,
    targets: SnapResult,
    source_chains: dict[int, Chain],
    target_chains: dict[int, Chain],
) -> list[tuple[int, int, float, float]]:
    """``(i, j, time_s, dist_m)`` of the direct connections along a headed point's chain."""
    found: list[tuple[int, int, float, float]] = []
    for chains, mine, others, is_source in (
        (source_chains, sources, targets, True),
        (target_chains, targets, sources, False),
    ):
        for i, chain in chains.items():
            edges = np.asarray(chain.edges, dtype=np.int64)
            near = np.isin(others.edge, edges) | np.isin(others.reverse_edge, edges)
            for j in np.flatnonzero(near).tolist():
                time_s, dist_m = chain_cost(network, chain, is_source, mine, i, others, j)
                if np.isfinite(time_s):
                    found.append((i, j, time_s, dist_m) if is_source else (j, i, time_s, dist_m))
    return found
