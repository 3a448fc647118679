"""The snap index (geodata.snap_index, geodata.kernels.grid) against brute force, its cache on
disk (versioned, fingerprinted, memory-mapped) and the memory-mapped .npz reader (geodata.npz)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import geodata.snap_index
from geodata import RoadNetwork
from geodata.npz import load_npz
from geodata.snap import SnapError, Snapper
from geodata.snap_index import SnapIndex, build_snap_index, load_snap_index, snap_index_for
from tests.geodata.test_snap import at_m, grid_network, make_network


def brute_force_segments(snapper: Snapper, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(n, 2)`` (lower node, higher node) of each point's nearest segment: shapely's (GEOS's)
    distance to every segment of the network, the lowest pair among equal distances."""
    net = snapper.network
    x, y = snapper._to_xy.transform(net.lon, net.lat)
    xy = np.column_stack([x, y])
    src, dst = net.sources().astype(np.int64), net.indices.astype(np.int64)
    pairs = np.unique(np.column_stack([np.minimum(src, dst), np.maximum(src, dst)]), axis=0)
    lines = shapely.linestrings(np.stack([xy[pairs[:, 0]], xy[pairs[:, 1]]], axis=1))
    px, py = snapper._to_xy.transform(lon, lat)
    out = np.empty((len(lat), 2), dtype=np.int64)
    for k, point in enumerate(shapely.points(np.asarray(px), np.asarray(py))):
        d = shapely.distance(point, lines)
        out[k] = pairs[np.flatnonzero(d == d.min())[0]]  # pairs are sorted: the lowest first
    return out


def snapped_pairs(snapper: Snapper, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    snaps = snapper.snap(lat, lon)
    net = snapper.network
    u, v = net.sources()[snaps.edge].astype(np.int64), net.indices[snaps.edge].astype(np.int64)
    return np.column_stack([np.minimum(u, v), np.maximum(u, v)])


@st.composite
def networks_and_points(draw: st.DrawFn) -> tuple[RoadNetwork, np.ndarray, np.ndarray]:
    """Road-like networks: nodes on a coarse lattice (shared coordinates, collinear streets,
    equal distances), a few long roads across the area, random one-way and two-way edges; points
    on nodes, near them, anywhere in the area and far outside it."""
    n = draw(st.integers(2, 30))
    spacing = draw(st.sampled_from([1.0, 25.0, 400.0]))
    lattice = draw(st.integers(1, 12))
    flat = draw(st.sampled_from(["none", "row", "column"]))
    coords = []
    for _ in range(n):
        x = draw(st.integers(0, lattice)) * spacing
        y = draw(st.integers(0, lattice)) * spacing
        coords.append((x, 0.0 if flat == "row" else y) if flat != "column" else (0.0, y))
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.booleans()),
            min_size=1,
            max_size=3 * n,
        )
    )
    edges: dict[tuple[int, int], float] = {}
    for u, v, two_way in pairs:
        if u != v:
            edges[(u, v)] = 30.0
            if two_way:
                edges[(v, u)] = 30.0
    if not edges:
        edges[(0, 1)] = 30.0
    net = make_network([at_m(x, y) for x, y in coords], [(u, v, s) for (u, v), s in edges.items()])
    extent = spacing * lattice
    k = draw(st.integers(1, 25))
    kinds = draw(st.lists(st.sampled_from(["node", "near", "area", "far"]), min_size=k, max_size=k))
    lat, lon = [], []
    for kind in kinds:
        if kind == "node":
            x, y = coords[draw(st.integers(0, n - 1))]
        elif kind == "near":
            x, y = coords[draw(st.integers(0, n - 1))]
            x += draw(st.floats(-spacing, spacing))
            y += draw(st.floats(-spacing, spacing))
        elif kind == "area":
            x = draw(st.floats(-0.2 * extent - 10, 1.2 * extent + 10))
            y = draw(st.floats(-0.2 * extent - 10, 1.2 * extent + 10))
        else:
            x = draw(st.floats(-50_000, 50_000))
            y = draw(st.sampled_from([-30_000.0, 40_000.0]))
        a, b = at_m(x, y)
        lat.append(a)
        lon.append(b)
    return net, np.array(lat), np.array(lon)


@settings(max_examples=200, deadline=None)
@given(networks_and_points())
def test_nearest_segment_equals_brute_force(
    case: tuple[RoadNetwork, np.ndarray, np.ndarray],
) -> None:
    net, lat, lon = case
    snapper = Snapper(net)
    np.testing.assert_array_equal(
        snapped_pairs(snapper, lat, lon), brute_force_segments(snapper, lat, lon)
    )


def test_a_city_grid_equals_brute_force_with_its_ties() -> None:
    net = grid_network(12, seed=5)
    snapper = Snapper(net)
    rng = np.random.default_rng(3)
    xy = rng.uniform(-200, 1300, size=(300, 2))
    xy[:100] = np.round(xy[:100] / 100) * 100  # on the street corners: ties between four streets
    lat, lon = np.array([at_m(x, y) for x, y in xy]).T
    np.testing.assert_array_equal(
        snapped_pairs(snapper, lat, lon), brute_force_segments(snapper, lat, lon)
    )


