"""``routeopt``: the command line of routeopt.

``routeopt layouts STUDY ...`` (:mod:`cli.layouts`) compares depot layouts, or searches the best
one, on this machine, without a server; ``routeopt layouts template DIR`` writes a study
template (CSV files and a workbook) to start from; ``routeopt studio`` (:mod:`cli.studio`)
serves a local web page to run and compare studies. ``routeopt keys ...`` (:mod:`cli.keys`)
creates, lists and revokes a server's API keys and sets tenant quotas.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cli.keys import add_keys_parser, run_keys
from cli.layouts import add_layouts_parser, run_layouts, run_template
from cli.studio import add_studio_parser, run_studio

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["layouts", "template"]:
        return run_template(argv[2:])
    parser = argparse.ArgumentParser(prog="routeopt", description="routeopt command line")
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    add_layouts_parser(sub)
    add_studio_parser(sub)
    add_keys_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.command == "layouts":
        return run_layouts(args)
    if args.command == "studio":
        return run_studio(args)
    if args.command == "keys":
        return run_keys(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
