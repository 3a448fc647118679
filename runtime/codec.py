"""Frozen dataclasses to plain data and back, with validation: no pickle, no code from the data.

:func:`to_plain` turns a dataclass of the engine (:class:`~engine.solution.Solution`,
:class:`~engine.progress.SolveProgress`, ...) into :data:`Plain` data: dicts with ``str`` keys,
lists, ``str``, ``int``, ``float``, ``bool``, ``bytes`` and ``None`` (what msgpack or a pipe carry).
:func:`from_plain` rebuilds an instance of a given class from such data, guided by the class's
type annotations only: it accepts exactly the shapes they allow (``int``, ``float``, ``str``,
``bytes``, ``bool``, ``X | None``, ``tuple[X, ...]``, ``Mapping[str, X]``, integer enums and nested
dataclasses) and raises :class:`WireError` for anything else. Data therefore never chooses
which class is built, so a hostile sender can at worst make the decoding fail.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar, Union

__all__ = ["Plain", "WireError", "from_plain", "to_plain"]

Plain: TypeAlias = bool | int | float | str | bytes | list["Plain"] | dict[str, "Plain"] | None
"""Plain data: what :func:`to_plain` returns and :func:`from_plain` accepts."""

T = TypeVar("T")


class WireError(ValueError):
    """Data that does not have the shape of the expected message or dataclass."""


def to_plain(value: object) -> Plain:
    """``value`` (a dataclass, enum, tuple, mapping or primitive) as :data:`Plain` data."""
    kind: Any = type(value)
    return _encoder(kind)(value)


def from_plain(cls: type[T], data: object) -> T:
    """An instance of the dataclass ``cls`` rebuilt from ``data``; raises :class:`WireError`
    when ``data`` is not what :func:`to_plain` makes of such an instance."""
    try:
        annotation: Any = cls
        value: T = _decoder(annotation)(data)
    except WireError as exc:
        raise WireError(f"{cls.__name__}{exc}") from None
    return value


# Encoders and decoders are made once per type (the cached functions below): a solution has
# thousands of visits and transitions, and progress carries one every second.

Encoder = Callable[[Any], Plain]
Decoder = Callable[[object], Any]
"""A decoder raises :class:`WireError` whose message starts with the path of the bad value
below the decoded one (``.routes[0].visits: expected a list, got int``)."""


@functools.cache
def _encoder(cls: Any) -> Encoder:
    if cls is type(None) or cls in (bool, int, float, str, bytes):
        return _same
    if issubclass(cls, enum.Enum):
        return _enum_value
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        return lambda value: {name: to_plain(getattr(value, name)) for name in names}
    if issubclass(cls, tuple | list):
        return lambda value: [to_plain(item) for item in value]
    if issubclass(cls, Mapping):
        return lambda value: {str(key): to_plain(item) for key, item in value.items()}
    raise WireError(f"cannot encode a {cls.__name__}")


def _same(value: Plain) -> Plain:
    return value


def _enum_value(value: enum.Enum) -> Plain:
    return to_plain(value.value)


@functools.cache
def _decoder(annotation: Any) -> Decoder:
    """The decoder of values annotated ``annotation``."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return _optional_decoder(typing.get_args(annotation))
    if origin is tuple:
        return _tuple_decoder(typing.get_args(annotation))
    if origin is Mapping or origin is dict:
        return _mapping_decoder(typing.get_args(annotation))
    if annotation in (bool, str, bytes, type(None)):
        return _checker(annotation)
    if annotation is int or annotation is float:
        return _number_decoder(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.IntEnum):
        return _enum_decoder(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _dataclass_decoder(annotation)
    raise WireError(f": unsupported annotation {annotation!r}")


def _optional_decoder(options: tuple[Any, ...]) -> Decoder:
    """Optional values (``X | None``) only: a union of several classes would let the data
    choose among them."""
    others = [option for option in options if option is not type(None)]
    if len(others) != 1 or len(options) != 2:
        raise WireError(f": unsupported union {options!r}")
    decode = _decoder(others[0])
    return lambda data: None if data is None else decode(data)


def _tuple_decoder(args: tuple[Any, ...]) -> Decoder:
    if len(args) != 2 or args[1] is not Ellipsis:
        raise WireError(f": unsupported tuple {args!r}")
    decode = _decoder(args[0])

    def decode_tuple(data: object) -> tuple[Any, ...]:
        if not isinstance(data, list | tuple):
            raise _mismatch(data, "a list")
        items = []
        for i, item in enumerate(data):
            try:
                items.append(decode(item))
            except WireError as exc:
                raise WireError(f"[{i}]{exc}") from None
        return tuple(items)

    return decode_tuple


def _mapping_decoder(args: tuple[Any, ...]) -> Decoder:
    if args[0] is not str:
        raise WireError(f": unsupported mapping {args!r}")
    decode = _decoder(args[1])

    def decode_mapping(data: object) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise _mismatch(data, "a mapping")
        values = {}
        for key, item in data.items():
            if not isinstance(key, str):
                raise _mismatch(key, "string keys")
            try:
                values[key] = decode(item)
            except WireError as exc:
                raise WireError(f"[{key[:40]!r}]{exc}") from None
        return values

    return decode_mapping


def _checker(cls: type) -> Decoder:
    """The decoder of a ``bool``, ``str``, ``bytes`` or ``None``: the value itself."""
    what = {bool: "a boolean", str: "a string", bytes: "bytes"}.get(cls, "null")

    def check(data: object) -> object:
        if type(data) is not cls:
            raise _mismatch(data, what)
        return data

    return check


def _number_decoder(cls: type[int] | type[float]) -> Decoder:
    """An ``int`` takes integers, a ``float`` integers and floats (booleans are neither)."""
    accepted = (int,) if cls is int else (int, float)
    what = "an integer" if cls is int else "a number"

    def decode_number(data: object) -> int | float:
        if not isinstance(data, int | float) or type(data) not in accepted:  # bool is an int
            raise _mismatch(data, what)
        return cls(data)

    return decode_number


def _enum_decoder(cls: type[enum.IntEnum]) -> Decoder:
    def decode_enum(data: object) -> enum.IntEnum:
        if type(data) is not int:
            raise _mismatch(data, "an integer")
        try:
            return cls(data)
        except ValueError:
            raise WireError(f": {data!r} is not a {cls.__name__}") from None

    return decode_enum


def _dataclass_decoder(cls: type) -> Decoder:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    decoders = {f.name: _decoder(hints[f.name]) for f in fields}
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )

    def decode_dataclass(data: object) -> object:
        if not isinstance(data, dict):
            raise _mismatch(data, f"a {cls.__name__} mapping")
        unknown = data.keys() - decoders.keys()
        if unknown:
            raise WireError(f": unknown fields {sorted(map(str, unknown))}")
        if not required <= data.keys():
            raise WireError(f": missing fields {sorted(required - data.keys())}")
        values = {}
        for name, item in data.items():
            try:
                values[name] = decoders[name](item)
            except WireError as exc:
                raise WireError(f".{name}{exc}") from None
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise WireError(f": {exc}") from None

    return decode_dataclass


def _mismatch(data: object, what: str) -> WireError:
    """The error for ``data`` where ``what`` was expected."""
    return WireError(f": expected {what}, got {type(data).__name__}")
