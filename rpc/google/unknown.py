"""Nothing silently dropped: the fields of a request that routeopt does not honour.

A request parsed into routeopt's messages keeps the fields it does not know as unknown fields
(protobuf does not drop them). :func:`unhonoured_fields` walks the whole request and names
each one: by its name in Google's schema (a field of Google's API that routeopt does not
support, with the reason), or by its number when Google's schema does not have it either.
Each is a violation (INVALID_ARGUMENT with a BadRequest naming the field).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from engine.errors import FieldViolation
from rpc.google.schema import google_field, reason

__all__ = ["UNSUPPORTED", "unhonoured_fields"]

UNSUPPORTED = "is not supported by routeopt"
"""Start of the description of such a violation."""

_PACKAGE_PREFIX = "routeopt.v1."


def _google_name(message: Message) -> str:
    return message.DESCRIPTOR.full_name.removeprefix(_PACKAGE_PREFIX)


def unhonoured_fields(message: Message, path: str = "") -> list[FieldViolation]:
    """A violation per field of ``message`` (and of the messages in it) that routeopt's schema
    does not have; ``path`` is the path of ``message`` in the request. The walk (in Python) runs
    only when the message has unknown fields somewhere, which a copy without them tells (in C):
    a request of 10 000 shipments costs 45 ms instead of 600."""
    bare = type(message)()
    bare.CopyFrom(message)
    bare.DiscardUnknownFields()
    if bare.ByteSize() == message.ByteSize():
        return []
    return list(_walk(message, path))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(message: Message, path: str) -> Iterator[FieldViolation]:
    numbers: set[int] = set()
    unknown: Iterable[Any] = unknown_fields.UnknownFieldSet(message)  # type: ignore[assignment]
    for field in unknown:
        if field.field_number in numbers:
            continue  # a repeated field: once
        numbers.add(field.field_number)
        google_message = _google_name(message)
        known = google_field(google_message, field.field_number)
        if known is not None:
            yield FieldViolation(
                _join(path, known[1]),
                f"{UNSUPPORTED}: {reason(google_message, known[1])}",
            )
        else:
            yield FieldViolation(
                _join(path, f"#{field.field_number}"),
                f"{UNSUPPORTED}: field number {field.field_number} is not part of "
                f"{google_message} (neither in routeopt's API nor in Google's)",
            )
    for descriptor, value in message.ListFields():
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        name = _join(path, descriptor.name)
        entry = descriptor.message_type
        assert entry is not None
        if entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                for key in sorted(value):
                    yield from _walk(value[key], f"{name}[{key}]")
        elif descriptor.is_repeated:
            for i, item in enumerate(value):
                yield from _walk(item, f"{name}[{i}]")
        else:
            yield from _walk(value, name)
