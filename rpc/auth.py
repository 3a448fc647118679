"""Who calls: TLS credentials, API keys and tenants, and the start-up check of where the server
may listen.

:class:`AuthInterceptor` is a gRPC server interceptor that wraps every method of every service
except ``grpc.health.v1.Health`` (load balancers probe it without credentials): before the
method runs, it finds the caller's tenant and puts it in a context variable that the handlers
read with :func:`current_tenant`. Server reflection is wrapped like the API: it needs the same
credentials (``grpcurl -H 'x-goog-api-key: KEY'`` sends them to reflection too).

Who is the caller (:meth:`Authenticator.tenant`):

- Nobody is authenticated while the key store of the data directory holds no key and the
  server has no client CA (``--tls-client-ca``): every call is the default tenant (""), as in
  development on loopback. Creating the first key turns authentication on at the next call
  (revoking every key does not turn it off).
- An API key in the metadata, as Google's ``x-goog-api-key: KEY`` or ``authorization: Bearer
  KEY``, names its tenant (:class:`rpc.keys.KeyStore`). A key that is sent must be valid, even
  with a client certificate.
- With mutual TLS (``--tls-client-ca``; the handshake requires a certificate that CA signed), a
  call without a key is the tenant named by its certificate's subject common name (CN), which
  must be a valid tenant name (:data:`rpc.keys.TENANT_PATTERN`).
- Otherwise the call is answered UNAUTHENTICATED with one message whatever the reason (no key,
  a malformed, unknown or revoked one), so that an answer tells nothing about which keys exist.
  The server log says why (the key's id when the key is known; never the key).
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import grpc
from grpc_health.v1 import health

from rpc.keys import DEFAULT_TENANT, TENANT_PATTERN, KeyStore

__all__ = [
    "API_KEY_HEADER",
    "CREDENTIALS_UNAVAILABLE_MESSAGE",
    "OPEN_SERVICES",
    "UNAUTHENTICATED_MESSAGE",
    "AuthInterceptor",
    "Authenticator",
    "current_tenant",
    "exposure_problem",
    "is_loopback",
    "server_credentials",
]

log = logging.getLogger(__name__)

API_KEY_HEADER: Final = "x-goog-api-key"
"""Google's API key header (also accepted: ``authorization: Bearer KEY``)."""

OPEN_SERVICES: Final = frozenset({health.SERVICE_NAME})
"""Services answered without credentials."""

UNAUTHENTICATED_MESSAGE: Final = (
    "missing or invalid credentials: send an API key as 'x-goog-api-key: KEY' or "
    "'authorization: Bearer KEY'"
)
"""The one message of every UNAUTHENTICATED answer."""

CREDENTIALS_UNAVAILABLE_MESSAGE: Final = "the server cannot check credentials now; retry later"
"""The message of the UNAVAILABLE answer when the key store fails."""

_TENANT: Final[contextvars.ContextVar[str]] = contextvars.ContextVar(
    "routeopt_tenant", default=DEFAULT_TENANT
)


def current_tenant() -> str:
    """The tenant of the call being served (the default tenant outside an authenticated
    call)."""
    return _TENANT.get()


class Authenticator:
    """Finds the tenant of a call (module docstring). ``keys``: the key store (None: keys are
    not accepted); ``certificate_tenants``: the server verifies client certificates (mutual
    TLS), whose common names name tenants."""

    def __init__(self, keys: KeyStore | None, *, certificate_tenants: bool) -> None:
        self._keys = keys
        self._certificate_tenants = certificate_tenants

    def required(self) -> bool:
        """Whether calls must be authenticated."""
        return self._certificate_tenants or (self._keys is not None and self._keys.enabled())

    def tenant(self, context: grpc.ServicerContext) -> tuple[str | None, str]:
        """The caller's tenant (None: not authenticated) and what the log says about it."""
        if not self.required():
            return DEFAULT_TENANT, "open"
        keys = _keys_in(context.invocation_metadata() or ())
        if len(keys) > 1:
            return None, "several different keys"
        if keys:
            (key,) = keys
            if self._keys is None:
                return None, "keys are not accepted"
            tenant, key_id, why = self._keys.check(key)
            if tenant is None:
                return None, why
            return tenant, f"key {key_id}"
        if self._certificate_tenants:
            names = context.auth_context().get("x509_common_name") or []
            if len(names) == 1:
                name = bytes(names[0]).decode(errors="replace")
                if TENANT_PATTERN.fullmatch(name):
                    return name, "client certificate"
                return None, "client certificate whose common name is not a tenant name"
            return None, "no key and no client certificate common name"
        return None, "no key"


