"""Google's own clients over TLS with an API key, passed the way a carrier passes its Google API
key today; only the endpoint (and, for a private CA, where the client finds it) changes.

- Python (``google-maps-routeoptimization``): ``client_options={"api_key": KEY,
  "api_endpoint": HOST:PORT}``, Google's client builds the channel itself (TLS, the key sent as
  ``x-goog-api-key`` by google-auth's API key credentials). The README's example runs as written
  but for the endpoint, in a process whose gRPC trusts the test CA
  (``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``); the same client with a transport factory that names the
  CA (``ssl_channel_credentials``) runs here, its operations resolved through
  ``google.longrunning.Operations`` for its own tenant only.
- Node (``@googlemaps/routeoptimization``): ``{apiEndpoint, port, apiKey}``, as on Google's
  endpoint; the CA through the same variable (grpc-js reads it).

Every answer goes through the independent checker."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.longrunning import operations_pb2
from google.maps import routeoptimization_v1 as ro
from google.maps.routeoptimization_v1.services.route_optimization.transports import (
    RouteOptimizationGrpcTransport,
)

from rpc.keys import KeyStore
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_google_node_client import NODE, NPM
from tests.rpc.test_google_node_client import node_client as node_client  # the fixture
from tests.rpc.test_google_python_client import check, google_request
from tests.rpc.test_jobs_e2e import readme_block
from tests.rpc.test_server_e2e import ServerProcess, check_response
from tests.rpc.tls_certs import Pki, make_pki


@dataclass
class Secured:
    srv: ServerProcess
    pki: Pki
    keys: dict[str, str]
    """tenant -> API key"""

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.srv.port}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    tmp = tmp_path_factory.mktemp("google-tls")
    pki = make_pki(tmp / "pki")
    data = tmp / "data"
    store = KeyStore(data)
    keys = {tenant: store.create(tenant).key for tenant in ("acme", "globex")}
    store.close()
    srv = ServerProcess(
        tmp / "server.log",
        "--osm", "none", "--workers", "2", "--data-dir", str(data),
        "--tls-cert", pki.server_cert, "--tls-key", pki.server_key,
    )  # fmt: skip
    yield Secured(srv, pki, keys)
    assert srv.terminate() == 0, srv.log()
    log = srv.log()
    assert "transport: TLS; callers: authenticated by API keys" in log
    for key in keys.values():
        assert key.split("_", 2)[2] not in log  # the secrets stay out of the log


def _client(secured: Secured, key: str | None, ca: str | None = None) -> ro.RouteOptimizationClient:
    """Google's client with ``client_options`` api_key and endpoint; the CA named through the
    transport factory the client calls (with the API key credentials it made)."""
    roots = Path(ca or secured.pki.ca).read_bytes()

    def transport(**kwargs: Any) -> RouteOptimizationGrpcTransport:
        return RouteOptimizationGrpcTransport(
            ssl_channel_credentials=grpc.ssl_channel_credentials(roots), **kwargs
        )

    options: dict[str, str] = {"api_endpoint": secured.endpoint}
    if key is not None:
        options["api_key"] = key
    else:  # no key: anonymous credentials (Google's client would otherwise look for ADC)
        from google.auth.credentials import AnonymousCredentials

        return ro.RouteOptimizationClient(
            credentials=AnonymousCredentials(), client_options=options, transport=transport
        )
    return ro.RouteOptimizationClient(client_options=options, transport=transport)


def test_readme_example_with_an_api_key_over_tls(secured: Secured) -> None:
    """The README's example, as written but for the endpoint, the key read from a file as
    there, the CA trusted through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (a private CA)."""
    code = readme_block('"api_key"')
    assert '"routeopt.example.com:50051"' in code
    code = code.replace('"routeopt.example.com:50051"', f'"{secured.endpoint}"')
    program = (
        code
        + "\nimport sys\nsys.stdout.buffer.write("
        + "ro.OptimizeToursRequest.serialize(request).hex().encode() + b' '"
        + " + ro.OptimizeToursResponse.serialize(response).hex().encode())\n"
    )
    workdir = secured.pki.directory.parent / "readme"
    workdir.mkdir(exist_ok=True)
    (workdir / "routeopt.key").write_text(secured.keys["acme"] + "\n")
    env = {**os.environ, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": secured.pki.ca}
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    request_hex, response_hex = done.stdout.split()
    request = pb.OptimizeToursRequest.FromString(bytes.fromhex(request_hex))
    response = pb.OptimizeToursResponse.FromString(bytes.fromhex(response_hex))
    assert not check_response(request, response).skipped_shipments


def test_python_client_with_an_api_key_over_tls(secured: Secured) -> None:
    acme = _client(secured, secured.keys["acme"])
    request = google_request(label="tls")
    check(request, acme.optimize_tours(request=request, timeout=30))
    operation = acme.optimize_tours_long_running(request=google_request(label="tls-lro"))
    response = operation.result(timeout=90)
    check(google_request(label="tls-lro"), response)
    # The operation is acme's: Google's operations client of another tenant does not see it.
    name = operation.operation.name
    globex = _client(secured, secured.keys["globex"])
    with pytest.raises(api_exceptions.NotFound):
        globex.transport.operations_client.get_operation(name, timeout=10)
    seen = acme.transport.operations_client.get_operation(name, timeout=10)
    assert isinstance(seen, operations_pb2.Operation)
    assert seen.done


def test_python_client_without_a_valid_key_or_with_a_wrong_ca_is_refused(
    secured: Secured,
) -> None:
    for client in (
        _client(secured, None),
        _client(secured, "ro_0000000000000000_not-a-key"),
    ):
        with pytest.raises(api_exceptions.Unauthenticated):
            client.optimize_tours(request=google_request(), timeout=30)
    wrong_ca = _client(secured, secured.keys["acme"], ca=secured.pki.other_ca)
    with pytest.raises(api_exceptions.ServiceUnavailable):
        # Google's default retry repeats UNAVAILABLE for an hour: one attempt here
        wrong_ca.optimize_tours(request=google_request(), timeout=30, retry=None)


@pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="Google's Node client test needs node and npm (Node 18+), which are not installed",
)
def test_node_client_with_an_api_key_over_tls(node_client: Path, secured: Secured) -> None:
    assert NODE is not None
    env = {
        **os.environ,
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": secured.pki.ca,
        "ROUTEOPT_API_KEY": secured.keys["globex"],
    }
    result = subprocess.run(
        [NODE, str(node_client), secured.endpoint, "--tls"],
        cwd=node_client.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"node failed:\n{result.stdout}\n{result.stderr}"
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["call"] for line in lines] == [
        "optimizeTours",
        "optimizeToursLongRunning",
        "unsupported",
        "unknownKey",
    ]
    for line in lines[:2]:
        request = pb.OptimizeToursRequest.FromString(base64.b64decode(line["request"]))
        response = pb.OptimizeToursResponse.FromString(base64.b64decode(line["response"]))
        response.solve_info.status = pb.SolveInfo.SOLVED  # dropped by Google's client
        assert not check_response(request, response).skipped_shipments
    assert lines[2]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "consider_road_traffic" in lines[2]["details"]
    assert lines[3]["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert " tenant=globex" in secured.srv.log()  # the calls ran for the key's tenant
