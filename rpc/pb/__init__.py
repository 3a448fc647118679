"""Generated protobuf and gRPC code of the routeopt API (``routeopt.v1``).

Do not edit: regenerate with ``python -m rpc.codegen``.
"""
