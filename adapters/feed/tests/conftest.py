"""The feed's real peers: OpenSSL's command line (certificates, ``cms -decrypt``), ``xmllint``
(the XSD check a consumer would run), ``xmlsec1`` (a second XML-DSig verifier), and a consumer
reading the folder by cursor."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from oohcore.clock import ManualClock
from oohcore_feed import NAMESPACE, parse_xml, read_feed

KEY_PASSWORD = "feed-signing-pass-7Qx"


def need(command: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(
            f"{command} is not installed: the feed's tests use it as a real peer "
            "(make test installs it: scripts/ensure-debian-packages)"
        )
    return path


def run(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(a) for a in args], input=input, capture_output=True, check=False, timeout=60
    )


@dataclass(frozen=True)
class KeyPair:
    key: Path
    cert: Path
    password: str | None = None


def _make_pair(folder: Path, name: str, *, password: str | None = None) -> KeyPair:
    openssl = need("openssl")
    key, cert = folder / f"{name}-key.pem", folder / f"{name}-cert.pem"
    args: list[str | Path] = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-days", "2"]
    args += ["-subj", f"/CN=oohcore feed test {name}", "-keyout", key, "-out", cert]
    args += ["-passout", f"pass:{password}"] if password else ["-noenc"]
    done = run(*args)
    assert done.returncode == 0, done.stderr.decode()
    return KeyPair(key, cert, password)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """A signer (password-protected key), a council recipient and a stranger, made by OpenSSL."""
    folder = tmp_path_factory.mktemp("pki")
    return {
        "signer": _make_pair(folder, "signer", password=KEY_PASSWORD),
        "council": _make_pair(folder, "council"),
        "stranger": _make_pair(folder, "stranger"),
    }


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 12, 2, 3, 15, tzinfo=UTC))


class FolderConsumer:
    """A consumer of a plain (unencrypted) feed folder: what it finds, by cursor."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def documents(self) -> list[etree._Element]:
        page = read_feed(self.directory, after=0, limit=10_000)
        return [parse_xml(e.read_bytes(), source=str(e.path)) for e in page.entries]

    def received_keys(self) -> Sequence[str]:
        keys: list[str] = []
        for doc in self.documents():
            keys += [str(el.get("key")) for el in doc.iter(f"{{{NAMESPACE}}}serviceRequest")]
        return keys


@pytest.fixture
def xmllint() -> Callable[[str, Path], subprocess.CompletedProcess[bytes]]:
    """``xmllint --schema XSD DOCUMENT`` (libxml2's command line: a consumer's own check)."""
    binary = need("xmllint")

    def check(xsd: str, document: Path) -> subprocess.CompletedProcess[bytes]:
        return run(binary, "--noout", "--nonet", "--schema", xsd, document)

    return check


@pytest.fixture
def tool() -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """Run a command-line peer (openssl, xmlsec1), failing the test if it is not installed."""

    def call(command: str, *args: str | Path, input: bytes | None = None) -> Any:
        return run(need(command), *args, input=input)

    return call


@pytest.fixture
def consumer() -> Callable[[Path], FolderConsumer]:
    return FolderConsumer
