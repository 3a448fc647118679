"""Depot layout studies from spreadsheets (rpc.sheets): the template round trip, CSV and XLSX
giving the same request, every bad cell reported at once by file, row and column, and the
request's own checks traced back to the row they came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

import cli
from engine.errors import InvalidModelError
from rpc.layouts import expand_sheets, request_to_study
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.sheets import read_files, read_folder, read_workbook, request_from_tables, write_template


def _request(files: dict[str, bytes]) -> pb.EvaluateDepotLayoutsRequest:
    tables, problems = read_files(files)
    assert problems == []
    return request_from_tables(tables)[0]


def _violations(files: dict[str, bytes]) -> dict[str, str]:
    tables, problems = read_files(files)
    assert problems == []
    with pytest.raises(InvalidModelError) as info:
        request_from_tables(tables)
    return {v.field: v.description for v in info.value.violations}


ORDERS = b"id,lat,lon,day,service_min,window_start,window_end,demand_kg\n"
DEPOTS = b"id,lat,lon,opening_cost,opens,closes,capacity_kg\nD1,60.17,24.93,100,06:00,20:00,500\n"
VEHICLES = b"id,count,capacity_kg,fixed_cost,cost_per_km,max_hours\nvan,2,300,50,0.5,8\n"
LAYOUTS = b"id,depots\nonly D1,D1\n"


def test_the_template_reads_back_as_the_study_it_shows(tmp_path: Path) -> None:
    write_template(tmp_path)
    tables, problems = read_folder(tmp_path)
    assert problems == []
    request, origins = request_from_tables(tables)
    study = request.study
    assert [d.label for d in study.days] == ["2025-06-02"]
    day = study.days[0]
    assert [o.label for o in day.orders] == [f"A-00{k}" for k in range(1, 7)]
    first = day.orders[0]
    assert (first.location.latitude, first.location.longitude) == (60.172948, 24.943186)
    assert dict(first.demands) == {"kg": 55, "parcels": 6}
    assert first.service_duration.seconds == 300
    start = day.start_time.seconds
    assert start == 1748822400  # 2025-06-02T00:00:00Z
    window = first.time_windows[0]
    assert (window.start_time.seconds - start, window.end_time.seconds - start) == (
        8 * 3600,
        14 * 3600,
    )
    assert not day.orders[2].time_windows
    assert day.orders[2].penalty_cost == 500
    assert not day.orders[0].HasField("penalty_cost")
    kamppi, _, eira = study.depots
    assert kamppi.opening_cost == 400
    assert dict(kamppi.capacity) == {"kg": 2000}
    assert (kamppi.opens_at.seconds, kamppi.closes_at.seconds) == (6 * 3600, 20 * 3600)
    assert [(v.label, v.count) for v in eira.fleet] == [("van", 2)]
    (van,) = study.fleet
    assert (van.count, dict(van.capacities), van.fixed_cost) == (3, {"kg": 600, "parcels": 40}, 80)
    assert (van.cost_per_kilometer, van.cost_per_hour) == (0.4, 25)
    assert van.max_duration.seconds == 9 * 3600
    assert van.max_distance_meters == 200_000
    assert [list(x.depots) for x in study.layouts] == [
        ["Kamppi"],
        ["Kamppi", "Kruununhaka"],
        ["Kamppi", "Kruununhaka", "Eira"],
    ]
    assert request.label == "central Helsinki"
    assert request.layout_timeout.seconds == 5
    assert origins.prefixes["study.days[0].orders[3]"] == "orders.csv:5"
    # The workbook holds the same study.
    book_tables, problems = read_workbook((tmp_path / "study.xlsx").read_bytes())
    assert problems == []
    assert request_from_tables(book_tables)[0] == request
    # ... and the whole request converts.
    request_to_study(request)


def test_every_bad_cell_is_reported_at_once() -> None:
    orders = ORDERS + (
        b"o1,60.17,24.94,2025-06-02,5,08:00,,10\n"  # row 2: half a window
        b"o2,6O.1,24.94,2025-13-02,-5,25:61,09:00,1.5\n"  # row 3: a bad day
        b"o1,60.17,24.94,2025-06-02,5,10:00,09:00,4\n"  # row 4: repeated id, window backwards
        b",60.17,24.94,,,,,\n"  # row 5: blank id
    )
    depots = DEPOTS + b"D2,60.18,,0,,,\n"
    found = _violations(
        {
            "orders.csv": orders,
            "depots.csv": depots.replace(b"capacity_kg", b"capacity_kg,colour"),
            "vehicles.csv": VEHICLES,
            "layouts.csv": LAYOUTS + b"both,D1; D9\n",
        }
    )
    assert found == {
        "orders.csv:2:window_end": "give both window_start and window_end, or neither",
        "orders.csv:3:day": "'2025-13-02' is not a date (YYYY-MM-DD)",
        "orders.csv:4:id": "'o1' repeats row 2",
        "orders.csv:4:window_end": "is before window_start",
        "orders.csv:5:id": "must not be blank",
        "depots.csv:1:colour": found["depots.csv:1:colour"],
        "layouts.csv:3:depots": "'D9' is not a depot id",
        "depots.csv:3:lon": "must not be blank",
    }
    assert "unknown column" in found["depots.csv:1:colour"]
    # A row whose day is bad is not read further; the same row with a good day shows the rest.
    found = _violations(
        {
            "orders.csv": ORDERS + b"o2,6O.1,24.94,,-5,25:61,09:00,1.5\n",
            "depots.csv": DEPOTS + b"D2,60.18,,0,,,\n",
            "vehicles.csv": VEHICLES,
        }
    )
    assert set(found) == {
        "orders.csv:2:lat",
        "orders.csv:2:service_min",
        "orders.csv:2:window_start",
        "orders.csv:2:demand_kg",
        "depots.csv:3:lon",
    }


def test_missing_sheets_and_columns_are_named() -> None:
    found = _violations({"orders.csv": b"id,lat\no1,60.1\n", "layouts.csv": LAYOUTS})
    assert set(found) == {"orders.csv:1:lon", "depots", "vehicles"}


def test_semicolons_decimal_commas_and_a_byte_order_mark() -> None:
    orders = "\ufeffID;Lat;Lon;demand_kg;service_min\no1;60,17;24,94;3;2,5\n".encode()
    request = _request(
        {
            "orders.csv": orders,
            "depots.csv": DEPOTS,
            "vehicles.csv": VEHICLES,
            "layouts.csv": LAYOUTS,
        }
    )
    order = request.study.days[0].orders[0]
    assert (order.location.latitude, order.location.longitude) == (60.17, 24.94)
    assert order.service_duration.seconds == 150
    assert dict(order.demands) == {"kg": 3}


def test_a_workbook_with_typed_cells(tmp_path: Path) -> None:
    import datetime as dt

    book = Workbook()
    sheets = {
        "orders": [
            ["id", "lat", "lon", "day", "window_start", "window_end", "demand_kg"],
            [101, 60.17, 24.94, dt.datetime(2025, 6, 3), dt.time(8, 30), dt.time(12, 0), 7.0],
        ],
        "depots": [["id", "lat", "lon"], ["D1", 60.17, 24.93]],
        "vehicles": [["id", "capacity_kg"], ["van", 100]],
        "layouts": [["id", "depots"], ["one", "D1"]],
    }
    first = True
    for name, rows in sheets.items():
        sheet = book.active if first else book.create_sheet()
        assert sheet is not None
        sheet.title, first = name, False
        for row in rows:
            sheet.append(row)
    path = tmp_path / "study.xlsx"
    book.save(path)
    tables, problems = read_workbook(path.read_bytes())
    assert problems == []
    request, _ = request_from_tables(tables)
    order = request.study.days[0].orders[0]
    start = request.study.days[0].start_time.seconds
    assert order.label == "101"
    assert dict(order.demands) == {"kg": 7}
    window = order.time_windows[0]
    assert window.start_time.seconds - start == 8 * 3600 + 1800


def test_unreadable_files_are_reported() -> None:
    assert read_files({"orders.xlsx": b"not a zip"})[1][0].startswith("orders.xlsx: not an XLSX")
    assert "unknown file" in read_files({"routes.csv": b"id\n"})[1][0]
    assert "not UTF-8" in read_files({"orders.csv": b"id\n\xff\xfe\xfa"})[1][0]
    assert "or .csv files" in read_files({"a.xlsx": b"", "orders.csv": b""})[1][0]


def test_the_requests_own_checks_name_the_row() -> None:
    request = pb.EvaluateDepotLayoutsRequest()
    for name, data in (
        ("orders.csv", ORDERS + b"o1,60.17,24.94,,5,,,10\n"),
        ("depots.csv", DEPOTS),
        ("vehicles.csv", VEHICLES),
        ("layouts.csv", LAYOUTS + b"none,\n"),
    ):
        request.sheets.files.add(name=name, content=data)
    with pytest.raises(InvalidModelError) as info:
        request_to_study(request)
    assert [v.field for v in info.value.violations] == ["layouts.csv:3 (study.layouts[1].depots)"]
    # Sheets and a study together are refused; the request's own settings win over search.csv.
    both = pb.EvaluateDepotLayoutsRequest()
    both.CopyFrom(request)
    both.study.label = "x"
    with pytest.raises(InvalidModelError, match="not both"):
        expand_sheets(both)
    request.sheets.files[3].content = LAYOUTS
    request.sheets.files.add(name="search.csv", content=b"setting,value\nlayout_timeout_s,7\n")
    request.layout_timeout.seconds = 3
    expanded, _ = expand_sheets(request)
    assert expanded.layout_timeout.seconds == 3
    assert not expanded.HasField("sheets")


def test_cli_template_then_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "study"
    assert cli.main(["layouts", "template", str(folder), "--no-xlsx"]) == 0
    assert not (folder / "study.xlsx").exists()
    assert cli.main(["layouts", "template", str(folder)]) == 2  # not over existing files
    capsys.readouterr()
    (folder / "layouts.csv").write_text("id,depots\nEira only,Eira\nghost,Kallio\n")
    assert cli.main(["layouts", str(folder), "--osm", "none", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "layouts.csv:3:depots: 'Kallio' is not a depot id" in err
    (folder / "layouts.csv").write_text("id,depots\nEira only,Eira\n")
    out = tmp_path / "out"
    argv = ["layouts", str(folder), "--osm", "none", "--quiet", "--no-map", "--no-chart"]
    assert cli.main([*argv, "--out", str(out), "--layout-timeout", "1"]) == 0
    assert "best layout: Eira only" in capsys.readouterr().out
    assert (out / "comparison.csv").read_text().count("\n") == 2
