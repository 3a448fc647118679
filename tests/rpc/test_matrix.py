"""ComputeMatrix: the kernels' threads shared among concurrent calls (rpc.matrix.ThreadShare),
the matrix encoded in bulk (rows, or packed arrays) exactly as the message built cell by cell."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.roads import RoadContext, RoadSpec
from geodata.snap import Snapper
from rpc.convert import seconds_to_duration
from rpc.matrix import ThreadShare, compute_matrix, encode_packed, encode_rows
from rpc.pb import route_optimization_service_pb2 as pb
from tests.geodata.test_snap import at_m, grid_network


def test_a_lone_call_gets_every_thread_and_concurrent_calls_split_them():
    share = ThreadShare(4)
    with share.share() as first:
        assert first == 4
        with share.share() as second:
            assert second == 2
            with share.share() as third, share.share() as fourth:
                assert (third, fourth) == (1, 1)
            with share.share() as again:  # two others still run
                assert again == 1
    with share.share() as alone:  # everything released
        assert alone == 4


def test_never_fewer_than_one_thread_and_released_on_errors():
    share = ThreadShare(2)

    def failing_call() -> None:
        with share.share():
            raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError):
        failing_call()
    with share.share() as threads:  # the failed call gave its share back
        assert threads == 2
    with share.share(), share.share(), share.share() as third:
        assert third == 1
    with pytest.raises(ValueError, match="at least 1"):
        ThreadShare(0)


def test_simultaneous_calls_get_total_divided_by_their_rank():
    share = ThreadShare(8)
    barrier = threading.Barrier(6)
    seen: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        with share.share() as threads:
            with lock:
                seen.append(threads)
            barrier_inner.wait()

    barrier_inner = threading.Barrier(6)
    workers = [threading.Thread(target=call) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    # The k-th concurrent call gets total // k: 8, 4, 2, 2, 1, 1 in some order of arrival.
    assert sorted(seen, reverse=True) == [8, 4, 2, 2, 1, 1]


# -- the matrix in bulk -------------------------------------------------------------------------


def cell_by_cell(durations, distances, reachable):  # type: ignore[no-untyped-def]
    """The reference: the response built a message per cell, as before the bulk encoder."""
    response = pb.ComputeMatrixResponse()
    for i in range(durations.shape[0]):
        row = response.rows.add()
        for j in range(durations.shape[1]):
            ok = bool(reachable[i, j])
            row.durations.append(seconds_to_duration(durations[i, j] if ok else 0.0))
            row.meters.append(float(distances[i, j]) if ok else 0.0)
            row.reachable.append(ok)
    return response


def awkward_matrix(seed: int, shape: tuple[int, int]):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    durations = rng.choice(
        [0.0, 0.5, 1.0, 1.5e-9, 2.5e-9, 0.9999999996, 59.0, 3600.25, 2.0**40, 1e-10],
        size=shape,
    )
    durations = np.where(rng.random(shape) < 0.5, rng.uniform(0, 1e5, shape), durations)
    distances = rng.uniform(0, 1e6, shape)
    durations[rng.random(shape) < 0.1] = np.inf
    distances[np.isinf(durations)] = np.inf
    return durations, distances, np.isfinite(durations)


@pytest.mark.parametrize(("seed", "shape"), [(0, (7, 9)), (1, (1, 1)), (2, (30, 3)), (3, (4, 200))])
def test_rows_in_bulk_equal_the_cell_by_cell_message(seed: int, shape: tuple[int, int]) -> None:
    durations, distances, reachable = awkward_matrix(seed, shape)
    bulk = pb.ComputeMatrixResponse.FromString(encode_rows(durations, distances, reachable))
    assert bulk == cell_by_cell(durations, distances, reachable)


def test_packed_matrix_is_row_major_with_minus_one_where_unreachable() -> None:
    durations, distances, reachable = awkward_matrix(4, (5, 6))
    packed = pb.ComputeMatrixResponse.Packed.FromString(
        encode_packed(durations, distances, reachable)
    )
    seconds = np.array(packed.seconds).reshape(5, 6)
    meters = np.array(packed.meters).reshape(5, 6)
    np.testing.assert_array_equal(seconds, np.where(reachable, durations, -1.0))
    np.testing.assert_array_equal(meters, np.where(reachable, distances, -1.0))


@pytest.mark.parametrize("encoding", ["ROWS", "PACKED"])
def test_compute_matrix_in_either_encoding(encoding: str) -> None:
    net = grid_network(6, seed=2)
    roads = RoadContext(RoadSpec(path="grid"), net, Snapper(net))
    request = pb.ComputeMatrixRequest(encoding=getattr(pb.ComputeMatrixRequest, encoding))
    points = [at_m(x, y) for x, y in [(0, 0), (250, 100), (480, 510), (120, 333)]]
    for lat, lon in points:
        request.sources.add(latitude=lat, longitude=lon)
    for lat, lon in points[:3]:
        request.destinations.add(latitude=lat, longitude=lon)
    response = compute_matrix(request, roads, max_cells=100)
    expected = roads.matrix(roads.snap(*np.array(points).T), roads.snap(*np.array(points[:3]).T))
    reachable = np.isfinite(expected.durations_s)
    if encoding == "PACKED":
        assert len(response.rows) == 0
        np.testing.assert_array_equal(
            np.array(response.packed.seconds).reshape(4, 3),
            np.where(reachable, expected.durations_s, -1.0),
        )
        np.testing.assert_array_equal(
            np.array(response.packed.meters).reshape(4, 3),
            np.where(reachable, expected.distances_m, -1.0),
        )
    else:
        assert not response.HasField("packed")
        reference = cell_by_cell(
            expected.durations_s, expected.distances_m, np.isfinite(expected.durations_s)
        )
        assert list(response.rows) == list(reference.rows)
    assert len(response.snapped_sources) == 4
    assert response.unreachable_count == int(np.count_nonzero(~reachable))
