"""Road paths between snapped points (geodata.paths) and encoded polylines (geodata.polyline)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geodata import RoadNetwork
from geodata.matrix import MatrixInputError
from geodata.paths import LegPath, leg_path, route_paths, warm_up
from geodata.polyline import PolylineError, decode_polyline, encode_polyline
from geodata.road_matrix import road_matrix
from geodata.snap import Snapper, SnapResult
from tests.geodata.test_road_matrix import on_edge
from tests.geodata.test_snap import at_m, grid_network, make_network, monaco  # noqa: F401


def path_cost(net: RoadNetwork, points: SnapResult, a: int, b: int, leg: LegPath) -> float:
    """Recompute a leg's time from its nodes: partial first edge, whole edges, partial last."""
    if leg.nodes.size == 0:
        return leg.time_s
    first, last = int(leg.nodes[0]), int(leg.nodes[-1])
    total = 0.0
    e, r, f = int(points.edge[a]), int(points.reverse_edge[a]), float(points.fraction[a])
    if net.indices[e] == first:
        total += (1 - f) * net.travel_time_s[e]
    elif r >= 0 and net.indices[r] == first:
        total += f * net.travel_time_s[r]
    for u, v in zip(leg.nodes[:-1].tolist(), leg.nodes[1:].tolist(), strict=True):
        total += net.travel_time_s[net.edge_index(u, v)]  # KeyError if not an edge
    e, r, f = int(points.edge[b]), int(points.reverse_edge[b]), float(points.fraction[b])
    if net.sources()[e] == last:
        total += f * net.travel_time_s[e]
    else:
        total += (1 - f) * net.travel_time_s[r] if r >= 0 else 0.0
    return total


@pytest.mark.parametrize("seed", [4, 5])
def test_leg_costs_equal_the_matrix(seed):
    net = grid_network(6, seed=seed)
    rng = np.random.default_rng(seed)
    lat, lon = np.array([at_m(x, y) for x, y in rng.uniform(-50, 550, size=(25, 2))]).T
    points = Snapper(net).snap(lat, lon)
    m = road_matrix(net, points)
    pairs = [(a, b) for a in range(25) for b in range(25)]
    order = [p for pair in pairs for p in pair]  # a, b, a', b', ...: every other leg is a pair
    legs = route_paths(net, points, order)[::2]
    for (a, b), leg in zip(pairs, legs, strict=True):
        assert leg.time_s == m.durations_s[a, b]  # same arithmetic: exactly equal
        assert leg.dist_m == m.distances_m[a, b]  # the matrix's own search: exactly equal
        if not leg.reachable:
            assert leg.coords.shape == (0, 2)
            continue
        assert leg.coords[0].tolist() == [points.lat[a], points.lon[a]]
        assert leg.coords[-1].tolist() == [points.lat[b], points.lon[b]]
        assert path_cost(net, points, a, b, leg) == pytest.approx(leg.time_s, rel=1e-9)


def test_same_edge_and_zero_length_legs():
    net = make_network(
        [at_m(0, 0), at_m(100, 0), at_m(50, 86.6)], [(0, 1, 36.0), (1, 2, 36.0), (2, 0, 36.0)]
    )
    points = on_edge(net, [(0, 1, 0.2), (0, 1, 0.7)])
    direct = leg_path(net, points[0], points[1])
    assert direct.nodes.tolist() == []
    assert direct.coords.tolist() == [
        [points.lat[0], points.lon[0]],
        [points.lat[1], points.lon[1]],
    ]
    assert direct.time_s == pytest.approx(0.5 * net.travel_time_s[0])
    around = leg_path(net, points[1], points[0])
    assert around.nodes.tolist() == [1, 2, 0]
    assert around.coords.shape == (5, 2)
    assert around.dist_m == pytest.approx(0.3 * 100 + 100 + 100 + 0.2 * 100, rel=1e-3)
    same = leg_path(net, points[0], points[0])
    assert (same.time_s, same.dist_m) == (0.0, 0.0)
    assert same.coords.tolist() == [[points.lat[0], points.lon[0]]] * 2


