"""Many-to-many matrices: exact agreement with scipy, seeded groups vs virtual nodes, validation.

The reference for travel times is ``scipy.sparse.csgraph.dijkstra`` on a matrix built here with
parallel edges reduced to their minimum (never summed). Distances are checked against the path
reconstructed from scipy's predecessors, which is exact when no two paths tie (continuous random
weights). Real extracts are © OpenStreetMap contributors (ODbL).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import dijkstra

from geodata.matrix import (
    MatrixInputError,
    MatrixResult,
    Seeds,
    many_to_many,
    many_to_many_prepared,
    many_to_many_seeded,
    unreachable_pairs,
)
from geodata.prepared import prepare_graph

ROOT = Path(__file__).resolve().parents[2]
MONACO = ROOT.parent / "shared" / "data" / "osm" / "monaco.osm.pbf"
SETTINGS = settings(max_examples=100, deadline=None)


# ------------------------------------------------------------------------------------------ #
# Graph helpers (independent of geodata)
# ------------------------------------------------------------------------------------------ #


class EdgeList:
    """A directed multigraph as edge arrays; ``csr()`` keeps parallel edges, ``scipy()`` not."""

    def __init__(self, n: int, u: Any, v: Any, w: Any, length: Any) -> None:
        order = np.argsort(np.asarray(u), kind="stable")
        self.n = n
        self.u = np.asarray(u, dtype=np.int64)[order]
        self.v = np.asarray(v, dtype=np.int64)[order]
        self.w = np.asarray(w, dtype=np.float64)[order]
        self.length = np.asarray(length, dtype=np.float64)[order]

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(self.u, minlength=self.n))
        return indptr, self.v.astype(np.int32), self.w, self.length

    def fastest_parallel(self) -> dict[tuple[int, int], tuple[float, float]]:
        """``{(u, v): (min time, length of that edge)}``; the first edge in CSR order wins a tie."""
        best: dict[tuple[int, int], tuple[float, float]] = {}
        for a, b, w, length in zip(
            self.u.tolist(), self.v.tolist(), self.w.tolist(), self.length.tolist(), strict=True
        ):
            if (a, b) not in best or w < best[(a, b)][0]:
                best[(a, b)] = (w, length)
        return best

    def scipy(self) -> sp.csr_array:
        """Parallel edges reduced to the minimum time; explicit zeros kept as edges."""
        best = self.fastest_parallel()
        keys = sorted(best)
        rows = np.array([k[0] for k in keys], dtype=np.int64)
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(rows, minlength=self.n))
        cols = np.array([k[1] for k in keys], dtype=np.int32)
        data = np.array([best[k][0] for k in keys], dtype=np.float64)
        return sp.csr_array((data, cols, indptr), shape=(self.n, self.n))


def path_length(edges: EdgeList, predecessors: np.ndarray, source: int, target: int) -> float:
    """Sum of lengths, source to target, along scipy's predecessor path (left to right)."""
    nodes = [target]
    while nodes[-1] != source:
        nodes.append(int(predecessors[nodes[-1]]))
    nodes.reverse()
    best = edges.fastest_parallel()
    total = 0.0
    for a, b in itertools.pairwise(nodes):
        total += best[(a, b)][1]
    return total


@st.composite
def graphs(draw: st.DrawFn, *, float_weights: bool) -> tuple[EdgeList, list[int], list[int]]:
    """Random directed multigraphs with 1-3 mutually unreachable parts, plus sources/targets.

    ``float_weights``: weights drawn by hypothesis (zeros, repeats, ties); otherwise continuous
    random weights from a drawn seed (no ties, so the fastest path is unique).
    """
    n = draw(st.integers(1, 25))
    part = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=4 * n))
    pairs = [(a, b) for a, b in pairs if part[a] == part[b]]  # parts never connect
    return weighted_case(draw, n, pairs, float_weights=float_weights)


def weighted_case(
    draw: st.DrawFn, n: int, pairs: list[tuple[int, int]], *, float_weights: bool
) -> tuple[EdgeList, list[int], list[int]]:
    """Weights for the edges ``pairs`` of an ``n``-node graph, plus sources and targets."""
    m = len(pairs)
    if float_weights:
        cost = st.floats(0.0, 1e4, allow_nan=False, allow_infinity=False)
        w = draw(st.lists(cost, min_size=m, max_size=m))
        length = draw(st.lists(cost, min_size=m, max_size=m))
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        w = rng.uniform(0.5, 100.0, m)
        length = rng.uniform(1.0, 2000.0, m)
    u = [a for a, _ in pairs]
    v = [b for _, b in pairs]
    nodes = st.integers(0, n - 1)
    sources = draw(st.lists(nodes, min_size=1, max_size=8))
    targets = draw(st.lists(nodes, min_size=1, max_size=8))
    return EdgeList(n, u, v, w, length), sources, targets


