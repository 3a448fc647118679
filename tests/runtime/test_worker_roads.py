"""How the solve workers get the road network's contraction hierarchy: memory-mapped from the
cache beside the network file, loaded once in the forkserver; a forked worker reads the same
file-backed pages (no copy per solve). Also a prebuilt network file (``--osm FILE.npz``)."""

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


def _child(conn: multiprocessing.connection.Connection) -> None:  # type: ignore[name-defined]
    """In a forked worker: where the inherited hierarchy lives, and a matrix through it."""
    from runtime import worker_roads

    context = worker_roads.CONTEXT
    assert context is not None
    ch = context.network.hierarchy()
    arrays = ch.up_head, ch.down_time
    mapped = Path("/proc/self/maps").read_text()
    files = [str(Path(a.filename)) for a in arrays if isinstance(a, np.memmap)]
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
    assert files == [str(cache / "up_head.npy"), str(cache / "down_time.npy")]
    assert mapped == [True, True]  # file-backed pages of the cache, not an anonymous copy
    net = context.network
    points = Snapper(net).snap(*np.array([at_m(50, 20), at_m(780, 640), at_m(300, 880)]).T)
    np.testing.assert_array_equal(durations, context.matrix(points).durations_s)
    assert os.environ[ROADS_ENV_VAR]
