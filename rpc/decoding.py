"""Requests that are not valid protobuf: INVALID_ARGUMENT, not INTERNAL.

gRPC Python deserializes a request before any servicer code runs, and answers INTERNAL
("Exception deserializing request!") when the bytes do not parse. :class:`DecodeInterceptor`
gives every method of every service a deserializer that never raises: bytes that do not parse
become an :class:`Undecodable` marker, and the method's behaviour (wrapped) answers the call
with :func:`rpc.errors.malformed_request_status` before the servicer sees anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from rpc.errors import grpc_status, malformed_request_status

__all__ = ["DecodeInterceptor", "Undecodable"]

_Behaviour = Callable[[Any, grpc.ServicerContext], Any]


class Undecodable:
    """A request whose bytes did not parse: ``reason`` says why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, or anything a custom parser raises
            return Undecodable(f"{type(exc).__name__}: {exc}")

    return parse


def _refuse(context: grpc.ServicerContext, method: str, bad: Undecodable) -> None:
    context.abort_with_status(grpc_status(malformed_request_status(method, bad.reason)))
    raise AssertionError("abort returned")  # pragma: no cover


class DecodeInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Answers INVALID_ARGUMENT to a request (or a request message of a stream) that does not
    parse as the method's request type."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = str(handler_call_details.method)

        def unary_request(behaviour: _Behaviour) -> _Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, Undecodable):
                    _refuse(context, method, request)
                return behaviour(request, context)

            return call

        def stream_request(behaviour: _Behaviour) -> _Behaviour:
            def call(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                def checked() -> Iterator[Any]:
                    for request in requests:
                        if isinstance(request, Undecodable):
                            _refuse(context, method, request)
                        yield request

                return behaviour(checked(), context)

            return call

        safe = _safe(handler.request_deserializer)
        if handler.unary_unary is not None:
            return handler._replace(
                request_deserializer=safe, unary_unary=unary_request(handler.unary_unary)
            )
        if handler.unary_stream is not None:
            return handler._replace(
                request_deserializer=safe, unary_stream=unary_request(handler.unary_stream)
            )
        if handler.stream_unary is not None:
            return handler._replace(
                request_deserializer=safe, stream_unary=stream_request(handler.stream_unary)
            )
        if handler.stream_stream is not None:
            return handler._replace(
                request_deserializer=safe, stream_stream=stream_request(handler.stream_stream)
            )
        return handler  # pragma: no cover (every handler has one behaviour)
