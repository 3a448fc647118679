"""The studio's HTTP API without a browser: real studies (geodesic travel, one second per
layout), bad input, downloads, what-if variants, cancelling, persistence and the security
rules (Host header, token, body type and size)."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import cli
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.sheets import write_template
from studio import StudioConfig, StudioServer, StudyManager, WorkerSettings, is_loopback
from studio.jobs import close_depots
from studio.server import _example_request
from tests.studio.conftest import Studio, start_studio, stop_studio


def template_files(folder: Path) -> list[dict[str, str]]:
    return [
        {"name": p.name, "content": base64.b64encode(p.read_bytes()).decode()}
        for p in write_template(folder, workbook=False)
        if p.suffix == ".csv"
    ]


def finished(studio: Studio, study_id: str) -> dict[str, object]:
    state = studio.manager.wait(study_id, 120)
    assert state["status"] not in ("queued", "running"), state
    status, data = studio.json(f"/api/studies/{study_id}")
    assert status == 200
    assert isinstance(data, dict)
    return data


def test_example_study_runs_and_its_downloads_match(geodesic_studio: Studio) -> None:
    status, created = geodesic_studio.json("/api/studies/example", {})
    assert status == 201
    assert created["status"] == "queued"
    study = finished(geodesic_studio, created["id"])
    assert study["status"] == "done", study
    assert study["routed"] == study["total"] == 3
    results = study["results"]
    assert isinstance(results, dict)
    rows = results["rows"]
    assert next(r["layout"] for r in rows) == study["best"]["label"]  # type: ignore[index]
    assert study["inputs"]["orders"] == 6  # type: ignore[index]
    base = f"/api/studies/{created['id']}/files/"
    status, headers, data = geodesic_studio.request(base + "comparison.csv")
    assert status == 200
    assert headers["Content-Disposition"].startswith("attachment")
    table = list(csv.DictReader(io.StringIO(data.decode())))
    assert [float(r["total_cost"]) for r in table] == [r["total_cost"] for r in rows]
    status, response = geodesic_studio.json(base + "response.json")
    assert status == 200
    assert [x["layout"]["label"] for x in response["layouts"]] == [r["layout"] for r in rows]
    for layout in results["layouts"]:
        status, collection = geodesic_studio.json(base + "layouts/" + layout["file"])
        assert status == 200
        assert collection["type"] == "FeatureCollection"
        kinds = {f["properties"]["kind"] for f in collection["features"]}
        assert {"depot", "order", "assignment", "route"} <= kinds
    bad_names = ("meta.json", "request.binpb", "layouts/../meta.json", "../x", "layouts/9.geojson")
    for bad in bad_names:
        assert geodesic_studio.request(base + bad)[0] == 404, bad
    folder = geodesic_studio.manager.data_dir
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / created["id"]).stat().st_mode) == 0o700


def test_bad_cells_are_listed_and_nothing_runs(geodesic_studio: Studio, tmp_path: Path) -> None:
    files = template_files(tmp_path)
    orders = next(f for f in files if f["name"] == "orders.csv")
    text = base64.b64decode(orders["content"]).decode().splitlines()
    text[2] = text[2].replace("60.173829", "north")  # orders.csv row 3, lat
    text[4] = text[4].replace(",120,", ",-5,")  # row 5, demand_kg
    orders["content"] = base64.b64encode("\n".join(text).encode()).decode()
    status, created = geodesic_studio.json("/api/studies", {"name": "bad", "files": files})
    assert status == 201
    assert created["status"] == "invalid"
    where = [v[0] for v in created["violations"]]
    assert "orders.csv:3:lat" in where
    assert "orders.csv:5:demand_kg" in where
    study = finished(geodesic_studio, created["id"])
    assert study["routed"] == 0
    assert study["results"] is None
    assert not (geodesic_studio.manager.data_dir / created["id"] / "study.json").exists()


def test_json_request_and_workbook_uploads(geodesic_studio: Studio, tmp_path: Path) -> None:
    paths = write_template(tmp_path)
    book = next(p for p in paths if p.suffix == ".xlsx")
    files = [{"name": book.name, "content": base64.b64encode(book.read_bytes()).decode()}]
    status, created = geodesic_studio.json("/api/studies", {"files": files})
    assert status == 201, created
    assert created["status"] == "queued"
    assert created["name"] == "study.xlsx"
    geodesic_studio.json(f"/api/studies/{created['id']}/cancel", {})
    request = {
        "study": {
            "days": [{"orders": [{"label": "o", "location": {"latitude": 60.17}}]}],
            "depots": [],
        }
    }
    status, created = geodesic_studio.json("/api/studies", {"request": request})
    assert status == 201
    assert created["status"] == "invalid"  # no depots, no layouts, no longitude
    assert created["violations"]
    status, body = geodesic_studio.json("/api/studies", {"request": {"nonsense": 1}})
    assert status == 400
    assert "nonsense" in body["error"]


def test_what_if_closes_depots(tmp_path: Path) -> None:
    expanded = close_depots(_example_request(), {"Kamppi"})
    assert [d.label for d in expanded.study.depots] == ["Kruununhaka", "Eira"]
    labels = [(x.label, list(x.depots)) for x in expanded.study.layouts]
    assert labels == [
        ("Kamppi + Kruununhaka without Kamppi", ["Kruununhaka"]),
        ("all three without Kamppi", ["Kruununhaka", "Eira"]),
    ]
    with pytest.raises(Exception, match="Kallio"):
        close_depots(_example_request(), {"Kallio"})


def test_variant_study_and_its_parent(geodesic_studio: Studio) -> None:
    _, parent = geodesic_studio.json("/api/studies/example", {"name": "base"})
    status, variant = geodesic_studio.json(
        f"/api/studies/{parent['id']}/variant", {"close": ["Kamppi"]}
    )
    assert status == 201
    assert variant["parent"] == parent["id"]
    assert variant["closed"] == ["Kamppi"]
    assert variant["name"] == "base: without Kamppi"
    study = finished(geodesic_studio, variant["id"])
    assert study["status"] == "done"
    assert [d["label"] for d in study["inputs"]["depots"]] == ["Kruununhaka", "Eira"]  # type: ignore[index]
    assert all("Kamppi" not in r["depots"] for r in study["results"]["rows"])  # type: ignore[index]
    status, _body = geodesic_studio.json(f"/api/studies/{parent['id']}/variant", {"close": "x"})
    assert status == 400


def test_cancel_running_and_queued_studies(tmp_path: Path) -> None:
    """One study at a time: the second waits in the queue and is dropped when cancelled; the
    first, cancelled while running, stops after the layout being routed and keeps those done."""
    studio = start_studio(tmp_path / "data", WorkerSettings(osm=None, layout_timeout_s=2.0))
    try:
        _, first = studio.json("/api/studies/example", {})
        _, second = studio.json("/api/studies/example", {})
        status, cancelled = studio.json(f"/api/studies/{second['id']}/cancel", {})
        assert status == 200
        assert cancelled["status"] == "cancelled"
        deadline = time.monotonic() + 60
        while studio.manager.get(first["id"])["routed"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        studio.json(f"/api/studies/{first['id']}/cancel", {})
        state = studio.manager.wait(first["id"], 60)
        assert state["status"] == "cancelled"
        assert 1 <= state["routed"] < 3  # three layouts of two seconds each
        summary = studio.manager.summary(first["id"])
        assert summary is not None
        assert len(summary["rows"]) == state["routed"]
        assert studio.manager.get(second["id"])["routed"] == 0
    finally:
        stop_studio(studio)
    # a new studio over the same folder lists both again, with the results kept
    again = StudyManager(tmp_path / "data", WorkerSettings(osm=None))
    try:
        assert {s["id"]: s["status"] for s in again.studies()} == {
            first["id"]: "cancelled",
            second["id"]: "cancelled",
        }
        assert again.summary(first["id"]) is not None
    finally:
        again.close()


def test_security_rules(geodesic_studio: Studio, tmp_path: Path) -> None:
    assert geodesic_studio.request("/", headers={"Host": "evil.example:8765"})[0] == 403
    status, _, page = geodesic_studio.request("/")
    assert status == 200
    assert b'<script src="/static/app.js"' in page
    status, headers, _ = geodesic_studio.request("/static/app.js")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert geodesic_studio.request("/static/../jobs.py")[0] == 404
    assert geodesic_studio.request("/leaflet/leaflet.js")[0] == 200
    assert geodesic_studio.request("/leaflet/images/layers.png")[0] == 200
    # a form post from another site cannot be JSON
    form = geodesic_studio.request(
        "/api/studies/example",
        raw=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form[0] == 415
    # too large: refused from its Content-Length, before the body is read
    host, port = geodesic_studio.server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 40000000\r\n\r\n{"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 413")


def test_token(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.5")
    manager = StudyManager(tmp_path / "d1", WorkerSettings(osm=None))
    try:
        with pytest.raises(ValueError, match="token"):
            StudioServer(StudioConfig(host="0.0.0.0", port=0), manager)
        with pytest.raises(ValueError, match="token"):
            StudioServer(StudioConfig(port=0, token="a b;c"), manager)
    finally:
        manager.close()
    assert cli.main(["studio", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d2")]) == 2
    studio = start_studio(
        tmp_path / "d3", WorkerSettings(osm=None), StudioConfig(port=0, token="s3cret")
    )
    try:
        assert studio.request("/api/studies")[0] == 401
        assert studio.request("/api/studies", headers={"X-Studio-Token": "wrong"})[0] == 401
        assert studio.request("/api/studies", headers={"X-Studio-Token": "s3cret"})[0] == 200
        status, headers, _ = studio.request("/?token=s3cret")
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        pair = cookie.split(";")[0]
        assert studio.request("/api/studies", headers={"Cookie": pair})[0] == 200
    finally:
        stop_studio(studio)


def test_request_round_trips_through_the_data_folder(geodesic_studio: Studio) -> None:
    _, created = geodesic_studio.json("/api/studies/example", {"name": "again"})
    geodesic_studio.manager.wait(created["id"], 120)
    stored = geodesic_studio.manager.request(created["id"])
    assert isinstance(stored, pb.EvaluateDepotLayoutsRequest)
    assert [f.name for f in stored.sheets.files] == [
        "orders.csv", "depots.csv", "vehicles.csv", "layouts.csv", "search.csv",
    ]  # fmt: skip
    status, rerun = geodesic_studio.json(f"/api/studies/{created['id']}/rerun", {})
    assert status == 201
    assert rerun["parent"] == created["id"]
    assert json.loads(json.dumps(rerun))["name"] == "again"
    geodesic_studio.json(f"/api/studies/{rerun['id']}/cancel", {})


def test_a_search_study(geodesic_studio: Studio, tmp_path: Path) -> None:
    """No listed layouts, a MIN_COST search: the layouts it routes are counted as they come."""
    files = [f for f in template_files(tmp_path) if f["name"] != "layouts.csv"]
    search = next(f for f in files if f["name"] == "search.csv")
    text = "setting,value\nlabel,search\nmode,MIN_COST\nlayout_timeout_s,1\ntimeout_s,3\n"
    search["content"] = base64.b64encode(text.encode()).decode()
    status, created = geodesic_studio.json("/api/studies", {"files": files})
    assert status == 201, created
    study = finished(geodesic_studio, created["id"])
    assert study["status"] == "done", study
    assert study["search"] is True
    assert study["total"] == 0
    rows = study["results"]["rows"]  # type: ignore[index]
    assert study["routed"] >= len(rows) >= 1
    assert study["best"]["label"] == rows[0]["layout"]  # type: ignore[index]


def test_the_command_serves_the_page(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [
            sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", "studio",
            "--osm", "none", "--port", "0", "--data-dir", str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:[0-9]+/", line)
        assert found, line
        with urllib.request.urlopen(found.group(0) + "api/config", timeout=10) as response:
            assert json.loads(response.read())["roads"] is False
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_the_page_needs_no_network(geodesic_studio: Studio) -> None:
    """Offline: the page and its assets refer to nothing outside the studio."""
    for path in ("/", "/static/app.js", "/static/app.css"):
        status, _, body = geodesic_studio.request(path)
        assert status == 200
        text = body.decode().replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path
    _, _, css = geodesic_studio.request("/leaflet/leaflet.css")
    urls = [u for u in re.findall(r"url\(([^)]*)\)", css.decode()) if not u.startswith("#")]
    assert urls
    assert all(u.strip("'\"").startswith("images/") for u in urls), urls
    for u in urls:
        assert geodesic_studio.request("/leaflet/" + u.strip("'\""))[0] == 200, u
