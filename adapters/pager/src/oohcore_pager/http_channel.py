"""The ``pager-http`` channel: pages through a provider's HTTPS gateway, in one documented JSON
shape (README, "The HTTP gateway shape"), for providers that offer paging over HTTP.

Request: ``POST <url>`` with ``Content-Type: application/json``, ``Idempotency-Key: <key>``,
the configured authentication header, and ``{"pager_id", "text", "reference",
"idempotency_key", "purpose"}`` (plus ``"subject"`` when ``send_subject``). A gateway that
honours ``Idempotency-Key`` answers a repeated key with the first answer and pages once.

Answers: any ``2xx`` is sent (``{"id": ...}`` is the provider's reference); ``408``, ``409``
(the same key is still being processed), ``425``, ``429`` and every ``5xx`` are ``retry``, with
``Retry-After`` (seconds or an HTTP date) passed on, capped at :data:`MAX_RETRY_AFTER`; a
redirect and every other ``4xx`` (``400``/``404``/``422`` a bad pager id or text, ``401``/``403``
refused credentials, ``413`` too long) are ``permanent``. No connection, a TLS failure other
than an untrusted certificate, or a time-out is ``retry``; an untrusted certificate is
``permanent`` (a configuration fault: escalate rather than wait).

Every send is over within ``send_timeout`` as a whole (a gateway answering one byte a second is
cut off at the deadline), and an answer over :data:`MAX_ANSWER` bytes is not read
(:mod:`oohcore.channels.deadline`): a ``2xx`` is still ``sent`` (without the gateway's id), any
other answer is judged on its status alone.

Delivery reports: a gateway that reports back POSTs ``{"id", "idempotency_key", "status",
"at", "detail"}`` to the host; :func:`receipt_from_callback` turns one into a
:class:`~oohcore.channels.Receipt`.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from oohcore.channels import (
    MAX_RETRY_AFTER,
    ChannelError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    Receipt,
    ReceiptState,
    https_endpoint,
    retry_after,
    tls_verify,
)
from oohcore.channels.deadline import (
    Answer,
    AnswerRefused,
    Deadline,
    DeadlineExceeded,
    exchange,
)
from oohcore.channels.inbound import bearer_matches, instant, json_document
from oohcore.clock import Clock, SystemClock

from .config import PageRateLimit, parse_config
from .ledger import Duplicate, Outcome, PageLedger, Wait
from .text import ascii_text, page_text

__all__ = [
    "MAX_ANSWER",
    "MAX_RETRY_AFTER",
    "PagerHttpChannel",
    "PagerHttpConfig",
    "ReceiptError",
    "receipt_from_callback",
]

logger = logging.getLogger("oohcore_pager.http")

#: the longest wait a gateway's Retry-After is allowed to impose on a page
_RETRY_STATUSES = frozenset({408, 409, 425, 429})
#: the largest gateway answer read (an acknowledgement is a few hundred bytes)
MAX_ANSWER = 64 * 1024
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_PAGER_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,64}$")


class PagerHttpConfig(BaseModel):
    """How to reach one provider's pager gateway (per organisation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="the gateway's endpoint: https://... (http:// only to loopback)")
    auth_header: str = Field(default="Authorization", description="the header the key goes in")
    auth_value: SecretStr | None = Field(default=None, description='e.g. "Bearer <key>"')
    ca_file: Path | None = Field(default=None, description="CA bundle that signs the gateway")
    max_length: int = Field(default=240, ge=32, le=4000, description="longest page text")
    send_subject: bool = Field(default=False, description='send the subject as "subject"')
    receipts: bool = Field(default=False, description="the gateway posts delivery reports")
    rate_limit: PageRateLimit | None = Field(default_factory=PageRateLimit)
    state_path: Path | None = Field(
        default=None, description="SQLite file of sent keys and recent pages (None: in memory)"
    )
    send_timeout: timedelta = Field(default=timedelta(seconds=15))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return https_endpoint(value, key_goes_in="auth_value")

    @field_validator("auth_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.match(value):
            raise ValueError("must be an HTTP header name (letters, digits, '-')")
        return value

    @field_validator("auth_value")
    @classmethod
    def _auth(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(c in value.get_secret_value() for c in "\r\n\x00"):
            raise ValueError("must not contain a line break")
        return value

    @field_validator("send_timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=2):
            raise ValueError("must be more than 0 and at most 2 minutes (the runner's lease)")
        return value


class PagerHttpChannel:
    """Pages through a JSON-over-HTTPS gateway. ``PagerHttpChannel(url=..., auth_value=...)``
    or ``PagerHttpChannel(PagerHttpConfig(...))``; ``clock`` is for the rate limit and for
    ``Retry-After`` dates."""

    name = "pager-http"

    def __init__(
        self,
        config: PagerHttpConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        **fields: Any,
    ) -> None:
        if config is not None and fields:
            raise TypeError("give either a config or keyword fields, not both")
        self.config: PagerHttpConfig = parse_config(
            PagerHttpConfig, config or fields, what="pager-http"
        )
        cfg = self.config
        self.info = ChannelInfo(
            carries=frozenset({"pager"}),
            contact_field="pager",
            max_body=cfg.max_length,
            max_subject=120 if cfg.send_subject else None,
            rate_limit=None,
            receipts=cfg.receipts,
            requires=("httpx", "sqlite3"),
            config=PagerHttpConfig,
            send_timeout=cfg.send_timeout,
        )
        self._clock = clock or SystemClock()
        parts = urlsplit(cfg.url)
        self._where = f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query string in errors
        verify = tls_verify("pager-http", cfg.ca_file, "the gateway")
        seconds = cfg.send_timeout.total_seconds()
        self._http = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(seconds),
            follow_redirects=False,
            headers={"User-Agent": "oohcore-pager", "Accept": "application/json"},
            # a connection per page, so that the deadline's watchdog can always cut it
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._ledger = PageLedger(cfg.state_path, clock=self._clock, rate_limit=cfg.rate_limit)
        self._closed = False

    def __repr__(self) -> str:
        return f"PagerHttpChannel(url={self._where!r})"

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Page ``message.recipient`` (a pager id); never raises for the gateway's answer."""
        pager = message.recipient.strip()
        if not _PAGER_ID.match(pager):
            return DeliveryResult.permanent(
                f"pager id {pager[:20]!r} is not valid (1-64 characters, no spaces): correct "
                "the officer's pager in the directory"
            )
        lease = self.config.send_timeout + timedelta(seconds=5)
        decision = self._ledger.begin(self.name, pager, message.idempotency_key, lease=lease)
        if isinstance(decision, Duplicate):
            return DeliveryResult.sent(decision.provider_ref, duplicate=True)
        if isinstance(decision, Wait):
            return DeliveryResult.retry(decision.reason, after=decision.after)
        result, outcome = self._post(pager, message)
        self._ledger.finish(message.idempotency_key, outcome, result.provider_ref)
        logger.info(
            "pager-http %s: %s%s",
            message.idempotency_key,
            result.status.value,
            f" ({result.error})" if result.error else "",
        )
        return result

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._http.close()
            self._ledger.close()

    def _post(self, pager: str, message: OutboundMessage) -> tuple[DeliveryResult, Outcome]:
        cfg = self.config
        payload: dict[str, Any] = {
            "pager_id": pager,
            "text": page_text(message, cfg.max_length),
            "reference": message.reference,
            "idempotency_key": message.idempotency_key,
            "purpose": str(message.purpose),
        }
        if cfg.send_subject and message.subject.strip():
            payload["subject"] = ascii_text(message.subject)[:120]
        headers = {"Idempotency-Key": message.idempotency_key}
        if cfg.auth_value is not None:
            headers[cfg.auth_header] = cfg.auth_value.get_secret_value()
        deadline = Deadline(cfg.send_timeout.total_seconds())
        try:
            response = exchange(
                self._http, "POST", cfg.url, deadline=deadline, cap=MAX_ANSWER, json=payload,
                headers=headers,
            )  # fmt: skip
        except AnswerRefused as exc:
            # the status line and headers were read, not the body: judged on the status alone
            logger.warning("pager-http %s: %s", self._where, exc)
            return self._answer(exc.head)
        except httpx.ConnectError as exc:
            if _untrusted(exc):
                return DeliveryResult.permanent(
                    f"pager-http {self._where}: the gateway's TLS certificate is not trusted; "
                    "set ca_file to the CA that signs it"
                ), Outcome.FAILED
            return DeliveryResult.retry(
                f"pager-http {self._where}: cannot connect ({_reason(exc)})"
            ), Outcome.FAILED
        except (httpx.TimeoutException, DeadlineExceeded):
            seconds = cfg.send_timeout.total_seconds()
            return DeliveryResult.retry(
                f"pager-http {self._where}: no answer within {seconds:g} s (the page may have "
                "gone out; the Idempotency-Key lets the gateway tell)"
            ), Outcome.UNKNOWN
        except httpx.HTTPError as exc:
            return DeliveryResult.retry(
                f"pager-http {self._where}: {type(exc).__name__} ({_reason(exc)})"
            ), Outcome.UNKNOWN
        return self._answer(response)

    def _answer(self, response: Answer) -> tuple[DeliveryResult, Outcome]:
        status = response.status
        if 200 <= status < 300:
            return DeliveryResult.sent(_provider_id(response)), Outcome.SENT
        said = _said(response)
        error = f"pager-http {self._where}: HTTP {status}{said}"
        if status in _RETRY_STATUSES or status >= 500:
            after = retry_after(response.headers.get("retry-after"), self._clock.now())
            return DeliveryResult.retry(error, after=after), Outcome.FAILED
        if 300 <= status < 400:
            where = response.headers.get("location", "")
            return DeliveryResult.permanent(
                f"{error}: the gateway redirects (to {urlsplit(where).netloc or 'elsewhere'}); "
                "set url to the address it names"
            ), Outcome.FAILED
        if status in (401, 403):
            return DeliveryResult.permanent(
                f"{error}: the gateway refused the credentials; check auth_header and auth_value"
            ), Outcome.FAILED
        return DeliveryResult.permanent(error), Outcome.FAILED


def _provider_id(response: Answer) -> str | None:
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("id"), str | int):
        return str(body["id"])
    return None


def _said(response: Answer) -> str:
    """The gateway's own error text, shortened, or nothing."""
    body = response.json()
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str) and body[key].strip():
                return f": {ascii_text(body[key])[:200]}"
    return ""


def _untrusted(exc: httpx.ConnectError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _reason(exc: BaseException) -> str:
    return str(exc)[:200] or type(exc).__name__


# -- delivery reports --------------------------------------------------------------------------


class ReceiptError(ChannelError):
    """A gateway's delivery report is not in the documented shape (the message names the field)."""


_STATES: dict[str, ReceiptState] = {
    "delivered": ReceiptState.DELIVERED,
    "pending": ReceiptState.PENDING,
    "accepted": ReceiptState.PENDING,
    "temporary_failure": ReceiptState.TEMPORARY_FAILURE,
    "expired": ReceiptState.TEMPORARY_FAILURE,
    "permanent_failure": ReceiptState.PERMANENT_FAILURE,
    "rejected": ReceiptState.PERMANENT_FAILURE,
}


def receipt_from_callback(
    payload: Mapping[str, Any] | bytes | str,
    *,
    channel: str = PagerHttpChannel.name,
    authorization: str | None = None,
    token: SecretStr | str | None = None,
) -> Receipt:
    """A gateway's delivery report (the JSON it POSTs) as a :class:`Receipt`.

    Shape: ``{"id": "...", "idempotency_key": "...", "status": "delivered" | "pending" |
    "accepted" | "temporary_failure" | "expired" | "permanent_failure" | "rejected",
    "at": "<ISO 8601 with a time zone>", "detail": "..."}``; ``id`` or ``idempotency_key`` is
    required (text or a whole number). With ``token`` (the bearer token agreed with the
    gateway), ``authorization`` (the request's header) is checked before the body is read; raw
    bodies are read only up to 64 KiB and 16 levels of nesting. Raises :class:`ReceiptError`
    (and nothing else) naming the field at fault, never quoting a value that is not text.
    """
    if token is not None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not bearer_matches(authorization, secret):
            raise ReceiptError("delivery report: does not carry the gateway's bearer token")
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = json_document(payload)
        except ValueError as exc:
            raise ReceiptError(f"delivery report: {exc}") from None
    if not isinstance(payload, Mapping):
        raise ReceiptError("delivery report: expected a JSON object")
    status = payload.get("status")
    state = _STATES.get(status) if isinstance(status, str) else None
    if state is None:
        known = ", ".join(sorted(_STATES))
        shown = repr(status[:40]) if isinstance(status, str) else f"a {type(status).__name__}"
        raise ReceiptError(f"delivery report field 'status': {shown} is not one of {known}")
    try:
        at = instant(payload.get("at"))
    except ValueError as exc:
        raise ReceiptError(
            f"delivery report field 'at': {exc}; expected an ISO 8601 time with a time zone "
            "(e.g. 2026-01-10T02:01:00Z)"
        ) from None
    provider_ref = _ident(payload, "id")
    key = _ident(payload, "idempotency_key")
    if provider_ref is None and key is None:
        raise ReceiptError("delivery report: needs 'id' or 'idempotency_key' to match a page")
    detail = payload.get("detail")
    return Receipt(
        channel=channel,
        state=state,
        at=at,
        provider_ref=provider_ref,
        idempotency_key=key,
        detail=detail[:500] if isinstance(detail, str) else None,
    )


def _ident(payload: Mapping[str, Any], name: str) -> str | None:
    """An identifier field: text (at most 255 characters) or a whole number, or absent."""
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 255:
        return value
    raise ReceiptError(f"delivery report field {name!r}: expected text of 1-255 characters")
