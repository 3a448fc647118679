"""End to end: ``server.py`` refusing to listen beyond loopback without TLS and client identity,
and a whole server on 0.0.0.0 with TLS and an API key made by ``routeopt keys create``, called
through :mod:`rpc.client` (Python and command line)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import cli
from rpc.client import Credentials, connect, optimize_tours
from rpc.client import main as client_main
from rpc.server import main as server_main
from tests.rpc.test_jobs_e2e import readme_block
from tests.rpc.test_server_e2e import EXAMPLE, ROOT, ServerProcess, check_response, small_request
from tests.rpc.tls_certs import make_pki


def _server_exit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``server.py`` that should stop at once."""
    return subprocess.run(
        [sys.executable, "server.py", "--port", "0", "--data-dir", str(tmp_path / "data"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_server_refuses_to_listen_beyond_loopback_unprotected(tmp_path: Path) -> None:
    done = _server_exit(tmp_path, "--host", "0.0.0.0")
    assert done.returncode == 2, done.stderr
    assert "routeopt listening" not in done.stdout
    for name in ("--tls-cert", "--tls-key", "--tls-client-ca", "--insecure"):
        assert name in done.stderr, done.stderr


def test_unusable_security_flags_stop_the_server_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "pki")
    data = ["--data-dir", str(tmp_path / "data"), "--port", "0"]
    for args, names in (
        (["--host", "::", "--tls-cert", pki.server_cert, "--tls-key", pki.server_key],
         ["routeopt keys create", "--tls-client-ca", "--insecure"]),
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", pki.server_key],
         ["missing.pem"]),
        (["--tls-cert", pki.server_key, "--tls-key", pki.server_key], ["not a PEM file"]),
    ):  # fmt: skip
        assert server_main([*data, *args]) == 2, args
        err = capsys.readouterr().err
        for name in names:
            assert name in err, (args, name, err)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "keys.sqlite3").write_bytes(b"not a database" * 100)
    assert server_main(["--data-dir", str(damaged), "--port", "0"]) == 2
    assert "cannot use the key store" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        server_main([*data, "--tls-cert", pki.server_cert])
    assert exited.value.code == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_a_server_with_tls_and_keys_on_every_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "pki")
    data = tmp_path / "data"
    assert cli.main(["keys", "create", "--tenant", "acme", "--data-dir", str(data)]) == 0
    key = capsys.readouterr().out.strip()
    srv = ServerProcess(
        tmp_path / "server.log",
        "--host", "0.0.0.0", "--osm", "none", "--workers", "1", "--data-dir", str(data),
        "--tls-cert", pki.server_cert, "--tls-key", pki.server_key,
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{srv.port}"
        request = small_request()
        response = optimize_tours(
            request, target=target, timeout_s=30, credentials=Credentials(key, ca_file=pki.ca)
        )
        check_response(request, response)
        with connect(target, Credentials(ca_file=pki.ca)) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as refused:
            optimize_tours(
                request, target=target, timeout_s=30, credentials=Credentials(ca_file=pki.ca)
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        # the README's example, as written but for the port
        code = readme_block("Credentials(api_key=")
        assert '"localhost:50051"' in code
        code = code.replace('"localhost:50051"', f'"localhost:{srv.port}"')
        (tmp_path / "acme.key").write_text(key + "\n")
        (tmp_path / "tls").mkdir()
        shutil.copy(pki.ca, tmp_path / "tls" / "ca.pem")
        (tmp_path / "examples").symlink_to(ROOT / "examples")
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, object] = {}
        exec(compile(code, "README.md", "exec"), namespace)
        check_response(namespace["request"], namespace["response"])  # type: ignore[arg-type]
        # the command-line client, the key from the environment
        monkeypatch.setenv("ROUTEOPT_API_KEY", key)
        assert client_main([str(EXAMPLE), "--target", target, "--tls-ca", pki.ca]) == 0
        assert '"routes"' in capsys.readouterr().out
        monkeypatch.delenv("ROUTEOPT_API_KEY")
        assert client_main([str(EXAMPLE), "--target", target, "--tls-ca", pki.ca]) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err
    finally:
        assert srv.terminate() == 0, srv.log()
    log = srv.log()
    assert "transport: TLS; callers: authenticated by API keys" in log
    assert "code=UNAUTHENTICATED" in log
    assert "OptimizeTours code=OK" in log
    assert " tenant=acme" in log  # the per-call log line names the tenant
    assert key.split("_", 2)[2] not in log
