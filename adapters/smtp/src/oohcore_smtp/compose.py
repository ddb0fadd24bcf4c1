"""Turning an :class:`~oohcore.channels.OutboundMessage` into the bytes of an e-mail.

What travels in clear and what does not (7.7):

* **Headers** (From, To, Subject, Date, Message-ID, the protective marking) are never
  encrypted, so they carry no case data. The subject is the protective-marking prefix plus the
  message's subject; if that subject holds any value of the message's case data
  (``OutboundMessage.fields``: a name, an address, a phone number, the reference …) it is
  *withheld*: the clear subject becomes a neutral one made from the message's purpose, and the
  real subject travels inside the encrypted part as a protected header (RFC 9788, with the
  ``protected-headers="v1"`` form that Thunderbird reads), where a mail program that supports
  it shows it.
* **The body** (the message's text, and optionally ``case.json`` with the case data) is the
  MIME entity that is signed and encrypted.

The Message-ID carries the idempotency key (``<ooh.KEY@domain>``, the key percent-encoded), so
that a receiver can drop a second delivery of the same message and a receipt can be matched to
the message it answers (:func:`key_from_message_id`).
"""

from __future__ import annotations

import email.policy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, unquote

from cryptography import x509

from oohcore.channels import OutboundMessage

from .certificates import Identity
from .config import SmtpConfig
from .smime import encrypt_entity, sign_entity

__all__ = ["ComposedEmail", "compose", "key_from_message_id", "message_id_for"]

# CRLF line endings and no line longer than 998 octets: what SMTP carries (RFC 5321/5322)
_SMTP = email.policy.SMTP
_MID = re.compile(r"<?\s*ooh\.([A-Za-z0-9_%-]+)@([^>\s]+)\s*>?")
_SPACE = re.compile(r"\s+")
#: the shortest value of the case data looked for in a subject (shorter ones, like a flag's
#: "1", would match innocent subjects)
_MIN_LEAK = 3


@dataclass(frozen=True, slots=True)
class ComposedEmail:
    """An e-mail ready for the relay."""

    raw: bytes
    message_id: str
    subject: str
    encrypted: bool
    signed: bool
    subject_withheld: bool


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID that carries idempotency ``key`` (reversible: see
    :func:`key_from_message_id`)."""
    return f"<ooh.{quote(key, safe='-_')}@{domain}>"


def key_from_message_id(message_id: str) -> str | None:
    """The idempotency key in a Message-ID we made, or None for anyone else's."""
    match = _MID.fullmatch(message_id.strip())
    return unquote(match.group(1)) if match else None


def compose(
    message: OutboundMessage,
    *,
    config: SmtpConfig,
    recipient: str,
    now: datetime,
    encrypt_to: Sequence[x509.Certificate] = (),
    signer: Identity | None = None,
    max_subject: int | None = None,
) -> ComposedEmail:
    """The e-mail for ``message``: headers in clear, body signed by ``signer`` (if given) and
    encrypted to ``encrypt_to`` (if any)."""
    marking = _one_line(
        str(message.meta.get("protective_marking") or config.protective_marking or "")
    )
    message_id = message_id_for(message.idempotency_key, config.id_domain)
    full_subject = _one_line(message.subject) or _neutral_subject(message.purpose)
    withheld = _carries_case_data(full_subject, message)
    clear_subject = _neutral_subject(message.purpose) if withheld else full_subject
    prefix = config.marking_subject_format.format(marking=marking) if marking else ""
    clear_subject = _clip(prefix + clear_subject, max_subject)

    protected = bool(encrypt_to) or signer is not None
    entity = _body(message, attach_case_data=config.attach_case_data)
    if protected:
        # RFC 9788 header protection: the real headers inside the protected part
        entity["Subject"] = _clip(prefix + full_subject, max_subject)
        entity["From"] = config.from_address
        entity["To"] = recipient
        entity["Message-ID"] = message_id
        entity.set_param("protected-headers", "v1")
        if encrypt_to:
            entity.set_param("hp", "cipher")
        else:
            entity.set_param("hp", "clear")
    body = entity.as_bytes(policy=_SMTP)
    if signer is not None:
        body = sign_entity(body, signer.certificate, signer.key)
    if encrypt_to:
        body = encrypt_entity(body, encrypt_to).as_bytes(policy=_SMTP)

    head = EmailMessage(policy=_SMTP)
    head["From"] = config.from_address
    head["To"] = recipient
    if config.reply_to:
        head["Reply-To"] = config.reply_to
    head["Subject"] = clear_subject
    head["Date"] = format_datetime(now)
    head["Message-ID"] = message_id
    if marking:
        head[config.marking_header] = marking
    if config.request_receipts:
        # 11.7.3i: ask the officer's mail program for an automatic read receipt (RFC 8098).
        # No Auto-Submitted header: it would tell that program to send nothing back.
        head["Disposition-Notification-To"] = config.receipts_to or config.bounce_address
    if not body.lower().startswith(b"mime-version:"):
        head["MIME-Version"] = "1.0"
    headers = head.as_bytes(policy=_SMTP)
    assert headers.endswith(b"\r\n\r\n")
    raw = headers[:-2] + body
    return ComposedEmail(
        raw=raw,
        message_id=message_id,
        subject=clear_subject,
        encrypted=bool(encrypt_to),
        signed=signer is not None,
        subject_withheld=withheld,
    )


def _body(message: OutboundMessage, *, attach_case_data: bool) -> EmailMessage:
    text = EmailMessage(policy=_SMTP)
    text.set_content(message.body, subtype="plain", charset="utf-8", cte="quoted-printable")
    del text["MIME-Version"]
    if not (attach_case_data and message.fields):
        return text
    mixed = EmailMessage(policy=_SMTP)
    mixed.make_mixed()
    del mixed["MIME-Version"]
    mixed.attach(text)
    case = EmailMessage(policy=_SMTP)
    case.set_content(
        json.dumps(_case_data(message), ensure_ascii=False, indent=2, sort_keys=True, default=str),
        subtype="json",
        charset="utf-8",
        cte="quoted-printable",
        disposition="attachment",
        filename="case.json",
    )
    del case["MIME-Version"]
    mixed.attach(case)
    return mixed


def _case_data(message: OutboundMessage) -> dict[str, Any]:
    data: dict[str, Any] = dict(message.fields)
    if message.reference is not None:
        data.setdefault("reference", message.reference)
    return data


def _carries_case_data(subject: str, message: OutboundMessage) -> bool:
    haystack = subject.casefold()
    squeezed = _SPACE.sub("", haystack)
    for value in _leak_candidates(message.fields, message.reference):
        needle = value.casefold()
        if needle in haystack or _SPACE.sub("", needle) in squeezed:
            return True
    return False


def _leak_candidates(fields: Mapping[str, Any], reference: str | None) -> list[str]:
    found: list[str] = []
    values: list[Any] = [*fields.values(), reference]
    while values:
        value = values.pop()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, Mapping):
            values.extend(value.values())
        elif isinstance(value, list | tuple | set | frozenset):
            values.extend(value)
        else:
            text = _one_line(str(value))
            if len(_SPACE.sub("", text)) >= _MIN_LEAK:
                found.append(text)
    return found


def _neutral_subject(purpose: str) -> str:
    words = str(purpose).replace(".", " ").replace("_", " ").strip()
    return (words[:1].upper() + words[1:]) if words else "Message"


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _clip(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"
