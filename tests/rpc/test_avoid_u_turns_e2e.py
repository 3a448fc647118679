"""VisitRequest.avoid_u_turns over the RPC (issue 15, feature 7): on the embedded extract the
field reaches the solve worker (the route is longer than without it; the visits still name
their visit request; polylines as long as the transitions), and without road travel it is
INVALID_ARGUMENT naming the field."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from geodata.geo import haversine_m
from geodata.polyline import decode_polyline
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_server_e2e import ServerProcess, _server, bad_request_fields, embedded_network


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _server(tmp_path_factory, "uturns", "--workers", "1")
    yield srv
    assert srv.terminate() == 0, srv.log()


def request(avoid: bool) -> pb.OptimizeToursRequest:
    net = embedded_network()
    rng = np.random.default_rng(5)
    # locations in the middle of edges (not on nodes), where a heading matters
    edges = rng.choice(net.n_edges, size=6, replace=False)
    heads = net.indices[edges]
    tails = np.searchsorted(net.indptr, edges, side="right") - 1
    points = [
        (float((net.lat[a] + net.lat[b]) / 2), float((net.lon[a] + net.lon[b]) / 2))
        for a, b in zip(tails, heads, strict=True)
    ]
    req = pb.OptimizeToursRequest(populate_polylines=True)
    req.timeout.seconds = 3
    for lat, lon in points[1:]:
        visit = req.model.shipments.add().deliveries.add(avoid_u_turns=avoid)
        visit.arrival_location.latitude, visit.arrival_location.longitude = lat, lon
    vehicle = req.model.vehicles.add(cost_per_kilometer=1.0)
    vehicle.start_location.latitude, vehicle.start_location.longitude = points[0]
    vehicle.end_location.latitude, vehicle.end_location.longitude = points[0]
    return req


def test_avoiding_u_turns_reaches_the_solver(server: ServerProcess) -> None:
    plain = server.stub.OptimizeTours(request(False), timeout=60)
    avoiding = server.stub.OptimizeTours(request(True), timeout=60)
    for response in (plain, avoiding):
        assert not response.skipped_shipments
        assert response.solve_info.matrix_source == "road"
    (route,) = avoiding.routes
    assert sorted(v.shipment_index for v in route.visits) == [0, 1, 2, 3, 4]
    assert all(v.visit_request_index == 0 for v in route.visits)
    # here the stops mid-street cost detours: the best route without U-turns is longer (about
    # 4.7 km against 4.3 km)
    assert route.metrics.travel_distance_meters > plain.routes[0].metrics.travel_distance_meters
    for t in route.transitions:
        if t.travel_distance_meters > 0:
            coords = np.asarray(decode_polyline(t.route_polyline.points))
            length = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
            assert length.sum() == pytest.approx(t.travel_distance_meters, rel=0.02, abs=5.0)


def test_avoid_u_turns_without_roads_is_invalid(server: ServerProcess) -> None:
    req = request(True)
    req.use_geodesic_distances = True
    req.geodesic_meters_per_second = 10.0
    with pytest.raises(grpc.RpcError) as info:
        server.stub.OptimizeTours(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == [
        f"model.shipments[{s}].deliveries[0].avoid_u_turns" for s in range(5)
    ]
