"""The feed channel: each service request becomes a numbered XML document (spec 7.8).

One channel per organisation (each council its own folder, field selection and certificates).
``send`` renders the message as a ``serviceRequests`` document holding one ``serviceRequest``,
checks it against the shipped XSD, signs it (XML-DSig) and encrypts it (S/MIME) when configured,
and publishes it in the feed folder once per idempotency key (:mod:`oohcore_feed.folder`).
A consumer reads the folder from its cursor (:func:`oohcore_feed.read_feed`) and may answer with
an acknowledgement document, which :meth:`FeedChannel.receipts` turns into receipts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from oohcore.channels import (
    ChannelError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    Receipt,
    ReceiptState,
)
from oohcore.channels.inbound import instant
from oohcore.clock import Clock, SystemClock
from oohcore_feed import protect
from oohcore_feed.document import (
    ACK_NAMESPACE,
    FeedDocumentError,
    check,
    feed_document,
    service_request,
)
from oohcore_feed.folder import FeedFolder
from oohcore_feed.safexml import XMLInputError, parse_xml

__all__ = ["FeedChannel", "FeedConfig"]


class FeedConfig(BaseModel):
    """An organisation's feed (7.8). Paths are read when the channel is built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: the feed folder (one per organisation); created if missing
    directory: Path
    #: when set, a message of any other organisation is refused (7.10)
    organisation_id: str | None = None
    #: the fields the organisation asked for (7.8); None: every field of the request.
    #: The reference, the service option and the UPRN are always written (7.11).
    fields: tuple[str, ...] | None = None
    #: per service option id, its own selection (overrides ``fields``)
    option_fields: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    #: recipient certificates (PEM): when given, every document is S/MIME-encrypted to them
    encrypt_to: tuple[Path, ...] = ()
    #: the signing key (PEM) and its certificate: when given, every document is signed
    sign_key: Path | None = None
    sign_cert: Path | None = None
    sign_key_password: SecretStr | None = None
    #: fsync documents and the index before a send returns (turn off only for tests)
    fsync: bool = True