@st.composite
def road_graphs(draw: st.DrawFn, *, float_weights: bool) -> tuple[EdgeList, list[int], list[int]]:
    """Road-like graphs: junctions joined by chains of shape points (one- and two-way streets),
    loops, rings with no junction at all and a few stray edges, node ids shuffled.

    Full-resolution road graphs are mostly such chains, which the kernels walk without queueing.
    """
    n_core = draw(st.integers(1, 6))
    chain = st.tuples(
        st.integers(0, n_core - 1), st.integers(0, n_core - 1), st.integers(0, 4), st.booleans()
    )
    chains = draw(st.lists(chain, max_size=10))
    rings = draw(st.lists(st.tuples(st.integers(2, 5), st.booleans()), max_size=2))
    pairs: list[tuple[int, int]] = []
    n = n_core

    def street(path: list[int], two_way: bool) -> None:
        for x, y in itertools.pairwise(path):
            pairs.extend([(x, y), (y, x)] if two_way else [(x, y)])

    for a, b, n_interior, two_way in chains:
        street([a, *range(n, n + n_interior), b], two_way)
        n += n_interior
    for size, two_way in rings:
        street([*range(n, n + size), n], two_way)
        n += size
    nodes = st.integers(0, n - 1)
    pairs += draw(st.lists(st.tuples(nodes, nodes), max_size=3))
    shuffle = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(n)
    shuffled = [(int(shuffle[a]), int(shuffle[b])) for a, b in pairs]
    return weighted_case(draw, n, shuffled, float_weights=float_weights)


def any_graphs(*, float_weights: bool) -> st.SearchStrategy[tuple[EdgeList, list[int], list[int]]]:
    return st.one_of(graphs(float_weights=float_weights), road_graphs(float_weights=float_weights))


def run(edges: EdgeList, sources: Any, targets: Any, threads: int | None = 1) -> MatrixResult:
    return many_to_many(*edges.csr(), sources, targets, threads=threads)


# ------------------------------------------------------------------------------------------ #
# Agreement with scipy
# ------------------------------------------------------------------------------------------ #


@SETTINGS
@given(any_graphs(float_weights=True))
def test_durations_equal_scipy_exactly(case: tuple[EdgeList, list[int], list[int]]) -> None:
    edges, sources, targets = case
    expected = dijkstra(edges.scipy(), directed=True, indices=sources)[:, targets]
    for threads in (1, None):
        result = run(edges, sources, targets, threads)
        np.testing.assert_array_equal(result.durations_s, expected)
        np.testing.assert_array_equal(np.isinf(result.distances_m), np.isinf(expected))


@SETTINGS
@given(any_graphs(float_weights=False))
def test_distances_follow_the_fastest_path(case: tuple[EdgeList, list[int], list[int]]) -> None:
    edges, sources, targets = case
    times, pred = dijkstra(edges.scipy(), directed=True, indices=sources, return_predecessors=True)
    result = run(edges, sources, targets)
    np.testing.assert_array_equal(result.durations_s, times[:, targets])
    for i, s in enumerate(sources):
        for j, t in enumerate(targets):
            if np.isinf(times[i, t]):
                assert np.isinf(result.distances_m[i, j])
            else:
                assert result.distances_m[i, j] == path_length(edges, pred[i], s, t)


def test_hand_checked_example() -> None:
    # 0 -> 1 -> 2 is slower but shorter than 0 -> 2; 3 is isolated.
    edges = EdgeList(4, [0, 1, 0, 0], [1, 2, 2, 2], [5.0, 5.0, 8.0, 9.0], [10, 10, 500, 1])
    result = run(edges, [0, 2, 3], [2, 0, 3])
    inf = np.inf
    assert result.durations_s.tolist() == [[8.0, 0.0, inf], [0.0, inf, inf], [inf, inf, 0.0]]
    assert result.distances_m.tolist() == [[500.0, 0.0, inf], [0.0, inf, inf], [inf, inf, 0.0]]
    assert unreachable_pairs(result).tolist() == [[0, 2], [1, 1], [1, 2], [2, 0], [2, 1]]
    assert result.unreachable.sum() == 5
    assert result.shape == (3, 3)


