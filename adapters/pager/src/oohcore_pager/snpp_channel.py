"""The ``snpp`` channel: pages an on-call officer through an SNPP gateway (RFC 1861, levels 1-2).

One ``send`` is one SNPP session: greeting, ``LOGI`` (when a login is configured), ``PAGE``,
the optional level-2 options (``LEVE``, ``ALER``, ``CALL``, ``COVE``, ``SUBJ``), the text
(``MESS``, or ``DATA`` for a text of several lines), ``SEND``, ``QUIT``. Every reply is mapped to
a :class:`~oohcore.channels.DeliveryResult` (:data:`~oohcore_pager.snpp.REPLY_OUTCOMES`): an
unreachable gateway, a ``421``, a ``503`` or a ``554`` is ``retry``; an invalid pager id
(``550``), a refused login, a limit exceeded (``552``) or a command the gateway lacks (``500``)
is ``permanent``, so the outbox fails the message at once and the engine escalates (8.14).

The whole session runs within ``send_timeout``; ``send`` (called from the runner's worker
thread) runs it on an event loop of its own. A time-out or a lost connection after ``SEND`` was
written is ``retry`` too, but the page may have gone out: SNPP has no message id to ask about,
so that page may arrive twice (README: at most once per key).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from oohcore.channels import ChannelInfo, DeliveryResult, OutboundMessage
from oohcore.clock import Clock, SystemClock

from .config import PageRateLimit, parse_config
from .ledger import Duplicate, Outcome, PageLedger, Wait
from .snpp import (
    Reply,
    ReplyOutcome,
    SnppConnection,
    SnppProtocolError,
    outcome_of,
    says_too_long,
    stated_length_limit,
)
from .text import ascii_text, page_text

__all__ = ["SnppChannel", "SnppConfig"]

logger = logging.getLogger("oohcore_pager.snpp")

_TOKEN = re.compile(r"^[^\s]+$")
_PAGER_ID = re.compile(r"^[A-Za-z0-9+#*._@:-]{1,64}$")
T = TypeVar("T")


def _one_token(value: str | None, what: str) -> str | None:
    if value is not None and not _TOKEN.match(value):
        raise ValueError(f"{what} must be one word: no spaces or line breaks")
    return value


class SnppConfig(BaseModel):
    """How to reach one SNPP gateway (per organisation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1, description="the gateway's host name or address")
    port: int = Field(default=444, ge=1, le=65535)
    tls: bool = Field(
        default=False,
        description="SNPP inside TLS (implicit, as a TLS-wrapped gateway offers it). Plain SNPP "
        "carries the page text in clear: use TLS, or a private line, for case data (7.14.6).",
    )
    ca_file: Path | None = Field(default=None, description="CA bundle that signs the gateway")
    login: str | None = Field(default=None, description="level 2 LOGI login id")
    password: SecretStr | None = Field(default=None, description="LOGI password")
    max_length: int = Field(default=240, ge=32, le=4000, description="longest page text")
    level: Literal[1, 2] = Field(default=2, description="1: the gateway lacks DATA and the rest")
    service_level: int | None = Field(default=None, ge=0, le=11, description="LEVE 0-11")
    alert_override: bool | None = Field(default=None, description="ALER 1 (alert) or 0")
    caller_id: str | None = Field(default=None, description="CALL: the desk's id or number")
    coverage: str | None = Field(default=None, description="COVE: an alternate coverage area")
    send_subject: bool = Field(default=False, description="send the message's subject (SUBJ)")
    rate_limit: PageRateLimit | None = Field(default_factory=PageRateLimit)
    state_path: Path | None = Field(
        default=None, description="SQLite file of sent keys and recent pages (None: in memory)"
    )
    send_timeout: timedelta = Field(default=timedelta(seconds=20))

    @field_validator("host", "login", "caller_id", "coverage")
    @classmethod
    def _tokens(cls, value: str | None) -> str | None:
        return _one_token(value, "this value")

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN.match(value.get_secret_value()):
            raise ValueError("must be one word: no spaces or line breaks (SNPP sends it so)")
        return value

    @field_validator("send_timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=2):
            raise ValueError("must be more than 0 and at most 2 minutes (the runner's lease)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SnppConfig:
        if self.password is not None and self.login is None:
            raise ValueError("a password needs a login (LOGI <login> <password>)")
        if self.login is not None and self.level == 1:
            raise ValueError("login needs level 2 (LOGI is a level-2 command)")
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is for TLS: set tls: true as well")
        return self


class _Failed(Exception):
    """A session step failed: carries the result to return."""

    def __init__(self, result: DeliveryResult, *, maybe_sent: bool = False) -> None:
        super().__init__(result.error)
        self.result = result
        self.maybe_sent = maybe_sent


class _Progress:
    """How far a session got: once SEND is written, a lost answer may hide a sent page."""

    sending = False


class SnppChannel:
    """Pages through an SNPP gateway. ``SnppChannel(host="snpp.example.net", login=...)`` or
    ``SnppChannel(SnppConfig(...))``; ``clock`` is for the rate limit (tests inject one)."""

    name = "snpp"

    def __init__(
        self,
        config: SnppConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        **fields: Any,
    ) -> None:
        if config is not None and fields:
            raise TypeError("give either a config or keyword fields, not both")
        self.config: SnppConfig = parse_config(SnppConfig, config or fields, what="snpp")
        cfg = self.config
        self.info = ChannelInfo(
            carries=frozenset({"pager"}),
            contact_field="pager",
            max_body=cfg.max_length,
            max_subject=None,
            rate_limit=None,
            receipts=False,
            requires=("asyncio", "sqlite3"),
            config=SnppConfig,
            send_timeout=cfg.send_timeout,
        )
        self._tls = _tls_context(cfg.ca_file) if cfg.tls else None
        self._ledger = PageLedger(
            cfg.state_path, clock=clock or SystemClock(), rate_limit=cfg.rate_limit
        )
        self._limit = cfg.max_length  # lowered when the gateway states a shorter one
        self._data = cfg.level == 2  # False once the gateway answers DATA with 500
        self._closed = False

    def __repr__(self) -> str:
        cfg = self.config
        who = f", login={cfg.login!r}" if cfg.login else ""
        return f"SnppChannel(host={cfg.host!r}, port={cfg.port}, tls={cfg.tls}{who})"

    # -- the Channel protocol ----------------------------------------------------------------

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Page ``message.recipient`` (a pager id); never raises for the gateway's answer."""
        return _run(lambda: self.send_async(message))

    async def send_async(self, message: OutboundMessage) -> DeliveryResult:
        """:meth:`send` for a host already on asyncio."""
        pager = message.recipient.strip()
        if not _PAGER_ID.match(pager):
            return DeliveryResult.permanent(
                f"pager id {pager[:20]!r} is not valid (letters, digits and + # * . _ @ : - "
                "only, at most 64): correct the officer's pager in the directory"
            )
        lease = self.config.send_timeout + timedelta(seconds=5)
        decision = self._ledger.begin(self.name, pager, message.idempotency_key, lease=lease)
        if isinstance(decision, Duplicate):
            return DeliveryResult.sent(decision.provider_ref, duplicate=True)
        if isinstance(decision, Wait):
            return DeliveryResult.retry(decision.reason, after=decision.after)
        progress = _Progress()
        seconds = self.config.send_timeout.total_seconds()
        try:
            try:
                async with asyncio.timeout(seconds):
                    result = await self._session(pager, message, progress)
            except TimeoutError:
                where = f"{self.config.host}:{self.config.port}"
                raise _Failed(
                    DeliveryResult.retry(
                        f"SNPP {where}: no answer within {seconds:g} s"
                        + (" to SEND (the page may have gone out)" if progress.sending else "")
                    ),
                    maybe_sent=progress.sending,
                ) from None
        except _Failed as failed:
            outcome = Outcome.UNKNOWN if failed.maybe_sent else Outcome.FAILED
            self._ledger.finish(message.idempotency_key, outcome)
            self._log(message, failed.result)
            return failed.result
        self._ledger.finish(message.idempotency_key, Outcome.SENT, result.provider_ref)
        self._log(message, result)
        return result

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ledger.close()

    # -- one session -------------------------------------------------------------------------

    async def _session(
        self, pager: str, message: OutboundMessage, progress: _Progress
    ) -> DeliveryResult:
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}"
        try:
            conn, greeting = await SnppConnection.open(cfg.host, cfg.port, tls=self._tls)
        except ssl.SSLCertVerificationError as exc:
            raise _Failed(
                DeliveryResult.permanent(
                    f"SNPP {where}: the gateway's TLS certificate is not trusted "
                    f"({exc.verify_message}); set ca_file to the CA that signs it"
                )
            ) from None
        except (OSError, SnppProtocolError) as exc:
            error = f"SNPP {where}: cannot connect: {_why(exc)}"
            raise _Failed(DeliveryResult.retry(error)) from None
        try:
            if not greeting.ok:
                self._fail("greeting", greeting)
            await self._steps(conn, pager, message)
            progress.sending = True
            reply = await conn.command("SEND")
            if not reply.ok:
                self._fail("SEND", reply)
            await self._quit(conn)
            return DeliveryResult.sent(None)
        except (OSError, SnppProtocolError) as exc:
            error = f"SNPP {where}: {_why(exc)}"
            raise _Failed(DeliveryResult.retry(error), maybe_sent=progress.sending) from None
        finally:
            await conn.close()

    async def _steps(self, conn: SnppConnection, pager: str, message: OutboundMessage) -> None:
        cfg = self.config
        if cfg.login is not None:
            argument = cfg.login
            if cfg.password is not None:
                argument += " " + cfg.password.get_secret_value()
            reply = await conn.command("LOGI", argument)
            if not reply.ok:
                self._fail("LOGI", reply, hint="check the SNPP login and password")
        reply = await conn.command("PAGE", pager)
        if not reply.ok:
            self._fail("PAGE", reply, hint="check the officer's pager id")
        if cfg.level == 2:
            options: list[tuple[str, str]] = []
            if cfg.service_level is not None:
                options.append(("LEVE", str(cfg.service_level)))
            if cfg.alert_override is not None:
                options.append(("ALER", "1" if cfg.alert_override else "0"))
            if cfg.caller_id is not None:
                options.append(("CALL", cfg.caller_id))
            if cfg.coverage is not None:
                options.append(("COVE", cfg.coverage))
            subject = message.subject.strip()
            if cfg.send_subject and subject:
                options.append(("SUBJ", ascii_text(subject)[:80]))
            for verb, argument in options:
                reply = await conn.command(verb, argument)
                if reply.code == 500:
                    logger.info("SNPP gateway lacks %s; paging without it", verb)
                elif not reply.ok:
                    self._fail(verb, reply)
        await self._text(conn, message)

    async def _text(self, conn: SnppConnection, message: OutboundMessage) -> None:
        """MESS (or DATA for several lines); once more, shorter, if the gateway states a
        shorter maximum length than ours."""
        for _ in range(2):
            limit = self._limit
            text = page_text(message, limit, multiline=self._data)
            if "\n" in text:
                reply = await conn.command("DATA")
                if reply.code == 500:
                    self._data = False  # a level-1 gateway: one line through MESS
                    text = page_text(message, limit)
                    reply = await conn.command("MESS", text)
                elif reply.code == 354:
                    reply = await conn.data(text)
                elif not reply.ok:
                    self._fail("DATA", reply)
            else:
                reply = await conn.command("MESS", text)
            if reply.ok:
                return
            stated = stated_length_limit(reply)
            if stated is not None and stated < len(text) and stated >= 16:
                self._limit = min(self._limit, stated)
                continue
            if says_too_long(reply):
                hint = f"lower max_length (now {self._limit})"
                self._fail("MESS", reply, hint=hint, permanent=True)
            self._fail("MESS", reply)
        self._fail("MESS", reply)

    async def _quit(self, conn: SnppConnection) -> None:
        try:
            async with asyncio.timeout(2):
                await conn.command("QUIT")
        except (TimeoutError, OSError, SnppProtocolError):
            pass  # the page is sent; a gateway slow to say goodbye changes nothing

    def _fail(self, step: str, reply: Reply, *, hint: str = "", permanent: bool = False) -> None:
        outcome, meaning = outcome_of(reply)
        where = f"{self.config.host}:{self.config.port}"
        error = f"SNPP {where} {step}: {reply} ({meaning})"
        if hint and (permanent or outcome is ReplyOutcome.PERMANENT):
            error += f"; {hint}"
        if permanent or outcome is ReplyOutcome.PERMANENT:
            raise _Failed(DeliveryResult.permanent(error))
        raise _Failed(DeliveryResult.retry(error))  # the gateway answered: it did not page

    def _log(self, message: OutboundMessage, result: DeliveryResult) -> None:
        logger.info(
            "snpp %s: %s%s",
            message.idempotency_key,
            result.status.value,
            f" ({result.error})" if result.error else "",
        )


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from synchronous code, on a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # called from inside a running loop (not how the runner calls): use a thread of its own
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
