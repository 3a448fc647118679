"""Throwaway certificates for the TLS tests, made with the ``openssl`` command (EC P-256, valid
for a day): a CA, a server certificate for ``localhost`` and ``127.0.0.1``, client
certificates with a given common name, and another CA that signed none of them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pki", "make_pki", "make_server_cert"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(name: str, cwd: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key",
        cwd=cwd,
    )  # fmt: skip


def _ca(name: str, cwd: Path) -> None:
    _key(name, cwd)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd,
    )  # fmt: skip


def _signed(name: str, cn: str, extensions: str, ca: str, cwd: Path) -> None:
    _key(name, cwd)
    _openssl(
        "req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd
    )
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files in :attr:`directory`."""

    directory: Path

    def path(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def ca(self) -> str:
        return self.path("ca.pem")

    @property
    def other_ca(self) -> str:
        return self.path("other-ca.pem")

    @property
    def server_cert(self) -> str:
        return self.path("server.pem")

    @property
    def server_key(self) -> str:
        return self.path("server.key")

    def client(self, cn: str) -> tuple[str, str]:
        """The certificate and key of the client with common name ``cn``."""
        return self.path(f"client-{cn}.pem"), self.path(f"client-{cn}.key")


def make_pki(directory: Path, client_names: tuple[str, ...] = ()) -> Pki:
    """A CA, a server certificate (localhost, 127.0.0.1), one client certificate per name in
    ``client_names`` (signed by the CA) and another CA, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    _ca("ca", directory)
    _ca("other-ca", directory)
    make_server_cert(directory, "server", "ca")
    for name in client_names:
        _signed(f"client-{name}", name, "extendedKeyUsage=clientAuth\n", "ca", directory)
    return Pki(directory)


def make_server_cert(directory: Path, name: str, ca: str) -> tuple[Path, Path]:
    """A server certificate for localhost and 127.0.0.1 signed by CA ``ca`` (of
    :func:`make_pki`): ``name.pem`` and ``name.key`` in ``directory``."""
    extensions = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    _signed(name, "localhost", extensions, ca, directory)
    return directory / f"{name}.pem", directory / f"{name}.key"
