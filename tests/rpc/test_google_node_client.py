"""Google's Node client (@googlemaps/routeoptimization), unchanged apart from the endpoint and
the credentials, against a routeopt server: optimizeTours, optimizeToursLongRunning (its
operation's promise) and a field routeopt does not honour (INVALID_ARGUMENT naming it).

``tests/google_node/`` holds the client's script, ``package.json`` and ``package-lock.json``;
this test installs the locked packages there with ``npm ci`` (once; ``node_modules`` is not
committed) and runs ``node optimize.js HOST:PORT``, which prints each request and response as
protobuf bytes; each answer is checked here by the independent checker. Skipped, with the
reason, only when node or npm is not installed.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_server_e2e import ROOT, ServerProcess, check_response

NODE_DIR = ROOT / "tests" / "google_node"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="Google's Node client test needs node and npm (Node 18+), which are not installed",
)


def _installed() -> bool:
    """Whether node_modules matches package-lock.json (npm writes its own copy of the lock)."""
    hidden = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not hidden.exists():
        return False
    ours = json.loads(lock.read_text())["packages"]
    theirs = json.loads(hidden.read_text())["packages"]
    return all(theirs.get(k, {}).get("version") == v.get("version") for k, v in ours.items() if k)


@pytest.fixture(scope="module")
def node_client() -> Path:
    if not _installed():
        assert NPM is not None
        result = subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return NODE_DIR / "optimize.js"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("google-node") / "server.log"
    srv = ServerProcess(log, "--osm", "none", "--workers", "1")
    yield srv
    assert srv.terminate() == 0, srv.log()


def test_google_node_client(node_client: Path, server: ServerProcess) -> None:
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(node_client), f"127.0.0.1:{server.port}"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"node failed:\n{result.stdout}\n{result.stderr}"
    assert "MetadataLookup" not in result.stderr, result.stderr  # no Google credentials lookup
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["call"] for line in lines] == [
        "optimizeTours",
        "optimizeToursLongRunning",
        "unsupported",
    ]
    for line in lines[:2]:
        request = pb.OptimizeToursRequest.FromString(base64.b64decode(line["request"]))
        response = pb.OptimizeToursResponse.FromString(base64.b64decode(line["response"]))
        assert not response.HasField("solve_info")  # Google's client drops routeopt's fields
        response.solve_info.status = pb.SolveInfo.SOLVED  # what the checker's decoding needs
        solution = check_response(request, response)
        assert not solution.skipped_shipments
        assert response.request_label == request.label
        assert len(request.model.shipments) in (4, 5)
    assert lines[2]["code"] == 3  # INVALID_ARGUMENT
    assert "consider_road_traffic" in lines[2]["details"]
