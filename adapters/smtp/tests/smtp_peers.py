"""The SMTP adapter's real peers: a test PKI, an aiosmtpd server on loopback, OpenSSL.

* ``pki``: a certificate authority, the officers' S/MIME certificates, our own identity and the
  relay's TLS certificate, made with ``cryptography`` into a temporary folder.
* ``relay``: an aiosmtpd server on 127.0.0.1 that requires STARTTLS and AUTH, records what it
  accepted, and answers with scripted SMTP replies (``relay.handler.rcpt_reply`` …).
* ``openssl``: runs OpenSSL's command line (``openssl cms``) in that folder.

Time: the S/MIME certificates are valid around the injected clock's start (``T0``); the relay's
TLS certificate around the real time, because the TLS library checks it against the system clock.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oohcore.clock import ManualClock
from oohcore_smtp import SmtpChannel, SmtpConfig, key_from_message_id

T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)  # 3 a.m.: when the tests' calls happen
OFFICER = "j.patel@example-borough.gov.uk"
OTHER_OFFICER = "a.khan@example-borough.gov.uk"
SENDER = "ooh@example-borough.gov.uk"
USERNAME = "ooh-relay"
PASSWORD = "relay-pw-7f3K9q-never-printed"


# -- the PKI --------------------------------------------------------------------------------------


@dataclass
class Pki:
    folder: Path
    ca: Path
    certs_dir: Path  # recipients' certificates, one <address>.pem each
    officer_key: Path
    officer_cert: Path
    other_key: Path
    other_cert: Path
    identity_key: Path
    identity_cert: Path
    server_key: Path
    server_cert: Path
    _ca_key: rsa.RSAPrivateKey = field(repr=False)
    _ca_cert: x509.Certificate = field(repr=False)

    def issue(
        self,
        path: Path,
        *,
        address: str,
        not_before: datetime,
        not_after: datetime,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
        encipherment: bool = True,
    ) -> Path:
        """Write an S/MIME certificate for ``address`` to ``path`` (PEM) and return it."""
        key = key or _rsa()
        cert = _leaf(
            self._ca_key,
            self._ca_cert,
            key,
            cn=address,
            san=[x509.RFC822Name(address)],
            not_before=not_before,
            not_after=not_after,
            encipherment=encipherment,
        )
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Borough Council (test)"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _leaf(
    ca_key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    cn: str,
    san: list[x509.GeneralName],
    not_before: datetime,
    not_after: datetime,
    encipherment: bool = True,
    server: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=encipherment,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH]
                if server
                else [ExtendedKeyUsageOID.EMAIL_PROTECTION]
            ),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _rsa()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("oohcore test CA"))
        .issuer_name(_name("oohcore test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=3650))
        .not_valid_after(datetime.now(UTC) + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = folder / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs_dir = folder / "certificates"
    certs_dir.mkdir()

    def smime(address: str, stem: str) -> tuple[Path, Path]:
        key = _rsa()
        cert = _leaf(
            ca_key,
            ca_cert,
            key,
            cn=address,
            san=[x509.RFC822Name(address)],
            not_before=T0 - timedelta(days=30),
            not_after=T0 + timedelta(days=365),
        )
        pem = folder / f"{stem}.crt"
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return _write_key(folder / f"{stem}.key", key), pem

    officer_key, officer_cert = smime(OFFICER, "officer")
    shutil.copy(officer_cert, certs_dir / f"{OFFICER}.pem")
    other_key, other_cert = smime(OTHER_OFFICER, "other")
    identity_key, identity_cert = smime(SENDER, "identity")
    server_key = _rsa()
    real_now = datetime.now(UTC)
    server = _leaf(
        ca_key,
        ca_cert,
        server_key,
        cn="localhost",
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        not_before=real_now - timedelta(days=1),
        not_after=real_now + timedelta(days=30),
        server=True,
    )
    server_cert = folder / "server.crt"
    server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    return Pki(
        folder=folder,
        ca=ca,
        certs_dir=certs_dir,
        officer_key=officer_key,
        officer_cert=officer_cert,
        other_key=other_key,
        other_cert=other_cert,
        identity_key=identity_key,
        identity_cert=identity_cert,
        server_key=_write_key(folder / "server.key", server_key),
        server_cert=server_cert,
        _ca_key=ca_key,
        _ca_cert=ca_cert,
    )


# -- the relay ------------------------------------------------------------------------------------


@dataclass
class Received:
    """One message the relay accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None
    mail_options: list[str]

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)


class RecordingHandler:
    """Accepts mail and keeps it; answers with a scripted reply where a test sets one."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_reply: str | None = None  # e.g. "550 5.1.1 no such user"
        self.data_reply: str | None = None  # e.g. "451 4.3.0 try again later"
        self.connections = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        login = USERNAME if session.authenticated else None
        content = envelope.original_content or b""
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                data=content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
                tls=session.ssl is not None,
                login=login,
                mail_options=list(envelope.mail_options),
            )
        )
        return "250 2.0.0 queued"


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class Relay:
    host: str
    port: int
    handler: RecordingHandler
    controller: Controller

    def keys(self) -> list[str]:
        keys = []
        for item in self.handler.received:
            key = key_from_message_id(str(item.message["Message-ID"]))
            if key is not None:
                keys.append(key)
        return keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_relay(pki: Pki, *, starttls: bool = True, auth: bool = True) -> Relay:
    handler = RecordingHandler()
    kwargs: dict[str, Any] = {}
    if starttls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(pki.server_cert, pki.server_key)
        kwargs.update(tls_context=tls, require_starttls=True)
    if auth:
        kwargs.update(authenticator=_authenticator, auth_required=True)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10, **kwargs)
    controller.start()
    return Relay("127.0.0.1", port, handler, controller)


@pytest.fixture
def relay(pki: Pki) -> Iterator[Relay]:
    r = start_relay(pki)
    yield r
    r.controller.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def relay_config(relay: Relay, pki: Pki, **overrides: Any) -> SmtpConfig:
    settings: dict[str, Any] = {
        "host": relay.host,
        "port": relay.port,
        "username": USERNAME,
        "password": PASSWORD,
        "tls_ca_file": pki.ca,
        "from_address": SENDER,
        "certificates_dir": pki.certs_dir,
        "identity_certificate": pki.identity_cert,
        "identity_key": pki.identity_key,
        "protective_marking": "OFFICIAL-SENSITIVE",
        "send_timeout": timedelta(seconds=10),
    }
    settings.update(overrides)
    return SmtpConfig(**settings)


@pytest.fixture
def make_channel(relay: Relay, pki: Pki, clock: ManualClock) -> Iterator[Any]:
    made: list[SmtpChannel] = []

    def make(**overrides: Any) -> SmtpChannel:
        channel = SmtpChannel(relay_config(relay, pki, **overrides), clock=clock)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


# -- OpenSSL ------------------------------------------------------------------------------------


@dataclass
class OpenSSL:
    folder: Path

    def __call__(self, *args: str | Path, input: bytes | None = None) -> bytes:
        done = subprocess.run(
            ["openssl", *map(str, args)],
            input=input,
            capture_output=True,
            cwd=self.folder,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"openssl {' '.join(map(str, args))} failed ({done.returncode}):\n"
                + done.stderr.decode(errors="replace")
            )
        return done.stdout


@pytest.fixture
def openssl(tmp_path: Path) -> OpenSSL:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed (make test installs it)")
    return OpenSSL(tmp_path)