def test_long_roads_are_found_from_every_cell() -> None:
    """A 40 km road across a dense town: listed in every cell it crosses, near-vertical too."""
    town = [at_m(x, y) for y in range(0, 400, 40) for x in range(0, 400, 40)]
    far = [
        at_m(-20_000, -20_000.0),
        at_m(20_000, 20_000.0),
        at_m(200.0001, -30_000),
        at_m(200, 30_000),
    ]
    coords = town + far
    t = len(town)
    edges = [(i, i + 1, 30.0) for i in range(t - 1)] + [(t, t + 1, 90.0), (t + 3, t + 2, 90.0)]
    net = make_network(coords, edges)
    snapper = Snapper(net)
    assert snapper.index.nx * snapper.index.ny > 50
    rng = np.random.default_rng(4)
    xy = rng.uniform(-25_000, 25_000, size=(200, 2))
    lat, lon = np.array([at_m(x, y) for x, y in xy]).T
    np.testing.assert_array_equal(
        snapped_pairs(snapper, lat, lon), brute_force_segments(snapper, lat, lon)
    )


# --- the cache -----------------------------------------------------------------------------------


def test_the_cache_is_written_once_then_memory_mapped(tmp_path: Path) -> None:
    net = grid_network(8, seed=1)
    cache = tmp_path / "city.snap"
    built = Snapper(net, cache=cache)
    assert (cache / "meta.json").is_file()
    assert not isinstance(built.index.cell_items, np.memmap)
    mapped = Snapper(net, cache=cache)
    for name, arr in mapped.index.arrays().items():
        assert isinstance(arr, np.memmap), name
        np.testing.assert_array_equal(arr, built.index.arrays()[name])
    lat, lon = np.array([at_m(x, y) for x, y in [(10, 20), (333, 401), (-50, 900)]]).T
    a, b = built.snap(lat, lon), mapped.snap(lat, lon)
    for field in ("edge", "fraction", "reverse_edge", "lat", "lon", "distance_m"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_a_cache_of_another_network_or_format_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "city.snap"
    snap_index_for(grid_network(8, seed=1), cache)
    other = grid_network(9, seed=1)
    assert load_snap_index(other, cache) is None  # the fingerprint differs
    index = snap_index_for(other, cache)  # rebuilt and saved over the old one
    assert index.node_x.shape[0] == other.n_nodes
    assert load_snap_index(other, cache) is not None
    monkeypatch.setattr(geodata.snap_index, "SNAP_INDEX_FORMAT_VERSION", 999)
    assert load_snap_index(other, cache) is None


def test_a_damaged_cache_is_refused_before_any_kernel_reads_it(tmp_path: Path) -> None:
    net = grid_network(6, seed=2)
    cache = tmp_path / "city.snap"
    snap_index_for(net, cache)
    items = np.load(cache / "cell_items.npy")
    items[0] = 10**6  # a segment id out of range
    np.save(cache / "cell_items.npy", items)
    assert load_snap_index(net, cache) is None
    snap_index_for(net, cache)  # rebuilt
    meta = json.loads((cache / "meta.json").read_text())
    (cache / "meta.json").write_text(json.dumps({**meta, "nx": meta["nx"] + 1}))
    assert load_snap_index(net, cache) is None  # offsets no longer fit the grid
    (cache / "seg_a.npy").unlink()
    assert load_snap_index(net, cache) is None


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("seg_a", np.array([99], dtype=np.int32), "seg_a must lie in"),
        ("seg_edge", np.array([0], dtype=np.int64), "seg_edge must be contiguous 1-D int32"),
        ("cell_start", np.array([0, 2, 1], dtype=np.int64), "CSR offsets"),
        ("node_x", np.array([0.0, np.nan]), "finite"),
        ("cell", 0.0, "grid"),
    ],
)
def test_check_names_the_inconsistent_array(field: str, value: object, match: str) -> None:
    net = make_network([at_m(0, 0), at_m(200, 0)], [(0, 1, 36.0), (1, 0, 36.0)])
    index = build_snap_index(net)
    index.check(net)
    fields = {name: getattr(index, name) for name in SnapIndex.__dataclass_fields__}
    broken = SnapIndex(**{**fields, field: value})
    with pytest.raises(ValueError, match=match):
        broken.check(net)


def test_unprojectable_points_are_refused() -> None:
    """The kernel gets finite coordinates only; PROJ's aeqd maps even the antipode of the
    centre to finite ones, so the check in ``snap`` is a guard against other PROJ builds."""
    snapper = Snapper(make_network([at_m(0, 0), at_m(200, 0)], [(0, 1, 36.0)]))
    with pytest.raises(ValueError, match="finite"):
        snapper.index.nearest(np.array([np.inf]), np.array([0.0]))

    class NoProjection:
        def transform(self, lon: object, lat: object) -> tuple[np.ndarray, np.ndarray]:
            return np.array([np.inf]), np.array([0.0])

    snapper._to_xy = NoProjection()  # type: ignore[assignment]
    with pytest.raises(SnapError, match="far side of the Earth"):
        snapper.snap(*at_m(100, 0))


# --- memory-mapped .npz --------------------------------------------------------------------------


def test_npz_members_are_mapped_in_place(tmp_path: Path) -> None:
    arrays = {
        "ints": np.arange(10, dtype=np.int32),
        "matrix": np.arange(12.0).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "empty": np.zeros(0),
        "text": np.array("car"),
    }
    path = tmp_path / "a.npz"
    np.savez(path, **arrays)
    loaded = load_npz(path)
    assert set(loaded) == set(arrays)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert isinstance(loaded[name], np.memmap) == (name in {"ints", "matrix", "fortran"})
    assert not loaded["ints"].flags.writeable
    squeezed = tmp_path / "b.npz"
    np.savez_compressed(squeezed, **arrays)
    for name, arr in load_npz(squeezed).items():  # compressed members are read, not mapped
        assert not isinstance(arr, np.memmap)
        np.testing.assert_array_equal(arr, arrays[name])
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(zipfile.BadZipFile):
        load_npz(tmp_path / "c.npz")