def test_points_on_nodes_do_not_repeat_coordinates():
    net = make_network([at_m(0, 0), at_m(100, 0), at_m(200, 0)], [(0, 1, 36.0), (1, 2, 36.0)])
    points = on_edge(net, [(0, 1, 0.0), (1, 2, 1.0)])
    leg = leg_path(net, points[0], points[1])
    assert leg.nodes.tolist() in ([1], [0, 1, 2])  # seeded at node 0 (0 s) and node 1 (t01)
    assert leg.coords.tolist() == np.column_stack([net.lat, net.lon]).tolist()
    assert leg.time_s == pytest.approx(net.travel_time_s.sum())


def test_unreachable_leg():
    net = make_network(
        [at_m(0, 0), at_m(100, 0), at_m(0, 500), at_m(100, 500)], [(0, 1, 36.0), (2, 3, 36.0)]
    )
    points = on_edge(net, [(0, 1, 0.5), (2, 3, 0.5)])
    leg = leg_path(net, points[0], points[1])
    assert not leg.reachable
    assert (leg.time_s, leg.dist_m) == (np.inf, np.inf)
    assert leg.coords.shape == (0, 2)
    assert leg.polyline() == ""


def test_route_paths_order_and_errors():
    net = grid_network(4, seed=2)
    points = Snapper(net).snap(*np.array([at_m(30, 5), at_m(250, 190), at_m(5, 280)]).T)
    legs = route_paths(net, points)
    assert len(legs) == 2
    assert route_paths(net, points, [2]) == []
    assert route_paths(net, points, []) == []
    back = route_paths(net, points, [2, 0, 2])
    m = road_matrix(net, points)
    assert [leg.time_s for leg in back] == [m.durations_s[2, 0], m.durations_s[0, 2]]
    drawn = next(leg for leg in legs + back if leg.reachable)
    decoded = np.array(decode_polyline(drawn.polyline()))
    assert decoded == pytest.approx(np.round(drawn.coords, 5), abs=1e-9)
    with pytest.raises(MatrixInputError, match=r"order must hold indices in \[0, 3\)"):
        route_paths(net, points, [0, 3])
    with pytest.raises(MatrixInputError, match="order must be a 1-D sequence"):
        route_paths(net, points, [0.5, 1.0])


def test_warm_up_is_cheap_once_compiled():
    warm_up()
    assert warm_up() < 0.5


# --- a real extract (© OpenStreetMap contributors, ODbL) -----------------------------------------


def test_monaco_paths_match_the_matrix(monaco):  # noqa: F811
    rng = np.random.default_rng(5)
    nodes = rng.integers(0, monaco.n_nodes, 201)
    lat = monaco.lat[nodes] + rng.normal(0, 3e-4, nodes.size)
    lon = monaco.lon[nodes] + rng.normal(0, 3e-4, nodes.size)
    points = Snapper(monaco).snap(lat, lon)
    assert points.ok.all()
    m = road_matrix(monaco, points)
    warm_up()
    started = time.perf_counter()
    legs = route_paths(monaco, points)  # 200 legs
    elapsed = time.perf_counter() - started
    times = [leg.time_s for leg in legs]
    assert times == m.durations_s[np.arange(200), np.arange(1, 201)].tolist()
    assert [leg.dist_m for leg in legs] == m.distances_m[np.arange(200), np.arange(1, 201)].tolist()
    assert elapsed < 2.0  # about 0.15 s on the reference machine
    check_legs_follow_edges(monaco, points, legs)


