"""oohcore-smtp: e-mail to on-call officers over SMTP, with S/MIME (spec 5.2.3.3, 7.7, 11.7.3i).

Registered as the ``smtp`` channel in the entry-point group ``oohcore.channels``::

    from oohcore_smtp import SmtpChannel, SmtpConfig

    channel = SmtpChannel(SmtpConfig(host="smtp.example.gov.uk", username="ooh", password="…",
                                     from_address="ooh@example.gov.uk",
                                     certificates_dir=Path("certs"),
                                     protective_marking="OFFICIAL-SENSITIVE"))

See the distribution's README for configuration, limits, receipts and delivery guarantees.
"""

from .certificates import CertificateError, Identity, RecipientCertificates, load_identity
from .channel import MAX_BODY, MAX_SUBJECT, SmtpChannel
from .compose import ComposedEmail, compose, key_from_message_id, message_id_for
from .config import Encryption, SmtpConfig, Transport
from .receipts import (
    AutoReceiptReport,
    ReceiptException,
    SentForReceipt,
    auto_receipt_report,
    receipt_from_email,
)
from .smime import NotEncryptedError, NotForUsError, SmimeError, decrypt_message

__all__ = [
    "MAX_BODY",
    "MAX_SUBJECT",
    "AutoReceiptReport",
    "CertificateError",
    "ComposedEmail",
    "Encryption",
    "Identity",
    "NotEncryptedError",
    "NotForUsError",
    "ReceiptException",
    "RecipientCertificates",
    "SentForReceipt",
    "SmimeError",
    "SmtpChannel",
    "SmtpConfig",
    "Transport",
    "auto_receipt_report",
    "compose",
    "decrypt_message",
    "key_from_message_id",
    "load_identity",
    "message_id_for",
    "receipt_from_email",
]