def test_ties_keep_the_first_path_found_and_zero_weights_are_edges() -> None:
    edges = EdgeList(3, [0, 0, 1], [1, 2, 2], [0.0, 1.0, 1.0], [3.0, 4.0, 5.0])
    result = run(edges, [0], [1, 2])
    assert result.durations_s.tolist() == [[0.0, 1.0]]
    assert result.distances_m[0, 0] == 3.0
    assert result.distances_m[0, 1] in (4.0, 8.0)  # two fastest paths of equal time


@pytest.mark.parametrize(("a", "b", "x", "y"), list(itertools.permutations(range(4))))
def test_a_street_is_entered_from_whichever_end_is_faster(a: int, b: int, x: int, y: int) -> None:
    """Junctions ``a`` and ``b`` (each with a spur, 4 and 5) joined by a two-way street of shape
    points ``x``, ``y`` (slow near ``a``) and by a fast direct road: from ``a`` the street is best
    entered at ``b``'s end. Every labelling, so that either junction may walk the street first.
    """
    street = [(a, x, 100.0), (x, y, 2.0), (y, b, 1.0), (a, 4, 7.0), (b, 5, 9.0)]
    pairs = [*street, *((q, p, w) for p, q, w in street), (a, b, 5.0), (b, a, 5.0)]
    edges = EdgeList(6, *zip(*pairs, strict=True), [w * 10 for _, _, w in pairs])
    is_core = prepare_graph(*edges.csr()).chains.is_core
    assert is_core.tolist() == [i not in (x, y) for i in range(6)]
    result = run(edges, [a, b], [x, y])
    assert result.durations_s.tolist() == [[8.0, 6.0], [3.0, 1.0]]
    assert result.distances_m.tolist() == [[80.0, 60.0], [30.0, 10.0]]
    seeded = many_to_many_seeded(
        *edges.csr(), Seeds.from_groups([[(x, 0.5, 1.0)]]), Seeds.from_nodes([a, b, y]), threads=1
    )
    assert seeded.durations_s.tolist() == [[8.5, 3.5, 2.5]]


def test_repeated_and_empty_node_sets() -> None:
    edges = EdgeList(3, [0, 1], [1, 2], [1.0, 2.0], [1.0, 2.0])
    result = run(edges, [0, 0, 2], [2, 2])
    assert result.durations_s.tolist() == [[3.0, 3.0], [3.0, 3.0], [0.0, 0.0]]
    assert run(edges, [], [0, 1]).durations_s.shape == (0, 2)
    assert run(edges, [0, 1], []).distances_m.shape == (2, 0)


# ------------------------------------------------------------------------------------------ #
# Seeded sources and targets
# ------------------------------------------------------------------------------------------ #


def random_seeds(draw: st.DrawFn, n: int, rng: np.random.Generator) -> Seeds:
    groups = draw(
        st.lists(st.lists(st.integers(0, n - 1), min_size=0, max_size=3), min_size=1, max_size=6)
    )
    return Seeds.from_groups(
        [[(v, float(rng.uniform(0, 50)), float(rng.uniform(0, 500))) for v in g] for g in groups]
    )


@st.composite
def seeded_cases(draw: st.DrawFn) -> tuple[EdgeList, Seeds, Seeds]:
    edges, _, _ = draw(any_graphs(float_weights=False))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return edges, random_seeds(draw, edges.n, rng), random_seeds(draw, edges.n, rng)


def with_virtual_nodes(edges: EdgeList, sources: Seeds, targets: Seeds) -> tuple[EdgeList, int]:
    """Add one node per source group (edges to its seeds) and per target group (from entries)."""
    u, v = list(edges.u), list(edges.v)
    w, length = list(edges.w), list(edges.length)
    first_source = edges.n
    first_target = edges.n + len(sources)
    for g in range(len(sources)):
        for k in range(sources.ptr[g], sources.ptr[g + 1]):
            u.append(first_source + g)
            v.append(int(sources.node[k]))
            w.append(sources.time_s[k])
            length.append(sources.dist_m[k])
    for g in range(len(targets)):
        for k in range(targets.ptr[g], targets.ptr[g + 1]):
            u.append(int(targets.node[k]))
            v.append(first_target + g)
            w.append(targets.time_s[k])
            length.append(targets.dist_m[k])
    return EdgeList(first_target + len(targets), u, v, w, length), first_target


