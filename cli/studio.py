"""``routeopt studio``: serve the depot-layout studio page (:mod:`studio`) on this machine.

``routeopt studio [--osm FILE|embedded|none] [--port 8765] [--host 127.0.0.1] [--workers N]
[--data-dir DIR] [--keys-dir DIR | --token T] [--tiles URL]``. Without either, the page is for
whoever reaches the loopback address. ``--keys-dir`` (the gRPC server's ``--data-dir``) puts it
behind the server's API keys (``routeopt keys create``): every request carries a tenant's key or
the page's sign-in session, and a tenant sees only its own studies. ``--token`` (or
``ROUTEOPT_STUDIO_TOKEN``) is one shared secret instead, which every request must carry (the
page's address printed at start sets it as a cookie). Any address other than loopback needs one
of the two. Exit status 2 on bad flags or a missing optional
module (the ``layouts`` extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from cli.layouts import SubCommands

__all__ = ["add_studio_parser", "run_studio"]


def add_studio_parser(sub: SubCommands) -> None:
    """Add the ``studio`` sub-command and its flags to ``sub``."""
    p = sub.add_parser(
        "studio",
        help="serve the depot-layout studio (a local web page)",
        description="Serve a web page to run depot-layout studies (CSV files, an XLSX workbook "
        "or a JSON request), watch their progress and compare their layouts on a table, a map "
        "and a chart. Works offline; loopback only unless --keys-dir or --token is given.",
    )
    p.add_argument(
        "--osm",
        default="embedded",
        help="road network: an .osm.pbf/.osm file or road layer, 'embedded' (central Helsinki, "
        "the default) or 'none' (geodesic travel)",
    )
    p.add_argument("--profile", default="car", choices=["car", "truck"])
    p.add_argument("--road-cache-dir", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0: any free port")
    p.add_argument("--workers", type=int, default=1, help="layouts of a study routed at once")
    p.add_argument(
        "--parallel-studies", type=int, default=1, choices=[1, 2], help="studies run at once"
    )
    p.add_argument("--data-dir", type=Path, default=None, help="where studies are kept (0700)")
    p.add_argument(
        "--keys-dir",
        type=Path,
        default=None,
        help="the routeopt server's data directory: its API keys (routeopt keys create) open "
        "the page, each tenant seeing its own studies",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("ROUTEOPT_STUDIO_TOKEN"),
        help="required on a non-loopback --host (default: $ROUTEOPT_STUDIO_TOKEN)",
    )
    p.add_argument(
        "--tiles",
        default=None,
        help="map tile URL template, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png "
        "(default: none, the layers on a blank background, nothing fetched)",
    )
    p.add_argument("--tiles-attribution", default="© OpenStreetMap contributors")
    p.add_argument("--layout-timeout", type=float, help="seconds per layout (overrides studies)")
    p.add_argument("--max-upload-mb", type=float, default=20.0)


def run_studio(args: argparse.Namespace) -> int:
    """The ``studio`` sub-command: serve until interrupted; the exit status."""
    if importlib.util.find_spec("js_lib_leaflet") is None:
        print(
            "routeopt studio: the map needs the js_lib_leaflet module; "
            "install it with: pip install 'routeopt[layouts]'",
            file=sys.stderr,
        )
        return 2
    from studio import (
        StudioConfig,
        StudioServer,
        StudyManager,
        WorkerSettings,
        default_data_dir,
        is_loopback,
    )

    if args.keys_dir is not None and args.token:
        print("routeopt studio: --keys-dir or --token, not both", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and not (args.token or args.keys_dir):
        print(
            f"routeopt studio: {args.host} is reachable from other machines; give --keys-dir "
            "(the server's API keys) or --token (or ROUTEOPT_STUDIO_TOKEN), or serve on 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    if args.workers < 1 or args.max_upload_mb <= 0:
        print("routeopt studio: --workers and --max-upload-mb must be positive", file=sys.stderr)
        return 2
    keys = None
    if args.keys_dir is not None:
        from rpc.keys import KeyStore, KeyStoreError, keys_exist

        try:
            if not keys_exist(args.keys_dir):
                print(
                    f"routeopt studio: no API key in {args.keys_dir}; create one with "
                    f"routeopt keys create --tenant NAME --data-dir {args.keys_dir}",
                    file=sys.stderr,
                )
                return 2
            keys = KeyStore(args.keys_dir)
        except KeyStoreError as exc:
            print(f"routeopt studio: cannot use the key store: {exc}", file=sys.stderr)
            return 2
    settings = WorkerSettings(
        osm=None if args.osm == "none" else args.osm,
        profile=args.profile,
        road_cache_dir=args.road_cache_dir,
        workers=args.workers,
        layout_timeout_s=args.layout_timeout,
    )
    data_dir = args.data_dir or default_data_dir()
    manager = StudyManager(data_dir, settings, parallel=args.parallel_studies)
    config = StudioConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        tiles=args.tiles,
        tiles_attribution=args.tiles_attribution if args.tiles else "",
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        keys=keys,
    )
    try:
        server = StudioServer(config, manager)
    except (OSError, ValueError) as exc:
        manager.close()
        if keys is not None:
            keys.close()
        print(f"routeopt studio: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    url = server.url + (f"?token={args.token}" if args.token else "")
    keyed = f"; API keys of {args.keys_dir}, each tenant its own studies" if keys else ""
    print(f"routeopt studio: {url} (studies in {data_dir}{keyed}; Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        manager.close()
        if keys is not None:
            keys.close()
    return 0
