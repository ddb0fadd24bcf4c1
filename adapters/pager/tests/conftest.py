"""Peers for the pager tests: a local SNPP server (RFC 1861) and a local HTTPS pager gateway,
each started and stopped by the fixture, on 127.0.0.1 only; certificates made by OpenSSL's
command line."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oohcore.clock import ManualClock
from oohcore_pager.testing import GatewayTestServer, SnppTestServer

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA certificate a client trusts
    cert: Path  # the server's certificate (CN and SAN 127.0.0.1), signed by the CA
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA and a server certificate for 127.0.0.1, made with OpenSSL's command line."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need OpenSSL's command line: install the 'openssl' package")
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=oohcore test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr", cwd=d,
    )  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem", cwd=d,
    )  # fmt: skip
    return Certificates(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def snpp_server() -> Iterator[SnppTestServer]:
    with SnppTestServer() as server:
        yield server


@pytest.fixture
def gateway(certificates: Certificates) -> Iterator[GatewayTestServer]:
    with GatewayTestServer(tls=certificates.server_context(), token="Bearer k-123") as server:
        yield server


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
