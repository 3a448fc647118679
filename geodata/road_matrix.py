"""Travel-time and distance matrices between snapped points (points *on* edges, not nodes).

A point at fraction ``f`` of directed edge ``u -> v`` (travel time ``t``, length ``L``) with
opposite edge ``v -> u`` (``t_r``, ``L_r``; absent on a one-way street):

* as a **source** it reaches ``v`` after ``(1 - f)·t`` / ``(1 - f)·L`` and, if ``v -> u`` exists,
  ``u`` after ``f·t_r`` / ``f·L_r``;
* as a **target** it is reached from ``u`` with ``f·t`` / ``f·L`` more and, if ``v -> u`` exists,
  from ``v`` with ``(1 - f)·t_r`` / ``(1 - f)·L_r`` more.

A point exactly on a node (``f == 0`` or ``f == 1``, common where the nearest spot of a road is
its end) *is* that node, so it also starts from / arrives at that node at zero cost even on a
one-way street. These seeds and entries (:func:`source_seeds`, :func:`target_entries`) go to
:func:`geodata.matrix.many_to_many_prepared` (on the network's prepared graph, built once per
network: :meth:`geodata.network.RoadNetwork.prepared`). A source and a target on the same
directed edge with the target downstream (``f_t >= f_s``) are also connected directly,
``(f_t - f_s)·t``, which the network search cannot see; the matrix takes the faster of the two
(the direct one on a tie). A point to itself is therefore 0.

Headed points (``source_headed`` / ``target_headed``, for ``avoid_u_turns``) are reached and left in
one direction of travel only, through the junctions at the ends of their street; see
:mod:`geodata.headings`.

Unreachable pairs are ``inf`` (never on the largest strongly connected component that
:func:`geodata.load_network` keeps); their count is logged and
:func:`geodata.matrix.unreachable_pairs` lists them.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import numpy.typing as npt

from geodata.arrays import F64, I64
from geodata.errors import MatrixInputError
from geodata.headings import Chain, chain_candidates, headed_chains, headed_groups
from geodata.matrix import MatrixResult, many_to_many_prepared
from geodata.network import RoadNetwork
from geodata.seeds import Seeds
from geodata.snap import SnapResult

__all__ = [
    "CH_MIN_NODES",
    "road_matrix",
    "same_edge_cost",
    "source_seeds",
    "target_entries",
    "validate_points",
]

logger = logging.getLogger(__name__)

CH_MIN_NODES = 20_000
"""Networks from this many nodes answer matrices with a contraction hierarchy (see
:func:`uses_hierarchy`; measured in :mod:`benchmarks.matrix_ch`)."""


def road_matrix(
    network: RoadNetwork,
    sources: SnapResult,
    targets: SnapResult | None = None,
    *,
    threads: int | None = None,
    source_headed: npt.NDArray[np.bool_] | None = None,
    target_headed: npt.NDArray[np.bool_] | None = None,
) -> MatrixResult:
    """Fastest road travel times and their lengths from every source point to every target point.

    Parameters
    ----------
    network : RoadNetwork
        The network the points were snapped to (with :class:`geodata.snap.Snapper`).
    sources : SnapResult
        Matrix rows.
    targets : SnapResult, optional
        Matrix columns; ``None`` means the sources (a square matrix).
    threads : int, optional
        As in :func:`geodata.matrix.many_to_many_seeded`.
    source_headed, target_headed : ndarray of bool, optional
        The headed points (no U-turn on their street, :mod:`geodata.headings`); with ``targets``
        None, ``target_headed`` defaults to ``source_headed``.

    Points are used as snapped, however far from the road: check :attr:`SnapResult.ok` (or call
    :meth:`SnapResult.require_ok`) first.

    Returns
    -------
    MatrixResult
        ``durations_s`` (s) and ``distances_m`` (m) of shape ``(len(sources), len(targets))``,
        ``inf`` where there is no path.

    Raises
    ------
    MatrixInputError
        (a ``ValueError``) when a snapped point does not fit ``network`` (edge ids out of range, a
        reverse edge that is not the opposite edge, a fraction outside ``[0, 1]``).
    """
    started = time.perf_counter()
    if targets is None:
        targets = sources
        target_headed = source_headed if target_headed is None else target_headed
    problems: list[str] = []
    validate_points(network, sources, "sources", problems)
    validate_points(network, targets, "targets", problems)
    if problems:
        raise MatrixInputError(problems)
    source_chains = headed_chains(network, sources, source_headed)
    same = targets is sources and target_headed is source_headed
    target_chains = source_chains if same else headed_chains(network, targets, target_headed)
    result = many_to_many_prepared(
        network.prepared(),
        source_seeds(network, sources, source_chains),
        target_entries(network, targets, target_chains),
        threads=threads,
        hierarchy=network.hierarchy() if uses_hierarchy(network) else None,
    )
    durations, distances = result.durations_s, result.distances_m
    for i, j, time_s, dist_m in _same_edge_candidates(network, sources, targets):
        better = time_s <= durations[i, j]
        durations[i[better], j[better]] = time_s[better]
        distances[i[better], j[better]] = dist_m[better]
    for a, b, t, d in chain_candidates(network, sources, targets, source_chains, target_chains):
        if t <= durations[a, b]:
            durations[a, b], distances[a, b] = t, d
    n_unreachable = int(np.count_nonzero(np.isinf(durations)))
    if n_unreachable:
        logger.warning(
            "%d of %d point pairs have no road path between them (see unreachable_pairs)",
            n_unreachable,
            durations.size,
        )
    logger.debug(
        "road matrix %dx%d in %.3f s", len(sources), len(targets), time.perf_counter() - started
    )
    return result


def uses_hierarchy(network: RoadNetwork) -> bool:
    """Whether matrices on ``network`` come from its contraction hierarchy.

    Yes from :data:`CH_MIN_NODES` nodes on (or when it is built already): below, the Dijkstra
    kernels answer a matrix in about the time the hierarchy takes to build.
    """
    return network.n_nodes >= CH_MIN_NODES or network.has_hierarchy()


def source_seeds(
    network: RoadNetwork, points: SnapResult, chains: dict[int, Chain] | None = None
) -> Seeds:
    """One group of seeds per point: the nodes it reaches first and the cost of getting there
    (``chains``: of the headed points, :func:`geodata.headings.headed_chains`)."""
    return _with_headings(
        network, points, _endpoint_groups(network, points, leaving=True), chains, True
    )


def target_entries(
    network: RoadNetwork, points: SnapResult, chains: dict[int, Chain] | None = None
) -> Seeds:
    """One group of entries per point: the nodes it is reached from and the cost from there
    (``chains``: of the headed points, :func:`geodata.headings.headed_chains`)."""
    return _with_headings(
        network, points, _endpoint_groups(network, points, leaving=False), chains, False
    )


def _with_headings(
    network: RoadNetwork,
    points: SnapResult,
    seeds: Seeds,
    chains: dict[int, Chain] | None,
    leaving: bool,
) -> Seeds:
    if not chains:
        return seeds
    plain = [
        [
            (int(seeds.node[r]), float(seeds.time_s[r]), float(seeds.dist_m[r]))
            for r in range(int(seeds.ptr[g]), int(seeds.ptr[g + 1]))
        ]
        for g in range(len(seeds))
    ]
    return Seeds.from_groups(headed_groups(network, points, chains, plain, leaving=leaving))


def _endpoint_groups(network: RoadNetwork, points: SnapResult, *, leaving: bool) -> Seeds:
    """Each point's edge ends with the part of the edge between them and the point.

    Leaving a point at fraction ``f`` of ``u -> v`` reaches ``v`` over ``1 - f`` of the edge and
    ``u`` over ``f`` of the reverse edge; arriving comes from ``u`` over ``f`` of the edge and
    from ``v`` over ``1 - f`` of the reverse edge. The second end counts only where the reverse
    edge exists or the point is on that end itself.
    """
    f, edge, rev = points.fraction, points.edge, points.reverse_edge
    v = network.indices[edge].astype(np.int64)
    u = _edge_sources(network, edge)
    has_rev = rev >= 0
    rev_safe = np.where(has_rev, rev, 0)
    along, back = (1.0 - f, f) if leaving else (f, 1.0 - f)
    first_node, second_node = (v, u) if leaving else (u, v)
    grid = network.prepared().seed_times  # times on the exact grid of the searches' graph
    first = (first_node, grid(along * network.travel_time_s[edge]), along * network.length_m[edge])
    second = (
        second_node,
        grid(np.where(has_rev, back * network.travel_time_s[rev_safe], 0.0)),
        np.where(has_rev, back * network.length_m[rev_safe], 0.0),
    )
    on_second = f == (0.0 if leaving else 1.0)
    return _interleave(first, second, has_rev | on_second)


def _interleave(
    first: tuple[I64, F64, F64], second: tuple[I64, F64, F64], keep_second: npt.NDArray[np.bool_]
) -> Seeds:
    """Groups ``[first[i]]`` or ``[first[i], second[i]]`` (where ``keep_second[i]``)."""
    n = keep_second.shape[0]
    keep = np.column_stack([np.ones(n, dtype=np.bool_), keep_second]).ravel()
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(1 + keep_second.astype(np.int64), out=ptr[1:])
    node, time_s, dist_m = (
        np.column_stack([a, b]).ravel()[keep] for a, b in zip(first, second, strict=True)
    )
    return Seeds(ptr, node.astype(np.int32), time_s, dist_m)


def _edge_sources(network: RoadNetwork, edge: I64) -> I64:
    """Source node of each edge, by binary search in ``indptr`` (no O(n_edges) array)."""
    return np.searchsorted(network.indptr, edge, side="right").astype(np.int64) - 1


def _positions(points: SnapResult) -> tuple[I64, F64, I64]:
    """Every (directed edge, fraction along it, point index) a point lies on: one or two rows."""
    has_rev = points.reverse_edge >= 0
    idx = np.arange(len(points), dtype=np.int64)
    edges = np.concatenate([points.edge, points.reverse_edge[has_rev]])
    fracs = np.concatenate([points.fraction, 1.0 - points.fraction[has_rev]])
    return edges, fracs, np.concatenate([idx, idx[has_rev]])


def _same_edge_candidates(
    network: RoadNetwork, sources: SnapResult, targets: SnapResult
) -> list[tuple[I64, I64, F64, F64]]:
    """Direct along-the-edge connections: one or two ``(i, j, time_s, dist_m)`` blocks.

    Within one block every ``(i, j)`` occurs once; a pair may occur in both blocks (both
    directions of a two-way street, only when both give 0).
    """
    s_edge, s_frac, s_idx = _positions(sources)
    t_edge, t_frac, t_idx = _positions(targets)
    shared = np.intersect1d(s_edge, t_edge)
    if shared.size == 0:
        return []
    s_order = np.argsort(s_edge, kind="stable")
    t_order = np.argsort(t_edge, kind="stable")
    s_sorted, t_sorted = s_edge[s_order], t_edge[t_order]
    s_lo = np.searchsorted(s_sorted, shared, side="left")
    s_hi = np.searchsorted(s_sorted, shared, side="right")
    t_lo = np.searchsorted(t_sorted, shared, side="left")
    t_hi = np.searchsorted(t_sorted, shared, side="right")
    # every (source position, target position) pair of each shared edge, in one vectorised pass
    n_s, n_t = s_hi - s_lo, t_hi - t_lo
    sizes = n_s * n_t
    block = np.repeat(np.arange(shared.shape[0]), sizes)
    within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    rows = s_order[s_lo[block] + within // n_t[block]]
    cols = t_order[t_lo[block] + within % n_t[block]]
    delta = t_frac[cols] - s_frac[rows]
    downstream = delta >= 0.0
    edge, delta = shared[block[downstream]], delta[downstream]
    ii, jj = s_idx[rows[downstream]], t_idx[cols[downstream]]
    time_s, dist_m = delta * network.travel_time_s[edge], delta * network.length_m[edge]
    # a pair on both directions of a two-way street occurs twice: the repeats form a second block
    _, first = np.unique(ii * len(targets) + jj, return_index=True)
    once = np.zeros(ii.shape[0], dtype=np.bool_)
    once[first] = True
    blocks = [(ii[once], jj[once], time_s[once], dist_m[once])]
    if not once.all():
        blocks.append((ii[~once], jj[~once], time_s[~once], dist_m[~once]))
    return blocks


def same_edge_cost(
    network: RoadNetwork,
    src_edge: int,
    src_fraction: float,
    src_reverse: int,
    dst_edge: int,
    dst_fraction: float,
    dst_reverse: int,
) -> tuple[float, float]:
    """Time and length of the direct along-the-edge connection of two points, ``inf`` if none.

    Same arithmetic as the matrix (so path costs equal matrix entries bit for bit).
    """
    src = [(src_edge, np.float64(src_fraction))]
    if src_reverse >= 0:
        src.append((src_reverse, 1.0 - np.float64(src_fraction)))
    dst = [(dst_edge, np.float64(dst_fraction))]
    if dst_reverse >= 0:
        dst.append((dst_reverse, 1.0 - np.float64(dst_fraction)))
    best_time, best_dist = np.inf, np.inf
    for e_s, f_s in src:
        for e_t, f_t in dst:
            delta = f_t - f_s
            if e_s == e_t and delta >= 0.0:
                t = float(delta * network.travel_time_s[e_s])
                if t < best_time:
                    best_time, best_dist = t, float(delta * network.length_m[e_s])
    return best_time, best_dist


def validate_points(
    network: RoadNetwork, points: SnapResult, name: str, problems: list[str]
) -> None:
    """Append to ``problems`` why ``points`` (called ``name``) cannot be snaps on ``network``."""
    if not isinstance(points, SnapResult):
        problems.append(f"{name} must be a SnapResult, got {type(points).__name__}")
        return
    m = network.n_edges
    edge, rev, f = points.edge, points.reverse_edge, points.fraction
    if len(points) == 0:
        return
    if edge.min() < 0 or edge.max() >= m:
        problems.append(f"{name}.edge must be edge ids in [0, {m}) of the network")
        return
    if rev.min() < -1 or rev.max() >= m:
        problems.append(f"{name}.reverse_edge must be -1 or edge ids in [0, {m})")
        return
    has_rev = rev >= 0
    if has_rev.any():
        e, r = edge[has_rev], rev[has_rev]
        opposite = (network.indices[r] == _edge_sources(network, e)) & (
            network.indices[e] == _edge_sources(network, r)
        )
        if not opposite.all():
            bad = int(np.flatnonzero(has_rev)[np.flatnonzero(~opposite)[0]])
            problems.append(
                f"{name}.reverse_edge[{bad}] = {rev[bad]} is not the opposite of edge {edge[bad]} "
                "(points snapped to another network?)"
            )
    if not np.all((f >= 0.0) & (f <= 1.0)):
        bad = int(np.flatnonzero(~((f >= 0.0) & (f <= 1.0)))[0])
        problems.append(f"{name}.fraction must lie in [0, 1], {name}.fraction[{bad}] = {f[bad]}")
