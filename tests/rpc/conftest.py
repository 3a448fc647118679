"""Fixtures shared by the end-to-end tests through Google's Python client: a geodesic routeopt
server (``--osm none --workers 2``) started once per test module, and Google's
``RouteOptimizationClient`` on a plain channel to it. A module that needs another server
(other flags) defines its own ``server`` fixture, which takes precedence."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.maps import routeoptimization_v1 as ro
from google.maps.routeoptimization_v1.services.route_optimization.transports import (
    RouteOptimizationGrpcTransport,
)

from tests.rpc.test_server_e2e import ServerProcess


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "server.log"
    srv = ServerProcess(log, "--osm", "none", "--workers", "2")
    yield srv
    assert srv.terminate() == 0, srv.log()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[ro.RouteOptimizationClient]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield ro.RouteOptimizationClient(transport=RouteOptimizationGrpcTransport(channel=channel))
    channel.close()
