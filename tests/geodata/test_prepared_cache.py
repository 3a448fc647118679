"""The prepared graph kept beside the hierarchy (geodata.prepared_cache): written once, then
memory-mapped; rebuilt when it does not match the network or is damaged."""

from __future__ import annotations

import json
import mmap
from dataclasses import fields
from pathlib import Path

import numpy as np

import geodata.prepared_cache
from geodata.prepared_cache import load_prepared, prepared_for
from geodata.road_matrix import road_matrix
from geodata.snap import Snapper
from tests.geodata.test_snap import at_m, grid_network


def csr(net):
    return net.indptr, net.indices, net.travel_time_s, net.length_m


def file_backed(arr: object) -> bool:
    """Whether the array's memory is a file mapping (through any chain of views)."""
    while isinstance(arr, np.ndarray):
        if isinstance(arr, np.memmap):
            return True
        arr = arr.base
    return isinstance(arr, mmap.mmap)


def test_the_prepared_graph_is_written_once_then_mapped(tmp_path: Path) -> None:
    first = grid_network(9, seed=3)
    first.use_hierarchy_cache(tmp_path / "city.ch")
    built = first.prepared()
    assert (tmp_path / "city.prep" / "meta.json").is_file()
    second = grid_network(9, seed=3)
    second.use_hierarchy_cache(tmp_path / "city.ch")
    mapped = second.prepared()
    assert file_backed(mapped.graph.weight)
    assert mapped.time_bits == built.time_bits
    np.testing.assert_array_equal(mapped.graph.weight, built.graph.weight)
    for f in fields(built.chains):
        assert isinstance(getattr(mapped.chains, f.name), np.memmap), f.name
        np.testing.assert_array_equal(getattr(mapped.chains, f.name), getattr(built.chains, f.name))
    points = np.array([at_m(50, 20), at_m(780, 640), at_m(300, 880), at_m(10, 700)]).T
    a = road_matrix(first, Snapper(first).snap(*points))
    b = road_matrix(second, Snapper(second).snap(*points))
    np.testing.assert_array_equal(a.durations_s, b.durations_s)
    np.testing.assert_array_equal(a.distances_m, b.distances_m)


def test_another_network_a_new_format_or_damage_rebuilds(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "city.prep"
    net = grid_network(6, seed=1)
    prepared_for(csr(net), cache)
    assert load_prepared(csr(net), cache) is not None
    assert load_prepared(csr(grid_network(6, seed=2)), cache) is None  # other times
    head = np.load(cache / "head.npy")
    head[0] = net.n_edges + 5  # a walk slot out of range
    np.save(cache / "head.npy", head)
    assert load_prepared(csr(net), cache) is None
    prepared_for(csr(net), cache)  # rebuilt
    meta = json.loads((cache / "meta.json").read_text())
    assert load_prepared(csr(net), cache) is not None
    monkeypatch.setattr(geodata.prepared_cache, "PREPARED_FORMAT_VERSION", meta["format"] + 1)
    assert load_prepared(csr(net), cache) is None