@SETTINGS
@given(seeded_cases())
def test_seeded_groups_equal_brute_force_with_virtual_nodes(
    case: tuple[EdgeList, Seeds, Seeds],
) -> None:
    edges, sources, targets = case
    big, first_target = with_virtual_nodes(edges, sources, targets)
    virtual_sources = list(range(edges.n, edges.n + len(sources)))
    times, pred = dijkstra(
        big.scipy(), directed=True, indices=virtual_sources, return_predecessors=True
    )
    expected = times[:, first_target:]
    for threads in (1, None):
        result = many_to_many_seeded(*edges.csr(), sources, targets, threads=threads)
        np.testing.assert_array_equal(result.durations_s, expected)
        for i, s in enumerate(virtual_sources):
            for j in range(len(targets)):
                if np.isinf(expected[i, j]):
                    assert np.isinf(result.distances_m[i, j])
                else:
                    want = path_length(big, pred[i], s, first_target + j)
                    assert result.distances_m[i, j] == want


def test_seeded_hand_checked_example() -> None:
    # A point 2/3 along edge 0 -> 1 (60 s, 900 m) reaches 1 after 20 s and 300 m; edge 1 -> 2.
    edges = EdgeList(3, [0, 1], [1, 2], [60.0, 10.0], [900.0, 100.0])
    sources = Seeds.from_groups([[(1, 20.0, 300.0)], [], [(0, 5.0, 1.0), (2, 30.0, 0.0)]])
    targets = Seeds.from_groups([[(2, 1.0, 7.0)], [(0, 0.0, 0.0), (1, 100.0, 0.0)]])
    result = many_to_many_seeded(*edges.csr(), sources, targets, threads=1)
    inf = np.inf
    assert result.durations_s.tolist() == [[31.0, 120.0], [inf, inf], [31.0, 5.0]]
    assert result.distances_m.tolist() == [[407.0, 300.0], [inf, inf], [7.0, 1.0]]


def test_seeds_from_nodes_and_len() -> None:
    seeds = Seeds.from_nodes(np.array([4, 2], dtype=np.int64))
    assert len(seeds) == 2
    assert seeds.ptr.tolist() == [0, 1, 2]
    assert seeds.node.dtype == np.int32
    assert seeds.time_s.tolist() == [0.0, 0.0]


# ------------------------------------------------------------------------------------------ #
# Validation
# ------------------------------------------------------------------------------------------ #


GOOD = {
    "indptr": np.array([0, 1, 2, 2]),
    "indices": np.array([1, 2]),
    "travel_time_s": np.array([1.0, 2.0]),
    "length_m": np.array([10.0, 20.0]),
    "sources": np.array([0]),
    "targets": np.array([2]),
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("indptr", [1, 1, 2, 2], r"indptr\[0\] must be 0"),
        ("indptr", [0, 2, 1, 2], "non-decreasing"),
        ("indptr", [0, 1, 2, 3], r"indptr\[-1\] must equal len\(indices\)"),
        ("indptr", [0.0, 1.0, 2.0, 2.0], "indptr must have an integer dtype"),
        ("indptr", [[0, 1, 2, 2]], "indptr must be 1-D"),
        ("indptr", [], "n_nodes \\+ 1 >= 1"),
        ("indices", [1, 3], r"indices must be node ids in \[0, 3\), indices\[1\] = 3"),
        ("indices", [-1, 2], r"indices\[0\] = -1"),
        ("indices", [True, False], "integer dtype"),
        ("travel_time_s", [1.0, -2.0], r"travel_time_s must be >= 0, travel_time_s\[1\] = -2"),
        ("travel_time_s", [np.nan, 2.0], "travel_time_s must be finite"),
        ("travel_time_s", [np.inf, 2.0], "travel_time_s must be finite"),
        ("travel_time_s", [1.0], r"one entry per edge \(2\), got 1"),
        ("travel_time_s", ["a", "b"], "real numeric dtype"),
        ("length_m", [1.0, -0.5], "length_m must be >= 0"),
        ("length_m", [1.0, 2.0, 3.0], "length_m must have one entry per edge"),
        ("sources", [3], r"source_seeds.node must be node ids in \[0, 3\)"),
        ("sources", [-1], r"node ids must be in \[0, "),
        ("targets", [0, 7], r"target_entries.node\[1\] = 7"),
        ("targets", [0.5], "nodes must have an integer dtype"),
    ],
)
def test_invalid_inputs_raise_clear_errors(field: str, value: Any, message: str) -> None:
    kwargs = {**GOOD, field: np.asarray(value) if not isinstance(value, list) else value}
    with pytest.raises(MatrixInputError, match=message) as info:
        many_to_many(**kwargs)
    assert isinstance(info.value, ValueError)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(MatrixInputError) as info:
        many_to_many([0, 1, 2, 2], [1, 5], [-1.0, 1.0], [1.0], [0], [0])
    assert len(info.value.problems) == 3, info.value.problems


