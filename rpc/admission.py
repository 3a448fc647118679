"""Call slots: the gRPC threads that long calls may hold (:class:`AdmissionInterceptor`).

gRPC's synchronous server runs each call on a thread of one pool until the call ends. Some
calls hold their thread for long: a synchronous solve (OptimizeTours, of both services) for its
whole budget, an OptimizeToursStream for its solve, a WaitOperation until its operation ends (up
to a minute), a ComputeMatrix while its matrix is computed. Each such kind has a number of
slots (:class:`~rpc.limits.Limits`: ``solve_calls``, ``streams``, ``long_polls``,
``matrix_calls``); a call that finds its kind's slots taken is answered at once
RESOURCE_EXHAUSTED with a ``RetryInfo`` (:class:`~rpc.errors.CallSlotsFullError`) instead of
taking a thread. The server's pool (:func:`pool_size`) has a thread for every slot **plus**
:data:`FREE_THREADS`, so health checks, reflection, GetOperation, ListOperations, submissions
and refusals always find a thread, whatever the long calls do.

The interceptor runs after authentication (:class:`rpc.auth.AuthInterceptor` comes before it
in the server's list): a call without valid credentials is refused before it takes a slot.
Slots are server-wide (the per-tenant limit of synchronous solves is the ``solves`` quota,
:mod:`rpc.quotas`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import grpc

from rpc.errors import CallSlotsFullError, grpc_status, status_of
from rpc.limits import Limits

__all__ = [
    "FREE_THREADS",
    "KINDS",
    "AdmissionInterceptor",
    "CallSlots",
    "kind_of",
    "pool_size",
    "slot_counts",
]

FREE_THREADS: Final = 32
"""Threads of the pool that no slot can hold: health checks and every short call."""

KINDS: Final = {
    "/routeopt.v1.RouteOptimization/OptimizeTours": "solve_calls",
    "/google.maps.routeoptimization.v1.RouteOptimization/OptimizeTours": "solve_calls",
    "/routeopt.v1.RouteOptimization/OptimizeToursStream": "streams",
    "/google.longrunning.Operations/WaitOperation": "long_polls",
    "/routeopt.v1.RouteOptimization/ComputeMatrix": "matrix_calls",
}
"""The methods that hold their thread for long, by the limit that counts them."""


def kind_of(method: str) -> str | None:
    """The slot kind of a full method name (None: a short call, no slot)."""
    return KINDS.get(method)


def slot_counts(limits: Limits, solve_capacity: int) -> dict[str, int]:
    """Slots per kind; ``solve_capacity``: solver workers plus queue places (the default of
    ``solve_calls``: a synchronous solve beyond them would be refused by the executor)."""
    return {
        "solve_calls": limits.solve_calls or max(1, solve_capacity),
        "streams": limits.streams,
        "long_polls": limits.long_polls,
        "matrix_calls": limits.matrix_calls,
    }


def pool_size(slots: dict[str, int]) -> int:
    """Threads of the server's pool: one per slot and :data:`FREE_THREADS`."""
    return sum(slots.values()) + FREE_THREADS


class CallSlots:
    """Counts of the calls of each kind in progress, against their slots."""

    def __init__(self, slots: dict[str, int]) -> None:
        self.slots = dict(slots)
        self._lock = threading.Lock()
        self._held = dict.fromkeys(slots, 0)

    def held(self, kind: str) -> int:
        with self._lock:
            return self._held[kind]

    def acquire(self, kind: str) -> Callable[[], None]:
        """Take a slot of ``kind`` (:class:`CallSlotsFullError` when all are taken); returns
        the function that gives it back (once, however often it is called)."""
        limit = self.slots[kind]
        with self._lock:
            if self._held[kind] >= limit:
                raise CallSlotsFullError(kind, limit)
            self._held[kind] += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self._held[kind] -= 1

        return release


_Behaviour = Callable[[Any, grpc.ServicerContext], Any]


class AdmissionInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Gives each long call a slot of its kind for as long as it runs, or refuses it."""

    def __init__(self, slots: CallSlots) -> None:
        self.slots = slots

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        kind = kind_of(str(handler_call_details.method))
        if handler is None or kind is None:
            return handler
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(kind, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._stream(kind, handler.unary_stream))
        return handler  # pragma: no cover (no client-streaming method has a kind)

    def _enter(self, kind: str, context: grpc.ServicerContext) -> Callable[[], None]:
        """A slot of ``kind``, given back when the call ends; or the call is refused."""
        try:
            release = self.slots.acquire(kind)
        except CallSlotsFullError as exc:
            context.abort_with_status(grpc_status(status_of(exc)))
            raise AssertionError("abort_with_status returned") from exc  # pragma: no cover
        # Given back when the method returns (its thread is free), not when the call ends: a
        # method that goes on after its call ended still holds a thread. Every long method
        # returns soon after its call ends (solves are cancelled, WaitOperation waits in
        # slices, a stream's generator is closed).
        return release

    def _unary(self, kind: str, behaviour: _Behaviour) -> _Behaviour:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            release = self._enter(kind, context)
            try:
                return behaviour(request, context)
            finally:
                release()

        return call

    def _stream(self, kind: str, behaviour: _Behaviour) -> _Behaviour:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            release = self._enter(kind, context)
            try:
                yield from behaviour(request, context)
            finally:
                release()

        return call
