"""Certificate problems get located errors naming the file (spec 7.7; DESIGN principle 6):
an expired certificate, one whose key usage forbids encryption, a file that is not PEM, one
issued to another address; our own identity unreadable at start-up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from smtp_peers import OFFICER, T0, Pki, Relay, relay_config

from oohcore.channels import DeliveryStatus
from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore_smtp import CertificateError, SmtpChannel


def _folder_with(tmp_path: Path, pki: Pki, **kw: Any) -> Path:
    folder = tmp_path / "certs"
    folder.mkdir()
    pki.issue(folder / f"{OFFICER}.pem", address=OFFICER, **kw)
    return folder


def test_an_expired_certificate_fails_the_send_naming_the_file(
    tmp_path: Path, pki: Pki, relay: Relay, clock: ManualClock
) -> None:
    folder = _folder_with(
        tmp_path, pki, not_before=T0 - timedelta(days=400), not_after=T0 - timedelta(days=1)
    )
    channel = SmtpChannel(relay_config(relay, pki, certificates_dir=folder), clock=clock)
    result = channel.send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert f"{folder / (OFFICER + '.pem')}:1:1:" in (result.error or "")
    assert "expired on" in (result.error or "") and "renewed" in (result.error or "")
    assert relay.handler.received == []
    with pytest.raises(CertificateError) as info:
        channel.check_certificates()
    (problem,) = info.value.problems
    assert problem.path == str(folder / f"{OFFICER}.pem") and problem.code == "certificate.expired"


def test_a_certificate_expiring_while_the_channel_runs_stops_being_used(
    tmp_path: Path, pki: Pki, relay: Relay, clock: ManualClock
) -> None:
    folder = _folder_with(
        tmp_path, pki, not_before=T0 - timedelta(days=1), not_after=T0 + timedelta(hours=1)
    )
    channel = SmtpChannel(relay_config(relay, pki, certificates_dir=folder), clock=clock)
    assert channel.send(sample_message(OFFICER, channel="email")).status is DeliveryStatus.SENT
    clock.advance(timedelta(hours=2))
    result = channel.send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE and "expired" in (result.error or "")


def test_a_certificate_without_key_encipherment_is_refused(
    tmp_path: Path, pki: Pki, relay: Relay, clock: ManualClock
) -> None:
    folder = _folder_with(
        tmp_path,
        pki,
        not_before=T0 - timedelta(days=1),
        not_after=T0 + timedelta(days=30),
        encipherment=False,
    )
    channel = SmtpChannel(relay_config(relay, pki, certificates_dir=folder), clock=clock)
    result = channel.send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "keyEncipherment" in (result.error or "") and OFFICER in (result.error or "")
    assert relay.handler.received == []


def test_an_unreadable_pem_is_located_and_says_what_to_do(
    tmp_path: Path, pki: Pki, relay: Relay, clock: ManualClock
) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    bad = folder / f"{OFFICER}.pem"
    bad.write_text(
        "# exported from the directory\n\n-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    )
    channel = SmtpChannel(relay_config(relay, pki, certificates_dir=folder), clock=clock)
    result = channel.send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert (result.error or "").startswith(f"{bad}:3:1: the certificate cannot be read")
    not_pem = folder / "a.khan@example-borough.gov.uk.pem"
    not_pem.write_bytes(b"\x30\x82\x01\x0a binary DER")
    with pytest.raises(CertificateError) as info:
        channel.check_certificates()
    files = {p.path: p.code for p in info.value.problems}
    assert files == {str(bad): "certificate.unreadable", str(not_pem): "certificate.not_pem"}


def test_a_certificate_issued_to_another_address_is_refused(
    tmp_path: Path, pki: Pki, relay: Relay, clock: ManualClock
) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    pki.issue(
        folder / f"{OFFICER}.pem",
        address="someone.else@example-borough.gov.uk",
        not_before=T0 - timedelta(days=1),
        not_after=T0 + timedelta(days=30),
    )
    channel = SmtpChannel(relay_config(relay, pki, certificates_dir=folder), clock=clock)
    result = channel.send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "is for someone.else@example-borough.gov.uk, not" in (result.error or "")


def test_our_own_identity_unreadable_fails_at_start_up_naming_the_file(
    tmp_path: Path, pki: Pki, relay: Relay, clock: ManualClock
) -> None:
    broken = tmp_path / "identity.key"
    broken.write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CertificateError) as info:
        SmtpChannel(relay_config(relay, pki, identity_key=broken), clock=clock)
    assert str(info.value).startswith(f"{broken}:1:1: the private key cannot be read")
    missing = tmp_path / "nowhere.crt"
    with pytest.raises(CertificateError, match="the file does not exist") as info2:
        SmtpChannel(relay_config(relay, pki, identity_certificate=missing), clock=clock)
    assert info2.value.problems[0].path == str(missing)
