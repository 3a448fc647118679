"""The ListOperations filter grammar (:func:`parse_filter`) and paging (:func:`parse_page`).

``state=RUNNING``, ``state=QUEUED OR state=RUNNING``, ``done=true``, ``batch=operations/…``,
``kind=batch|tours|layouts|uri``; terms on different keys joined by ``AND``, ``OR`` only between
terms on one key (``state`` or ``done``). A filter that cannot be understood raises
:class:`~rpc.errors.FilterError` (INVALID_ARGUMENT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from rpc.errors import FilterError
from rpc.operations.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "KINDS",
    "MAX_PAGE_SIZE",
    "OperationFilter",
    "parse_filter",
    "parse_page",
]

KINDS: Final = ("tours", "batch", "layouts", "uri")
"""The values of ``kind=``."""

DEFAULT_PAGE_SIZE: Final = 50
"""Operations in a page when the request sets no ``page_size``."""
MAX_PAGE_SIZE: Final = 1000
_MAX_SEQ: Final = 2**63 - 1
"""Most operations in a page."""

_FILTER_TERM = re.compile(r'\s*(\w+)\s*=\s*"?([\w/.-]+)"?\s*')


@dataclass(frozen=True)
class OperationFilter:
    """A parsed filter: the states wanted (none: any), the batch and the kind (None: any)."""

    states: tuple[int, ...] = ()
    batch: str | None = None
    kind: str | None = None


@dataclass
class _Terms:
    """The terms read so far."""

    states: set[int]
    batch: str | None = None
    kind: str | None = None


def parse_filter(text: str) -> OperationFilter:
    """The filter of a ListOperations request (module docstring); "" filters nothing out."""
    text = text.strip()
    if not text:
        return OperationFilter()
    terms = _Terms(set())
    for conjunct in re.split(r"\s+AND\s+", text):
        alternatives = re.split(r"\s+OR\s+", conjunct)
        keys = {_read_term(term, terms, alone=len(alternatives) == 1) for term in alternatives}
        if len(keys) > 1:
            raise FilterError(f"OR joins terms on one key only: {conjunct!r}")
    return OperationFilter(tuple(sorted(terms.states)), terms.batch, terms.kind)


def _read_term(term: str, terms: _Terms, *, alone: bool) -> str:
    """Add one ``key=value`` term to ``terms``; returns its key. ``alone``: not in an OR."""
    match = _FILTER_TERM.fullmatch(term)
    if match is None:
        raise FilterError(f"cannot parse filter term {term.strip()!r}")
    key, value = match.group(1).lower(), match.group(2)
    if key == "state":
        terms.states.add(_state(value))
    elif key == "done":
        if value.lower() not in ("true", "false"):
            raise FilterError(f"done must be true or false, got {value!r}")
        done = value.lower() == "true"
        terms.states.update((SUCCEEDED, FAILED, CANCELLED) if done else (QUEUED, RUNNING))
    elif key == "batch" and alone:
        terms.batch = value
    elif key == "kind" and alone and value in KINDS:
        terms.kind = value
    else:
        raise FilterError(
            f"unsupported filter term {term.strip()!r} (keys: state, done, batch, kind)"
        )
    return key


def _state(value: str) -> int:
    """A JobState by name (case-insensitive)."""
    names = [k for k in pb.JobState.keys() if k != "JOB_STATE_UNSPECIFIED"]  # noqa: SIM118
    if value.upper() not in names:
        known = ", ".join(names)
        raise FilterError(f"unknown state {value!r}; known: {known}")
    return pb.JobState.Value(value.upper())


def parse_page(page_size: int, page_token: str) -> tuple[int, int]:
    """The size of a ListOperations page and the ``seq`` its operations come after (the token
    of a page is the ``seq`` of its last operation; "": the first page)."""
    if page_size < 0:
        raise FilterError(f"must not be negative, got {page_size}", field="page_size")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return size, 0
    # a seq is a non-negative SQLite integer (int64): "1_0", " 7", "٣" or 2**63 are not
    digits = page_token.isascii() and page_token.isdigit() and len(page_token) <= 19
    if not digits or int(page_token) > _MAX_SEQ:
        raise FilterError(f"invalid page_token {page_token[:100]!r}", field="page_token")
    return size, int(page_token)
