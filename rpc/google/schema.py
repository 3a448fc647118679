"""Google's Route Optimization schema and what routeopt does with each of its fields.

:data:`~rpc.google.schema_data.GOOGLE_MESSAGES` lists every message of
``google.maps.routeoptimization.v1`` with its fields (number, name, type, label, message or enum
type); it is generated from the descriptors of Google's published client
(``google-maps-routeoptimization``) by ``python -m rpc.google.schema`` and checked against them
by the tests, so that the server needs no Google package at run time.

A field of Google's that routeopt's message of the same name does not have is *not honoured*:
a request that sets it is INVALID_ARGUMENT naming it (:mod:`rpc.google.unknown`), with the
reason of :data:`REJECTED` (or the default one). :func:`field_table` is the README's table of
every field with its status, kept current by a test.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from rpc.google.schema_data import GOOGLE_MESSAGES, GOOGLE_PACKAGE
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "DEFAULT_REASON",
    "GOOGLE_PACKAGE",
    "PARTIAL",
    "REJECTED",
    "GoogleField",
    "field_table",
    "google_field",
    "google_type_url",
    "routeopt_message",
]

GoogleField = tuple[int, str, int, int, str]
"""(number, name, FieldDescriptor type, FieldDescriptor label, message/enum type relative to
the package or "")."""

DEFAULT_REASON: Final = "not implemented yet"

REJECTED: Final[Mapping[str, str]] = {
    "OptimizeToursRequest.consider_road_traffic": "routeopt's road network has no traffic data",
    "Shipment.VisitRequest.arrival_waypoint": "waypoints (place ids, headings) are not supported",
    "Shipment.VisitRequest.departure_location": "departure locations are not supported",
    "Shipment.VisitRequest.departure_waypoint": "waypoints (place ids, headings) are not supported",
    "Vehicle.start_waypoint": "waypoints (place ids, headings) are not supported",
    "Vehicle.end_waypoint": "waypoints (place ids, headings) are not supported",
    "ShipmentModel.objectives": "objectives are not supported (costs are given directly)",
}
"""Why routeopt rejects a field of Google's (``Message.field``); others: :data:`DEFAULT_REASON`."""

PARTIAL: Final[Mapping[str, str]] = {
    "TransitionAttributes.distance_limit": (
        "soft only, as in Google's API: max_meters is INVALID_ARGUMENT"
    ),
    "Shipment.VisitRequest.avoid_u_turns": (
        "road travel only (else INVALID_ARGUMENT); turning back stays possible at junctions"
    ),
}
"""Honoured fields with a restriction on their values (``Message.field`` → the restriction)."""

_SCALAR_NAMES: Final = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
}

_REQUEST_ROOTS: Final = (
    "OptimizeToursRequest",
    "BatchOptimizeToursRequest",
    "OptimizeToursUriRequest",
)
_RESPONSE_ROOTS: Final = ("OptimizeToursResponse", "OptimizeToursUriResponse")

_INJECTED: Final = ("ShipmentRoute", "SkippedShipment")
"""Response messages that requests carry as injected solutions: listed with the response, the
fields routeopt reads from them marked (:data:`READ_FROM_INJECTED`)."""

READ_FROM_INJECTED: Final = frozenset(
    {
        "ShipmentRoute.vehicle_index",
        "ShipmentRoute.vehicle_label",
        "ShipmentRoute.vehicle_start_time",
        "ShipmentRoute.vehicle_end_time",
        "ShipmentRoute.visits",
        "ShipmentRoute.breaks",
        "ShipmentRoute.Break.start_time",
        "ShipmentRoute.Break.duration",
        "ShipmentRoute.Visit.shipment_index",
        "ShipmentRoute.Visit.shipment_label",
        "ShipmentRoute.Visit.is_pickup",
        "ShipmentRoute.Visit.visit_request_index",
        "ShipmentRoute.Visit.start_time",
        "SkippedShipment.index",
        "SkippedShipment.label",
    }
)
"""Fields of injected routes and skipped shipments that routeopt reads (the others of a
previous response are ignored)."""


def routeopt_message(google_name: str) -> Descriptor | None:
    """routeopt's message of the same name as Google's ``google_name`` (relative to the
    package, ``Shipment.VisitRequest``), or None."""
    head, *rest = google_name.split(".")
    descriptor: Descriptor | None = pb.DESCRIPTOR.message_types_by_name.get(head)
    for part in rest:
        if descriptor is None:
            return None
        descriptor = descriptor.nested_types_by_name.get(part)
    return descriptor


