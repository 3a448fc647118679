"""Vehicle.travel_mode over the RPC (issue 15, feature 7): a server serving the car and foot
profiles of the embedded extract solves a request whose two vehicles drive and walk (two
matrices: the walker's transitions at walking pace, on the foot network); a mode the server
does not serve is INVALID_ARGUMENT naming the vehicle's field; the --profiles flag."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from geodata.geo import haversine_m
from geodata.polyline import decode_polyline
from rpc.config import parse_args
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_server_e2e import (
    ServerProcess,
    _server,
    bad_request_fields,
    embedded_network,
    wait_for_log,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _server(tmp_path_factory, "modes", "--workers", "1", "--profiles", "foot")
    yield srv
    assert srv.terminate() == 0, srv.log()


def request(modes: list[int]) -> pb.OptimizeToursRequest:
    net = embedded_network()
    rng = np.random.default_rng(3)
    nodes = rng.choice(net.n_nodes, size=5, replace=False)
    points = [(float(net.lat[i]), float(net.lon[i])) for i in nodes]
    req = pb.OptimizeToursRequest(populate_polylines=True)
    req.timeout.seconds = 5
    for lat, lon in points[1:]:
        shipment = req.model.shipments.add()
        visit = shipment.deliveries.add()
        visit.arrival_location.latitude, visit.arrival_location.longitude = lat, lon
    for v, mode in enumerate(modes):
        vehicle = req.model.vehicles.add(travel_mode=mode, cost_per_kilometer=1.0)
        vehicle.start_location.latitude, vehicle.start_location.longitude = points[0]
        vehicle.end_location.latitude, vehicle.end_location.longitude = points[0]
        # each vehicle must serve two of the four shipments
        for s in range(2 * v, 2 * v + 2):
            req.model.shipments[s].allowed_vehicle_indices.append(v)
    return req


def test_driving_and_walking_vehicles_get_their_own_matrices(server: ServerProcess) -> None:
    req = request([pb.Vehicle.DRIVING, pb.Vehicle.WALKING])
    response = server.stub.OptimizeTours(req, timeout=30)
    assert not response.skipped_shipments
    assert response.solve_info.matrix_source == "road"
    car, walker = response.routes
    walking_mps = 5 / 3.6
    speeds: dict[str, list[float]] = {"car": [], "walker": []}
    for name, route in (("car", car), ("walker", walker)):
        assert route.visits
        for t in route.transitions:
            seconds = t.travel_duration.seconds + t.travel_duration.nanos / 1e9
            if t.travel_distance_meters > 50:
                speeds[name].append(t.travel_distance_meters / seconds)
                coords = np.asarray(decode_polyline(t.route_polyline.points))
                length = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
                assert length.sum() == pytest.approx(t.travel_distance_meters, rel=0.02, abs=5.0)
    # Durations are whole seconds (rounded up): the walker's speed is 5 km/h within that.
    assert speeds["walker"]
    assert all(s == pytest.approx(walking_mps, rel=0.02) for s in speeds["walker"])
    assert speeds["car"]
    assert all(s > 2 * walking_mps for s in speeds["car"])


def test_route_modifiers_are_accepted_and_routes_follow_their_matrix(
    server: ServerProcess,
) -> None:
    """The modifiers reach the solve worker, and every leg is drawn on the path its matrix
    used (the polylines' lengths are the transitions' distances)."""
    req = request([pb.Vehicle.DRIVING, pb.Vehicle.WALKING])
    req.model.vehicles[0].route_modifiers.avoid_highways = True
    req.model.vehicles[0].route_modifiers.avoid_ferries = True
    req.model.vehicles[0].route_modifiers.avoid_tolls = True
    req.model.vehicles[1].route_modifiers.avoid_indoor = True
    response = server.stub.OptimizeTours(req, timeout=30)
    assert not response.skipped_shipments
    # The solve worker built the foot network without the extract's indoor ways (its car
    # network has no motorway, toll road or car ferry: nothing to avoid, no view).
    wait_for_log(server, "road network view foot+avoid_indoor")
    for route in response.routes:
        for t in route.transitions:
            if t.travel_distance_meters > 0:
                coords = np.asarray(decode_polyline(t.route_polyline.points))
                length = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
                assert length.sum() == pytest.approx(t.travel_distance_meters, rel=0.02, abs=5.0)


def test_a_mode_the_server_does_not_serve_is_invalid(server: ServerProcess) -> None:
    req = request([pb.Vehicle.WALKING, pb.Vehicle.TRUCK])
    with pytest.raises(grpc.RpcError) as info:
        server.stub.OptimizeTours(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == ["model.vehicles[1].travel_mode"]
    assert "'truck' road profile" in (info.value.details() or "")


def test_unknown_travel_mode_number_is_invalid(server: ServerProcess) -> None:
    req = request([pb.Vehicle.DRIVING, 7])
    with pytest.raises(grpc.RpcError) as info:
        server.stub.OptimizeTours(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == ["model.vehicles[1].travel_mode"]


def test_profiles_flag() -> None:
    assert parse_args([]).profiles == ()
    config = parse_args(["--profile", "truck", "--profiles", "car, foot,truck,car"])
    assert config.profiles == ("car", "foot")
    spec = config.road_spec()
    assert spec is not None
    assert spec.served == ("truck", "car", "foot")
    for bad in (["--profiles", "bike"], ["--profiles", "foot", "--dask-scheduler", "x:1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_compute_matrix_by_travel_mode(server: ServerProcess) -> None:
    net = embedded_network()
    rng = np.random.default_rng(5)
    nodes = rng.choice(net.n_nodes, size=4, replace=False)
    req = pb.ComputeMatrixRequest(encoding=pb.ComputeMatrixRequest.PACKED)
    for i in nodes:
        req.sources.add(latitude=float(net.lat[i]), longitude=float(net.lon[i]))
    req.destinations.extend(req.sources)
    driving = server.stub.ComputeMatrix(req, timeout=30)
    req.travel_mode = pb.Vehicle.WALKING
    walking = server.stub.ComputeMatrix(req, timeout=30)
    seconds, meters = np.array(walking.packed.seconds), np.array(walking.packed.meters)
    moving = meters > 0
    assert moving.sum() == 12
    np.testing.assert_allclose(meters[moving] / seconds[moving], 5 / 3.6, rtol=1e-9)
    car_speed = np.array(driving.packed.meters)[moving] / np.array(driving.packed.seconds)[moving]
    assert (car_speed > 2 * 5 / 3.6).all()
    req.travel_mode = pb.Vehicle.TRUCK
    with pytest.raises(grpc.RpcError) as info:
        server.stub.ComputeMatrix(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == ["travel_mode"]
