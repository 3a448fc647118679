"""Start the routeopt gRPC server: ``python server.py --help`` (same as ``routeopt-server``).

The import is inside the ``__main__`` guard on purpose: solver worker processes re-import the
main script (as ``__mp_main__``), and must not pay for importing gRPC there.
"""

if __name__ == "__main__":
    from rpc.server import main

    raise SystemExit(main())