def _keys_in(metadata: Sequence[tuple[str, str | bytes]]) -> set[str]:
    """The API keys a call carries (distinct)."""
    keys: set[str] = set()
    for name, value in metadata:
        if isinstance(value, bytes):
            continue
        if name == API_KEY_HEADER:
            keys.add(value.strip())
        elif name == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                keys.add(token.strip())
            else:
                keys.add("")  # another scheme: not a key this server knows
    return keys


_Behaviour = Callable[[Any, grpc.ServicerContext], Any]


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every call to a service outside :data:`OPEN_SERVICES` before its method
    runs, and serves it with :func:`current_tenant` set."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.split("/")[1] in OPEN_SERVICES:
            return handler
        return self._wrap(handler, method)

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        """Authenticate the call (else answer it UNAUTHENTICATED; UNAVAILABLE when the key
        store cannot be read: nobody gets in then) and set its tenant (in the call's own
        context: see :meth:`_wrap`)."""
        try:
            tenant, why = self._authenticator.tenant(context)
        except Exception:
            log.exception("%s: cannot check the caller's credentials", method)
            context.abort(grpc.StatusCode.UNAVAILABLE, CREDENTIALS_UNAVAILABLE_MESSAGE)
            raise AssertionError("abort returned") from None  # pragma: no cover
        if tenant is None:
            log.warning("%s code=UNAUTHENTICATED peer=%s reason=%s", method, context.peer(), why)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
            raise AssertionError("abort returned")  # pragma: no cover
        _TENANT.set(tenant)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``handler`` whose behaviour authenticates first and runs in a context of its own
        (a copy of the thread's, with the tenant set): nothing leaks into the gRPC thread, even
        when a stream is abandoned and its generator finalized elsewhere."""

        def unary_response(behaviour: _Behaviour) -> _Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                self._enter(method, context)
                return behaviour(request, context)

            def run(request: Any, context: grpc.ServicerContext) -> Any:
                return contextvars.copy_context().run(call, request, context)

            return run

        def stream_response(behaviour: _Behaviour) -> _Behaviour:
            def start(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                self._enter(method, context)
                return iter(behaviour(request, context))

            def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                ctx = contextvars.copy_context()
                responses = ctx.run(start, request, context)
                try:
                    while True:
                        try:
                            response = ctx.run(next, responses)
                        except StopIteration:
                            return
                        yield response
                finally:
                    close = getattr(responses, "close", None)
                    if close is not None:
                        ctx.run(close)

            return run

        kinds: list[tuple[str, Callable[..., grpc.RpcMethodHandler], bool]] = [
            ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
            ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
            ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
            ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
        ]
        for attribute, make, streams in kinds:
            behaviour = getattr(handler, attribute)
            if behaviour is not None:
                wrapped = (stream_response if streams else unary_response)(behaviour)
                return make(
                    wrapped,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler  # pragma: no cover (every handler has one behaviour)


# -- TLS and where to listen -------------------------------------------------------------


def _read_pem(path: str, what: str, marker: str) -> bytes:
    """The PEM file ``path``; ValueError naming the flag's file when it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    if f"-----BEGIN {marker}".encode() not in data:
        raise ValueError(f"{what} {path} is not a PEM file with a {marker.lower()}")
    return data


def _tls_files(cert: str, key: str, client_ca: str | None) -> tuple[bytes, bytes, bytes | None]:
    """The certificate chain, private key and client CA read from their PEM files."""
    chain = _read_pem(cert, "TLS certificate", "CERTIFICATE")
    private = _read_pem(key, "TLS key", "")
    if b"PRIVATE KEY-----" not in private:
        raise ValueError(f"TLS key {key} is not a PEM file with a private key")
    roots = _read_pem(client_ca, "client CA", "CERTIFICATE") if client_ca else None
    return chain, private, roots


class _CertificateFiles:
    """The server's TLS files, read again when they change (a renewed certificate is used from
    the next connection on, without a restart)."""

    def __init__(self, cert: str, key: str, client_ca: str | None) -> None:
        self._files = (cert, key, client_ca)
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self.initial = self._configuration()

    def _stamps(self) -> tuple[tuple[int, int, int], ...]:
        stats = [os.stat(path) for path in self._files if path is not None]
        return tuple((st.st_mtime_ns, st.st_size, st.st_ino) for st in stats)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        chain, private, roots = _tls_files(*self._files)
        return grpc.ssl_server_certificate_configuration(
            [(private, chain)], root_certificates=roots
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration if a file changed since the last look, else None (gRPC calls
        this before each handshake). Unreadable or half-written files keep the current one."""
        with self._lock:
            try:
                stamp = self._stamps()
            except OSError:
                return None
            if stamp == self._stamp:
                return None
            self._stamp = stamp
            try:
                configuration = self._configuration()
            except ValueError as exc:
                log.warning("TLS files changed but cannot be used (%s); keeping the old ones", exc)
                return None
        log.info("TLS files changed: new connections use them")
        return configuration


def server_credentials(cert: str, key: str, client_ca: str | None = None) -> grpc.ServerCredentials:
    """TLS credentials of the server: its certificate chain and private key (PEM files), and
    with ``client_ca`` the CA that must have signed every client's certificate (mutual TLS: the
    handshake fails without one). The files are read again when they change (certificate
    renewal needs no restart). ValueError when a file is missing or not PEM."""
    try:
        files = _CertificateFiles(cert, key, client_ca)
    except OSError as exc:
        raise ValueError(f"cannot read the TLS files: {exc}") from None
    return grpc.dynamic_ssl_server_credentials(
        files.initial, files.fetch, require_client_authentication=client_ca is not None
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_problem(
    host: str, *, tls: bool, client_ca: bool, keys: bool, insecure: bool
) -> str | None:
    """Why the server must not listen on ``host`` (None: it may). Beyond loopback, calls must
    be encrypted (``tls``: ``--tls-cert``/``--tls-key``) and identify their tenant (API
    ``keys`` in the store, or a ``client_ca``), unless ``insecure`` (logged loudly here)."""
    if is_loopback(host) or (tls and (keys or client_ca)):
        return None
    missing = []
    if not tls:
        missing.append("no TLS (--tls-cert and --tls-key)")
    if not (keys or client_ca):
        missing.append(
            "no client identity (no API key: create one with 'routeopt keys create --tenant "
            "NAME --data-dir DIR'; or mutual TLS with --tls-client-ca)"
        )
    what = " and ".join(missing)
    if insecure:
        risks = []
        if not (keys or client_ca):
            risks.append(
                "anyone who can reach it can use it and read, cancel and delete every operation"
            )
        if not tls:
            secrets = " and API keys" if keys else ""
            risks.append(f"requests, responses{secrets} cross the network unencrypted")
        log.warning("INSECURE: listening on %s with %s, because of --insecure", host, what)
        log.warning("INSECURE: %s", "; ".join(risks))
        return None
    return (
        f"refusing to listen on {host} with {what}: use --host 127.0.0.1, add what is missing, "
        "or pass --insecure to accept the risk"
    )