@pytest.mark.parametrize("threads", [0, -2, 1.5, "2", True])
def test_invalid_thread_counts(threads: Any) -> None:
    with pytest.raises(MatrixInputError, match="threads"):
        many_to_many(**GOOD, threads=threads)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ptr": [1, 1]}, r"ptr\[0\] must be 0"),
        ({"ptr": [0, 2, 1]}, "non-decreasing"),
        ({"ptr": [0, 2]}, r"ptr\[-1\] must equal the number of rows 1"),
        ({"ptr": []}, "at least one entry"),
        ({"time_s": [-1.0]}, "time_s must be >= 0"),
        ({"dist_m": [np.inf]}, "dist_m must be finite"),
        ({"time_s": [1.0, 2.0]}, "same length"),
        ({"node": [2**40]}, "node ids must be in"),
    ],
)
def test_invalid_seeds(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"ptr": [0, 1], "node": [0], "time_s": [0.0], "dist_m": [0.0]}
    with pytest.raises(MatrixInputError, match=message):
        Seeds(**{k: np.asarray(v) for k, v in {**fields, **kwargs}.items()})


def test_seeded_arguments_must_be_seeds() -> None:
    with pytest.raises(MatrixInputError, match="source_seeds must be a Seeds"):
        many_to_many_seeded([0, 0], [], [], [], [0], Seeds.from_nodes([0]))  # type: ignore[arg-type]


def test_a_prepared_graph_checks_seeds_and_threads() -> None:
    prepared = prepare_graph(*(GOOD[k] for k in ("indptr", "indices", "travel_time_s", "length_m")))
    one, three = Seeds.from_nodes([0]), Seeds.from_nodes([3])
    with pytest.raises(MatrixInputError, match="target_entries must be a Seeds"):
        many_to_many_prepared(prepared, one, [2])  # type: ignore[arg-type]
    with pytest.raises(MatrixInputError, match=r"source_seeds.node must be node ids in \[0, 3\)"):
        many_to_many_prepared(prepared, three, one)
    with pytest.raises(MatrixInputError, match="threads"):
        many_to_many_prepared(prepared, one, one, threads=0)
    # Empty groups skip the search but not the checks.
    with pytest.raises(MatrixInputError, match="threads"):
        many_to_many_seeded(*(GOOD[k] for k in ("indptr", "indices", "travel_time_s", "length_m")),
                            Seeds.from_nodes([]), one, threads=0)  # fmt: skip
    result = many_to_many_prepared(prepared, Seeds.from_nodes([0, 1]), Seeds.from_nodes([2, 0]))
    assert result.durations_s.tolist() == [[3.0, 0.0], [2.0, np.inf]]
    assert result.distances_m.tolist() == [[30.0, 0.0], [20.0, np.inf]]


def test_result_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="same shape"):
        MatrixResult(np.zeros((2, 2)), np.zeros((2, 3)))


# ------------------------------------------------------------------------------------------ #
# Real extract
# ------------------------------------------------------------------------------------------ #


def test_monaco_against_scipy(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not MONACO.is_file():
        pytest.skip(f"real extract not available: {MONACO}")
    try:
        from geodata import load_network
    except ImportError as exc:  # the loader is built in parallel with this module
        pytest.skip(f"geodata.load_network not available yet: {exc}")
    network, _ = load_network(MONACO, cache_dir=tmp_path_factory.mktemp("roadcache"))
    n = network.n_nodes
    graph = sp.csr_array((network.travel_time_s, network.indices, network.indptr), shape=(n, n))
    rng = np.random.default_rng(2024)
    sources = rng.choice(n, 50, replace=False)
    targets = rng.choice(n, 300, replace=False)
    times, pred = dijkstra(graph, directed=True, indices=sources, return_predecessors=True)
    csr = (network.indptr, network.indices, network.travel_time_s, network.length_m)
    for threads in (1, None):
        result = many_to_many(*csr, sources, targets, threads=threads)
        np.testing.assert_array_equal(result.durations_s, times[:, targets])
    # Distances along scipy's paths for a sample of pairs (the network has no parallel edges;
    # approx only in case two routes tie exactly in time).
    for i in range(0, 50, 7):
        for j in range(0, 300, 37):
            path = [int(targets[j])]
            while path[-1] != sources[i]:
                path.append(int(pred[i, path[-1]]))
            path.reverse()
            total = 0.0
            for a, b in itertools.pairwise(path):
                total += float(network.length_m[network.edge_index(a, b)])
            assert result.distances_m[i, j] == pytest.approx(total, rel=1e-12)
