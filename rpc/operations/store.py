"""The durable job store of long-running operations: one SQLite database in WAL mode.

``<data dir>/jobs.sqlite3`` holds one row per operation: what was asked (the serialized
request), its state, the progress of the current attempt, and the result (a serialized
response or ``google.rpc.Status``). Every write is a committed transaction with
``synchronous=FULL``, so an operation whose name was returned to a client survives a crash of
the server (``kill -9``) and of the machine. The store knows nothing of solving:
:mod:`rpc.operations.manager` decides what the rows mean.

A data directory belongs to one server at a time: :class:`JobStore` holds an exclusive lock on
``<data dir>/lock`` while open, and a second server on the same directory fails to start.

Thread-safe: one connection, one lock (SQLite serializes writers anyway; the writes here are
small).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["DataDirInUseError", "JobRecord", "JobStore", "NewJob"]

DB_NAME: Final = "jobs.sqlite3"
LOCK_NAME: Final = "lock"

# JobState values of routeopt.v1 (kept numeric here: the store does not import the API).
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = 1, 2, 3, 4, 5
FINAL_STATES: Final = frozenset({SUCCEEDED, FAILED, CANCELLED})

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    batch TEXT,
    item_index INTEGER,
    state INTEGER NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    request BLOB,
    create_time REAL NOT NULL,
    start_time REAL,
    update_time REAL NOT NULL,
    end_time REAL,
    attempt INTEGER NOT NULL DEFAULT 0,
    elapsed_s REAL NOT NULL DEFAULT 0,
    solution_count INTEGER NOT NULL DEFAULT 0,
    best_cost REAL,
    used_vehicles INTEGER NOT NULL DEFAULT 0,
    skipped_shipments INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    response BLOB,
    error BLOB,
    expire_time REAL,
    tenant TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS operations_state ON operations (state);
CREATE INDEX IF NOT EXISTS operations_batch ON operations (batch);
CREATE INDEX IF NOT EXISTS operations_expire ON operations (expire_time);
"""

_TENANT_COLUMN: Final = """
ALTER TABLE operations ADD COLUMN tenant TEXT NOT NULL DEFAULT ''
"""
"""A store written before tenants gets the column; its operations belong to the default tenant."""

_TENANT_INDEX: Final = """
CREATE INDEX IF NOT EXISTS operations_tenant ON operations (tenant, state)
"""


class DataDirInUseError(OSError):
    """Another process holds the data directory."""


@dataclass(frozen=True)
class NewJob:
    """An operation to insert: ``kind`` is ``"tours"`` or ``"layouts"`` (``request`` set), or
    ``"batch"`` (its items name it as their ``batch``). ``tenant`` owns it (a batch's items
    belong to the batch's tenant)."""

    name: str
    kind: str
    label: str = ""
    request: bytes | None = None
    batch: str | None = None
    item_index: int | None = None
    state: int = QUEUED
    tenant: str = ""


@dataclass(frozen=True)
class JobRecord:
    """One row of the store."""

    seq: int
    name: str
    kind: str
    batch: str | None
    item_index: int | None
    state: int
    label: str
    request: bytes | None
    create_time: float
    start_time: float | None
    update_time: float
    end_time: float | None
    attempt: int
    elapsed_s: float
    solution_count: int
    best_cost: float | None
    used_vehicles: int
    skipped_shipments: int
    cancel_requested: bool
    response: bytes | None
    error: bytes | None
    expire_time: float | None
    tenant: str

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES


_COLUMNS: Final = ", ".join(JobRecord.__dataclass_fields__)


def _record(row: Sequence[Any]) -> JobRecord:
    values = dict(zip(JobRecord.__dataclass_fields__, row, strict=True))
    values["cancel_requested"] = bool(values["cancel_requested"])
    return JobRecord(**values)


