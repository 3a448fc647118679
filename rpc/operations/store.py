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

Requests hold customer addresses: the data directory is created (and kept) mode 0700 and the
database, its WAL and shared-memory files and the lock file mode 0600. The database uses
incremental auto-vacuum; :meth:`JobStore.vacuum` gives freed pages back to the file system and
truncates the WAL, :meth:`JobStore.trim_finished` keeps the finished operations under a size
cap. A database that is not readable at start-up (a damaged file) is moved aside as
``jobs.sqlite3.corrupt-<UTC time>`` (with its WAL and shared-memory files) and the store starts
empty: :attr:`JobStore.moved_aside` names the damaged copy, which the server logs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["DataDirInUseError", "JobRecord", "JobStore", "NewJob"]

log = logging.getLogger(__name__)

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


_PROBE_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at REAL)"
"""A one-row table that :meth:`JobStore.probe` writes to see whether the store can write."""

_INCREMENTAL: Final = 2
"""``PRAGMA auto_vacuum`` value of INCREMENTAL."""

_SIDE_FILES: Final = ("-wal", "-shm")
"""SQLite's companions of a WAL-mode database file."""


def _private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) and make it 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)


def _private_file(path: Path) -> int:
    """Open (create if needed) ``path`` mode 0600 for appending; returns the descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _secure_files(db_path: Path) -> None:
    """Make the database's files that exist 0600 (SQLite creates its WAL and shared-memory
    files with the database's mode, but older files may predate this)."""
    for suffix in ("", *_SIDE_FILES):
        path = db_path.with_name(db_path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(path.stat().st_mode) != 0o600:
                path.chmod(0o600)


_DAMAGE_CODES: Final = frozenset({11, 26})
"""SQLITE_CORRUPT and SQLITE_NOTADB: the file itself is damaged."""


def _is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the database file is damaged (not locked, full or unreadable)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in _DAMAGE_CODES
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _move_aside(db_path: Path) -> Path:
    """Rename a damaged database (and its WAL and shared-memory files) to
    ``<name>.corrupt-<UTC time>``; returns the new path of the database."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", *_SIDE_FILES):
        path = db_path.with_name(db_path.name + suffix)
        if path.exists():
            path.rename(target.with_name(target.name + suffix))
    return target


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
        _private_dir(self.data_dir)
        self._lock_file = os.fdopen(_private_file(self.data_dir / LOCK_NAME), "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise DataDirInUseError(
                f"the data directory {self.data_dir} is in use by another server"
            ) from None
        self.path = self.data_dir / DB_NAME
        self.moved_aside: Path | None = None
        """Where a damaged database found at start-up was moved (None: it was sound)."""
        try:
            self._db = self._open_checked()
        except sqlite3.Error as exc:
            if not _is_damage(exc):  # locked, disk full, I/O error: not the file's fault
                self._release_lock()
                raise OSError(f"cannot open the job store {self.path}: {exc}") from exc
            self.moved_aside = _move_aside(self.path)
            log.error(
                "the job store %s is damaged (%s): moved it aside to %s and starting with an "
                "empty store",
                self.path,
                exc,
                self.moved_aside,
            )
            try:
                self._db = self._open_checked()
            except sqlite3.Error as again:
                self._release_lock()
                raise OSError(f"{self.path}: cannot create a new job store: {again}") from again
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._db.execute(_PROBE_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(operations)")}
            # A store of before tenants: its operations become the default tenant's.
            if "tenant" not in columns:
                self._db.execute(_TENANT_COLUMN)
            self._db.execute(_TENANT_INDEX)
        _secure_files(self.path)

    def _open_checked(self) -> sqlite3.Connection:
        """A connection to the database (created 0600), configured and checked; raises
        :class:`sqlite3.DatabaseError` when the file is not a sound SQLite database."""
        os.close(_private_file(self.path))
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            if db.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # a new database: takes at once
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    db.execute("VACUUM")  # an older database: converted once
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OSError(f"{self.path}: cannot use WAL mode (got {mode})")
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._release_lock()

    def _release_lock(self) -> None:
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

    def unmark_running(self, name: str, now: float) -> bool:
        """Queue a running operation again without spending an attempt (it was interrupted by
        a shutdown, or the executor refused it). False when it is not running."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE operations SET state = ?, attempt = max(0, attempt - 1), update_time = ?"
                " WHERE name = ? AND state = ?",
                (QUEUED, now, name, RUNNING),
            )
            return cursor.rowcount == 1

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

    # -- upkeep --------------------------------------------------------------------------

    def probe(self, now: float) -> None:
        """Write one row (a committed transaction): raises :class:`sqlite3.Error` while the
        store cannot write (disk full, database locked)."""
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO store_probe (id, at) VALUES (1, ?)", (now,))

    def trim_finished(self, max_bytes: int) -> int:
        """Delete the oldest finished operations (a batch with its items) until the requests,
        responses and errors of the finished ones take at most ``max_bytes``; returns the rows
        deleted. Unfinished operations are never deleted."""
        with self._lock, self._db:
            rows = self._db.execute(
                "SELECT o.name, o.size + coalesce((SELECT sum(length(coalesce(i.request, x''))"
                " + length(coalesce(i.response, x'')) + length(coalesce(i.error, x'')))"
                " FROM operations i WHERE i.batch = o.name), 0) FROM (SELECT name, end_time,"
                " seq, length(coalesce(request, x'')) + length(coalesce(response, x''))"
                " + length(coalesce(error, x'')) AS size FROM operations WHERE batch IS NULL"
                " AND state IN (?, ?, ?)) o ORDER BY o.end_time DESC, o.seq DESC",
                tuple(sorted(FINAL_STATES)),
            ).fetchall()
            kept, doomed = 0, []
            for name, size in rows:
                kept += int(size)
                if kept > max_bytes:
                    doomed.append(name)
            deleted = 0
            for name in doomed:
                cursor = self._db.execute(
                    "DELETE FROM operations WHERE name = ? OR batch = ?", (name, name)
                )
                deleted += cursor.rowcount
        return deleted

    def vacuum(self) -> None:
        """Give the pages freed by deletions back to the file system and truncate the WAL."""
        with self._lock:
            self._db.execute("PRAGMA incremental_vacuum").fetchall()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def size_bytes(self) -> int:
        """Bytes the store takes on disk (the database and its WAL)."""
        total = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

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
