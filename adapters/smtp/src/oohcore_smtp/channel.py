"""The SMTP channel: e-mail to on-call officers through the organisation's relay (5.2.3.3, 7.7).

``send`` is synchronous (the runner calls it from a worker thread): it runs aiosmtplib's
coroutine on an event loop of its own and gives up within ``ChannelInfo.send_timeout``. Every
answer of the relay becomes a :class:`~oohcore.channels.DeliveryResult` (RFC 5321, section
4.2.1): a 2xx reply is ``sent``; a 4xx reply, a refused or dropped connection or a timeout is
``retry``; a 5xx reply is ``permanent`` (the outbox fails the message at once and the engine
escalates, 8.14). So are the refusals that no retry can mend: a relay that does not offer
STARTTLS (we never fall back to sending in clear), a TLS certificate that does not verify, a
login the relay refuses, a recipient without the certificate that encryption requires.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl
import threading
from collections.abc import Coroutine, Mapping
from email.message import EmailMessage
from typing import Any, TypeVar

import aiosmtplib
from cryptography import x509

from oohcore.channels import ChannelError, ChannelInfo, DeliveryResult, OutboundMessage, Receipt
from oohcore.clock import Clock, SystemClock

from .certificates import CertificateError, Identity, RecipientCertificates, load_identity
from .compose import ComposedEmail, compose
from .config import SmtpConfig, parse_address
from .receipts import receipt_from_email
from .smime import SmimeError, decrypt_message

__all__ = ["MAX_BODY", "MAX_SUBJECT", "SmtpChannel"]

log = logging.getLogger(__name__)

#: the longest body we take, in characters (relays commonly refuse messages over 10-25 MB;
#: a referral is a few hundred characters)
MAX_BODY = 1_000_000
#: the longest subject, marking prefix included (RFC 5322 lines fold; mail programs show ~80)
MAX_SUBJECT = 200

_T = TypeVar("_T")


class SmtpChannel:
    """E-mail over SMTP with STARTTLS, S/MIME encryption and signing, protective marking.

    ``SmtpChannel(config, clock=...)`` takes an :class:`SmtpConfig` (or a mapping of its
    fields, or its fields as keywords). It reads our identity at once and fails with a located
    :class:`~oohcore_smtp.CertificateError` when a file is wrong; recipients' certificates are
    read when first needed (call :meth:`check_certificates` at start-up to read them all).
    """

    name = "smtp"

    def __init__(
        self,
        config: SmtpConfig | Mapping[str, Any] | None = None,
        /,
        *,
        clock: Clock | None = None,
        **settings: Any,
    ) -> None:
        if config is None:
            config = SmtpConfig(**settings)
        elif not isinstance(config, SmtpConfig):
            config = SmtpConfig(**{**dict(config), **settings})
        elif settings:
            config = config.model_copy(update=settings)
        self.config: SmtpConfig = config
        self._clock: Clock = clock or SystemClock()
        self.info = ChannelInfo(
            carries=frozenset({"email"}),
            contact_field="email",
            max_body=MAX_BODY,
            max_subject=MAX_SUBJECT,
            rate_limit=config.rate_limit,
            receipts=config.request_receipts,
            requires=("aiosmtplib", "cryptography"),
            config=SmtpConfig,
            send_timeout=config.send_timeout,
        )
        self.certificates = RecipientCertificates(config.certificates_dir, config.certificates)
        self.identity: Identity | None = None
        if config.identity_certificate is not None and config.identity_key is not None:
            password = config.identity_key_password
            self.identity = load_identity(
                config.identity_certificate,
                config.identity_key,
                password=password.get_secret_value().encode() if password else None,
                now=self._clock.now(),
            )
        self._tls = _tls_context(config)
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"SmtpChannel(host={c.host!r}, port={c.port}, transport={c.transport!r}, "
            f"from_address={c.from_address!r}, encryption={c.encryption!r})"
        )

    # -- sending --------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> DeliveryResult:
        if self._closed:
            raise ChannelError("SmtpChannel: send after close")
        try:
            recipient = parse_address(message.recipient)
        except ValueError as exc:
            return DeliveryResult.permanent(f"{exc}: correct the officer's e-mail address")
        if len(message.body) > MAX_BODY:
            return DeliveryResult.permanent(
                f"the body is {len(message.body)} characters; the e-mail channel takes {MAX_BODY}"
            )
        try:
            composed = self.compose(message, recipient)
        except (CertificateError, SmimeError) as exc:
            return DeliveryResult.permanent(str(exc))
        if isinstance(composed, DeliveryResult):
            return composed
        timeout = self.config.send_timeout.total_seconds()
        try:
            reply = _run(asyncio.wait_for(self._deliver(composed.raw, recipient, message), timeout))
        except Exception as exc:
            result = self._classify(exc)
            log.info(
                "e-mail %s to %s not sent: %s",
                composed.message_id,
                recipient,
                result.error,
            )
            return result
        log.info("e-mail %s to %s accepted by the relay: %s", composed.message_id, recipient, reply)
        return DeliveryResult.sent(composed.message_id)

    def compose(self, message: OutboundMessage, recipient: str) -> ComposedEmail | DeliveryResult:
        """The e-mail ``send`` would send for ``message`` (or why it cannot be sent)."""
        now = self._clock.now()
        wanted = message.meta.get("encryption_required")
        required = self.config.encryption == "required" or wanted is True
        cert: x509.Certificate | None = None
        if required or self.config.encryption == "if_certificate":
            cert = self.certificates.find(recipient, now=now)
        if required and cert is None:
            return DeliveryResult.permanent(
                f"encryption is required but there is no certificate for {recipient}: put "
                f"{recipient}.pem in the certificates folder "
                f"({self.config.certificates_dir or 'none configured'}) or add it to "
                "'certificates'"
            )
        signer = self.identity if self.config.sign else None
        composed = compose(
            message,
            config=self.config,
            recipient=recipient,
            now=now,
            encrypt_to=[cert] if cert is not None else [],
            signer=signer,
            max_subject=MAX_SUBJECT,
        )
        if composed.subject_withheld:
            log.warning(
                "e-mail %s: the subject held case data, so the clear subject is %r and the real "
                "one travels inside the message; keep case data out of subjects",
                composed.message_id,
                composed.subject,
            )
        return composed

    async def _deliver(self, raw: bytes, recipient: str, message: OutboundMessage) -> str:
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.transport == "implicit",
            start_tls=c.transport == "starttls",  # True: no STARTTLS offered is an error
            tls_context=self._tls,
            local_hostname=c.local_hostname,
            timeout=c.send_timeout.total_seconds(),
        )
        await client.connect()
        try:
            if c.username is not None and c.password is not None:
                await client.login(c.username, c.password.get_secret_value())
            mail_options: list[str] = []
            rcpt_options: list[str] = []
            if c.request_receipts and client.supports_extension("dsn"):
                # RFC 3461: a delivery report for this message, quoting our key as its ENVID
                mail_options = ["RET=HDRS", f"ENVID={_xtext(message.idempotency_key)}"]
                rcpt_options = ["NOTIFY=SUCCESS,FAILURE,DELAY"]
            _, reply = await client.sendmail(
                c.bounce_address,
                [recipient],
                raw,
                mail_options=mail_options,
                rcpt_options=rcpt_options,
            )
        except BaseException:
            client.close()
            raise
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):  # the message is accepted already
            client.close()
        return reply

    def _classify(self, exc: Exception) -> DeliveryResult:
        """The delivery result for what went wrong (never showing the password)."""
        result = _classify(exc, self.config)
        password = self.config.password
        if password is not None and result.error and password.get_secret_value() in result.error:
            secret = password.get_secret_value()
            result = DeliveryResult(
                result.status,
                error=result.error.replace(secret, "**********"),
                retry_after=result.retry_after,
            )
        return result

    # -- inbound --------------------------------------------------------------------------------

    def decrypt(self, raw: bytes) -> EmailMessage:
        """An inbound encrypted message decrypted with our identity (7.7)."""
        if self.identity is None:
            raise SmimeError(
                "no identity_certificate / identity_key configured: we cannot decrypt mail"
            )
        return decrypt_message(raw, self.identity.key, self.identity.certificate)

    def receipt(self, raw: bytes) -> Receipt | None:
        """The receipt an inbound e-mail carries for one of our messages (11.7.3i), or None."""
        return receipt_from_email(raw, identity=self.identity, received_at=self._clock.now())

    def check_certificates(self) -> None:
        """Read every recipient certificate now; raise one located error listing all problems."""
        self.certificates.check_all(now=self._clock.now())

    def close(self) -> None:
        """Nothing is held between sends (one connection per message); safe to call twice."""
        with self._lock:
            self._closed = True


def _classify(exc: Exception, config: SmtpConfig) -> DeliveryResult:
    where = f"{config.host}:{config.port}"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        if all(400 <= code < 500 for code in codes):
            return DeliveryResult.retry(f"the relay {where} refused the recipient for now: {text}")
        return DeliveryResult.permanent(f"the relay {where} refused the recipient: {text}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if 400 <= exc.code < 500:
            return DeliveryResult.retry(f"the relay {where} cannot log us in for now: {exc.code}")
        return DeliveryResult.permanent(
            f"the relay {where} refused our login ({exc.code} {exc.message}); check username "
            "and password in the SMTP configuration"
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
        if exc.code == 530:  # RFC 3207: "Must issue a STARTTLS command first"
            return DeliveryResult.permanent(
                f"the relay {where} requires STARTTLS ({text}); set transport to 'starttls'"
            )
        if 400 <= exc.code < 500:
            return DeliveryResult.retry(f"the relay {where} answered {text}")
        if 500 <= exc.code < 600:
            return DeliveryResult.permanent(f"the relay {where} answered {text}")
        return DeliveryResult.retry(f"the relay {where} gave an unexpected reply: {text}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryResult.permanent(
            f"the relay {where}'s TLS certificate does not verify ({exc.verify_message}); "
            "nothing was sent. Check the host name, or set tls_ca_file to the CA that issued it"
        )
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return DeliveryResult.retry(
            f"the relay {where} did not answer within {config.send_timeout.total_seconds():g} s"
        )
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return DeliveryResult.retry(f"cannot reach the relay {where}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return DeliveryResult.permanent(f"the relay {where} does not support this message: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        text = str(exc)
        if "STARTTLS" in text:
            return DeliveryResult.permanent(
                f"the relay {where} does not offer STARTTLS, so nothing was sent (we never send "
                "in clear to a relay that should encrypt); fix the relay, or use transport "
                "'implicit' if it speaks TLS on connect"
            )
        if "AUTH" in text:
            return DeliveryResult.permanent(
                f"the relay {where} does not offer a login (AUTH) on this connection; check "
                "host, port and username"
            )
        return DeliveryResult.retry(f"SMTP error with the relay {where}: {text}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryResult.retry(f"TLS with the relay {where} failed: {exc}")
    if isinstance(exc, OSError):  # connection refused, reset, no route …
        return DeliveryResult.retry(f"cannot reach the relay {where}: {exc}")
    return DeliveryResult.retry(f"unexpected error sending to {where}: {type(exc).__name__}")


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    cafile = str(config.tls_ca_file) if config.tls_ca_file is not None else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError.single(
            str(config.tls_ca_file),
            f"tls_ca_file cannot be read as PEM CA certificates ({exc}); give the CA "
            "certificate(s) of the relay's TLS certificate",
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _xtext(value: str) -> str:
    """RFC 3461 xtext: printable ASCII except '+' and '=', others as +HH."""
    return "".join(
        ch if 33 <= ord(ch) <= 126 and ch not in "+=" else f"+{ord(ch):02X}"
        for ch in value.encode("utf-8").decode("latin-1")
    )


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on a loop of its own, from any thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # called from a thread that runs an event loop: use a thread of our own
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
