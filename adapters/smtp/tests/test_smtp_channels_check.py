"""``oohcore channels --check`` reads the S/MIME recipients' certificates an smtp channel names
(7.7) and reports each bad one twice located: where channels.yaml names it, and the file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from smtp_peers import OFFICER, OTHER_OFFICER, SENDER, Pki, _leaf, _rsa

from oohcore.cli import main

NOW = datetime.now(UTC)  # the CLI reads the system clock: certificates are dated around it
MAPPED = "m.ross@example-borough.gov.uk"
SERVER = "s.tls@example-borough.gov.uk"


def _server_certificate(pki: Pki, path: Path) -> None:
    """A TLS server's certificate named for an e-mail address: the wrong purpose."""
    cert = _leaf(
        pki._ca_key,
        pki._ca_cert,
        _rsa(),
        cn=SERVER,
        san=[x509.RFC822Name(SERVER)],
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=300),
        server=True,
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_garbage_expired_and_wrong_purpose_certificates_are_each_reported(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "certificates"
    folder.mkdir()
    good = pki.issue(
        folder / "good@example-borough.gov.uk.pem",
        address="good@example-borough.gov.uk",
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=300),
    )
    (folder / f"{OFFICER}.pem").write_text("this is not a certificate\n")
    pki.issue(
        folder / f"{OTHER_OFFICER}.pem",
        address=OTHER_OFFICER,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
    )
    _server_certificate(pki, folder / f"{SERVER}.pem")
    mapped = tmp_path / "mapped.pem"
    mapped.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  email:\n"
        "    adapter: smtp\n"
        "    host: 127.0.0.1\n"
        "    transport: none\n"
        f"    from_address: {SENDER}\n"
        f"    certificates_dir: {folder}\n"
        "    certificates:\n"
        f"      {MAPPED}: {mapped}\n"
    )
    assert main(["channels", "--check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    for file, what in [
        (folder / f"{OFFICER}.pem", "no certificate found"),
        (folder / f"{OTHER_OFFICER}.pem", "expired on"),
        (folder / f"{SERVER}.pem", "lacks emailProtection"),
    ]:
        assert any(
            line.startswith(f"{path}:7:23: channel 'email': recipient certificate {file}:")
            and what in line
            for line in lines
        ), (file, err)
    col = len(f"      {MAPPED}: ") + 1  # where the mapping names the file
    assert any(
        line.startswith(
            f"{path}:9:{col}: channel 'email': recipient certificate {mapped}:1:1: "
            "the certificate cannot be read"
        )
        for line in lines
    ), err
    assert str(good) not in err and len(lines) == 4
    # with the bad files gone, the same configuration is valid
    for bad in (
        folder / f"{OFFICER}.pem",
        folder / f"{OTHER_OFFICER}.pem",
        folder / f"{SERVER}.pem",
    ):
        bad.unlink()
    path.write_text("\n".join(path.read_text().splitlines()[:7]) + "\n")
    assert main(["channels", "--check", str(path)]) == 0