def google_field(google_message: str, number: int) -> GoogleField | None:
    """Field ``number`` of Google's ``google_message``, if Google's schema has one."""
    for field in GOOGLE_MESSAGES.get(google_message, ()):
        if field[0] == number:
            return field
    return None


def google_type_url(name: str) -> str:
    """The ``Any`` type URL of Google's message ``name`` (relative to the package)."""
    return f"type.googleapis.com/{GOOGLE_PACKAGE}.{name}"


def reason(google_message: str, field_name: str) -> str:
    """Why routeopt rejects a field of Google's."""
    return REJECTED.get(f"{google_message}.{field_name}", DEFAULT_REASON)


def _is_map(type_name: str) -> bool:
    return type_name.endswith("Entry") and type_name in GOOGLE_MESSAGES and _map_value(type_name)


def _map_value(entry: str) -> bool:
    return [f[1] for f in GOOGLE_MESSAGES[entry]] == ["key", "value"]


def _type_text(field: GoogleField) -> str:
    _, _, ftype, label, type_name = field
    if type_name and _is_map(type_name):
        key, value = GOOGLE_MESSAGES[type_name]
        return f"map<{_type_text(key)}, {_type_text(value)}>"
    text = type_name or _SCALAR_NAMES.get(ftype, str(ftype))
    return f"repeated {text}" if label == FieldDescriptor.LABEL_REPEATED else text


@dataclass(frozen=True)
class _Row:
    path: str
    type_text: str
    status: str


def _walk(roots: tuple[str, ...], *, through_supported_only: bool) -> Iterator[tuple[str, str]]:
    """(message, field name) of every field reachable from ``roots``, each message once."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        message = todo.pop(0)
        if message in seen or message not in GOOGLE_MESSAGES:
            continue
        seen.add(message)
        mine = routeopt_message(message)
        for number, name, _, _, type_name in GOOGLE_MESSAGES[message]:
            yield message, name
            supported = mine is not None and number in mine.fields_by_number
            if type_name in _REQUEST_ROOTS and not through_supported_only:
                continue  # processed_request: a copy of the request
            if type_name in _INJECTED and through_supported_only:
                continue  # injected solutions: response messages, listed with the response
            if type_name in GOOGLE_MESSAGES and (supported or not through_supported_only):
                if _is_map(type_name):
                    value = GOOGLE_MESSAGES[type_name][1][4]
                    if value:
                        todo.append(value)
                else:
                    todo.append(type_name)


def _fields() -> dict[str, GoogleField]:
    return {f"{m}.{f[1]}": f for m, fields in GOOGLE_MESSAGES.items() for f in fields}


def field_table() -> str:
    """The README's table: every field of Google's requests and responses and its status."""
    fields = _fields()
    rows: dict[str, _Row] = {}
    for message, name in _walk(_REQUEST_ROOTS, through_supported_only=True):
        field = fields[f"{message}.{name}"]
        mine = routeopt_message(message)
        honoured = mine is not None and field[0] in mine.fields_by_number
        status = "honoured" if honoured else f"rejected: {reason(message, name)}"
        if honoured and f"{message}.{name}" in PARTIAL:
            status += f" ({PARTIAL[f'{message}.{name}']})"
        rows[f"{message}.{name}"] = _Row(f"{message}.{name}", _type_text(field), status)
    for message, name in _walk(_RESPONSE_ROOTS, through_supported_only=False):
        key = f"{message}.{name}"
        if key in rows:
            continue
        field = fields[key]
        mine = routeopt_message(message)
        filled = mine is not None and field[0] in mine.fields_by_number
        status = "filled" if filled else "not filled"
        if key in READ_FROM_INJECTED:
            status += "; read from injected solutions"
        rows[key] = _Row(key, _type_text(field), status)
    lines = ["| field | type | status |", "|---|---|---|"]
    lines += [
        f"| `{r.path}` | `{r.type_text}` | {r.status} |"
        for r in sorted(rows.values(), key=lambda r: r.path)
    ]
    return "\n".join(lines) + "\n"


# -- generation of schema_data.py (needs the google-maps-routeoptimization package) ---------

DATA_PATH: Final = Path(__file__).with_name("schema_data.py")


def _relative(full_name: str) -> str:
    prefix = f"{GOOGLE_PACKAGE}."
    return full_name[len(prefix) :] if full_name.startswith(prefix) else full_name


def google_name(name: str) -> str:
    """A field name of Google's proto: the Python client adds ``_`` to names such as ``type``."""
    return name[:-1] if name.endswith("_") else name


