"""Depot layout studies from spreadsheets: CSV files or one XLSX workbook.

A planner's study is five tables, as CSV files in a folder (``orders.csv``, ``depots.csv``,
``vehicles.csv``, and optionally ``layouts.csv`` and ``search.csv``) or as the sheets of one
workbook with the same names (``orders``, ``depots``, ...). :func:`read_folder`,
:func:`read_workbook` and :func:`read_files` read them into :class:`Table` s;
:func:`request_from_tables` builds the ``EvaluateDepotLayoutsRequest`` they describe (the same
request the API takes in protobuf), checking every cell first: all bad cells are reported at
once, each as ``FILE:ROW:COLUMN`` (rows numbered as a spreadsheet shows them, the header being
row 1), and nothing runs. :func:`locate` maps the request's own field paths
(``study.days[0].orders[3].location``) back to the file and row they came from, so the checks
made later on the request (capacities, roads, layouts) name cells too.
:func:`write_template` writes the files with example rows and a README of the columns.

Columns (names are case-insensitive; ``TYPE`` is a load type of your choosing, e.g. ``kg``):

- orders: ``id``, ``lat``, ``lon``, ``day`` (YYYY-MM-DD; blank: one single day),
  ``service_min``, ``window_start``/``window_end`` (HH:MM on the order's day; both or neither),
  ``demand_TYPE`` (whole units), ``penalty_cost`` (blank: the order must be served).
- depots: ``id``, ``lat``, ``lon``, ``opening_cost``, ``opens``/``closes`` (HH:MM),
  ``capacity_TYPE`` (per day, blank: unlimited), ``fleet`` (vehicle ids, ``van*3; truck``: the
  depot's own fleet instead of the shared one).
- vehicles: ``id``, ``count`` (per open depot, blank: as many as needed), ``capacity_TYPE``,
  ``fixed_cost``, ``cost_per_km``, ``cost_per_hour``, ``cost_per_traveled_hour``,
  ``max_hours``, ``max_km``.
- layouts: ``id``, ``depots`` (depot ids separated by ``;``).
- search: two columns ``setting`` and ``value``; settings ``mode`` (EXACTLY, AT_MOST,
  MIN_COST), ``k``, ``must_open`` (depot ids), ``label``, ``layout_timeout_s``,
  ``final_layout_timeout_s``, ``timeout_s``, ``candidates``.

CSV files may be comma-, semicolon- or tab-separated (a semicolon file may use decimal
commas, as spreadsheets in many locales write them); UTF-8 with or without a byte-order mark.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import FieldViolation, InvalidModelError
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "SHEETS",
    "Origins",
    "Table",
    "locate",
    "read_files",
    "read_folder",
    "read_study",
    "read_workbook",
    "request_from_tables",
    "write_template",
]

SHEETS = ("orders", "depots", "vehicles", "layouts", "search")
REQUIRED = ("orders", "depots", "vehicles")
MAX_ROWS = 200_000
"""Most data rows a sheet may have (a study is routed, not stored: far more than any)."""
MAX_FILE_BYTES = 32 * 2**20

_COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": (
        "id",
        "lat",
        "lon",
        "day",
        "service_min",
        "window_start",
        "window_end",
        "penalty_cost",
    ),
    "depots": ("id", "lat", "lon", "opening_cost", "opens", "closes", "fleet"),
    "vehicles": (
        "id",
        "count",
        "fixed_cost",
        "cost_per_km",
        "cost_per_hour",
        "cost_per_traveled_hour",
        "max_hours",
        "max_km",
    ),
    "layouts": ("id", "depots"),
    "search": ("setting", "value"),
}
_REQUIRED_COLUMNS = {
    "orders": ("id", "lat", "lon"),
    "depots": ("id", "lat", "lon"),
    "vehicles": ("id",),
    "layouts": ("id", "depots"),
    "search": ("setting", "value"),
}
_PREFIXED = {"orders": "demand_", "depots": "capacity_", "vehicles": "capacity_"}
_SETTINGS = (
    "mode",
    "k",
    "must_open",
    "label",
    "layout_timeout_s",
    "final_layout_timeout_s",
    "timeout_s",
    "candidates",
)
_MODES = {"EXACTLY": pb.LayoutSearch.EXACTLY, "AT_MOST": pb.LayoutSearch.AT_MOST}
_MODES["MIN_COST"] = pb.LayoutSearch.MIN_COST
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_LOAD_TYPE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_AMOUNT = 10**12
_MAX_COST = 1e12


@dataclass(frozen=True)
class Table:
    """One sheet: its name as the planner sees it (``orders.csv``, ``study.xlsx:orders``), the
    header (lower-cased) and the data rows with their spreadsheet row numbers."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]

    def column(self, row: tuple[str, ...], name: str) -> str:
        try:
            k = self.header.index(name)
        except ValueError:
            return ""
        return row[k].strip() if k < len(row) else ""


