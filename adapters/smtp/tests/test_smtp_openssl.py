"""What we encrypt OpenSSL decrypts; what OpenSSL encrypts we decrypt (spec 7.7)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from smtp_peers import OFFICER, OpenSSL, Pki, Relay

from oohcore.channels import DeliveryStatus
from oohcore.channels.testing import sample_message
from oohcore_smtp import NotForUsError, decrypt_message


def _identity(pki: Pki) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(pki.identity_key.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key, x509.load_pem_x509_certificate(pki.identity_cert.read_bytes())


def test_openssl_decrypts_what_we_send_and_headers_hold_no_case_data(
    make_channel: Any, relay: Relay, pki: Pki, openssl: OpenSSL
) -> None:
    message = sample_message(OFFICER, channel="email")
    result = make_channel().send(message)
    assert result.status is DeliveryStatus.SENT, result.error
    (got,) = relay.handler.received
    assert got.tls and got.login is not None
    raw = got.data
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    for value in message.fields.values():
        assert str(value) not in head
    assert "[OFFICIAL-SENSITIVE]" in head
    (openssl.folder / "in.eml").write_bytes(raw)
    printed = openssl("cms", "-cmsout", "-print", "-in", "in.eml")
    assert b"aes-256-cbc" in printed
    clear = openssl(
        "cms", "-decrypt", "-in", "in.eml", "-inkey", pki.officer_key, "-recip", pki.officer_cert
    )
    assert b"No heating" in clear
    assert b"Housing repairs: K7Q2M4" in clear  # the real subject, protected inside


@pytest.mark.parametrize("command", ["cms", "smime"])
def test_we_decrypt_what_openssl_encrypts_with_aes256(
    pki: Pki, openssl: OpenSSL, command: str
) -> None:
    (openssl.folder / "m.txt").write_bytes(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nBoiler fixed at 12 Heron Way\r\n"
    )
    raw = openssl(command, "-encrypt", "-aes256", "-in", "m.txt", pki.identity_cert)
    key, cert = _identity(pki)
    decrypted = decrypt_message(b"Subject: update\r\n" + raw, key, cert)
    assert decrypted.get_content().strip() == "Boiler fixed at 12 Heron Way"
    assert decrypted["Subject"] == "update"


def test_a_message_encrypted_to_someone_else_fails_clearly(pki: Pki, openssl: OpenSSL) -> None:
    (openssl.folder / "m.txt").write_bytes(b"Content-Type: text/plain\r\n\r\nhello\r\n")
    raw = openssl("cms", "-encrypt", "-aes256", "-in", "m.txt", pki.other_cert)
    key, cert = _identity(pki)
    with pytest.raises(NotForUsError, match="not to our certificate"):
        decrypt_message(raw, key, cert)


def test_a_signed_message_verifies_with_openssl_cms_verify(
    make_channel: Any, relay: Relay, pki: Pki, openssl: OpenSSL
) -> None:
    result = make_channel(sign=True).send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.SENT, result.error
    (openssl.folder / "in.eml").write_bytes(relay.handler.received[0].data)
    clear = openssl(
        "cms", "-decrypt", "-in", "in.eml", "-inkey", pki.officer_key, "-recip", pki.officer_cert
    )
    assert b"multipart/signed" in clear
    (openssl.folder / "signed.eml").write_bytes(clear)
    content = openssl("cms", "-verify", "-in", "signed.eml", "-CAfile", pki.ca)
    assert b"No heating" in content
    tampered = clear.replace(b"No heating", b"No hexting", 1)
    assert tampered != clear
    (openssl.folder / "tampered.eml").write_bytes(tampered)
    with pytest.raises(AssertionError, match="failed"):
        openssl("cms", "-verify", "-in", "tampered.eml", "-CAfile", pki.ca)
