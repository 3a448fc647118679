"""A seeded structural mutator over protobuf messages, driven by their descriptors.

:class:`Mutator` changes a message in place, one random *mutation* at a time, anywhere in its
tree: a scalar gets an extreme or random value of its type (integers at their type's bounds,
non-finite and huge doubles, empty, huge and hostile strings, out-of-range enum numbers); a
``Duration`` or ``Timestamp`` gets seconds or nanos at and beyond their documented range; a
repeated field is emptied, loses an element (breaking the indices that pointed past it), has
an element duplicated many times ("huge") or gets a default element; a map gets a new key, an
extreme value or loses a key; a message field is cleared or created empty. Strings are often
taken from the message itself (labels, tags, depot names) so that cross-references point to
the wrong thing rather than to nothing. :func:`mutate_bytes` mutates the wire form instead
(flipped, truncated and inserted bytes, random varints), and :func:`garbage` makes raw bytes.

Everything depends only on the ``random.Random`` given, so a case is replayed from its seed.
Each mutation is described in a short text (``path: what``) for failure reports.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["HUGE", "Mutator", "garbage", "mutate_bytes"]

HUGE: Final = 3000
"""Most elements a "huge repeated field" mutation creates (copies of one element, or
``HUGE_SCALARS`` scalars). Request size limits are the server's to enforce; the fuzz stays
within what a test machine sends quickly."""

HUGE_SCALARS: Final = 20_000

HUGE_BYTES: Final = 8 * 1024 * 1024
"""Most bytes one "element copied" mutation adds: copies of an element that an earlier
mutation of the same case already copied would otherwise multiply (3000 copies of 3000
copies: a request of gigabytes, built in the test process before any server sees it)."""

_INT_BOUNDS: Final = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}

_DOUBLES: Final = (
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    1.0,
    -1.0,
    1e308,
    -1e308,
    5e-324,
    2.0**63,
    -(2.0**63),
    2.0**31,
    9.2e18,
    1.8e302,
    3.3e16,
    1e-9,
    0.5,
    1e9,
)

_STRINGS: Final = (
    "",
    " ",
    "\x00",
    "é✓🚚",
    "\u202e",
    "../../../etc/passwd",
    "gs://",
    "gs://bucket/",
    "gs://bucket/../x",
    "operations/",
    "projects/-/operations/x",
    "*",
    "%",
    "' OR 1=1 --",
    'state = "RUNNING"',
    'state = "SUCCEEDED" AND label = "x"',
    "done = true",
    "(((",
    "9223372036854775808",
    "-1",
    "NaN",
    "ortools",
    "pyvrp",
    "auto",
    "2025-06-02T00:00:00Z",
)

_DURATION_SECONDS: Final = (
    0,
    1,
    -1,
    315_576_000_000,
    315_576_000_001,
    -315_576_000_000,
    2**31,
    2**62,
    -(2**63),
    2**63 - 1,
    9_200_000_000,
    86_400 * 366,
)
_TIMESTAMP_SECONDS: Final = (
    0,
    -1,
    -62_135_596_800,
    -62_135_596_801,
    253_402_300_799,
    253_402_300_800,
    2**63 - 1,
    -(2**63),
    1_750_000_000,
    4_102_444_800,
)
_NANOS: Final = (0, 1, 999_999_999, 1_000_000_000, -1, -999_999_999, 2**31 - 1, -(2**31))


@dataclass
class _Site:
    """A field of a message somewhere in the tree, with its path."""

    message: Message
    field: FieldDescriptor
    path: str


def _is_map(field: FieldDescriptor) -> bool:
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
    )


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _sites(message: Message, path: str, depth: int = 0) -> Iterator[_Site]:
    """Every field of ``message`` and of the messages it holds (set ones only below)."""
    for field in message.DESCRIPTOR.fields:
        here = f"{path}.{field.name}" if path else field.name
        yield _Site(message, field, here)
        if field.type != FieldDescriptor.TYPE_MESSAGE or depth > 12:
            continue
        value = getattr(message, field.name)
        if _is_map(field):
            if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for key in list(value)[:8]:
                    yield from _sites(value[key], f"{here}[{key!r}]", depth + 1)
        elif _is_repeated(field):
            for i, element in enumerate(value):
                if i >= 64:  # enough of a long list to reach every kind of field
                    break
                yield from _sites(element, f"{here}[{i}]", depth + 1)
        elif message.HasField(field.name):
            yield from _sites(value, here, depth + 1)


class Mutator:
    """Mutations of protobuf messages drawn from ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.strings: list[str] = []

    # -- values --------------------------------------------------------------------------------

    def integer(self, field: FieldDescriptor) -> int:
        low, high = _INT_BOUNDS[field.cpp_type]
        r = self.rng
        choice = r.randrange(9)
        if choice == 0:
            return low
        if choice == 1:
            return high
        if choice == 2:
            return max(low, min(high, r.choice((-1, 0, 1, 2, 2**31, 2**31 - 1, 2**32, 2**53))))
        if choice == 3:
            return r.randint(low, high)
        if choice == 4:
            return max(low, min(high, r.randint(-3, 3) + r.choice((0, 1, 10, 100, 1000))))
        return max(low, min(high, r.randint(-2, 40)))

    def double(self) -> float:
        r = self.rng
        choice = r.randrange(4)
        if choice == 0:
            return r.uniform(-1e3, 1e3)
        if choice == 1:
            return r.choice((-1, 1)) * 10.0 ** r.uniform(-12, 308)
        return r.choice(_DOUBLES)

    def string(self) -> str:
        r = self.rng
        choice = r.randrange(10)
        if choice < 3 and self.strings:
            return r.choice(self.strings)
        if choice == 3:
            return r.choice("ab✓\x00/:*") * r.choice((1, 100, 10_000, 100_000))
        if choice == 4:
            return "".join(chr(r.randrange(0x20, 0x3000)) for _ in range(r.randrange(1, 40)))
        if choice == 5 and self.strings:
            return r.choice(self.strings) + r.choice(("x", " ", "/..", "\x00"))
        return r.choice(_STRINGS)

    def enum(self, descriptor: EnumDescriptor) -> int:
        r = self.rng
        if r.random() < 0.6:
            return int(r.choice(descriptor.values).number)
        return r.choice((-1, 99, 2**31 - 1, -(2**31), len(descriptor.values)))

    def scalar(self, field: FieldDescriptor) -> Any:
        cpp = field.cpp_type
        if cpp in _INT_BOUNDS:
            return self.integer(field)
        if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
            value = self.double()
            if cpp == FieldDescriptor.CPPTYPE_FLOAT and math.isfinite(value):
                value = max(-3.4e38, min(3.4e38, value))
            return value
        if cpp == FieldDescriptor.CPPTYPE_BOOL:
            return self.rng.random() < 0.5
        if cpp == FieldDescriptor.CPPTYPE_ENUM:
            return self.enum(field.enum_type)
        if field.type == FieldDescriptor.TYPE_BYTES:
            return garbage(self.rng, self.rng.choice((0, 1, 16, 1000)))
        return self.string()

    # -- mutations -----------------------------------------------------------------------------

    def collect_strings(self, message: Message) -> None:
        """Remember the strings of ``message`` (labels, tags, names) for cross-references."""
        for site in _sites(message, ""):
            field = site.field
            if field.type != FieldDescriptor.TYPE_STRING:
                continue
            value = getattr(site.message, field.name)
            values = list(value) if _is_repeated(field) else [value]
            self.strings.extend(v for v in values[:20] if v and len(v) < 200)
        del self.strings[2000:]

    def mutate(self, message: Message, count: int) -> list[str]:
        """Apply ``count`` mutations to ``message``; their descriptions."""
        self.collect_strings(message)
        done = []
        for _ in range(count):
            sites = list(_sites(message, ""))
            if not sites:
                break
            done.append(self.mutate_site(self.rng.choice(sites)))
        return done

    def mutate_site(self, site: _Site) -> str:
        message, field, path = site.message, site.field, site.path
        if _is_map(field):
            return self._mutate_map(message, field, path)
        if _is_repeated(field):
            return self._mutate_repeated(message, field, path)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self._mutate_message(message, field, path)
        value = self.scalar(field)
        setattr(message, field.name, value)
        return f"{path} = {_show(value)}"

    def _mutate_message(self, message: Message, field: FieldDescriptor, path: str) -> str:
        r = self.rng
        child = getattr(message, field.name)
        full = field.message_type.full_name
        if full in ("google.protobuf.Duration", "google.protobuf.Timestamp") and r.random() < 0.7:
            table = _DURATION_SECONDS if full.endswith("Duration") else _TIMESTAMP_SECONDS
            child.seconds = r.choice(table) if r.random() < 0.7 else r.randint(-1000, 10**6)
            child.nanos = r.choice(_NANOS) if r.random() < 0.4 else 0
            return f"{path} = {child.seconds}s {child.nanos}ns"
        if full == "google.type.LatLng" and r.random() < 0.7:
            child.latitude = r.choice((self.double(), r.uniform(-90, 90), 90.0, -90.0, 91.0))
            child.longitude = r.choice((self.double(), r.uniform(-180, 180), 180.0, -181.0))
            return f"{path} = ({child.latitude!r}, {child.longitude!r})"
        choice = r.randrange(3)
        if choice == 0:
            message.ClearField(field.name)
            return f"{path} cleared"
        if choice == 1:
            child.SetInParent()
            return f"{path} set (empty if it was unset)"
        child.Clear()
        child.SetInParent()
        return f"{path} = {{}}"

    def _mutate_repeated(self, message: Message, field: FieldDescriptor, path: str) -> str:
        r = self.rng
        values = getattr(message, field.name)
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        choice = r.randrange(8)
        if choice == 0:
            message.ClearField(field.name)
            return f"{path} emptied"
        if choice == 1 and len(values):
            i = r.randrange(len(values))
            del values[i]
            return f"{path}[{i}] deleted"
        if choice == 2 and len(values):
            i = r.randrange(len(values))
            times = r.choice((2, 10, 100, HUGE))
            if is_message:
                element = values[i]
                times = min(times, max(1, HUGE_BYTES // max(1, element.ByteSize())))
                for _ in range(times):
                    values.add().CopyFrom(element)
            else:
                times = min(HUGE_SCALARS, times * 7)
                values.extend([values[i]] * times)
            return f"{path}: element {i} copied {times} times"
        if choice == 3 and not is_message:
            times = r.choice((1, 3, 1000, HUGE_SCALARS))
            values.extend(self.scalar(field) for _ in range(times))
            return f"{path}: {times} values appended"
        if is_message:
            element = values.add()
            if r.random() < 0.5 and len(values) > 1:
                element.CopyFrom(values[r.randrange(len(values) - 1)])
                return f"{path}: an element copied to the end"
            return f"{path}: an empty element appended"
        if len(values):
            i = r.randrange(len(values))
            values[i] = self.scalar(field)
            return f"{path}[{i}] = {_show(values[i])}"
        values.append(self.scalar(field))
        return f"{path}: {_show(values[-1])} appended"

    def _mutate_map(self, message: Message, field: FieldDescriptor, path: str) -> str:
        r = self.rng
        mapping = getattr(message, field.name)
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        choice = r.randrange(5)
        if choice == 0:
            message.ClearField(field.name)
            return f"{path} emptied"
        if choice == 1 and len(mapping):
            key = r.choice(sorted(mapping))
            del mapping[key]
            return f"{path}[{key!r}] deleted"
        key = self.scalar(key_field) if r.random() < 0.5 or not len(mapping) else None
        if key is None:
            key = r.choice(sorted(mapping))
        if choice == 2 and value_field.type != FieldDescriptor.TYPE_MESSAGE:
            times = r.choice((10, HUGE))
            for i in range(times):
                mapping[f"k{i}" if key_field.type == FieldDescriptor.TYPE_STRING else i] = (
                    self.scalar(value_field)
                )
            return f"{path}: {times} keys added"
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = mapping[key]
            entry.SetInParent()
            fields = entry.DESCRIPTOR.fields
            if fields:
                return f"{path}[{_show(key)}]: " + self.mutate_site(
                    _Site(entry, r.choice(fields), f"{path}[{_show(key)}]")
                )
            return f"{path}[{_show(key)}] = {{}}"
        mapping[key] = self.scalar(value_field)
        return f"{path}[{_show(key)}] = {_show(mapping[key])}"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}…({len(text)} chars)"


def garbage(rng: random.Random, size: int) -> bytes:
    """``size`` random bytes."""
    return rng.randbytes(size)


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """A wire-level mutation of ``data`` (a serialized message) and its description."""
    buf = bytearray(data)
    choice = rng.randrange(6)
    if choice == 0 and buf:
        n = rng.randrange(1, 9)
        for _ in range(n):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        return bytes(buf), f"{n} bits flipped"
    if choice == 1 and buf:
        cut = rng.randrange(len(buf))
        return bytes(buf[:cut]), f"truncated to {cut} of {len(buf)} bytes"
    if choice == 2:
        at = rng.randrange(len(buf) + 1)
        extra = garbage(rng, rng.randrange(1, 32))
        return bytes(buf[:at] + extra + buf[at:]), f"{len(extra)} random bytes inserted at {at}"
    if choice == 3:
        # a length-delimited field of a huge claimed length, or an unknown field number
        tag = rng.choice((0x0A, 0x12, 0x1A, 0xFA, 0x82, 0x8A))
        claim = rng.choice((0x7FFFFFFF, 0xFFFFFFFF, 2**40, len(buf) + 1))
        return bytes(buf) + bytes([tag]) + _varint(claim), f"field tag {tag} claiming {claim} bytes"
    if choice == 4:
        number = rng.choice((99, 1000, 536_870_911, 19_000))
        wire = rng.randrange(6)
        return bytes(buf) + _varint(number << 3 | wire) + _varint(rng.randrange(2**32)), (
            f"unknown field {number} wire type {wire} appended"
        )
    if buf:
        at = rng.randrange(len(buf))
        buf[at] = rng.randrange(256)
        return bytes(buf), f"byte {at} set to {buf[at]}"
    return bytes(buf), "unchanged (empty)"


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= 2**64 - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