@dataclass
class Origins:
    """Where parts of the request came from: request path prefix -> ``FILE:ROW``."""

    prefixes: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, where: str) -> None:
        self.prefixes[path] = where


def _cell_text(value: object) -> str:
    """A workbook cell as the text a CSV file would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, dt.timedelta):  # a duration cell ([h]:mm)
        total = round(value.total_seconds())
        return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _table(name: str, lines: Iterable[Sequence[object]]) -> tuple[Table | None, list[str]]:
    """A table from its lines (the first is the header); None and problems when unusable."""
    rows: list[tuple[int, tuple[str, ...]]] = []
    header: tuple[str, ...] | None = None
    for number, line in enumerate(lines, start=1):
        cells = tuple(_cell_text(c) for c in line)
        if header is None:
            if not any(c.strip() for c in cells):
                continue
            header = tuple(c.strip().lower() for c in cells)
            header_row = number
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= MAX_ROWS:
            return None, [f"{name}: more than {MAX_ROWS:,} rows"]
        rows.append((number, cells))
    if header is None:
        return None, [f"{name}: empty (a header row is needed)"]
    del header_row
    while header and not header[-1]:
        header = header[:-1]
    return Table(name, header, tuple(rows)), []


def _csv_table(name: str, data: bytes) -> tuple[Table | None, list[str]]:
    if len(data) > MAX_FILE_BYTES:
        return None, [f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        table, problems = _table(name, list(reader))
    except csv.Error as exc:
        return None, [f"{name}: not a CSV file ({exc})"]
    if table is not None and delimiter == ";":
        table = Table(
            table.name, table.header, tuple((n, _decimal_commas(r)) for n, r in table.rows)
        )
    return table, problems


def _decimal_commas(row: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(re.sub(r"^(-?\d+),(\d+)$", r"\1.\2", c.strip()) for c in row)


def read_workbook(data: bytes, name: str = "study.xlsx") -> tuple[dict[str, Table], list[str]]:
    """The sheets of an XLSX workbook (``data``: its bytes); problems for unreadable ones."""
    if len(data) > MAX_FILE_BYTES:
        return {}, [f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB"]
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        return {}, [f"{name}: not an XLSX workbook ({exc})"]
    tables: dict[str, Table] = {}
    problems: list[str] = []
    try:
        for sheet in book.worksheets:
            key = sheet.title.strip().lower()
            if key not in SHEETS:
                problems.append(
                    f"{name}:{sheet.title}: unknown sheet (expected {', '.join(SHEETS)})"
                )
                continue
            table, found = _table(f"{name}:{key}", sheet.iter_rows(values_only=True))
            problems += found
            if table is not None:
                tables[key] = table
    finally:
        book.close()
    return tables, problems


def read_files(files: Mapping[str, bytes]) -> tuple[dict[str, Table], list[str]]:
    """Tables from files by name: CSV files named after the sheets (``orders.csv``, ...) or
    one ``.xlsx`` workbook."""
    workbooks = [n for n in files if n.lower().endswith(".xlsx")]
    if workbooks:
        if len(files) > 1:
            return {}, ["give either one .xlsx workbook or .csv files, not both or several"]
        return read_workbook(files[workbooks[0]], workbooks[0])
    tables: dict[str, Table] = {}
    problems: list[str] = []
    for file_name, data in sorted(files.items()):
        key = Path(file_name).name.lower().removesuffix(".csv")
        if not file_name.lower().endswith(".csv") or key not in SHEETS:
            problems.append(
                f"{file_name}: unknown file (expected {', '.join(s + '.csv' for s in SHEETS)} "
                "or one .xlsx workbook)"
            )
            continue
        table, found = _csv_table(Path(file_name).name, data)
        problems += found
        if table is not None:
            tables[key] = table
    return tables, problems


def read_folder(folder: Path) -> tuple[dict[str, Table], list[str]]:
    """The CSV files of ``folder`` (other files are ignored)."""
    files = {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() == ".csv"
    }
    if not files:
        return {}, [f"{folder}: no .csv files (expected {', '.join(s + '.csv' for s in SHEETS)})"]
    return read_files(files)


def read_study(path: Path) -> tuple[dict[str, Table], list[str]]:
    """A folder of CSV files or an XLSX workbook."""
    if path.is_dir():
        return read_folder(path)
    return read_workbook(path.read_bytes(), path.name)


class _Cells:
    """Reads typed values out of cells, collecting every problem as a violation."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def bad(self, table: Table, row: int, column: str, description: str) -> None:
        self.violations.append(FieldViolation(f"{table.name}:{row}:{column}", description))

    def number(
        self,
        table: Table,
        row: tuple[int, tuple[str, ...]],
        column: str,
        *,
        low: float = 0.0,
        high: float = _MAX_COST,
        integer: bool = False,
    ) -> float | None:
        """The cell's number (None when blank or bad)."""
        text = table.column(row[1], column)
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            self.bad(table, row[0], column, f"{text!r} is not a number")
            return None
        if not math.isfinite(value) or not low <= value <= high:
            self.bad(table, row[0], column, f"{text} is out of range [{low:g}, {high:g}]")
            return None
        if integer and not value.is_integer():
            self.bad(table, row[0], column, f"{text} is not a whole number")
            return None
        return value

    def clock(self, table: Table, row: tuple[int, tuple[str, ...]], column: str) -> int | None:
        """HH:MM (or HH:MM:SS, up to 47:59 for the next day) in seconds (None: blank/bad)."""
        text = table.column(row[1], column)
        if not text:
            return None
        match = _TIME.match(text)
        if not match or int(match[1]) > 47 or int(match[2]) > 59 or int(match[3] or 0) > 59:
            self.bad(table, row[0], column, f"{text!r} is not a time of day (HH:MM)")
            return None
        return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3] or 0)

    def loads(self, table: Table, row: tuple[int, tuple[str, ...]], prefix: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for column in table.header:
            if column.startswith(prefix):
                value = self.number(table, row, column, high=_MAX_AMOUNT, integer=True)
                if value is not None:
                    out[column.removeprefix(prefix)] = int(value)
        return out


def _check_header(table: Table, key: str, cells: _Cells) -> bool:
    ok = True
    for column in _REQUIRED_COLUMNS[key]:
        if column not in table.header:
            cells.bad(table, 1, column, "required column is missing")
            ok = False
    seen: set[str] = set()
    for column in table.header:
        prefix = _PREFIXED.get(key, "\0")
        if column in seen:
            cells.bad(table, 1, column, "column appears twice")
        seen.add(column)
        if column.startswith(prefix):
            if not _LOAD_TYPE.match(column.removeprefix(prefix)):
                cells.bad(table, 1, column, f"load type after {prefix!r} must be letters/digits")
        elif column not in _COLUMNS[key]:
            known = ", ".join(_COLUMNS[key]) + (f", {prefix}TYPE" if key in _PREFIXED else "")
            cells.bad(table, 1, column or "(blank)", f"unknown column (known: {known})")
    return ok


def _ids(table: Table, cells: _Cells) -> dict[str, int]:
    """Each row's id -> its row number; blank and repeated ids reported."""
    ids: dict[str, int] = {}
    for number, row in table.rows:
        ident = table.column(row, "id")
        if not ident:
            cells.bad(table, number, "id", "must not be blank")
        elif ident in ids:
            cells.bad(table, number, "id", f"{ident!r} repeats row {ids[ident]}")
        else:
            ids[ident] = number
    return ids


def _latlng(cells: _Cells, table: Table, row: tuple[int, tuple[str, ...]], out: object) -> None:
    lat = cells.number(table, row, "lat", low=-90.0, high=90.0)
    lon = cells.number(table, row, "lon", low=-180.0, high=180.0)
    for column, value in (("lat", lat), ("lon", lon)):
        if value is None and not table.column(row[1], column):
            cells.bad(table, row[0], column, "must not be blank")
    if lat is not None and lon is not None:
        location = out.location  # type: ignore[attr-defined]
        location.latitude, location.longitude = lat, lon


def _day_start(cells: _Cells, table: Table, row: tuple[int, tuple[str, ...]]) -> str | None:
    text = table.column(row[1], "day")
    if not text:
        return ""
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        cells.bad(table, row[0], "day", f"{text!r} is not a date (YYYY-MM-DD)")
        return None


def _orders(table: Table, study: pb.DepotLayoutStudy, cells: _Cells, origins: Origins) -> None:
    days: dict[str, pb.LayoutDay] = {}
    for row in table.rows:
        number, values = row
        day = _day_start(cells, table, row)
        if day is None:
            continue
        if day not in days:
            days[day] = study.days.add(label=day or "day 1")
            if day:
                start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
                days[day].start_time.FromDatetime(start)
        target = days[day]
        base = target.start_time.seconds
        index = len(target.orders)
        order = target.orders.add(label=table.column(values, "id"))
        origins.add(
            f"study.days[{list(days).index(day)}].orders[{index}]", f"{table.name}:{number}"
        )
        _latlng(cells, table, row, order)
        for name, amount in cells.loads(table, row, "demand_").items():
            order.demands[name] = amount
        service = cells.number(table, row, "service_min", high=7 * 24 * 60)
        if service is not None:
            order.service_duration.FromNanoseconds(round(service * 60e9))
        opens = cells.clock(table, row, "window_start")
        closes = cells.clock(table, row, "window_end")
        blank = [c for c in ("window_start", "window_end") if not table.column(values, c)]
        if len(blank) == 1:
            cells.bad(table, number, blank[0], "give both window_start and window_end, or neither")
        elif opens is not None and closes is not None:
            if closes < opens:
                cells.bad(table, number, "window_end", "is before window_start")
            else:
                window = order.time_windows.add()
                window.start_time.seconds = base + opens
                window.end_time.seconds = base + closes
        penalty = cells.number(table, row, "penalty_cost")
        if penalty is not None:
            order.penalty_cost = penalty


def _vehicle(
    table: Table, row: tuple[int, tuple[str, ...]], cells: _Cells, out: pb.LayoutVehicleType
) -> None:
    out.label = table.column(row[1], "id")
    count = cells.number(table, row, "count", high=10_000, integer=True)
    if count is not None:
        out.count = int(count)
    for name, amount in cells.loads(table, row, "capacity_").items():
        out.capacities[name] = amount
    for column, attr in (
        ("fixed_cost", "fixed_cost"),
        ("cost_per_km", "cost_per_kilometer"),
        ("cost_per_hour", "cost_per_hour"),
        ("cost_per_traveled_hour", "cost_per_traveled_hour"),
    ):
        value = cells.number(table, row, column)
        if value is not None:
            setattr(out, attr, value)
    hours = cells.number(table, row, "max_hours", high=7 * 24)
    if hours is not None:
        out.max_duration.FromNanoseconds(round(hours * 3600e9))
    km = cells.number(table, row, "max_km", high=100_000)
    if km is not None:
        out.max_distance_meters = km * 1000.0


def _split_ids(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[;|]", text) if part.strip()]


def _depots(
    table: Table,
    vehicles: Mapping[str, pb.LayoutVehicleType],
    study: pb.DepotLayoutStudy,
    cells: _Cells,
    origins: Origins,
) -> None:
    for row in table.rows:
        number, values = row
        origins.add(f"study.depots[{len(study.depots)}]", f"{table.name}:{number}")
        depot = study.depots.add(label=table.column(values, "id"))
        _latlng(cells, table, row, depot)
        for name, amount in cells.loads(table, row, "capacity_").items():
            depot.capacity[name] = amount
        cost = cells.number(table, row, "opening_cost")
        if cost is not None:
            depot.opening_cost = cost
        for column, target in (("opens", depot.opens_at), ("closes", depot.closes_at)):
            seconds = cells.clock(table, row, column)
            if seconds is not None:
                target.seconds = seconds
        for part in _split_ids(table.column(values, "fleet")):
            name, _, count = part.partition("*")
            vehicle = vehicles.get(name.strip())
            if vehicle is None:
                cells.bad(table, number, "fleet", f"{name.strip()!r} is not a vehicle id")
                continue
            own = depot.fleet.add()
            own.CopyFrom(vehicle)
            if count:
                if not count.strip().isdigit() or not 0 < int(count) <= 10_000:
                    cells.bad(table, number, "fleet", f"{part!r}: count must be 1..10000")
                else:
                    own.count = int(count)


def _search(table: Table, request: pb.EvaluateDepotLayoutsRequest, cells: _Cells) -> None:
    study = request.study
    seen: dict[str, int] = {}
    for number, values in table.rows:
        key = table.column(values, "setting").lower()
        value = table.column(values, "value")
        if key not in _SETTINGS:
            cells.bad(table, number, "setting", f"unknown setting {key!r} ({', '.join(_SETTINGS)})")
            continue
        if key in seen:
            cells.bad(table, number, "setting", f"{key!r} repeats row {seen[key]}")
            continue
        seen[key] = number
        row = (number, values)
        if key == "mode":
            mode = _MODES.get(value.upper())
            if mode is None:
                cells.bad(table, number, "value", f"mode must be one of {', '.join(_MODES)}")
            else:
                study.search.mode = mode
        elif key == "must_open":
            study.search.must_open.extend(_split_ids(value))
        elif key == "label":
            request.label = study.label = value
        elif key in ("k", "candidates"):
            n = cells.number(table, row, "value", high=10_000, integer=True)
            if n is not None:
                if key == "k":
                    study.search.k = int(n)
                else:
                    request.candidates = int(n)
        else:
            seconds = cells.number(table, row, "value", high=7 * 24 * 3600)
            if seconds is not None:
                target = getattr(request, key.removesuffix("_s"))
                target.FromNanoseconds(round(seconds * 1e9))


def request_from_tables(
    tables: Mapping[str, Table],
) -> tuple[pb.EvaluateDepotLayoutsRequest, Origins]:
    """The request the tables describe, and where its parts came from; raises
    :class:`InvalidModelError` listing every bad cell (``FILE:ROW:COLUMN``)."""
    cells = _Cells()
    missing = [k for k in REQUIRED if k not in tables]
    for key in missing:
        cells.violations.append(
            FieldViolation(key, f"missing: give {key}.csv (or a sheet named {key} in a workbook)")
        )
    usable = {k: t for k, t in tables.items() if _check_header(t, k, cells)}
    request = pb.EvaluateDepotLayoutsRequest()
    study = request.study
    origins = Origins()
    vehicles: dict[str, pb.LayoutVehicleType] = {}
    if "vehicles" in usable:
        table = usable["vehicles"]
        _ids(table, cells)
        for row in table.rows:
            origins.add(f"study.fleet[{len(study.fleet)}]", f"{table.name}:{row[0]}")
            vehicle = study.fleet.add()
            _vehicle(table, row, cells, vehicle)
            vehicles.setdefault(vehicle.label, vehicle)
    depot_ids: dict[str, int] = {}
    if "depots" in usable:
        depot_ids = _ids(usable["depots"], cells)
        _depots(usable["depots"], vehicles, study, cells, origins)
    if "orders" in usable:
        _ids(usable["orders"], cells)
        _orders(usable["orders"], study, cells, origins)
    if "layouts" in usable:
        table = usable["layouts"]
        _ids(table, cells)
        for number, values in table.rows:
            origins.add(f"study.layouts[{len(study.layouts)}]", f"{table.name}:{number}")
            ids = _split_ids(table.column(values, "depots"))
            for ident in ids:
                if depot_ids and ident not in depot_ids:
                    cells.bad(table, number, "depots", f"{ident!r} is not a depot id")
            study.layouts.add(label=table.column(values, "id"), depots=ids)
    if "search" in usable:
        _search(usable["search"], request, cells)
        for ident in study.search.must_open:
            if depot_ids and ident not in depot_ids:
                where = next(
                    n
                    for n, v in usable["search"].rows
                    if usable["search"].column(v, "setting").lower() == "must_open"
                )
                cells.bad(usable["search"], where, "value", f"{ident!r} is not a depot id")
    if cells.violations:
        raise InvalidModelError(sorted(cells.violations, key=_cell_order))
    return request, origins


def _cell_order(v: FieldViolation) -> tuple[str, int, str]:
    """Sort key of ``FILE:ROW:COLUMN`` violations: by file, then row, then column."""
    parts = v.field.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2]
    return v.field, 0, ""


def locate(violations: Iterable[FieldViolation], origins: Origins) -> tuple[FieldViolation, ...]:
    """``violations`` of the request with paths under a part that came from a sheet prefixed by
    its ``FILE:ROW`` (``orders.csv:7 (study.days[0].orders[5].demands)``)."""
    out = []
    for v in violations:
        best = max(
            (p for p in origins.prefixes if v.field == p or v.field.startswith((p + ".", p + "["))),
            key=len,
            default=None,
        )
        field_ = f"{origins.prefixes[best]} ({v.field})" if best is not None else v.field
        out.append(FieldViolation(field_, v.description))
    return tuple(out)


_TEMPLATE: dict[str, list[list[str]]] = {
    "orders": [
        [
            "id",
            "lat",
            "lon",
            "day",
            "service_min",
            "window_start",
            "window_end",
            "demand_kg",
            "demand_parcels",
            "penalty_cost",
        ],
        ["A-001", "60.172948", "24.943186", "2025-06-02", "5", "08:00", "14:00", "55", "6", ""],
        ["A-002", "60.173829", "24.949883", "2025-06-02", "5", "10:00", "16:00", "79", "7", ""],
        ["A-003", "60.171957", "24.944844", "2025-06-02", "5", "", "", "23", "5", "500"],
        ["A-004", "60.167052", "24.931504", "2025-06-02", "10", "09:00", "12:00", "120", "2", ""],
        ["A-005", "60.163925", "24.940601", "2025-06-02", "5", "", "", "40", "4", ""],
        ["A-006", "60.169566", "24.952618", "2025-06-02", "5", "13:00", "17:00", "65", "3", ""],
    ],
    "depots": [
        [
            "id",
            "lat",
            "lon",
            "opening_cost",
            "opens",
            "closes",
            "capacity_kg",
            "capacity_parcels",
            "fleet",
        ],
        ["Kamppi", "60.168991", "24.931661", "400", "06:00", "20:00", "2000", "", ""],
        ["Kruununhaka", "60.172624", "24.954062", "350", "07:00", "19:00", "1500", "", ""],
        ["Eira", "60.157947", "24.938221", "300", "07:00", "19:00", "", "", "van*2"],
    ],
    "vehicles": [
        [
            "id",
            "count",
            "capacity_kg",
            "capacity_parcels",
            "fixed_cost",
            "cost_per_km",
            "cost_per_hour",
            "cost_per_traveled_hour",
            "max_hours",
            "max_km",
        ],
        ["van", "3", "600", "40", "80", "0.4", "25", "", "9", "200"],
    ],
    "layouts": [
        ["id", "depots"],
        ["Kamppi only", "Kamppi"],
        ["Kamppi + Kruununhaka", "Kamppi; Kruununhaka"],
        ["all three", "Kamppi; Kruununhaka; Eira"],
    ],
    "search": [
        ["setting", "value"],
        ["label", "central Helsinki"],
        ["layout_timeout_s", "5"],
    ],
}

_README = """\
routeopt depot-layout study template
====================================

Edit these CSV files (or the sheets of study.xlsx, same names and columns) and run:

    routeopt layouts THIS_FOLDER          # or: routeopt layouts study.xlsx

Rows are read from row 2 (row 1 is the header); blank rows are skipped. Column names are
case-insensitive. A bad cell is reported as FILE:ROW:COLUMN, every bad cell at once, and
nothing runs until all are fixed.

orders.csv     one row per order (a delivery)
  id               unique text
  lat, lon         WGS84 degrees, already geocoded
  day              YYYY-MM-DD (blank: all orders on one day); every day is routed
  service_min      minutes spent at the stop
  window_start     HH:MM on the order's day ...
  window_end       ... HH:MM (both or neither; up to 47:59 reaches into the next day)
  demand_TYPE      whole units of load TYPE (demand_kg, demand_parcels, ... any names)
  penalty_cost     blank: must be served; a number: the cost of leaving it unserved

depots.csv     one row per candidate depot
  id, lat, lon     as above
  opening_cost     cost of opening the depot (per study, comparable with the routing costs)
  opens, closes    HH:MM (vehicles leave and return within these hours)
  capacity_TYPE    most load of TYPE the depot can send out per day (blank: unlimited)
  fleet            optional: the depot's own fleet, vehicle ids from vehicles.csv with counts
                   (van*2; truck*1); blank: the shared fleet of vehicles.csv

vehicles.csv   one row per vehicle type (the shared fleet of every open depot)
  id               unique text
  count            vehicles of this type per open depot (blank: as many as needed)
  capacity_TYPE    load limit per vehicle for load TYPE
  fixed_cost       cost of using a vehicle for a day
  cost_per_km, cost_per_hour, cost_per_traveled_hour
  max_hours        longest route, hours
  max_km           longest route, kilometres

layouts.csv    the layouts to compare (optional when search.csv asks for a search)
  id               name shown in the results
  depots           depot ids separated by ;

search.csv     optional settings, two columns: setting, value
  mode             EXACTLY, AT_MOST or MIN_COST: search the best layout instead of (or besides)
                   the listed ones
  k                number of depots for EXACTLY / AT_MOST
  must_open        depot ids (separated by ;) every searched layout keeps
  label            the study's name
  layout_timeout_s routing seconds per layout; final_layout_timeout_s, timeout_s: the search's
  candidates       layouts routed in full per search step

CSV files may use , ; or tab between cells; with ; a decimal comma (12,5) is read as 12.5.
"""


def write_template(folder: Path, *, workbook: bool = True) -> list[Path]:
    """Write the template CSV files, a README and (``workbook``) ``study.xlsx`` to ``folder``;
    the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, rows in _TEMPLATE.items():
        path = folder / f"{key}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
        written.append(path)
    readme = folder / "README.txt"
    readme.write_text(_README)
    written.append(readme)
    if workbook:
        from openpyxl import Workbook

        book = Workbook()
        first = True
        for key, rows in _TEMPLATE.items():
            sheet = book.active if first else book.create_sheet()
            assert sheet is not None
            sheet.title = key
            first = False
            for row in rows:
                sheet.append([_typed(c) for c in row])
        path = folder / "study.xlsx"
        book.save(path)
        written.append(path)
    return written


def _typed(text: str) -> str | float:
    """A template cell as a workbook value: numbers as numbers, the rest as text."""
    try:
        return float(text) if text and not _TIME.match(text) and "-" not in text[1:] else text
    except ValueError:
        return text
