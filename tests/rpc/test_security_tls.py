"""TLS and mutual TLS on in-process servers (:mod:`tests.rpc.secured`): the right CA and a key,
a wrong CA, plaintext against TLS, a renewed certificate without a restart, mutual TLS without a
client certificate, and a certificate naming the tenant."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from rpc.auth import UNAUTHENTICATED_MESSAGE
from rpc.client import Credentials, connect
from tests.rpc.secured import Client, Running, failure, serve, stop
from tests.rpc.tls_certs import Pki, make_pki, make_server_cert

# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ("acme", "globex", "not a tenant!"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Running]:
    """TLS; each test makes the keys it needs."""
    running = serve(
        tmp_path_factory.mktemp("tls") / "data", tls_cert=pki.server_cert, tls_key=pki.server_key
    )
    running.tls = Credentials(ca_file=pki.ca)
    yield running
    stop(running)


def test_tls_with_the_right_ca_and_a_key_works(tls_server: Running) -> None:
    key = tls_server.keys.create("acme").key
    client = tls_server.client(key)
    try:
        assert client.submit() in client.list()
    finally:
        client.close()


def test_tls_fails_with_a_wrong_ca_or_without_tls(tls_server: Running, pki: Pki) -> None:
    key = tls_server.keys.create("acme").key
    wrong_ca = tls_server.client(key, ca_file=pki.other_ca)
    plaintext = Client(connect(tls_server.target, Credentials(api_key=key)))
    try:
        for client in (wrong_ca, plaintext):
            error = failure(lambda c=client: c.list())  # type: ignore[misc]
            assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            error = failure(
                lambda c=client: c.health.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[misc]
            )
            assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        wrong_ca.close()
        plaintext.close()


def test_a_renewed_certificate_is_used_without_a_restart(tmp_path: Path, pki: Pki) -> None:
    """The server's files are replaced by a certificate of another CA: new connections get it."""
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki.server_cert, cert)
    shutil.copy(pki.server_key, key)
    running = serve(tmp_path / "data", tls_cert=str(cert), tls_key=str(key))
    try:
        old, new = running.client(ca_file=pki.ca), running.client(ca_file=pki.other_ca)
        assert isinstance(old.list(), list)
        assert failure(new.list).code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        old.close()
        new.close()
        renewed_cert, renewed_key = make_server_cert(pki.directory, "renewed", "other-ca")
        cert.write_text("half-written")  # a renewal in progress: the old files stay in use
        old = running.client(ca_file=pki.ca)
        assert isinstance(old.list(), list)
        old.close()
        shutil.copy(renewed_key, key)
        shutil.copy(renewed_cert, cert)
        old, new = running.client(ca_file=pki.ca), running.client(ca_file=pki.other_ca)
        assert isinstance(new.list(), list)
        assert failure(old.list).code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        old.close()
        new.close()
    finally:
        stop(running)


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Running]:
    """Mutual TLS, no keys: the certificate names the tenant."""
    running = serve(
        tmp_path_factory.mktemp("mtls") / "data",
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        tls_client_ca=pki.ca,
    )
    running.tls = Credentials(ca_file=pki.ca)
    yield running
    stop(running)


def test_mtls_refuses_a_client_without_a_certificate(mtls_server: Running) -> None:
    client = mtls_server.client()  # TLS, right CA, no client certificate
    try:
        for call in (
            client.list,
            lambda: client.health.Check(health_pb2.HealthCheckRequest(), timeout=5),
        ):
            assert failure(call).code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        client.close()


def test_mtls_certificate_names_the_tenant(mtls_server: Running, pki: Pki) -> None:
    cert, key = pki.client("acme")
    acme = mtls_server.client(cert_file=cert, key_file=key)
    cert, key = pki.client("globex")
    globex = mtls_server.client(cert_file=cert, key_file=key)
    try:
        health = acme.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        name = acme.submit()
        assert name in acme.list()
        assert name not in globex.list()
        assert failure(lambda: globex.get(name)).code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        # a key, when sent, decides the tenant (and must be valid)
        globex_key = mtls_server.keys.create("globex").key
        cert, key = pki.client("acme")
        acme_cert_globex_key = mtls_server.client(globex_key, cert_file=cert, key_file=key)
        assert name not in acme_cert_globex_key.list()
        acme_cert_globex_key.close()
        bad_key = mtls_server.client("ro_bad", cert_file=cert, key_file=key)
        assert failure(bad_key.list).code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        bad_key.close()
    finally:
        acme.close()
        globex.close()


def test_mtls_certificate_whose_name_is_not_a_tenant_is_unauthenticated(
    mtls_server: Running, pki: Pki
) -> None:
    cert, key = pki.client("not a tenant!")
    client = mtls_server.client(cert_file=cert, key_file=key)
    try:
        error = failure(client.list)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert error.details() == UNAUTHENTICATED_MESSAGE  # type: ignore[attr-defined]
    finally:
        client.close()
