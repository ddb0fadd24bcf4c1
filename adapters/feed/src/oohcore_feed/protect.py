"""Signing (XML-DSig) and whole-file encryption (S/MIME) of feed documents (spec 7.8: "the
Service Provider must be able to encrypt such feeds and files if required").

* :func:`sign` adds one enveloped XML-DSig signature (RSA-SHA256 over exclusive-C14N, SHA-256
  digest, the signer's certificate in ``KeyInfo``) with ``signxml`` — an optional extra
  (``pip install oohcore-feed[sign]``). :func:`verify` checks one against a trusted certificate.
* :func:`encrypt` wraps a whole file in a CMS EnvelopedData (AES-256-CBC content encryption,
  RSA key transport to each recipient certificate), DER-encoded, with ``cryptography``. OpenSSL
  reads it: ``openssl cms -decrypt -inform DER -in 000000000001.xml.p7m -recip cert.pem
  -inkey key.pem -binary``. The bytes inside are exactly the (signed) XML document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from lxml import etree

from oohcore_feed.document import FeedDocumentError

__all__ = ["decrypt", "encrypt", "load_certificates", "sign", "verify"]


def load_certificates(pem: bytes, *, source: str) -> list[x509.Certificate]:
    """The certificates in a PEM file (one or more); a located error if there are none."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise FeedDocumentError(
            f"{source}: not a PEM certificate ({exc}); give the recipient's X.509 certificate "
            "in PEM form (-----BEGIN CERTIFICATE-----)"
        ) from None
    return certs


def encrypt(data: bytes, recipients: Sequence[x509.Certificate]) -> bytes:
    """``data`` as a DER CMS EnvelopedData for ``recipients`` (AES-256-CBC, RSA PKCS#1 v1.5)."""
    if not recipients:
        raise FeedDocumentError("encryption needs at least one recipient certificate")
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(data)
    for cert in recipients:
        builder = builder.add_recipient(cert)
    builder = builder.set_content_encryption_algorithm(algorithms.AES256)
    return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def decrypt(data: bytes, certificate: x509.Certificate, key: Any) -> bytes:
    """The inverse of :func:`encrypt`, for a consumer holding one recipient's key."""
    return pkcs7.pkcs7_decrypt_der(data, certificate, key, [])


def _signxml() -> Any:
    try:
        import signxml
    except ImportError:
        raise FeedDocumentError(
            "signing the feed needs the signxml library: install oohcore-feed[sign]"
        ) from None
    return signxml


def sign(
    root: etree._Element, *, key_pem: bytes, cert_pem: bytes, passphrase: bytes | None = None
) -> etree._Element:
    """``root`` with an enveloped XML-DSig signature appended as its last child."""
    signxml = _signxml()
    signer = signxml.XMLSigner(
        method=signxml.methods.enveloped,
        signature_algorithm=signxml.SignatureMethod.RSA_SHA256,
        digest_algorithm=signxml.DigestAlgorithm.SHA256,
        c14n_algorithm=signxml.CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    try:
        signed: etree._Element = signer.sign(
            root, key=key_pem, cert=cert_pem, passphrase=passphrase
        )
    except (ValueError, TypeError) as exc:
        raise FeedDocumentError(
            f"cannot sign the feed document: {type(exc).__name__} (check the signing key, its "
            "certificate and the key's password)"
        ) from None
    return signed


def verify(data: bytes, *, cert_pem: bytes) -> etree._Element:
    """Check the enveloped signature of a signed feed document against the trusted ``cert_pem``
    and return the signed root (what the signature covers). Raises on a bad signature."""
    from oohcore_feed.safexml import parse_xml

    signxml = _signxml()
    root = parse_xml(data, source="<signed feed document>")
    result = signxml.XMLVerifier().verify(
        root,
        x509_cert=cert_pem.decode(),
        expect_config=signxml.SignatureConfiguration(
            signature_methods=frozenset({signxml.SignatureMethod.RSA_SHA256}),
            digest_algorithms=frozenset({signxml.DigestAlgorithm.SHA256}),
        ),
    )
    signed: etree._Element = result.signed_xml
    return signed