def check_legs_follow_edges(net, points, legs):
    """Every leg's nodes are joined by edges, and its snapped ends plus those edges cost its time.

    The path comes from the matrix search's predecessor links (through interior chain nodes too),
    so this checks the links, not just the times.
    """
    for i, leg in enumerate(legs):
        if leg.nodes.size == 0:
            continue
        edges = [net.edge_index(int(u), int(v)) for u, v in itertools.pairwise(leg.nodes)]
        inner = float(np.sum(net.travel_time_s[edges])) if edges else 0.0
        a, b = points[i], points[i + 1]
        first = (1 - a.fraction) * net.travel_time_s[a.edge]  # leaving forwards
        if a.reverse_edge >= 0 and net.indices[a.edge] != leg.nodes[0]:
            first = a.fraction * net.travel_time_s[a.reverse_edge]
        last = b.fraction * net.travel_time_s[b.edge]  # arriving forwards
        if b.reverse_edge >= 0 and net.indices[b.reverse_edge] != leg.nodes[-1]:
            last = (1 - b.fraction) * net.travel_time_s[b.reverse_edge]
        if a.fraction in (0.0, 1.0) or b.fraction in (0.0, 1.0):
            continue  # a point on a node may start or end there at no cost
        assert first + inner + last == pytest.approx(leg.time_s, rel=1e-9)


# --- encoded polylines ---------------------------------------------------------------------------

GOOGLE_EXAMPLE = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
GOOGLE_ENCODED = "_p~iF~ps|U_ulLnnqC_mqNvxq`@"


def test_google_documentation_vectors():
    assert encode_polyline(GOOGLE_EXAMPLE) == GOOGLE_ENCODED
    assert decode_polyline(GOOGLE_ENCODED) == GOOGLE_EXAMPLE
    assert encode_polyline(np.array(GOOGLE_EXAMPLE)) == GOOGLE_ENCODED
    # The documentation's worked single value: -179.9832104 encodes as "`~oia@".
    assert encode_polyline([(-179.9832104, 0.0)]) == "`~oia@?"
    assert encode_polyline([]) == ""
    assert decode_polyline("") == []


def test_precision_six():
    encoded = encode_polyline([(43.7384176, 7.4246158)], precision=6)
    assert decode_polyline(encoded, precision=6) == [(43.738418, 7.424616)]
    assert decode_polyline(encoded) != [(43.738418, 7.424616)]


@pytest.mark.parametrize(
    ("encoded", "match"),
    [("_p~iF~ps|U_", "cut off"), ("_p~iF", "latitude without its longitude"), ("ab c", "' '")],
)
def test_bad_polylines_raise(encoded, match):
    with pytest.raises(PolylineError, match=match):
        decode_polyline(encoded)


@pytest.mark.parametrize(
    ("coords", "match"),
    [
        ([(1.0, 2.0, 3.0)], r"shape \(k, 2\)"),
        ([(float("nan"), 1.0)], "finite"),
        ([("a", 1)], "pairs"),
    ],
)
def test_bad_coordinates_raise(coords, match):
    with pytest.raises(PolylineError, match=match):
        encode_polyline(coords)
    with pytest.raises(PolylineError, match="precision"):
        encode_polyline([(1.0, 2.0)], precision=11)


lat_st = st.floats(-90, 90, allow_nan=False)
lon_st = st.floats(-180, 180, allow_nan=False)
coords_st = st.lists(st.tuples(lat_st, lon_st), max_size=30)


@given(coords_st)
def test_round_trip_is_within_half_a_unit(coords):
    decoded = decode_polyline(encode_polyline(coords))
    assert len(decoded) == len(coords)
    for (lat, lon), (dlat, dlon) in zip(coords, decoded, strict=True):
        assert abs(lat - dlat) <= 0.5e-5 + 1e-9
        assert abs(lon - dlon) <= 0.5e-5 + 1e-9


@given(coords_st)
def test_encoding_decoded_coordinates_is_stable(coords):
    encoded = encode_polyline(coords)
    assert encode_polyline(decode_polyline(encoded)) == encoded


@given(
    st.lists(st.tuples(st.integers(-9_000_000, 9_000_000), st.integers(-18_000_000, 18_000_000)))
)
def test_coordinates_on_the_grid_round_trip_exactly(units):
    coords = [(a / 100_000, b / 100_000) for a, b in units]
    assert decode_polyline(encode_polyline(coords)) == coords
