"""The key store (:mod:`rpc.keys`), page tokens, solve slots, the ``routeopt keys`` commands, the
server's security flags and the loopback safeguard (:func:`rpc.auth.exposure_problem`), the
tenant column of the job store and the client's credential flags; all without a server."""

from __future__ import annotations

import argparse
import base64
import logging
import sqlite3
import stat
from pathlib import Path

import pytest

import cli
from rpc.auth import exposure_problem, is_loopback
from rpc.client import API_KEY_ENV, Credentials, add_credential_flags, credentials_of
from rpc.config import parse_args
from rpc.errors import FilterError, QuotaExceededError
from rpc.keys import (
    KEYS_DB_NAME,
    KeyStore,
    KeyStoreError,
    TenantQuota,
    check_tenant,
    keys_exist,
    parse_quota,
)
from rpc.operations.store import QUEUED, JobStore, NewJob
from rpc.page_tokens import PageTokens
from rpc.quotas import SolveSlots


def test_keys_are_verified_and_stored_hashed(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    try:
        assert not store.enabled()
        a, b = store.create("acme", label="ci"), store.create("globex")
        assert store.enabled()
        assert a.key.startswith(f"ro_{a.id}_")
        assert store.verify(a.key) == ("acme", a.id)
        assert store.verify(b.key) == ("globex", b.id)
        secret = a.key.split("_", 2)[2]
        for bad in (
            "",
            a.key + "x",
            a.key[:-1] + ("B" if a.key[-1] == "A" else "A"),  # right id, wrong secret
            f"ro_{b.id}_{secret}",  # another key's id with this secret
            a.key.upper(),
        ):
            assert store.verify(bad) is None, bad
        assert [(k.id, k.tenant, k.label, k.revoked) for k in store.list()] == [
            (a.id, "acme", "ci", False),
            (b.id, "globex", "", False),
        ]
        assert [k.id for k in store.list("globex")] == [b.id]
        assert store.revoke(a.id)
        assert not store.revoke(a.id)  # already revoked
        assert not store.revoke("0123456789abcdef")
        assert store.verify(a.key) is None
        assert store.check(a.key) == (None, a.id, f"revoked key {a.id}")
        assert store.check(b.key[:-2] + "xx")[1:] == (b.id, f"wrong secret for key {b.id}")
        assert store.check("ro_0123456789abcdef_" + "A" * 43) == (None, None, "unknown key")
        assert store.check("hunter2") == (None, None, "malformed key")
        assert store.enabled()  # revoking does not open the server
        assert store.list("acme")[0].revoked
    finally:
        store.close()
    raw = (tmp_path / KEYS_DB_NAME).read_bytes()
    assert secret.encode() not in raw
    assert a.id.encode() in raw
    assert stat.S_IMODE((tmp_path / KEYS_DB_NAME).stat().st_mode) == 0o600
    assert keys_exist(tmp_path)
    assert not keys_exist(tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_a_key_created_by_another_process_is_seen_at_once(tmp_path: Path) -> None:
    server, cli_store = KeyStore(tmp_path), KeyStore(tmp_path)
    try:
        assert not server.enabled()
        new = cli_store.create("acme")
        assert server.enabled()
        assert server.verify(new.key) == ("acme", new.id)
        cli_store.revoke(new.id)
        assert server.verify(new.key) is None
    finally:
        server.close()
        cli_store.close()


def test_tenant_names_and_quotas() -> None:
    for name in ("acme", "depot-7", "a.b_c@d", "x" * 64):
        assert check_tenant(name) == name
    for name in ("", "-acme", "acme corp", "x" * 65, "é"):
        with pytest.raises(ValueError, match="invalid tenant name"):
            check_tenant(name)
    assert parse_quota("active=5") == TenantQuota(max_active=5)
    assert parse_quota("stored=10, active=2") == TenantQuota(2, 10)
    for bad in ("active", "active=0", "running=3", "stored=x", "solves=0", ""):
        with pytest.raises(ValueError, match=r"active|stored|integer|at least"):
            parse_quota(bad)
    assert parse_quota("solves=4") == TenantQuota(max_solves=4)
    assert TenantQuota(max_active=1).over(TenantQuota(5, 9, 2)) == TenantQuota(1, 9, 2)
    assert str(TenantQuota(2, None)) == "active=2"
    assert str(TenantQuota(2, 3, 4)) == "active=2,stored=3,solves=4"
    assert str(TenantQuota()) == "none"


def test_solve_slots_count_per_tenant() -> None:
    quotas = {"acme": TenantQuota(max_solves=2), "free": TenantQuota()}
    slots = SolveSlots(quotas.__getitem__)
    first, second = slots.acquire("acme"), slots.acquire("acme")
    with pytest.raises(QuotaExceededError, match="2 synchronous solves") as caught:
        slots.acquire("acme")
    assert (caught.value.limit, caught.value.quota) == ("solves", 2)
    assert caught.value.retry_after_s is not None
    unlimited = [slots.acquire("free") for _ in range(50)]
    first()
    first()  # once only
    assert slots.count("acme") == 1
    third = slots.acquire("acme")
    for release in (second, third, *unlimited):
        release()
    assert slots.count("acme") == slots.count("free") == 0


def test_quotas_are_stored_per_tenant(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    try:
        assert store.quota("acme") == TenantQuota()
        store.set_quota("acme", TenantQuota(3, 30))
        store.set_quota("acme", TenantQuota(max_active=4))
        assert store.quota("acme") == TenantQuota(4, None)
        assert store.quotas() == {"acme": TenantQuota(4, None)}
    finally:
        store.close()


def test_page_tokens_hide_their_position_and_open_for_their_tenant_only(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    try:
        secret = store.server_secret("page_tokens")
        assert store.server_secret("page_tokens") == secret  # kept
        assert len(secret) == 32
    finally:
        store.close()
    tokens = PageTokens(secret)
    first, again = tokens.seal(41, "acme"), tokens.seal(41, "acme")
    assert first != again  # a fresh nonce each time: equal positions do not show
    # The position's bytes are not in the token (a random 28-byte token holds a given 8-byte
    # run with probability ~2**-60; its text held "41" by chance once in about a hundred runs).
    raw = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4))
    assert (41).to_bytes(8, "big") not in raw
    assert tokens.open(first, "acme") == tokens.open(again, "acme") == 41
    assert tokens.open(tokens.seal(2**40, ""), "") == 2**40
    forged = first[:-2] + ("AA" if first[-2:] != "AA" else "BB")
    other_server = PageTokens(b"x" * 32).seal(41, "acme")
    for bad, tenant in ((first, "globex"), (first, ""), (forged, "acme"), (other_server, "acme"),
                        ("41", "acme"), ("", "acme"), ("%%%", "acme")):  # fmt: skip
        with pytest.raises(FilterError, match="invalid page_token") as caught:
            tokens.open(bad, tenant)
        assert caught.value.field == "page_token"


# -- routeopt keys -----------------------------------------------------------------------------


def test_cli_create_list_revoke_and_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    assert (
        cli.main(["keys", "create", "--tenant", "acme", "--quota", "active=2", "--data-dir", data])
        == 0
    )
    out, err = capsys.readouterr()
    key = out.strip()
    assert "shown once" in err
    store = KeyStore(data)
    try:
        tenant, key_id = store.verify(key) or ("", "")
        assert tenant == "acme"
        assert store.quota("acme") == TenantQuota(max_active=2)
    finally:
        store.close()

    assert cli.main(["keys", "list", "--data-dir", data]) == 0
    out, _ = capsys.readouterr()
    assert key_id in out
    assert "acme" in out
    assert "active=2" in out
    assert key.split("_", 2)[2] not in out  # never the secret

    assert (
        cli.main(["keys", "quota", "--tenant", "acme", "--quota", "stored=7", "--data-dir", data])
        == 0
    )
    assert cli.main(["keys", "revoke", key, "--data-dir", data]) == 0  # the whole key works too
    assert cli.main(["keys", "revoke", key_id, "--data-dir", data]) == 1
    _, err = capsys.readouterr()
    assert "no active key" in err
    store = KeyStore(data)
    try:
        assert store.verify(key) is None
        assert store.quota("acme") == TenantQuota(max_stored=7)
    finally:
        store.close()
    assert cli.main(["keys", "quota", "--tenant", "acme", "--clear", "--data-dir", data]) == 0
    for bad in (
        ["keys", "create", "--tenant", "no spaces", "--data-dir", data],
        ["keys", "create", "--tenant", "acme", "--quota", "active=0", "--data-dir", data],
        ["keys", "quota", "--tenant", "acme", "--data-dir", data],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(bad)
        assert exited.value.code == 2


def test_a_damaged_key_store_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / KEYS_DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(KeyStoreError, match="restore it from a backup"):
        KeyStore(tmp_path)
    with pytest.raises(KeyStoreError, match="cannot use the key store"):
        keys_exist(tmp_path)
    assert cli.main(["keys", "list", "--data-dir", str(tmp_path)]) == 1
    assert "cannot use the key store" in capsys.readouterr().err


# -- the server's flags and where it may listen ------------------------------------------------


def test_security_flags() -> None:
    config = parse_args(
        ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem",
         "--default-quota", "active=3,stored=100", "--insecure"]
    )  # fmt: skip
    assert (config.tls_cert, config.tls_key, config.tls_client_ca) == ("c.pem", "k.pem", "ca.pem")
    assert config.default_quota == TenantQuota(3, 100)
    assert config.insecure
    assert parse_args([]).default_quota == TenantQuota()
    for bad in (
        ["--tls-cert", "c.pem"],
        ["--tls-key", "k.pem"],
        ["--tls-client-ca", "ca.pem"],
        ["--default-quota", "active=-1"],
    ):
        with pytest.raises(SystemExit) as exited:
            parse_args(bad)
        assert exited.value.code == 2


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "[::]", "10.0.0.1", "example.com", ""):
        assert not is_loopback(host), host


def test_beyond_loopback_needs_tls_and_client_identity(caplog: pytest.LogCaptureFixture) -> None:
    def problem(host: str, **kw: bool) -> str | None:
        flags = {"tls": False, "client_ca": False, "keys": False, "insecure": False} | kw
        return exposure_problem(host, **flags)

    assert problem("127.0.0.1") is None
    assert problem("0.0.0.0", tls=True, keys=True) is None
    assert problem("0.0.0.0", tls=True, client_ca=True) is None
    for kw, names in (
        ({}, ("--tls-cert", "--tls-key", "routeopt keys create", "--tls-client-ca")),
        ({"keys": True}, ("--tls-cert", "--tls-key")),
        ({"tls": True}, ("routeopt keys create", "--tls-client-ca")),
    ):
        message = problem("0.0.0.0", **kw)
        assert message is not None
        assert "--insecure" in message
        for name in names:
            assert name in message, (kw, name)
    caplog.set_level(logging.WARNING)
    assert problem("0.0.0.0", insecure=True) is None
    assert "INSECURE" in caplog.text
    assert "read, cancel and delete every operation" in caplog.text


# -- the job store's tenants -------------------------------------------------------------------


def test_a_store_from_before_tenants_is_migrated(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "jobs.sqlite3")
    db.executescript(
        "CREATE TABLE operations (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL"
        " UNIQUE, kind TEXT NOT NULL, batch TEXT, item_index INTEGER, state INTEGER NOT NULL,"
        " label TEXT NOT NULL DEFAULT '', request BLOB, create_time REAL NOT NULL, start_time"
        " REAL, update_time REAL NOT NULL, end_time REAL, attempt INTEGER NOT NULL DEFAULT 0,"
        " elapsed_s REAL NOT NULL DEFAULT 0, solution_count INTEGER NOT NULL DEFAULT 0,"
        " best_cost REAL, used_vehicles INTEGER NOT NULL DEFAULT 0, skipped_shipments INTEGER"
        " NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0, response BLOB, error"
        " BLOB, expire_time REAL);"
        "INSERT INTO operations (name, kind, state, create_time, update_time)"
        " VALUES ('operations/old', 'tours', 1, 1.0, 1.0);"
    )
    db.close()
    store = JobStore(tmp_path)
    try:
        old = store.get("operations/old", tenant="")
        assert old is not None
        assert old.tenant == ""
        store.insert([NewJob("operations/new", "tours", request=b"", tenant="acme")], now=2.0)
        assert store.get("operations/new", tenant="") is None
        assert store.get("operations/old", tenant="acme") is None
        assert [r.name for r in store.list(tenant="acme")] == ["operations/new"]
        assert store.count("acme", active=True) == 1
        assert store.count("") == 1
        assert store.get("operations/new") is not None  # the server's own view
        assert store.get("operations/new", tenant="acme") is not None
        assert store.get("operations/new", tenant="acme").state == QUEUED  # type: ignore[union-attr]
    finally:
        store.close()


# -- the client's credentials ------------------------------------------------------------------


def test_client_credential_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_credential_flags(parser)
    monkeypatch.setenv(API_KEY_ENV, "ro_from_env")
    creds = credentials_of(parser.parse_args([]))
    assert creds == Credentials(api_key="ro_from_env")
    assert not creds.secure
    key_file = tmp_path / "acme.key"
    key_file.write_text("ro_from_file\n")
    args = parser.parse_args(
        ["--api-key-file", str(key_file), "--tls-ca", "ca.pem", "--tls-server-name", "routeopt"]
    )
    creds = credentials_of(args)
    assert (creds.api_key, creds.ca_file, creds.server_name) == (
        "ro_from_file",
        "ca.pem",
        "routeopt",
    )
    assert creds.secure
    monkeypatch.delenv(API_KEY_ENV)
    assert credentials_of(parser.parse_args(["--tls"])) == Credentials(tls=True)
    with pytest.raises(ValueError, match="client certificate needs its key"):
        Credentials(cert_file="client.pem").channel_credentials()