def described_messages() -> dict[str, list[GoogleField]]:
    """Every message of Google's published descriptors with its fields (needs the
    ``google-maps-routeoptimization`` package, a dev dependency)."""
    from google.maps.routeoptimization_v1.types import route_optimization_service as types

    file = types.OptimizeToursRequest.pb().DESCRIPTOR.file
    messages: dict[str, list[GoogleField]] = {}

    def add(descriptor: Descriptor) -> None:
        fields = []
        for f in descriptor.fields:
            type_name = ""
            if f.message_type is not None:
                type_name = _relative(f.message_type.full_name)
            elif f.enum_type is not None:
                type_name = _relative(f.enum_type.full_name)
            label = (
                FieldDescriptor.LABEL_REPEATED if f.is_repeated else FieldDescriptor.LABEL_OPTIONAL
            )
            fields.append((f.number, google_name(f.name), f.type, label, type_name))
        messages[_relative(descriptor.full_name)] = fields
        for nested in descriptor.nested_types:
            add(nested)

    for descriptor in file.message_types_by_name.values():
        add(descriptor)
    return messages


def render_data(messages: Mapping[str, list[GoogleField]]) -> str:
    """The text of schema_data.py."""
    lines = [
        '"""Google\'s ``google.maps.routeoptimization.v1`` messages: for each, its fields as',
        "(number, name, FieldDescriptor type, label, message or enum type relative to the",
        "package).",
        "",
        "Generated from the descriptors of the google-maps-routeoptimization package by",
        "``python -m rpc.google.schema``; do not edit.",
        '"""',
        "",
        "from typing import Final",
        "",
        f'GOOGLE_PACKAGE: Final = "{GOOGLE_PACKAGE_NAME}"',
        "",
        "GOOGLE_MESSAGES: Final[dict[str, tuple[tuple[int, str, int, int, str], ...]]] = {",
    ]
    for name in sorted(messages):
        fields = messages[name]
        if len(fields) <= 1:  # as ruff formats it
            inner = "".join(f'({n}, "{f}", {t}, {lb}, "{tn}"),' for n, f, t, lb, tn in fields)
            lines.append(f'    "{name}": ({inner}),')
            continue
        lines.append(f'    "{name}": (')
        for number, fname, ftype, label, type_name in fields:
            line = f'        ({number}, "{fname}", {ftype}, {label}, "{type_name}"),'
            if len(line) > 100:  # as ruff formats it
                parts = (str(number), f'"{fname}"', str(ftype), str(label), f'"{type_name}"')
                line = "        (\n" + "".join(f"            {p},\n" for p in parts) + "        ),"
            lines.append(line)
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


GOOGLE_PACKAGE_NAME: Final = "google.maps.routeoptimization.v1"

README_PATH: Final = Path(__file__).resolve().parent.parent.parent / "README.md"
TABLE_BEGIN: Final = "<!-- google-field-table:begin (python -m rpc.google.schema --readme) -->"
TABLE_END: Final = "<!-- google-field-table:end -->"


def with_field_table(readme: str) -> str:
    """``readme`` with :func:`field_table` between its table markers."""
    head, rest = readme.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_BEGIN}\n{field_table()}{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate rpc/google/schema_data.py and route_optimization_service.txtpb"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument(
        "--readme", action="store_true", help="rewrite the field table of README.md instead"
    )
    args = parser.parse_args(argv)
    if args.readme:
        README_PATH.write_text(with_field_table(README_PATH.read_text(encoding="utf-8")))
        print(f"wrote the field table of {README_PATH}")
        return 0
    from rpc.google.reflection import DESCRIPTOR_PATH, described_file, render_descriptor

    generated = {
        DATA_PATH: render_data(described_messages()),
        DESCRIPTOR_PATH: render_descriptor(described_file()),
    }
    if args.check:
        stale = [path for path, text in generated.items() if _read(path) != text]
        for path in stale:
            print(f"{path} is stale; run python -m rpc.google.schema", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


if __name__ == "__main__":
    raise SystemExit(main())
