"""Outputs of a layout study: comparison table, GeoJSON, the HTML map (in headless Chromium),
the cost chart."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from planning import Layout, LayoutEvaluation, LayoutStudy, evaluate_layouts
from planning.report import (
    comparison_rows,
    layout_geojson,
    markdown_table,
    write_cost_chart,
    write_csv,
    write_json,
    write_map,
)
from tests.planning.test_layouts import check_layout, options, small_study

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def evaluated() -> tuple[LayoutStudy, list[LayoutEvaluation]]:
    study = small_study(days=2, layouts=(Layout("one", ("D0",)), Layout("two", ("D0", "D3"))))
    evaluations = evaluate_layouts(study, study.layouts, options())
    for ev in evaluations:
        check_layout(study, ev)
    return study, evaluations


def test_table_in_three_formats(
    evaluated: tuple[LayoutStudy, list[LayoutEvaluation]], tmp_path: Path
) -> None:
    _, evaluations = evaluated
    rows = comparison_rows(evaluations)
    assert [r["layout"] for r in rows] == ["one", "two"]
    for row, ev in zip(rows, evaluations, strict=True):
        assert row["total_cost"] == pytest.approx(ev.kpis.total_cost, abs=0.01)
        assert row["cost_per_day"] == pytest.approx(ev.kpis.total_cost / 2, abs=0.01)  # 2 days
        assert row["total_cost"] == pytest.approx(
            row["opening_cost"] + row["vehicle_fixed_cost"] + row["travel_cost"]
            + row["penalty_cost"], abs=0.05,
        )  # fmt: skip
    write_csv(rows, tmp_path / "t.csv")
    with (tmp_path / "t.csv").open() as f:
        back = list(csv.DictReader(f))
    assert [float(r["total_cost"]) for r in back] == [r["total_cost"] for r in rows]
    write_json(rows, tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text()) == rows
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert all(line.count("|") == table[0].count("|") for line in table)


def _valid_position(p: list[float]) -> bool:
    return len(p) == 2 and -180 <= p[0] <= 180 and -90 <= p[1] <= 90


def test_geojson_is_valid(evaluated: tuple[LayoutStudy, list[LayoutEvaluation]]) -> None:
    study, evaluations = evaluated
    for ev in evaluations:
        collection = json.loads(json.dumps(layout_geojson(study, ev)))  # JSON round trip
        assert collection["type"] == "FeatureCollection"
        kinds: dict[str, int] = {}
        for feature in collection["features"]:
            assert feature["type"] == "Feature"
            geometry = feature["geometry"]
            kind = feature["properties"]["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
            if geometry["type"] == "Point":
                assert kind in ("depot", "order")
                assert _valid_position(geometry["coordinates"])
            else:
                assert geometry["type"] == "LineString"
                assert kind in ("route", "assignment")
                assert len(geometry["coordinates"]) >= 2
                assert all(_valid_position(p) for p in geometry["coordinates"])
        orders = sum(len(day.orders) for day in study.days)
        assert kinds["depot"] == len(study.depots)
        assert kinds["order"] == kinds["assignment"] == orders
        assert kinds["route"] == ev.kpis.vehicles_used
        opened = [
            f for f in collection["features"]
            if f["properties"]["kind"] == "depot" and f["properties"]["open"]
        ]  # fmt: skip
        assert sorted(f["properties"]["depot"] for f in opened) == sorted(ev.layout.depots)


def test_cost_chart_is_a_png(
    evaluated: tuple[LayoutStudy, list[LayoutEvaluation]], tmp_path: Path
) -> None:
    import matplotlib.image as mpimg

    _, evaluations = evaluated
    path = tmp_path / "costs.png"
    write_cost_chart(evaluations, path)
    pixels = mpimg.imread(path)
    assert pixels.shape[0] > 100
    assert pixels.shape[1] > 100
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 3  # not blank


def test_map_is_self_contained(
    evaluated: tuple[LayoutStudy, list[LayoutEvaluation]], tmp_path: Path
) -> None:
    study, evaluations = evaluated
    path = tmp_path / "map.html"
    write_map(study, evaluations, path, tiles=None)
    text = path.read_text()
    assert "<script src=" not in text  # nothing to fetch: Leaflet is inlined
    assert '<link rel="stylesheet" href=' not in text
    assert "L.circleMarker" in text
    assert "L.polyline" in text


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=5000", *args,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium is not installed (/usr/bin/chromium: apt-get install chromium)",
)
def test_map_loads_in_headless_chromium(
    evaluated: tuple[LayoutStudy, list[LayoutEvaluation]], tmp_path: Path
) -> None:
    """Offline (no tiles): Leaflet must run and draw every marker and route of the first layout
    (SVG paths with class leaflet-interactive in the DOM after the scripts ran), with no
    JavaScript error on the console; the screenshot is a non-blank image."""
    study, evaluations = evaluated
    path = tmp_path / "map.html"
    write_map(study, evaluations, path, tiles=None)
    dom = _chromium("--dump-dom", path.as_uri(), profile=tmp_path / "profile1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    first = layout_geojson(study, evaluations[0])["features"]
    shapes = sum(1 for f in first if f["properties"]["kind"] in ("depot", "order", "route"))
    assert "leaflet-container" in dom.stdout
    assert dom.stdout.count("leaflet-interactive") >= shapes
    assert "leaflet-control-layers" in dom.stdout
    errors = [
        line for line in dom.stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)
    ]  # fmt: skip
    assert not errors, errors
    shot = tmp_path / "map.png"
    run = _chromium(
        f"--screenshot={shot}", "--window-size=900,700", path.as_uri(),
        profile=tmp_path / "profile2",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (700, 900)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 5
