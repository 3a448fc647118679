"""``routeopt keys``: API keys and tenant quotas of a server's data directory.

    routeopt keys create --tenant NAME [--quota active=N,stored=M,solves=K] [--label TEXT]
    routeopt keys list [--tenant NAME]
    routeopt keys revoke KEY_ID
    routeopt keys quota --tenant NAME (--quota active=N,stored=M,solves=K | --clear)

each with ``--data-dir DIR`` (default: the server's default). A quota may also lower the
server's request limits for the tenant (``shipments=N``, ``vehicles=N``, ``sync_timeout=SECONDS``,
... every per-request ``--limit`` of the server, :data:`rpc.limits.QUOTA_LIMIT_NAMES`); a value
above the server's limit leaves the server's. ``create`` prints the new key once,
alone on stdout (``KEY=$(routeopt keys create --tenant acme)``); only its hash is stored. Works
while the server runs: a new key, a revocation or a quota takes effect at the next call.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rpc.config import default_data_dir
from rpc.keys import KeyStore, TenantQuota, check_tenant, parse_quota
from rpc.limits import QUOTA_LIMIT_NAMES

__all__ = ["add_keys_parser", "run_keys"]


def _tenant(text: str) -> str:
    try:
        return check_tenant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _quota(text: str) -> TenantQuota:
    try:
        return parse_quota(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_keys_parser(sub: Any) -> None:
    """Add ``keys`` and its sub-commands to the ``routeopt`` sub-parsers ``sub``."""
    keys = sub.add_parser(
        "keys",
        help="API keys and tenant quotas of a server",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=default_data_dir(),
        metavar="DIR",
        help="the server's --data-dir (default: %(default)s)",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", parents=[common], help="create a key; it is printed once")
    create.add_argument("--tenant", required=True, type=_tenant, help="the tenant it belongs to")
    create.add_argument("--label", default="", help="a note shown by 'keys list'")
    create.add_argument(
        "--quota",
        type=_quota,
        metavar="NAME=N,...",
        help="also set the tenant's quota (as 'keys quota')",
    )
    listing = actions.add_parser(
        "list", parents=[common], help="list keys (never their secrets) and quotas"
    )
    listing.add_argument("--tenant", type=_tenant, help="only this tenant's keys")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key (at once, for good)")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the id from 'keys list' (or the key)")
    quota = actions.add_parser("quota", parents=[common], help="set or clear a tenant's quota")
    quota.add_argument("--tenant", required=True, type=_tenant)
    choice = quota.add_mutually_exclusive_group(required=True)
    choice.add_argument(
        "--quota",
        type=_quota,
        metavar="NAME=N,...",
        help="the whole quota (what is not named is the server's --default-quota): "
        "active=N, stored=N, solves=N, and request limits the tenant gets below the server's: "
        f"{', '.join(f'{name}=N' for name in QUOTA_LIMIT_NAMES)}",
    )
    choice.add_argument(
        "--clear", action="store_true", help="the server's --default-quota applies again"
    )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def run_keys(args: argparse.Namespace) -> int:
    """Run a ``routeopt keys`` sub-command; the exit status."""
    try:
        store = KeyStore(args.data_dir)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.keys_command == "create":
            return _create(store, args)
        if args.keys_command == "list":
            return _list(store, args)
        if args.keys_command == "revoke":
            return _revoke(store, args)
        store.set_quota(args.tenant, TenantQuota() if args.clear else args.quota)
        print(f"tenant {args.tenant}: quota {store.quota(args.tenant)}", file=sys.stderr)
        return 0
    finally:
        store.close()


def _create(store: KeyStore, args: argparse.Namespace) -> int:
    if args.quota is not None:
        store.set_quota(args.tenant, args.quota)
    new = store.create(args.tenant, label=args.label)
    print(
        f"key {new.id} of tenant {new.tenant} (quota {store.quota(new.tenant)}); it is shown "
        "once, keep it now. Clients send it as 'x-goog-api-key: KEY' or "
        "'authorization: Bearer KEY'.",
        file=sys.stderr,
    )
    print(new.key, flush=True)
    return 0


def _list(store: KeyStore, args: argparse.Namespace) -> int:
    rows = [("ID", "TENANT", "CREATED", "REVOKED", "LABEL")]
    rows += [
        (k.id, k.tenant, _when(k.create_time), _when(k.revoke_time), k.label)
        for k in store.list(args.tenant)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    quotas = {
        name: quota
        for name, quota in sorted(store.quotas().items())
        if args.tenant is None or name == args.tenant
    }
    if quotas:
        print()
        for name, quota in quotas.items():
            print(f"tenant {name}: quota {quota}")
    return 0


def _revoke(store: KeyStore, args: argparse.Namespace) -> int:
    key_id: str = args.key_id
    if key_id.startswith("ro_") and key_id.count("_") >= 2:
        key_id = key_id.split("_")[1]  # a whole key was given: its id
    if not store.revoke(key_id):
        print(f"error: no active key {key_id!r}", file=sys.stderr)
        return 1
    print(f"key {key_id} revoked", file=sys.stderr)
    return 0
