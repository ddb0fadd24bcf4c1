"""S/MIME (RFC 8551) with ``cryptography``: encrypt, sign, and decrypt inbound mail (spec 7.7).

Outbound, a MIME entity (the body and any attachment) is optionally signed (a detached
SHA-256 signature, ``multipart/signed``), then encrypted to the recipients' certificates with
AES-256-CBC (RSA key transport): the result is an ``application/pkcs7-mime`` entity that
``openssl cms -decrypt`` and every S/MIME mail program reads. Only the body is encrypted: the
headers (From, To, Subject, Date) travel in clear, which is why no case data goes in them.

Inbound, :func:`decrypt_message` reads an encrypted message sent to us with our identity and
returns the decrypted message. It reads AES-128/256-CBC content with RSA PKCS#1 v1.5 key
transport (what ``openssl cms -encrypt -aes256`` writes); a message encrypted for someone else,
or with another algorithm, fails with a :class:`SmimeError` that says so.
"""

from __future__ import annotations

import base64
import email.policy
from collections.abc import Sequence
from email.message import EmailMessage
from email.parser import BytesParser

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from oohcore.channels import ChannelError

__all__ = [
    "NotEncryptedError",
    "NotForUsError",
    "SmimeError",
    "decrypt_message",
    "encrypt_entity",
    "is_encrypted",
    "sign_entity",
]

_POLICY = email.policy.default
_ENVELOPED = {"application/pkcs7-mime", "application/x-pkcs7-mime"}


class SmimeError(ChannelError):
    """A message cannot be encrypted, signed or decrypted."""


class NotForUsError(SmimeError):
    """The message is encrypted, but not to our certificate."""


class NotEncryptedError(SmimeError):
    """The message is not S/MIME encrypted (``decrypt_message`` was given a clear message)."""


def encrypt_entity(entity: bytes, recipients: Sequence[x509.Certificate]) -> EmailMessage:
    """``entity`` (a canonical CRLF MIME entity) encrypted to ``recipients`` with AES-256-CBC.

    Returns the ``application/pkcs7-mime`` part (no message headers yet).
    """
    if not recipients:
        raise SmimeError("no recipient certificate to encrypt to")
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(entity)
    for cert in recipients:
        builder = builder.add_recipient(cert)
    der = builder.set_content_encryption_algorithm(algorithms.AES256).encrypt(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]
    )
    part = EmailMessage(policy=_POLICY)
    part["Content-Type"] = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'
    part["Content-Disposition"] = 'attachment; filename="smime.p7m"'
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(_base64_lines(der))
    return part


def sign_entity(entity: bytes, certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """``entity`` wrapped in ``multipart/signed`` with a detached SHA-256 signature (CRLF)."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(certificate, key, hashes.SHA256())
        .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
    )


def is_encrypted(message: EmailMessage) -> bool:
    """Whether ``message`` is an S/MIME enveloped (encrypted) message."""
    if message.get_content_type() not in _ENVELOPED:
        return False
    smime_type = str(message.get_param("smime-type", "enveloped-data")).lower()
    return smime_type in {"enveloped-data", "authenveloped-data"}


def decrypt_message(
    raw: bytes, key: rsa.RSAPrivateKey, certificate: x509.Certificate
) -> EmailMessage:
    """The message ``raw`` (RFC 5322 bytes) decrypted with our ``key`` and ``certificate``.

    The result is the decrypted MIME entity, with the outer message's headers (From, To,
    Subject, Date, Message-ID …) added where the encrypted part does not carry its own (RFC 9788
    protected headers win over the outer ones). Raises :class:`NotEncryptedError` for a message
    that is not encrypted, :class:`NotForUsError` for one encrypted to someone else, and
    :class:`SmimeError` for one we cannot read (damaged, or an algorithm we do not read).
    """
    outer = BytesParser(policy=_POLICY).parsebytes(raw)
    assert isinstance(outer, EmailMessage)
    if not is_encrypted(outer):
        raise NotEncryptedError(
            f"the message is not S/MIME encrypted (its type is {outer.get_content_type()}); "
            "read it as it is, or ask the sender to encrypt it"
        )
    if str(outer.get_param("smime-type", "")).lower() == "authenveloped-data":
        raise SmimeError(
            "the message is encrypted with AES-GCM (authEnvelopedData), which we do not read; "
            "ask the sender to use AES-256-CBC (e.g. openssl cms -encrypt -aes256)"
        )
    der = outer.get_payload(decode=True)
    if not isinstance(der, bytes) or not der:
        raise SmimeError("the encrypted message has no content; ask the sender to send it again")
    try:
        clear = pkcs7.pkcs7_decrypt_der(der, certificate, key, [])
    except ValueError as exc:
        raise _decrypt_error(str(exc), certificate) from None
    except Exception as exc:  # the library's other refusals (unsupported algorithm …)
        raise SmimeError(
            f"the encrypted message cannot be read ({type(exc).__name__}: {exc}); we read "
            "AES-128/256-CBC with RSA: ask the sender to encrypt with AES-256"
        ) from None
    inner = BytesParser(policy=_POLICY).parsebytes(clear)
    assert isinstance(inner, EmailMessage)
    present = {k.lower() for k in inner}
    for name, value in outer.items():
        lname = name.lower()
        if lname.startswith("content-") or lname == "mime-version" or lname in present:
            continue
        inner[name] = value
    return inner


def _decrypt_error(detail: str, certificate: x509.Certificate) -> SmimeError:
    low = detail.lower()
    ours = f"subject {certificate.subject.rfc4514_string()}, serial {certificate.serial_number:x}"
    if "recipient" in low:
        return NotForUsError(
            f"the message is encrypted, but not to our certificate ({ours}); ask the sender to "
            "encrypt to that certificate (send them its PEM file)"
        )
    if "algorithm" in low or "unsupported" in low or "cipher" in low:
        return SmimeError(
            f"the message is encrypted with an algorithm we do not read ({detail}); we read "
            "AES-128/256-CBC with RSA PKCS#1 v1.5: ask the sender to use AES-256 "
            "(openssl's -aes256)"
        )
    return SmimeError(f"the encrypted message cannot be read ({detail})")


def _base64_lines(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\r\n"