def _config_problem(exc: ValidationError) -> ChannelError:
    # Name the fields and what is wrong, never the values (a password may be among them).
    lines = [
        f"  - {'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    ]
    return ChannelError("the feed channel's configuration is not valid:\n" + "\n".join(lines))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ChannelError(f"{path}: cannot read the feed's {what}: {exc.strerror}") from None


class FeedChannel:
    """Writes each service request as a numbered, XSD-checked XML document (see the module)."""

    name = "feed"

    def __init__(
        self, config: FeedConfig | None = None, *, clock: Clock | None = None, **settings: Any
    ) -> None:
        """``FeedChannel(FeedConfig(...))`` or ``FeedChannel(directory=..., fields=[...])``.
        ``clock`` stamps each document's ``generatedAt``."""
        if config is None:
            try:
                config = FeedConfig.model_validate(settings)
            except ValidationError as exc:
                raise _config_problem(exc) from None
        elif settings:
            raise ChannelError("give the feed channel a FeedConfig or settings, not both")
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._recipients = []
        for path in config.encrypt_to:
            self._recipients.extend(
                protect.load_certificates(_read(path, "recipient certificate"), source=str(path))
            )
        self._sign: tuple[bytes, bytes, bytes | None] | None = None
        if (config.sign_key is None) != (config.sign_cert is None):
            raise ChannelError("the feed channel signs with both sign_key and sign_cert: give both")
        if config.sign_key is not None and config.sign_cert is not None:
            protect._signxml()  # fail now, not at the first message, if signxml is missing
            password = config.sign_key_password
            self._sign = (
                _read(config.sign_key, "signing key"),
                _read(config.sign_cert, "signing certificate"),
                password.get_secret_value().encode() if password else None,
            )
        self._suffix = ".xml.p7m" if self._recipients else ".xml"
        requires = ("lxml", "cryptography") + (("signxml",) if self._sign else ())
        self.info = ChannelInfo(
            carries=frozenset({"feed"}),
            contact_field=None,
            receipts=True,
            requires=requires,
            config=FeedConfig,
            send_timeout=timedelta(seconds=30),
        )
        try:
            self._folder = FeedFolder(config.directory, fsync=config.fsync)
        except OSError as exc:
            raise ChannelError(
                f"{config.directory}: cannot open the feed folder: {exc.strerror}"
            ) from None

    def __repr__(self) -> str:
        return (
            f"FeedChannel(directory={str(self.config.directory)!r}, "
            f"organisation_id={self.config.organisation_id!r}, signed={self._sign is not None}, "
            f"encrypted={bool(self._recipients)})"
        )

    @property
    def folder(self) -> FeedFolder:
        return self._folder

    def send(self, message: OutboundMessage) -> DeliveryResult:
        org = self.config.organisation_id
        if org is not None and message.organisation_id != org:
            return DeliveryResult.permanent(
                f"this feed belongs to organisation {org!r}, not {message.organisation_id!r}"
            )
        option = message.fields.get("service_option") or message.meta.get("service_option")
        select = self.config.option_fields.get(str(option), self.config.fields)

        def render(sequence: int) -> bytes:
            entry = service_request(message, sequence, select=select)
            doc = feed_document(message.organisation_id, self._clock.now(), [entry])
            check(doc)  # 7.8: every document written matches the published XSD
            if self._sign is not None:
                key, cert, password = self._sign
                doc = protect.sign(doc, key_pem=key, cert_pem=cert, passphrase=password)
                check(doc)
            data: bytes = etree.tostring(doc, xml_declaration=True, encoding="UTF-8")
            if self._recipients:
                data = protect.encrypt(data, self._recipients)
            return data

        try:
            sequence, duplicate = self._folder.append(message.idempotency_key, self._suffix, render)
        except FeedDocumentError as exc:
            return DeliveryResult.permanent(str(exc))
        except OSError as exc:  # disk full, permissions: may clear, try again later
            return DeliveryResult.retry(
                f"{self.config.directory}: cannot write the feed: {exc.strerror}"
            )
        return DeliveryResult.sent(f"{sequence:012d}", duplicate=duplicate)

    def receipts(self, acknowledgement: bytes, *, after: int = 0) -> list[Receipt]:
        """Receipts for the documents after ``after`` that a consumer's acknowledgement
        (``schemas/feed-ack-1.xsd``) covers: delivered, or a permanent failure for those it
        names as rejected. The document is read with the safe parser and checked against its
        XSD; a bad one raises :class:`~oohcore_feed.safexml.XMLInputError`."""
        source = "feed acknowledgement"
        root = parse_xml(acknowledgement, source=source)
        try:
            check(root, schema="feed-ack-1.xsd")
        except FeedDocumentError as exc:
            raise XMLInputError(source, root.sourceline or 1, 1, str(exc)) from None
        org = self.config.organisation_id
        if org is not None and root.get("organisation") != org:
            raise XMLInputError(
                source,
                root.sourceline or 1,
                1,
                f"acknowledges organisation {root.get('organisation')!r}, not {org!r}",
            )
        at = _ack_time(source, root)
        through = _sequence(source, root, root.get("through"), "through")
        rejected = {
            _sequence(source, el, el.get("sequence"), "sequence"): (el.text or "").strip()[:500]
            for el in root.iter(f"{{{ACK_NAMESPACE}}}rejected")
        }
        out: list[Receipt] = []
        for sequence in range(after + 1, through + 1):
            key = self._folder.key_of(sequence)
            if key is None:
                raise XMLInputError(
                    source,
                    root.sourceline or 1,
                    1,
                    f"acknowledges document {sequence}, which this feed has not written",
                )
            reason = rejected.get(sequence)
            out.append(
                Receipt(
                    channel=self.name,
                    state=ReceiptState.DELIVERED
                    if reason is None
                    else ReceiptState.PERMANENT_FAILURE,
                    at=at,
                    provider_ref=f"{sequence:012d}",
                    idempotency_key=key,
                    detail=reason or None,
                )
            )
        return out

    def close(self) -> None:
        self._folder.close()


def _ack_time(source: str, root: Any) -> datetime:
    """The acknowledgement's ``at``: xs:dateTime allows ``24:00:00`` and years past 9999,
    which no Python datetime holds; those are refused as located errors like any other."""
    try:
        return instant(root.get("at"))
    except ValueError as exc:
        raise XMLInputError(source, root.sourceline or 1, 1, f"'at': {exc}") from None


def _sequence(source: str, element: Any, value: object, name: str) -> int:
    """A document sequence number (at most 12 digits, as the feed numbers its documents)."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise XMLInputError(
            source,
            element.sourceline or 1,
            1,
            f"'{name}' is not a document number (whole, at most 12 digits)",
        )
    return int(text)
