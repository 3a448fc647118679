"""How the solve workers get the road network's contraction hierarchy, snap index and prepared
graph: memory-mapped from the caches beside the network file (and the network's arrays from the
file itself), loaded once in the forkserver; a forked worker reads the same file-backed pages (no
copy per solve). Also a prebuilt network file (``--osm FILE.npz``)."""

from __future__ import annotations

import importlib
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from engine.roads import ROADS_ENV_VAR, RoadSpec, load_roads, save_prebuilt
from geodata.snap import Snapper
from rpc.config import parse_args
from tests.geodata.test_snap import at_m, grid_network


@pytest.fixture
def prebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small grid city written as a prebuilt network, on which matrices use a hierarchy."""
    module = importlib.import_module("geodata.road_matrix")  # geodata.road_matrix: the function
    monkeypatch.setattr(module, "CH_MIN_NODES", 0)
    path = tmp_path / "city.npz"
    save_prebuilt(grid_network(10, seed=4), path)
    return path


def test_a_prebuilt_network_keeps_its_hierarchy_beside_it(prebuilt: Path) -> None:
    first = load_roads(RoadSpec(str(prebuilt), prebuilt=True))
    assert first.network.has_hierarchy()  # built at load, not by the first request
    assert (prebuilt.with_suffix(".ch") / "meta.json").is_file()
    second = load_roads(RoadSpec(str(prebuilt), prebuilt=True))
    loaded = second.network.hierarchy()
    assert isinstance(loaded.up_head, np.memmap)  # every process maps the same file
    for name, arr in first.network.hierarchy().arrays().items():
        np.testing.assert_array_equal(arr, loaded.arrays()[name])


def test_a_file_that_is_not_a_prebuilt_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, lat=np.zeros(2), profile=np.array("car"))
    with pytest.raises(ValueError, match=r"not a network written by save_prebuilt.*indptr"):
        load_roads(RoadSpec(str(path), prebuilt=True))


def test_the_server_flag_takes_a_prebuilt_network() -> None:
    spec = parse_args(["--osm", "/data/fla.npz"]).road_spec()
    assert spec is not None
    assert spec.prebuilt
    assert spec.path == "/data/fla.npz"
    spec = parse_args(["--osm", "/data/monaco.osm.pbf"]).road_spec()
    assert spec is not None
    assert not spec.prebuilt


def _memmap_of(arr: np.ndarray) -> np.memmap | None:
    """The memory map ``arr`` is (a view of), if any."""
    while arr is not None and not isinstance(arr, np.memmap):
        arr = arr.base  # type: ignore[assignment]
    return arr


def test_the_snap_index_and_the_network_are_mapped_from_the_files(prebuilt: Path) -> None:
    first = load_roads(RoadSpec(str(prebuilt), prebuilt=True))
    assert (prebuilt.with_suffix(".snap") / "meta.json").is_file()  # built once, beside the file
    assert not isinstance(first.snapper.index.cell_items, np.memmap)
    second = load_roads(RoadSpec(str(prebuilt), prebuilt=True))
    for name, arr in second.snapper.index.arrays().items():
        assert isinstance(arr, np.memmap), name
        np.testing.assert_array_equal(arr, first.snapper.index.arrays()[name])
    for name, arr in second.network.arrays().items():
        mapping = _memmap_of(arr)
        assert mapping is not None, name
        assert Path(mapping.filename) == prebuilt.resolve()
    points = np.array([at_m(50, 20), at_m(780, 640), at_m(300, 880)]).T
    a, b = first.snap(*points), second.snap(*points)
    np.testing.assert_array_equal(a.edge, b.edge)
    np.testing.assert_array_equal(a.fraction, b.fraction)


def _child(conn: multiprocessing.connection.Connection) -> None:  # type: ignore[name-defined]
    """In a forked worker: where the inherited hierarchy lives, and a matrix through it."""
    from runtime import worker_roads

    context = worker_roads.CONTEXT
    assert context is not None
    ch = context.network.hierarchy()
    prepared = context.network.prepared()
    arrays = (
        ch.up_head,
        ch.down_time,
        context.snapper.index.cell_items,
        prepared.chains.head,
        context.network.lat,
    )
    mapped = Path("/proc/self/maps").read_text()
    files = [str(Path(m.filename)) for m in map(_memmap_of, arrays) if m is not None]
    points = context.snap(*np.array([at_m(50, 20), at_m(780, 640), at_m(300, 880)]).T)
    conn.send((files, [f in mapped for f in files], context.matrix(points).durations_s))
    conn.close()


def test_forked_workers_read_the_forkservers_mapping(
    prebuilt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_roads(RoadSpec(str(prebuilt), prebuilt=True))  # the server: hierarchy built and saved
    monkeypatch.setenv(ROADS_ENV_VAR, RoadSpec(str(prebuilt), prebuilt=True).to_json())
    from runtime import worker_roads

    # what the forkserver runs once when it preloads runtime.worker_roads
    monkeypatch.setattr(worker_roads, "CONTEXT", worker_roads._load())
    context = worker_roads.CONTEXT
    assert context is not None
    assert context.network.has_hierarchy()
    assert isinstance(context.network.hierarchy().up_head, np.memmap)
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(target=_child, args=(child,))
    process.start()
    files, mapped, durations = parent.recv()
    process.join(30)
    assert process.exitcode == 0
    cache = prebuilt.with_suffix(".ch")
    snap = prebuilt.with_suffix(".snap")
    assert files == [
        str(cache / "up_head.npy"),
        str(cache / "down_time.npy"),
        str(snap / "cell_items.npy"),
        str(prebuilt.with_suffix(".prep") / "head.npy"),
        str(prebuilt.resolve()),
    ]
    assert mapped == [True] * 5  # file-backed pages of the caches, not an anonymous copy
    net = context.network
    points = Snapper(net).snap(*np.array([at_m(50, 20), at_m(780, 640), at_m(300, 880)]).T)
    np.testing.assert_array_equal(durations, context.matrix(points).durations_s)
    assert os.environ[ROADS_ENV_VAR]


def test_a_prebuilt_file_missing_an_array_names_it_and_not_the_optional_flags(tmp_path):
    from engine.roads import _load_prebuilt
    from tests.geodata.test_snap import grid_network

    path = tmp_path / "net.npz"
    save_prebuilt(grid_network(3, seed=1), path)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if name != "lat"}
    assert "flags" in arrays
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing: lat; unexpected: -\)"):
        _load_prebuilt(str(tmp_path / "cut.npz"))
