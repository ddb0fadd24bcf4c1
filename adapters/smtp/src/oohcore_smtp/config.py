"""The SMTP channel's configuration: one relay, one identity and one certificate folder per
organisation (each council its own relay and certificates).

A frozen pydantic model; the relay password and the private key's passphrase are ``SecretStr``,
so they never appear in a ``repr``, a log line or an error. Validation refuses the settings that
would quietly weaken the channel: sending in clear to a relay on another machine, a login over a
connection that is not encrypted, signing or reading encrypted mail without our own certificate
and key.
"""

from __future__ import annotations

from datetime import timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from oohcore.channels import is_loopback

__all__ = ["Encryption", "SmtpConfig", "Transport"]

#: ``starttls``: connect in clear, then ask for STARTTLS and refuse to go on without it (587);
#: ``implicit``: TLS from the first byte (465); ``none``: no TLS, for a relay on this machine only.
Transport = Literal["starttls", "implicit", "none"]

#: ``required``: every message is encrypted, and one to an address without a certificate fails;
#: ``if_certificate``: encrypted when the recipient has a certificate, otherwise sent in clear
#: unless the message itself asks for encryption (``meta["encryption_required"]``, set per
#: service option, 7.7); ``off``: never encrypted unless the message asks for it.
Encryption = Literal["required", "if_certificate", "off"]


class SmtpConfig(BaseModel):
    """How one organisation's e-mail leaves: relay, login, identity, certificates, marking.

    Spec 7.7 (encryption where the organisation requires it, reading inbound encrypted mail,
    protective marking), 8.14 (e-mails despatched and received), 11.7.3i (auto-receipts).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- the relay ----------------------------------------------------------------------------
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    transport: Transport = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    #: CA certificates (PEM) that the relay's TLS certificate must chain to; the system's
    #: trust store when None
    tls_ca_file: Path | None = None
    #: the name our EHLO gives (None: the local host name)
    local_hostname: str | None = None

    # -- the sender ---------------------------------------------------------------------------
    from_address: str
    #: the envelope sender (MAIL FROM), where bounces and delivery reports go; ``from_address``
    #: when None
    envelope_from: str | None = None
    reply_to: str | None = None
    #: the right-hand side of our Message-IDs; the domain of ``from_address`` when None
    message_id_domain: str | None = None

    # -- encryption and signing (7.7) ----------------------------------------------------------
    encryption: Encryption = "required"
    #: a folder of recipients' certificates, one PEM file per address, named ``<address>.pem``
    certificates_dir: Path | None = None
    #: per-officer certificate files by address (these win over the folder)
    certificates: dict[str, Path] = Field(default_factory=dict)
    #: sign every message with our identity (S/MIME detached signature, then encrypted)
    sign: bool = False
    #: our own certificate and private key (PEM): sign with them, and decrypt inbound mail
    identity_certificate: Path | None = None
    identity_key: Path | None = None
    identity_key_password: SecretStr | None = None

    # -- protective marking (7.7) ----------------------------------------------------------------
    #: e.g. ``OFFICIAL-SENSITIVE``: put at the start of every subject and in ``marking_header``;
    #: a message's ``meta["protective_marking"]`` (set per service option) overrides it
    protective_marking: str | None = None
    marking_header: str = "X-Protective-Marking"
    #: how the marking starts the subject; ``{marking}`` is replaced by it
    marking_subject_format: str = "[{marking}] "

    # -- auto-receipts (11.7.3i) ---------------------------------------------------------------
    #: ask the recipient's mail program for a read receipt (RFC 8098 Disposition-Notification-To)
    #: and, where the relay offers DSN (RFC 3461), for a delivery report
    request_receipts: bool = False
    #: where receipts go; ``envelope_from`` (or ``from_address``) when None
    receipts_to: str | None = None

    # -- the message ------------------------------------------------------------------------
    #: add the case data (``OutboundMessage.fields``) as a JSON attachment ``case.json`` beside
    #: the text, for officers who log requests into a back-office system (7.6)
    attach_case_data: bool = False

    # -- limits ---------------------------------------------------------------------------------
    send_timeout: timedelta = timedelta(seconds=30)
    rate_limit: float | None = Field(default=None, gt=0)

    @field_validator("from_address", "envelope_from", "reply_to", "receipts_to")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value

    @field_validator("certificates")
    @classmethod
    def _addresses_as_keys(cls, value: dict[str, Path]) -> dict[str, Path]:
        return {parse_address(k).lower(): v for k, v in value.items()}

    @field_validator("send_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("send_timeout must be positive")
        return value

    @field_validator("marking_subject_format")
    @classmethod
    def _has_marking(cls, value: str) -> str:
        if "{marking}" not in value:
            raise ValueError("marking_subject_format must contain {marking}")
        return value

    @model_validator(mode="after")
    def _safe(self) -> SmtpConfig:
        if self.transport == "none":
            if not is_loopback(self.host):
                raise ValueError(
                    f"transport 'none' sends in clear: it is allowed only for a relay on this "
                    f"machine (localhost, 127.0.0.1, ::1), not {self.host!r}; use 'starttls' "
                    "(port 587) or 'implicit' (port 465)"
                )
            if self.username is not None or self.password is not None:
                raise ValueError(
                    "a login over transport 'none' would send the password in clear; use "
                    "'starttls' or 'implicit', or drop username and password"
                )
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if (self.identity_certificate is None) != (self.identity_key is None):
            raise ValueError("give both identity_certificate and identity_key, or neither")
        if self.sign and self.identity_certificate is None:
            raise ValueError("sign is on but there is no identity_certificate / identity_key")
        return self

    @property
    def bounce_address(self) -> str:
        return self.envelope_from or self.from_address

    @property
    def id_domain(self) -> str:
        return self.message_id_domain or parse_address(self.from_address).split("@", 1)[1]


def parse_address(value: str) -> str:
    """The bare address ``local@domain`` in ``value``; ValueError when it is not one."""
    try:
        addr = Address(addr_spec=value.strip())
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise ValueError(f"{value!r} is not an e-mail address (local@domain)") from exc
    if not addr.username or not addr.domain or "." not in addr.domain.strip("."):
        raise ValueError(f"{value!r} is not an e-mail address (local@domain)")
    return addr.addr_spec
