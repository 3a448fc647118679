"""gRPC adapter of routeopt: protobuf ⇄ engine conversion, error statuses, generated code."""
