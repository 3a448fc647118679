"""The studio page in a real browser: headless Chromium driven over the DevTools protocol.

The studio routes on the embedded road network (central Helsinki), one second per layout. A
user's path: upload the example study's CSV files, watch it finish, read and sort the table
with the keyboard, look at the map (a screenshot, checked for the pixels of the layers'
colours, which go when the layer is switched off), the chart, a bad cell, a layout that breaks
a depot capacity, and a what-if study compared with its parent. With
``ROUTEOPT_STUDIO_SCREENSHOTS=DIR`` the screenshots of the README are written to ``DIR``.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rpc.sheets import write_template
from studio import StudioConfig, WorkerSettings
from tests.studio.cdp import CHROMIUM, Browser
from tests.studio.conftest import Studio, start_studio, stop_studio

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium is not installed (/usr/bin/chromium: apt-get install chromium; "
    ".ci/run installs it)",
)

HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'
FIRST_DEPOT = (0x1F, 0x77, 0xB4)  # the study's first depot's colour (PALETTE[0] in app.js)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    running = start_studio(
        tmp_path_factory.mktemp("studio") / "data",
        WorkerSettings(osm="embedded", layout_timeout_s=1.0),
    )
    yield running
    stop_studio(running)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, studio: Studio) -> Iterator[Browser]:
    chromium = Browser(tmp_path_factory.mktemp("profile"), width=1280, height=1000)
    chromium.goto(studio.url, "document.body && document.body.dataset.ready === '1'")
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("template")
    return [p for p in write_template(folder, workbook=False) if p.suffix == ".csv"]


def shots(name: str, source: Path) -> None:
    """Keep a screenshot for the README when asked to (256 colours: a third of the bytes)."""
    target = os.environ.get("ROUTEOPT_STUDIO_SCREENSHOTS")
    if target:
        from PIL import Image

        Path(target).mkdir(parents=True, exist_ok=True)
        image = Image.open(source).convert("RGB").quantize(256, Image.Quantize.FASTOCTREE)
        image.save(Path(target) / name, optimize=True)


def upload(browser: Browser, files: list[Path], name: str) -> None:
    browser.set_files("#upload-files", files)
    browser.js(f"document.getElementById('upload-name').value = {name!r}")
    browser.click("#upload-run")
    browser.wait_for(f"document.getElementById('study-h').textContent === {name!r}", 20)


def wait_done(browser: Browser) -> None:
    browser.wait_for(
        "['Done', 'Invalid', 'Failed', 'Cancelled'].some(w => "
        "document.getElementById('progress-text').textContent.startsWith(w))",
        120,
    )
    text = browser.js("document.getElementById('progress-text').textContent")
    assert text.startswith("Done"), text
    browser.wait_for("!document.getElementById('results').hidden")
    browser.wait_for("document.querySelectorAll('.leaflet-overlay-pane path').length > 0")


def table(browser: Browser) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = browser.js(
        """(() => {
        const heads = Array.from(document.querySelectorAll('#comparison thead th'))
            .map(th => th.querySelector('button').dataset.sort);
        return Array.from(document.querySelectorAll('#comparison tbody tr')).map(tr =>
            Object.fromEntries(Array.from(tr.children).map((c, k) => [heads[k], c.textContent])));
        })()"""
    )
    return rows


def number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").strip())


def colour_pixels(path: Path, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(rgb)).max(axis=2) <= tolerance).sum())


def current_study(browser: Browser, studio: Studio) -> dict[str, Any]:
    ident = browser.js("document.querySelector('#study-list tbody tr').dataset.study")
    status, data = studio.json(f"/api/studies/{ident}")
    assert status == 200
    assert isinstance(data, dict)
    return data


def test_upload_run_and_read_the_table(
    browser: Browser, studio: Studio, template: list[Path], tmp_path: Path
) -> None:
    upload(browser, template, "Helsinki example")
    wait_done(browser)
    study = current_study(browser, studio)
    assert study["name"] == "Helsinki example"
    expected = study["results"]["rows"]
    shown = table(browser)
    assert [r["layout"] for r in shown] == [r["layout"] for r in expected]
    for got, row in zip(shown, expected, strict=True):
        assert number(got["total_cost"]) == pytest.approx(row["total_cost"], abs=0.5)
        assert number(got["orders_unserved"]) == row["orders_unserved"]
        assert got["status"] == "OK"
    # accessible table: caption, header cells with scope, the sort state announced
    assert browser.js("document.querySelector('#comparison caption').textContent")
    assert browser.js(
        "Array.from(document.querySelectorAll('#comparison thead th'))"
        ".every(th => th.getAttribute('scope') === 'col' && th.hasAttribute('aria-sort'))"
    )
    assert browser.js("document.querySelectorAll('#comparison tbody th[scope=row]').length") == 3
    progress = browser.js("document.getElementById('progress-text').textContent")
    assert f"Best so far: {expected[0]['layout']}" in progress
    browser.screenshot(tmp_path / "study.png", "#study", max_height=520)
    shots("studio-table.png", tmp_path / "study.png")
    assert not browser.console_errors()


def test_sort_with_the_keyboard(browser: Browser) -> None:
    def sort_state(key: str) -> str:
        value: str = browser.js(
            f"document.querySelector('#comparison th button[data-sort={key}]')"
            ".parentNode.getAttribute('aria-sort')"
        )
        return value

    browser.js("document.querySelector('#comparison th button[data-sort=travel_cost]').focus()")
    browser.key("Enter", "Enter", 13)
    assert sort_state("travel_cost") == "ascending"
    assert sort_state("rank") == "none"
    costs = [number(r["travel_cost"]) for r in table(browser)]
    assert costs == sorted(costs)
    # the focus stays on the button: Enter again sorts the other way
    assert browser.js("document.activeElement.dataset.sort") == "travel_cost"
    browser.key("Enter", "Enter", 13)
    assert sort_state("travel_cost") == "descending"
    costs = [number(r["travel_cost"]) for r in table(browser)]
    assert costs == sorted(costs, reverse=True)
    browser.js("document.querySelector('#comparison th button[data-sort=layout]').focus()")
    browser.key("Enter", "Enter", 13)
    names = [r["layout"] for r in table(browser)]
    assert names == sorted(names, key=str.lower)
    browser.js("document.querySelector('#comparison th button[data-sort=rank]').click()")


def test_map_draws_the_layers_offline(browser: Browser, studio: Studio, tmp_path: Path) -> None:
    """No tiles (offline): the best layout's routes, orders and depots are drawn in their
    colours; switching the layer off removes those pixels."""
    assert browser.js("document.querySelectorAll('img.leaflet-tile').length") == 0
    study = current_study(browser, studio)
    best = study["results"]["layouts"][0]
    _, collection = studio.json(f"/api/studies/{study['id']}/files/layouts/{best['file']}")
    routes = [f for f in collection["features"] if f["properties"]["kind"] == "route"]
    assert routes
    assert all(len(f["geometry"]["coordinates"]) > 2 for f in routes)  # along the roads
    shapes = sum(1 for f in collection["features"] if f["properties"]["kind"] != "depot")
    assert browser.js("document.querySelectorAll('.leaflet-overlay-pane path').length") >= shapes
    shot = browser.screenshot(tmp_path / "map.png", ".map-row")
    shots("studio-map.png", shot)
    on = browser.screenshot(tmp_path / "map-on.png", "#map")
    drawn = colour_pixels(on, FIRST_DEPOT)
    assert drawn > 300, drawn
    # switch the best layout off beside the map: its colour goes from the map
    browser.click("#map-layers input[data-layer='0']")
    browser.wait_for("document.querySelectorAll('.leaflet-overlay-pane path').length === 0")
    off = browser.screenshot(tmp_path / "map-off.png", "#map")
    assert colour_pixels(off, FIRST_DEPOT) < drawn / 20
    browser.click("#map-layers input[data-layer='0']")
    browser.wait_for("document.querySelectorAll('.leaflet-overlay-pane path').length > 0")


def test_chart_legend_never_covers_the_bars(browser: Browser) -> None:
    boxes = browser.js(
        """(() => {
        const svg = document.querySelector('#chart svg');
        const bars = Array.from(svg.querySelectorAll('g[data-layout] rect')).map(r => r.getBBox());
        const legend = Array.from(svg.children).filter(e => !e.matches('g') &&
            Number(e.getAttribute('y')) < 45 && (e.tagName === 'rect' || e.tagName === 'text'))
            .map(e => e.getBBox());
        return {bars: bars.map(b => [b.y, b.height]), legend: legend.map(b => b.y + b.height),
                groups: svg.querySelectorAll('g[data-layout]').length};
        })()"""
    )
    assert boxes["groups"] == 3
    assert len(boxes["legend"]) >= 9  # four swatches, their names, the ⚠ line
    assert max(boxes["legend"]) < min(y for y, _ in boxes["bars"])


def test_bad_cells_are_listed_on_the_page(
    browser: Browser, template: list[Path], tmp_path: Path
) -> None:
    for p in template:
        shutil.copy(p, tmp_path / p.name)
    orders = tmp_path / "orders.csv"
    lines = orders.read_text().splitlines()
    lines[2] = lines[2].replace("60.173829", "north")
    orders.write_text("\n".join(lines) + "\n")
    upload(browser, [tmp_path / p.name for p in template], "bad cell")
    browser.wait_for("!document.getElementById('violations').hidden", 20)
    items = browser.js(
        "Array.from(document.querySelectorAll('#violation-list li')).map(li => li.textContent)"
    )
    assert any(item.startswith("orders.csv:3:lat") for item in items), items
    assert browser.js("document.getElementById('results').hidden")
    assert browser.js("document.getElementById('progress-text').textContent").startswith("Invalid")


def test_layouts_over_capacity_or_with_unserved_orders_are_marked(
    browser: Browser, template: list[Path], tmp_path: Path
) -> None:
    for p in template:
        shutil.copy(p, tmp_path / p.name)
    depots = tmp_path / "depots.csv"
    depots.write_text(depots.read_text().replace("350,07:00,19:00,1500", "350,07:00,19:00,100"))
    orders = tmp_path / "orders.csv"  # A-003 (optional: a penalty) only at 03:00, no depot open
    orders.write_text(orders.read_text().replace("5,,,23,5,500", "5,03:00,03:30,23,5,500"))
    with (tmp_path / "layouts.csv").open("w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["id", "depots"],
                ["Kruununhaka only", "Kruununhaka"],
                ["Kamppi only", "Kamppi"],
                [HOSTILE, "Kamppi; Eira"],  # a name is text, never markup
            ]
        )
    upload(browser, [tmp_path / p.name for p in template], "too small")
    wait_done(browser)
    rows = {r["layout"]: r for r in table(browser)}
    assert rows["Kruununhaka only"]["status"] == "⚠ depot capacity exceeded; 1 order unserved"
    assert rows["Kamppi only"]["status"] == "⚠ 1 order unserved"
    assert rows["Kamppi only"]["orders_unserved"] == "1"
    assert browser.js(
        "document.querySelector('#comparison tr[data-layout=\"Kruununhaka only\"]')"
        ".classList.contains('flagged')"
    )
    chart = browser.js("document.querySelector('#chart svg').textContent")
    assert "⚠ depot capacity exceeded" in chart
    # the hostile name is shown as text everywhere and ran nowhere
    assert HOSTILE in rows
    assert browser.js("document.body.dataset.pwned") is None
    assert browser.js("document.querySelectorAll('#results img, #chart foreignObject').length") == 0
    assert HOSTILE in chart
    assert HOSTILE in browser.js("document.getElementById('map-layers').textContent")
    # the flagged layout ranks last; switch its layer on: the depot is labelled on the map
    browser.click("#map-layers div:last-child input")
    browser.wait_for("document.querySelector('.map-label.bad') !== null")
    labels = browser.js(
        "Array.from(document.querySelectorAll('.map-label.bad')).map(e => e.textContent)"
    )
    assert "Kruununhaka ⚠ over capacity" in labels
    assert "A-003 unserved" in labels
    assert browser.js("document.querySelectorAll('.map-unserved').length") >= 1


def test_what_if_compared_side_by_side(browser: Browser, tmp_path: Path) -> None:
    browser.click("#study-list tbody tr:last-child button[data-open]")  # the first study
    browser.wait_for("document.getElementById('study-h').textContent === 'Helsinki example'")
    wait_done(browser)
    browser.click("#variant-depots input[value=Kamppi]")
    browser.click("#variant-run")
    browser.wait_for(
        "document.getElementById('study-h').textContent === 'Helsinki example: without Kamppi'",
        20,
    )
    wait_done(browser)
    assert all("Kamppi" not in r["depots"] for r in table(browser))
    browser.wait_for("document.getElementById('compare-parent') !== null")
    browser.click("#compare-parent")
    browser.wait_for("document.getElementById('compare-table') !== null")
    diffs = browser.js("document.querySelector('#compare-out ul').textContent")
    assert "Candidate depots of A missing from B (closed): Kamppi." in diffs
    kpis = browser.js(
        """Object.fromEntries(Array.from(document.querySelectorAll('#compare-table tbody tr'))
        .map(tr => [tr.dataset.kpi, Array.from(tr.children).map(c => c.textContent)]))"""
    )
    a, b, delta = (number(x) for x in kpis["total_cost"][1:4])
    assert delta == pytest.approx(b - a, abs=1.5)
    if abs(delta) >= 0.5:
        assert ("better" in kpis["total_cost"][4]) == (delta < 0)
        assert browser.js(
            "document.querySelector('#compare-table tr[data-kpi=total_cost] td:last-child')"
            ".className"
        ) in ("delta-better", "delta-worse")
    # both best layouts on one map, the depots labelled by where they are open
    browser.wait_for(
        "document.querySelectorAll('#compare-map .leaflet-overlay-pane path').length > 0"
    )
    labels = browser.js(
        "Array.from(document.querySelectorAll('#compare-map .map-label')).map(e => e.textContent)"
    )
    assert "Kamppi: open in A only" in labels
    assert "Kruununhaka: open in B only" in labels
    # the two studies share no layout (B has no Kamppi): said, not left blank
    assert "No layout with the same depots" in browser.js(
        "document.getElementById('compare-out').textContent"
    )
    shot = browser.screenshot(tmp_path / "compare.png", "#compare")
    shots("studio-compare.png", shot)
    assert not browser.console_errors()


def test_the_page_behind_a_token(tmp_path: Path, template: list[Path]) -> None:
    """With a token, opening the printed address (``/?token=…``) sets the cookie the page's own
    requests then carry; without it the API refuses."""
    guarded = start_studio(
        tmp_path / "data",
        WorkerSettings(osm=None, layout_timeout_s=1.0),
        StudioConfig(port=0, token="t0k3n-for-the-test"),
    )
    chromium = Browser(tmp_path / "profile")
    try:
        chromium.goto(guarded.url + "api/studies")
        assert "token required" in chromium.js("document.body.textContent")
        chromium.goto(
            guarded.url + "?token=t0k3n-for-the-test",
            "document.body && document.body.dataset.ready === '1'",
        )
        assert chromium.js("document.cookie") == ""  # HttpOnly: no script reads it
        upload(chromium, template, "guarded")
        wait_done(chromium)
        assert len(table(chromium)) == 3
    finally:
        chromium.close()
        stop_studio(guarded)


def test_xlsx_workbook_upload(browser: Browser, studio: Studio, tmp_path: Path) -> None:
    """The template's workbook (one .xlsx, a sheet per table) runs as the CSV files do; a bad
    cell of a sheet is reported by workbook, sheet, row and column, and nothing runs."""
    from openpyxl import load_workbook

    written = write_template(tmp_path / "template", workbook=True)
    (workbook,) = [p for p in written if p.suffix == ".xlsx"]
    upload(browser, [workbook], "Helsinki workbook")
    wait_done(browser)
    study = current_study(browser, studio)
    assert study["name"] == "Helsinki workbook"
    assert "study.xlsx" in study["source"]
    assert study["inputs"]["orders"] == 6
    shown = table(browser)
    expected = study["results"]["rows"]
    assert [r["layout"] for r in shown] == [r["layout"] for r in expected]
    assert len(shown) == 3
    for got, row in zip(shown, expected, strict=True):
        assert number(got["total_cost"]) == pytest.approx(row["total_cost"], abs=0.5)
        assert got["status"] == "OK"
    assert browser.js("document.querySelectorAll('.leaflet-overlay-pane path').length") > 0
    # a bad cell in the orders sheet
    book = load_workbook(workbook)
    book["orders"].cell(row=3, column=2).value = "north"  # the lat column of the second order
    header = [c.value for c in book["orders"][1]]
    assert header[1] == "lat"
    bad = tmp_path / "bad" / "study.xlsx"
    bad.parent.mkdir()
    book.save(bad)
    upload(browser, [bad], "bad workbook")
    browser.wait_for("!document.getElementById('violations').hidden", 20)
    items = browser.js(
        "Array.from(document.querySelectorAll('#violation-list li')).map(li => li.textContent)"
    )
    assert any(item.startswith("study.xlsx:orders:3:lat") for item in items), items
    assert browser.js("document.getElementById('progress-text').textContent").startswith("Invalid")
    assert not browser.console_errors()


def test_the_page_behind_api_keys(tmp_path: Path, template: list[Path]) -> None:
    """With the server's API keys, the page asks for one; a wrong key is refused on the page, a
    right one signs in (an HttpOnly session: no script reads it) and the tenant's study runs;
    another tenant's key does not see it."""
    from rpc.keys import KeyStore

    store = KeyStore(tmp_path / "server-data")
    acme, globex = store.create("acme").key, store.create("globex").key
    guarded = start_studio(
        tmp_path / "data",
        WorkerSettings(osm=None, layout_timeout_s=1.0),
        StudioConfig(port=0, keys=store),
    )
    chromium = Browser(tmp_path / "profile")
    try:
        chromium.goto(guarded.url, "document.getElementById('signin').hidden === false")
        assert chromium.js("document.getElementById('start').hidden")
        chromium.js("document.getElementById('signin-key').value = 'ro_0000000000000000_wrong'")
        chromium.click("#signin-run")
        chromium.wait_for("document.getElementById('signin-message').textContent !== ''")
        assert "unknown or revoked API key" in chromium.js(
            "document.getElementById('signin-message').textContent"
        )
        chromium.js(f"document.getElementById('signin-key').value = {acme!r}")
        chromium.click("#signin-run")
        chromium.wait_for("document.body.dataset.ready === '1'")
        assert chromium.js("document.getElementById('tenant').textContent").startswith(
            "Tenant: acme"
        )
        assert chromium.js("document.cookie") == ""  # HttpOnly
        assert chromium.js("document.getElementById('signin-key').value") == ""
        upload(chromium, template, "acme's study")
        wait_done(chromium)
        assert len(table(chromium)) == 3
        status, theirs = guarded.json("/api/studies", headers={"x-goog-api-key": globex})
        assert status == 200
        assert theirs["studies"] == []
        status, mine = guarded.json("/api/studies", headers={"x-goog-api-key": acme})
        assert [s["name"] for s in mine["studies"]] == ["acme's study"]
        # a reload keeps the session: no sign-in again
        chromium.goto(guarded.url, "document.body && document.body.dataset.ready === '1'")
        assert chromium.js("document.getElementById('signin').hidden")
        assert not chromium.console_errors()
    finally:
        chromium.close()
        stop_studio(guarded)
        store.close()
