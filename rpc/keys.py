"""API keys and tenants: :class:`KeyStore`, one SQLite file in the server's data directory.

A key is ``ro_<id>_<secret>``: ``id`` (16 hex digits) names the key in listings and logs,
``secret`` is 32 random bytes (``secrets.token_urlsafe``). The store keeps the id, the tenant,
a label and the SHA-256 of the secret, never the secret: a 256-bit random secret needs no slow
hash (nobody can guess it), and a stolen key file gives no usable key. :meth:`KeyStore.verify`
compares digests in constant time. The whole key is shown once, by ``routeopt keys create``.

A tenant is a name (:data:`TENANT_PATTERN`) that owns operations; each key belongs to one, and
a tenant may have several keys (rotation: create the new one, switch clients, revoke the old
one). A tenant may have its own :class:`TenantQuota`; otherwise the server's
``--default-quota`` applies.

``<data dir>/keys.sqlite3`` (created 0600) is read by the server on every authenticated call and
written by ``routeopt keys`` (another process, possibly while the server runs: WAL mode), so a
new or revoked key takes effect at the next call, without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rpc.limits import QUOTA_LIMIT_NAMES, TENANT_LIMITS, check_limit, quota_name

__all__ = [
    "DEFAULT_TENANT",
    "KEYS_DB_NAME",
    "TENANT_PATTERN",
    "ApiKey",
    "KeyStore",
    "KeyStoreError",
    "NewKey",
    "TenantQuota",
    "check_tenant",
    "keys_exist",
    "parse_quota",
]

KEYS_DB_NAME: Final = "keys.sqlite3"

DEFAULT_TENANT: Final = ""
"""The tenant of every call when the server authenticates nobody (no keys, no client CA): one
tenant, as in development on loopback. No named tenant can be "": it sees none of them."""

TENANT_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
"""A tenant name: a letter or digit, then letters, digits, ``.``, ``_``, ``@``, ``-``; at most
64 characters (also what a client certificate's common name must be to name a tenant)."""

_KEY_PREFIX: Final = "ro"
_KEY_PATTERN: Final = re.compile(r"ro_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_DUMMY_DIGEST: Final = hashlib.sha256(b"no such key").digest()

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    create_time REAL NOT NULL,
    revoke_time REAL
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant);
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    max_active INTEGER,
    max_stored INTEGER,
    max_solves INTEGER,
    limits TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


def check_tenant(name: str) -> str:
    """``name`` if it is a valid tenant name, else ValueError saying what one is."""
    if not TENANT_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid tenant name {name!r}: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class TenantQuota:
    """Per-tenant limits (None: no limit of this kind).

    ``max_active``: operations queued or running at once (batch items count, a batch itself
    does not); ``max_stored``: operations kept in the store, finished ones included (until
    they expire or are deleted); ``max_solves``: synchronous solves (OptimizeTours,
    OptimizeToursStream) running or waiting for a worker at once. ``limits``: the tenant's own
    request limits, ``(field name, value)`` pairs sorted by name, of
    :data:`rpc.limits.TENANT_LIMITS`: each can only lower the server's limit
    (:meth:`rpc.limits.Limits.for_tenant`)."""

    max_active: int | None = None
    max_stored: int | None = None
    max_solves: int | None = None
    limits: tuple[tuple[str, float], ...] = ()

    def over(self, default: TenantQuota) -> TenantQuota:
        """This quota, with ``default``'s value where this one sets none."""
        return TenantQuota(
            self.max_active if self.max_active is not None else default.max_active,
            self.max_stored if self.max_stored is not None else default.max_stored,
            self.max_solves if self.max_solves is not None else default.max_solves,
            tuple(sorted({**dict(default.limits), **dict(self.limits)}.items())),
        )

    def __str__(self) -> str:
        parts = [
            f"{key}={value}"
            for key, value in (
                ("active", self.max_active),
                ("stored", self.max_stored),
                ("solves", self.max_solves),
            )
            if value is not None
        ]
        parts.extend(f"{quota_name(name)}={value:g}" for name, value in self.limits)
        return ",".join(parts) or "none"


_QUOTA_KEYS: Final = {"active": "max_active", "stored": "max_stored", "solves": "max_solves"}


def parse_quota(text: str) -> TenantQuota:
    """A quota from ``active=N,stored=M,solves=K`` and request limits such as
    ``shipments=N`` or ``sync_timeout=SECONDS`` (:data:`rpc.limits.QUOTA_LIMIT_NAMES`; any of
    them; each ≥ 1); ValueError if bad."""
    values: dict[str, int] = {}
    limits: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        key = key.strip().replace("-", "_")
        field = _QUOTA_KEYS.get(key)
        limit = QUOTA_LIMIT_NAMES.get(key) or (key if key in TENANT_LIMITS else None)
        if not sep or (field is None and limit is None):
            raise ValueError(
                "expected active=N, stored=N, solves=N or a request limit "
                f"({', '.join(f'{name}=N' for name in QUOTA_LIMIT_NAMES)}), got {part.strip()!r}"
            )
        if limit is not None:
            limits[limit] = check_limit(limit, value.strip())
            continue
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {value!r}") from None
        if number < 1:
            raise ValueError(f"{key} must be at least 1, got {number}")
        values[_QUOTA_KEYS[key]] = number
    return TenantQuota(**values, limits=tuple(sorted(limits.items())))


def _limits_json(limits: tuple[tuple[str, float], ...]) -> str:
    return json.dumps(dict(limits), sort_keys=True) if limits else ""


def _limits_of(text: str) -> tuple[tuple[str, float], ...]:
    """The stored limits of a tenant (names this version does not know are left out)."""
    if not text:
        return ()
    stored = json.loads(text)
    return tuple(
        sorted(
            (name, check_limit(name, str(value)))
            for name, value in stored.items()
            if name in TENANT_LIMITS
        )
    )


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    tenant: str
    label: str
    create_time: float
    revoke_time: float | None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None


@dataclass(frozen=True)
class NewKey:
    """A key just created: :attr:`key` is the only copy of the secret."""

    id: str
    tenant: str
    key: str


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout=5000")
    return db


class KeyStoreError(OSError):
    """The key store cannot be opened or read (a damaged or foreign file)."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(
            f"cannot use the key store {path}: {cause}; restore it from a backup (its keys exist "
            "nowhere else: otherwise move it aside and create new keys)"
        )


def keys_exist(data_dir: str | os.PathLike[str]) -> bool:
    """Whether the key store of ``data_dir`` holds any key (revoked ones too), without
    creating anything; :class:`KeyStoreError` when it cannot be read."""
    path = Path(data_dir) / KEYS_DB_NAME
    if not path.exists():
        return False
    try:
        return _any_key(path)
    except sqlite3.Error as exc:
        raise KeyStoreError(path, exc) from exc


def _any_key(path: Path) -> bool:
    db = _connect(path)
    try:
        row = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_keys'"
        ).fetchone()
        return (
            row is not None and db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None
        )
    finally:
        db.close()


class KeyStore:
    """The keys and tenants of a data directory (created, 0700, if needed). Thread-safe;
    several processes may open the same store. Close it with :meth:`close`."""

    def __init__(
        self, data_dir: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        directory = Path(data_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / KEYS_DB_NAME
        # Created owner-only before SQLite opens it (its -wal and -shm files take the same mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._enabled = False
        try:
            self._db = _connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_limits_column()
        except sqlite3.Error as exc:
            raise KeyStoreError(self.path, exc) from exc

    def _add_limits_column(self) -> None:
        """A store made before per-tenant request limits gets their column."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(tenants)")}
        if "limits" in columns:
            return
        try:
            self._db.execute("ALTER TABLE tenants ADD COLUMN limits TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError as exc:  # another process added it meanwhile
            if "duplicate column" not in str(exc):
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- keys ----------------------------------------------------------------------------

    def create(self, tenant: str, *, label: str = "") -> NewKey:
        """A new key of ``tenant`` (a valid name): stored hashed, returned once in full."""
        check_tenant(tenant)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO api_keys (id, tenant, secret_sha256, label, create_time)"
                " VALUES (?, ?, ?, ?, ?)",
                (key_id, tenant, _digest(secret), label, self._clock()),
            )
        return NewKey(key_id, tenant, f"{_KEY_PREFIX}_{key_id}_{secret}")

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when no such key is active (unknown or revoked)."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE api_keys SET revoke_time = ? WHERE id = ? AND revoke_time IS NULL",
                (self._clock(), key_id),
            )
            return cursor.rowcount == 1

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """The keys (of ``tenant``, or all), oldest first."""
        query = "SELECT id, tenant, label, create_time, revoke_time FROM api_keys"
        args: tuple[str, ...] = ()
        if tenant is not None:
            query += " WHERE tenant = ?"
            args = (tenant,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY create_time, id", args).fetchall()
        return [ApiKey(*row) for row in rows]

    def verify(self, key: str) -> tuple[str, str] | None:
        """``(tenant, key id)`` of an active key, or None (malformed, unknown or revoked);
        the secret is compared in constant time."""
        tenant, key_id, _ = self.check(key)
        return (tenant, key_id) if tenant is not None and key_id is not None else None

    def check(self, key: str) -> tuple[str | None, str | None, str]:
        """``(tenant, key id, why)``: the tenant of an active key (else None), the id of a
        stored key (else None) and, for the log, why the key is refused ("" when it is not);
        the secret is compared in constant time. Neither the key nor its secret is in ``why``."""
        match = _KEY_PATTERN.fullmatch(key)
        if match is None:
            return None, None, "malformed key"
        key_id, secret = match.groups()
        with self._lock:
            row = self._db.execute(
                "SELECT tenant, secret_sha256, revoke_time FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        stored = bytes(row[1]) if row is not None else _DUMMY_DIGEST
        same = hmac.compare_digest(stored, _digest(secret))
        if row is None:
            return None, None, "unknown key"
        if not same:
            return None, key_id, f"wrong secret for key {key_id}"
        if row[2] is not None:
            return None, key_id, f"revoked key {key_id}"
        return str(row[0]), key_id, ""

    def enabled(self) -> bool:
        """Whether any key was ever created (revoked ones count: revoking the last key must not
        open the server). Once True, stays True."""
        if not self._enabled:
            with self._lock:
                self._enabled = (
                    self._db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None
                )
        return self._enabled

    def server_secret(self, name: str) -> bytes:
        """The server's secret ``name`` (32 random bytes made on first use, then kept; e.g.
        what seals page tokens)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO server_secrets (name, value) VALUES (?, ?)",
                (name, secrets.token_bytes(32)),
            )
            row = self._db.execute(
                "SELECT value FROM server_secrets WHERE name = ?", (name,)
            ).fetchone()
        return bytes(row[0])

    # -- tenants -------------------------------------------------------------------------

    def set_quota(self, tenant: str, quota: TenantQuota) -> None:
        """Set ``tenant``'s own quota (a field None: the server default)."""
        check_tenant(tenant)
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO tenants (name, max_active, max_stored, max_solves, limits)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET max_active = excluded.max_active,"
                " max_stored = excluded.max_stored, max_solves = excluded.max_solves,"
                " limits = excluded.limits",
                (
                    tenant,
                    quota.max_active,
                    quota.max_stored,
                    quota.max_solves,
                    _limits_json(quota.limits),
                ),
            )

    def quota(self, tenant: str) -> TenantQuota:
        """``tenant``'s own quota (no limit where it has none)."""
        with self._lock:
            row = self._db.execute(
                "SELECT max_active, max_stored, max_solves, limits FROM tenants WHERE name = ?",
                (tenant,),
            ).fetchone()
        return _quota_of(row) if row is not None else TenantQuota()

    def quotas(self) -> dict[str, TenantQuota]:
        """Every tenant's own quota, by tenant."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, max_active, max_stored, max_solves, limits FROM tenants"
            ).fetchall()
        return {row[0]: _quota_of(row[1:]) for row in rows}


def _quota_of(row: tuple[int | None, int | None, int | None, str]) -> TenantQuota:
    return TenantQuota(row[0], row[1], row[2], _limits_of(row[3]))
