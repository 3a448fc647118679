"""The studio behind the server's API keys (``routeopt studio --keys-dir``): every API request
carries a tenant's key (``x-goog-api-key``, ``Authorization: Bearer`` or the page's sign-in
session), a revoked key stops at once, and a tenant sees and acts on its own studies only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import cli
from rpc.keys import KeyStore
from studio import StudioConfig, StudioServer, StudyManager, WorkerSettings
from tests.studio.conftest import Studio, start_studio, stop_studio


@dataclass
class Keyed:
    studio: Studio
    store: KeyStore
    acme: str
    globex: str


def key_header(key: str) -> dict[str, str]:
    return {"x-goog-api-key": key}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    tmp = tmp_path_factory.mktemp("studio-keys")
    store = KeyStore(tmp / "server-data")
    acme, globex = store.create("acme").key, store.create("globex").key
    studio = start_studio(
        tmp / "studies",
        WorkerSettings(osm=None, layout_timeout_s=1.0),
        StudioConfig(port=0, keys=store),
    )
    yield Keyed(studio, store, acme, globex)
    stop_studio(studio)
    store.close()


def test_without_a_key_only_the_page_and_its_config_answer(keyed: Keyed) -> None:
    studio = keyed.studio
    assert studio.request("/")[0] == 200  # the page: it signs in
    assert studio.request("/static/app.js")[0] == 200
    status, config = studio.json("/api/config")
    assert status == 200
    assert (config["keys"], config["tenant"]) == (True, None)
    for headers in ({}, key_header("ro_0000000000000000_not-a-key"), {"Authorization": "Bearer x"}):
        status, answer = studio.json("/api/studies", headers=headers)
        assert status == 401, headers
        assert "API key required" in answer["error"]
        assert studio.json("/api/studies/example", {}, headers=headers)[0] == 401
    status, config = studio.json("/api/config", headers=key_header(keyed.acme))
    assert config["tenant"] == "acme"


def test_a_tenant_sees_and_acts_on_its_own_studies_only(keyed: Keyed) -> None:
    studio = keyed.studio
    acme, globex = key_header(keyed.acme), {"Authorization": f"Bearer {keyed.globex}"}
    status, created = studio.json("/api/studies/example", {"name": "acme's"}, headers=acme)
    assert status == 201
    assert created["tenant"] == "acme"
    study_id = created["id"]
    state = studio.manager.wait(study_id, 120)
    assert state["status"] == "done", state
    status, mine = studio.json("/api/studies", headers=acme)
    assert status == 200
    assert study_id in [s["id"] for s in mine["studies"]]
    status, theirs = studio.json("/api/studies", headers=globex)
    assert status == 200
    assert study_id not in [s["id"] for s in theirs["studies"]]
    # Every route of a study is another tenant's 404, as for a study that does not exist.
    base = f"/api/studies/{study_id}"
    assert studio.json(base, headers=acme)[0] == 200
    assert studio.request(base + "/files/comparison.csv", headers=acme)[0] == 200
    for path, body in (
        (base, None),
        (base + "/files/comparison.csv", None),
        (base + "/files/response.json", None),
        (base + "/cancel", {}),
        (base + "/rerun", {}),
        (base + "/variant", {"close": ["Kamppi"]}),
    ):
        status, answer = studio.json(path, body, headers=globex)
        assert status == 404, (path, answer)
    # globex's own study is globex's; a what-if of acme's study by acme stays acme's.
    status, other = studio.json("/api/studies/example", {}, headers=globex)
    assert (status, other["tenant"]) == (201, "globex")
    status, variant = studio.json(base + "/variant", {"close": ["Kamppi"]}, headers=acme)
    assert (status, variant["tenant"]) == (201, "acme")
    assert studio.json(f"/api/studies/{other['id']}", headers=acme)[0] == 404
    for started in (other["id"], variant["id"]):
        studio.manager.wait(started, 120)


def test_sign_in_sets_a_session_that_a_revoked_key_ends(keyed: Keyed) -> None:
    studio = keyed.studio
    extra = keyed.store.create("acme", label="to revoke")
    status, headers, body = studio.request("/api/session", {"key": "ro_0000000000000000_x"})
    assert status == 401
    assert "Set-Cookie" not in headers
    status, headers, body = studio.request("/api/session", {"key": extra.key})
    assert status == 200
    assert b'"acme"' in body
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert extra.key not in cookie  # the cookie names a session, not the key
    session = {"Cookie": cookie.split(";", 1)[0]}
    status, listed = studio.json("/api/studies", headers=session)
    assert status == 200
    assert all(s["tenant"] == "acme" for s in listed["studies"])
    assert keyed.store.revoke(extra.id)
    assert studio.json("/api/studies", headers=session)[0] == 401
    assert studio.json("/api/studies", headers=key_header(extra.key))[0] == 401
    assert studio.json("/api/studies", headers={"Cookie": "studio_session=guess"})[0] == 401


def test_keys_open_a_non_loopback_address_and_exclude_the_token(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    manager = StudyManager(tmp_path / "studies", WorkerSettings(osm=None), grace_s=1)
    try:
        with pytest.raises(ValueError, match="API keys or a token"):
            StudioServer(StudioConfig(host="0.0.0.0", port=0), manager)
        with pytest.raises(ValueError, match="not both"):
            StudioServer(StudioConfig(port=0, keys=store, token="abc"), manager)
        server = StudioServer(StudioConfig(host="0.0.0.0", port=0, keys=store), manager)
        server.server_close()
    finally:
        manager.close()
        store.close()


def test_cli_refuses_a_keys_dir_without_keys_and_keys_with_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    args = ["studio", "--port", "0", "--osm", "none", "--data-dir", str(tmp_path / "s")]
    assert cli.main([*args, "--keys-dir", str(empty)]) == 2
    assert "routeopt keys create --tenant NAME --data-dir" in capsys.readouterr().err
    assert cli.main([*args, "--keys-dir", str(empty), "--token", "abc"]) == 2
    assert "not both" in capsys.readouterr().err


def test_the_command_serves_the_page_behind_the_servers_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_dir = tmp_path / "server-data"
    assert cli.main(["keys", "create", "--tenant", "acme", "--data-dir", str(keys_dir)]) == 0
    key = capsys.readouterr().out.strip()
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [
            sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", "studio",
            "--osm", "none", "--port", "0", "--data-dir", str(tmp_path / "studies"),
            "--keys-dir", str(keys_dir),
        ],
        stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:[0-9]+/", line)
        assert found, line
        assert "API keys of" in line
        assert "token" not in line
        url = found.group(0) + "api/studies"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"x-goog-api-key": key})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"studies": []}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
