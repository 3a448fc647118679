"""Snapping points to the nearest drivable edge (geodata.snap); network builders shared by the
road-matrix and path tests."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import pytest

from geodata import CAR, EmptyNetworkError, RoadNetwork, haversine_m, read_osm
from geodata.road_matrix import source_seeds, target_entries
from geodata.snap import (
    DEFAULT_MAX_SNAP_M,
    SnapError,
    Snapper,
    SnapResult,
    SnapTooFarError,
)
from tests.geodata.test_osm import SHARED_OSM

LAT0, LON0 = 48.0, 8.0
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180.0  # haversine's radius
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))


def at_m(x_m: float, y_m: float) -> tuple[float, float]:
    """(lat, lon) of a point ``x_m`` east and ``y_m`` north of (LAT0, LON0)."""
    return LAT0 + y_m / M_PER_DEG_LAT, LON0 + x_m / M_PER_DEG_LON


def make_network(
    coords: Sequence[tuple[float, float]],
    edges: Sequence[tuple[int, int, float]],
) -> RoadNetwork:
    """A network from node (lat, lon) and directed edges (u, v, speed_kph); lengths by haversine."""
    lat = np.array([c[0] for c in coords])
    lon = np.array([c[1] for c in coords])
    rows = sorted(edges)
    src = np.array([r[0] for r in rows], dtype=np.int64)
    dst = np.array([r[1] for r in rows], dtype=np.int64)
    speed = np.array([r[2] for r in rows], dtype=np.float64)
    length = haversine_m(lat[src], lon[src], lat[dst], lon[dst])
    indptr = np.zeros(len(coords) + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=len(coords)), out=indptr[1:])
    return RoadNetwork(
        indptr=indptr,
        indices=dst,
        travel_time_s=length / (speed / 3.6),
        length_m=length,
        speed_kph=speed,
        way_id=np.arange(len(rows)),
        highway=np.full(len(rows), 11),
        lat=lat,
        lon=lon,
        osm_id=np.arange(len(coords)) + 1,
        profile="car",
    )


def grid_network(n: int, seed: int, *, spacing_m: float = 100.0) -> RoadNetwork:
    """An ``n x n`` street grid: about a third one-way (random direction), the rest two-way with
    a different random speed in each direction (so fastest paths do not tie)."""
    rng = np.random.default_rng(seed)
    coords = [at_m(spacing_m * x, spacing_m * y) for y in range(n) for x in range(n)]
    edges = []
    for y in range(n):
        for x in range(n):
            u = y * n + x
            for v in ([u + 1] if x + 1 < n else []) + ([u + n] if y + 1 < n else []):
                a, b = (u, v) if rng.random() < 0.5 else (v, u)
                edges.append((a, b, float(rng.uniform(20, 60))))
                if rng.random() < 0.65:
                    edges.append((b, a, float(rng.uniform(20, 60))))
    return make_network(coords, edges)


def one_way_street() -> RoadNetwork:
    """0 -> 1, 200 m due east, one way."""
    return make_network([at_m(0, 0), at_m(200, 0)], [(0, 1, 36.0)])


def two_way_street() -> RoadNetwork:
    """0 <-> 1, 200 m due east; 36 km/h eastwards, 18 km/h westwards."""
    return make_network([at_m(0, 0), at_m(200, 0)], [(0, 1, 36.0), (1, 0, 18.0)])


# --- one street ----------------------------------------------------------------------------------


def test_point_beside_a_one_way_street():
    net = one_way_street()
    lat, lon = at_m(50, 10)
    snaps = Snapper(net).snap(lat, lon)
    p = snaps[0]
    assert (p.edge, p.reverse_edge) == (net.edge_index(0, 1), -1)
    assert p.fraction == pytest.approx(0.25, abs=1e-6)
    assert p.distance_m == pytest.approx(10.0, rel=1e-3)
    assert (p.lat, p.lon) == pytest.approx(at_m(50, 0), abs=1e-7)  # 1 cm
    assert p.ok
    assert (p.query_lat, p.query_lon) == (lat, lon)
    # Only the downstream end is a seed; only the upstream end an entry.
    seeds, entries = source_seeds(net, snaps), target_entries(net, snaps)
    assert seeds.node.tolist() == [1]
    # times on the exact grid of the prepared graph (geodata.prepared.grid_bits)
    half_step = 2.0 ** -(net.prepared().time_bits or 0) / 2
    assert seeds.time_s[0] == pytest.approx((1 - p.fraction) * net.travel_time_s[0], abs=half_step)
    assert seeds.dist_m[0] == pytest.approx(150.0, rel=1e-3)
    assert entries.node.tolist() == [0]
    assert entries.time_s[0] == pytest.approx(p.fraction * net.travel_time_s[0], abs=half_step)


def test_point_near_a_two_way_street_records_both_directions():
    net = two_way_street()
    snaps = Snapper(net).snap(*at_m(150, -20))
    fwd, bwd = net.edge_index(0, 1), net.edge_index(1, 0)
    assert (int(snaps.edge[0]), int(snaps.reverse_edge[0])) == (fwd, bwd)
    f = float(snaps.fraction[0])
    assert f == pytest.approx(0.75, abs=1e-6)
    assert snaps.distance_m[0] == pytest.approx(20.0, rel=1e-3)
    seeds, entries = source_seeds(net, snaps), target_entries(net, snaps)
    t_f, t_b = net.travel_time_s[fwd], net.travel_time_s[bwd]
    # Seeds: node 1 ahead on 0 -> 1, node 0 ahead on 1 -> 0 (the point is at 1 - f along it).
    assert seeds.node.tolist() == [1, 0]
    assert seeds.time_s == pytest.approx([(1 - f) * t_f, f * t_b])
    assert entries.node.tolist() == [0, 1]
    assert entries.time_s == pytest.approx([f * t_f, (1 - f) * t_b])


def test_the_edge_is_chosen_over_a_nearer_node():
    """A point 30 m beside the middle of a long street, 40 m from the end of another one."""
    net = make_network(
        [at_m(0, 0), at_m(200, 0), at_m(100, 70), at_m(100, 400)],
        [(0, 1, 30.0), (2, 3, 30.0)],
    )
    snaps = Snapper(net).snap(*at_m(100, 30))
    assert snaps.edge[0] == net.edge_index(0, 1)
    assert snaps.fraction[0] == pytest.approx(0.5, abs=1e-6)
    assert snaps.distance_m[0] == pytest.approx(30.0, rel=1e-3)

    snaps = Snapper(net).snap(*at_m(100, 60))
    assert snaps.edge[0] == net.edge_index(2, 3)
    assert snaps.fraction[0] == 0.0  # the end of 2 -> 3 nearest to the point


def test_ends_of_a_segment_give_exact_node_coordinates():
    net = two_way_street()
    lat, lon = zip(at_m(-30, 5), at_m(230, -5), strict=True)
    snaps = Snapper(net).snap(lat, lon)
    assert snaps.fraction.tolist() == [0.0, 1.0]
    assert snaps.lat.tolist() == net.lat.tolist()
    assert snaps.lon.tolist() == net.lon.tolist()
    assert snaps.distance_m == pytest.approx(np.hypot([30, 30], [5, 5]), rel=1e-3)


def test_reverse_only_segment_flips_the_fraction():
    """A one-way street from the higher-numbered node: the fraction is along that edge."""
    net = make_network([at_m(0, 0), at_m(200, 0)], [(1, 0, 36.0)])
    snaps = Snapper(net).snap(*at_m(50, 3))
    assert (int(snaps.edge[0]), int(snaps.reverse_edge[0])) == (net.edge_index(1, 0), -1)
    assert snaps.fraction[0] == pytest.approx(0.75, abs=1e-6)


# --- limits and bad input ------------------------------------------------------------------------


def test_points_beyond_the_max_distance_are_flagged():
    net = one_way_street()
    snapper = Snapper(net)
    lat, lon = zip(at_m(100, 10), at_m(100, 800), at_m(100, -2000), strict=True)
    snaps = snapper.snap(lat, lon)
    assert snaps.max_distance_m == DEFAULT_MAX_SNAP_M
    assert snaps.ok.tolist() == [True, False, False]
    assert snaps.too_far.tolist() == [False, True, True]
    assert snaps.distance_m[1:] == pytest.approx([800, 2000], rel=1e-3)
    assert snaps.edge.tolist() == [0, 0, 0]  # still snapped, for the caller to report

    names = ["visits[0].location", "visits[1].location", "visits[2].location"]
    with pytest.raises(SnapTooFarError, match=r"2 points are farther than 500 m") as info:
        snaps.require_ok(names)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.indices == (1, 2)
    assert err.field_names == ("visits[1].location", "visits[2].location")
    assert err.distances_m == pytest.approx((800, 2000), rel=1e-3)
    assert "visits[1].location" in str(err)
    assert "visits[0]" not in str(err)
    with pytest.raises(SnapTooFarError, match=r"point 1 \("):
        snaps.require_ok()
    snaps.take([0]).require_ok()  # no error

    wide = snapper.snap(lat, lon, max_distance_m=1000)
    assert wide.ok.tolist() == [True, True, False]
    with pytest.raises(SnapTooFarError, match=r"1 point is farther than 1000 m"):
        wide.require_ok()


def test_many_too_far_points_are_summarised():
    snaps = Snapper(one_way_street()).snap(np.full(25, LAT0 + 0.1), np.full(25, LON0))
    with pytest.raises(SnapTooFarError, match=r"\.\.\. and 15 more$"):
        snaps.require_ok()


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        (float("nan"), 8.0, "point 0"),
        ([48.0, 91.0], [8.0, 8.0], r"point 1 \(91.0, 8.0\)"),
        (48.0, 181.0, "lon finite in"),
        ([48.0, 48.0], [8.0], "same length"),
        ([[48.0]], [[8.0]], "1-D"),
        ("north", 8.0, "numbers"),
    ],
)
def test_bad_coordinates_raise(lat, lon, match):
    with pytest.raises(SnapError, match=match):
        Snapper(one_way_street()).snap(lat, lon)


@pytest.mark.parametrize("limit", [-1.0, float("nan")])
def test_bad_max_distance_raises(limit):
    with pytest.raises(SnapError, match="max_distance_m"):
        Snapper(one_way_street()).snap(LAT0, LON0, max_distance_m=limit)


def test_empty_input_and_empty_network():
    snaps = Snapper(one_way_street()).snap([], [])
    assert len(snaps) == 0
    assert snaps.ok.shape == (0,)
    snaps.require_ok([])
    no_edges = make_network([at_m(0, 0)], [])
    with pytest.raises(EmptyNetworkError, match="no edges"):
        Snapper(no_edges)


def test_snap_result_rows_take_and_concat():
    snaps = Snapper(two_way_street()).snap(*zip(at_m(10, 1), at_m(20, 2), strict=True))
    assert len(snaps) == 2
    assert snaps[-1] == snaps[1]
    with pytest.raises(IndexError):
        snaps[2]
    with pytest.raises(TypeError):
        snaps[0.5]  # type: ignore[index]
    both = SnapResult.concat([snaps.take([1]), snaps.take([0, 0])])
    assert both.fraction.tolist() == snaps.fraction[[1, 0, 0]].tolist()
    assert not both.edge.flags.writeable
    with pytest.raises(ValueError, match="field_names has 1 entries"):
        snaps.require_ok(["x"])


# --- against brute force -------------------------------------------------------------------------


def distance_to_segments_m(lat: float, lon: float, net: RoadNetwork) -> float:
    """Brute force: the smallest distance from the point to any edge, in a local flat frame."""
    kx = M_PER_DEG_LAT * math.cos(math.radians(lat))
    px, py = lon * kx, lat * M_PER_DEG_LAT
    src, dst = net.sources(), net.indices
    ax, ay = net.lon[src] * kx, net.lat[src] * M_PER_DEG_LAT
    bx, by = net.lon[dst] * kx, net.lat[dst] * M_PER_DEG_LAT
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0, 1)
    return float(np.min(np.hypot(ax + t * dx - px, ay + t * dy - py)))


def test_snapping_matches_brute_force_on_a_grid():
    net = grid_network(6, seed=3)
    rng = np.random.default_rng(7)
    pts = [at_m(x, y) for x, y in rng.uniform(-150, 650, size=(200, 2))]
    lat, lon = np.array(pts).T
    snaps = Snapper(net).snap(lat, lon)
    expected = [distance_to_segments_m(a, b, net) for a, b in pts]
    assert snaps.distance_m == pytest.approx(expected, abs=0.05)
    src = net.sources()
    # The snapped point lies on its edge at the recorded fraction.
    e, f = snaps.edge, snaps.fraction
    assert snaps.lat == pytest.approx((1 - f) * net.lat[src[e]] + f * net.lat[net.indices[e]])
    assert snaps.lon == pytest.approx((1 - f) * net.lon[src[e]] + f * net.lon[net.indices[e]])
    has_rev = snaps.reverse_edge >= 0
    r = snaps.reverse_edge[has_rev]
    assert np.array_equal(src[r], net.indices[e[has_rev]])
    assert np.array_equal(net.indices[r], src[e[has_rev]])


def test_network_across_the_antimeridian():
    net = make_network([(-17.0, 179.999), (-17.0, -179.999)], [(0, 1, 50.0), (1, 0, 50.0)])
    snapper = Snapper(net)
    snaps = snapper.snap(-17.0001, 180.0)
    assert snaps.ok.all()
    assert snaps.lon[0] == pytest.approx(180.0) or snaps.lon[0] == pytest.approx(-180.0)
    assert snaps.distance_m[0] == pytest.approx(11.1, rel=0.01)
    assert snaps.fraction[0] == pytest.approx(0.5, abs=1e-3)
    centre = {p.name: p.value for p in snapper.crs.coordinate_operation.params}
    assert abs(centre["Longitude of natural origin"]) == pytest.approx(180.0)


# --- a real extract (© OpenStreetMap contributors, ODbL) -----------------------------------------


@pytest.fixture(scope="module")
def monaco() -> RoadNetwork:
    path = SHARED_OSM / "monaco.osm.pbf"
    if not path.is_file():
        pytest.skip(f"shared extract {path} is absent (see shared/data/osm/SOURCES.md)")
    return read_osm(path, CAR)[0]


def test_monaco_points_snap_close_by(monaco):
    snapper = Snapper(monaco)
    rng = np.random.default_rng(11)
    nodes = rng.integers(0, monaco.n_nodes, 5000)
    lat = monaco.lat[nodes] + rng.normal(0, 1e-4, nodes.size)  # about 11 m of jitter
    lon = monaco.lon[nodes] + rng.normal(0, 1e-4, nodes.size)
    started = time.perf_counter()
    snaps = snapper.snap(lat, lon)
    elapsed = time.perf_counter() - started
    assert snaps.ok.all()
    jitter = haversine_m(lat, lon, monaco.lat[nodes], monaco.lon[nodes])
    # Never farther than the node it came from (up to 1 mm: projection vs great circle).
    assert np.all(snaps.distance_m <= jitter + 1e-3)
    assert np.median(snaps.distance_m) < 10
    assert elapsed < 1.0  # about 0.05 s: ~100k points/s on the reference machine
    at_sea = snapper.snap(43.70, 7.45)  # 3 km out in the Mediterranean
    assert at_sea.too_far.all()