class JobStore:
    """The operations of one data directory (created if needed). Close it with :meth:`close`."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.data_dir / LOCK_NAME).open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise DataDirInUseError(
                f"the data directory {self.data_dir} is in use by another server"
            ) from None
        self.path = self.data_dir / DB_NAME
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OSError(f"{self.path}: cannot use WAL mode (got {mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(operations)")}
            if "tenant" not in columns:
                self._db.execute(_TENANT_COLUMN)
            self._db.execute(_TENANT_INDEX)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    # -- writes --------------------------------------------------------------------------

    def insert(self, jobs: Iterable[NewJob], now: float) -> None:
        """Insert operations in one transaction (all or none)."""
        rows = [
            (j.name, j.kind, j.batch, j.item_index, j.state, j.label, j.request, now, now, j.tenant)
            for j in jobs
        ]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO operations (name, kind, batch, item_index, state, label, request,"
                " create_time, update_time, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _update(self, name: str, now: float, **values: Any) -> bool:
        values["update_time"] = now
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self._lock, self._db:
            cursor = self._db.execute(
                f"UPDATE operations SET {assignments} WHERE name = ?", (*values.values(), name)
            )
            return cursor.rowcount == 1

    def mark_running(self, name: str, now: float) -> bool:
        """Start a new attempt of a queued operation: RUNNING, attempt + 1, progress reset.
        False (and no change) when the operation is not queued (it may be done already)."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE operations SET state = ?, attempt = attempt + 1, start_time = ?,"
                " update_time = ?, elapsed_s = 0, solution_count = 0, best_cost = NULL,"
                " used_vehicles = 0, skipped_shipments = 0 WHERE name = ? AND state = ?",
                (RUNNING, now, now, name, QUEUED),
            )
            return cursor.rowcount == 1

    def set_state(self, name: str, state: int, now: float) -> bool:
        return self._update(name, now, state=state)

    def update_progress(
        self,
        name: str,
        now: float,
        *,
        elapsed_s: float,
        solution_count: int,
        best_cost: float,
        used_vehicles: int,
        skipped_shipments: int,
        response: bytes | None = None,
    ) -> bool:
        """Record the progress of a running operation (and its best response so far)."""
        values: dict[str, Any] = {
            "elapsed_s": elapsed_s,
            "solution_count": solution_count,
            "best_cost": best_cost,
            "used_vehicles": used_vehicles,
            "skipped_shipments": skipped_shipments,
        }
        if response is not None:
            values["response"] = response
        return self._update(name, now, **values)

    def request_cancel(self, name: str, now: float) -> bool:
        return self._update(name, now, cancel_requested=1)

    def finish(
        self,
        name: str,
        state: int,
        now: float,
        *,
        response: bytes | None,
        error: bytes | None,
        expire_time: float | None,
    ) -> bool:
        """Make an operation final with its response or error."""
        if state not in FINAL_STATES:
            raise ValueError(f"not a final state: {state}")
        return self._update(
            name,
            now,
            state=state,
            end_time=now,
            response=response,
            error=error,
            expire_time=expire_time,
        )

    def delete(self, name: str) -> int:
        """Delete an operation and, for a batch, its items; returns the rows deleted."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM operations WHERE name = ? OR batch = ?", (name, name)
            )
            return cursor.rowcount

    def expire(self, now: float) -> int:
        """Delete the finished operations whose retention has passed, and the items of an
        expired batch (items have no expiry of their own); returns the rows deleted."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM operations WHERE batch IN (SELECT name FROM operations WHERE"
                " kind = 'batch' AND expire_time IS NOT NULL AND expire_time <= ?)",
                (now,),
            )
            deleted = cursor.rowcount
            cursor = self._db.execute(
                "DELETE FROM operations WHERE expire_time IS NOT NULL AND expire_time <= ?",
                (now,),
            )
            return deleted + cursor.rowcount

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str, *, tenant: str | None = None) -> JobRecord | None:
        """Operation ``name`` (of ``tenant``; None: of any tenant), if stored."""
        query = f"SELECT {_COLUMNS} FROM operations WHERE name = ?"
        args: tuple[str, ...] = (name,)
        if tenant is not None:
            query += " AND tenant = ?"
            args = (name, tenant)
        with self._lock:
            row = self._db.execute(query, args).fetchone()
        return _record(row) if row is not None else None

    def count(self, tenant: str, *, active: bool = False) -> int:
        """The operations of ``tenant`` (``active``: those queued or running, batches
        themselves not counted: their items are)."""
        query = "SELECT COUNT(*) FROM operations WHERE tenant = ?"
        args: tuple[Any, ...] = (tenant,)
        if active:
            query += " AND state IN (?, ?) AND kind != 'batch'"
            args = (tenant, QUEUED, RUNNING)
        with self._lock:
            return int(self._db.execute(query, args).fetchone()[0])

    def items(self, batch: str) -> list[JobRecord]:
        """The items of a batch operation, in request order."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM operations WHERE batch = ? ORDER BY item_index", (batch,)
            ).fetchall()
        return [_record(r) for r in rows]

    def unfinished(self, kind: str) -> list[JobRecord]:
        """Operations of ``kind`` that are not final, in creation order."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM operations WHERE kind = ? AND state IN (?, ?)"
                " ORDER BY seq",
                (kind, QUEUED, RUNNING),
            ).fetchall()
        return [_record(r) for r in rows]

    def list(
        self,
        *,
        states: Sequence[int] = (),
        batch: str | None = None,
        kind: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
        tenant: str | None = None,
    ) -> list[JobRecord]:
        """Operations in creation order after ``after_seq``, at most ``limit``; filtered by
        state (any of ``states``), batch, kind and tenant."""
        where = ["seq > ?"]
        args: list[Any] = [after_seq]
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        if batch is not None:
            where.append("batch = ?")
            args.append(batch)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        args.append(limit)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM operations WHERE {' AND '.join(where)}"
                " ORDER BY seq LIMIT ?",
                args,
            ).fetchall()
        return [_record(r) for r in rows]
