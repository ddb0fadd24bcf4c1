"""An SNPP client on asyncio (RFC 1861, Simple Network Paging Protocol version 3, levels 1-2).

SNPP is a line protocol over TCP (port 444) much like SMTP: the server greets with ``220``;
the client sends four-letter commands (only the first four letters of a command count, RFC
1861 4.1) and reads one reply per command: a three-digit code and a text. Lines end in CRLF;
a reply line ending in a bare LF is read too.

Level 1: ``PAGE <pager id> [password]``, ``MESS <one-line text>``, ``RESE``, ``SEND``,
``QUIT``, ``HELP``. Level 2 adds ``DATA`` (a multi-line message: ``354``, then the lines, then a
line holding only ``.``; a line of the message that starts with ``.`` has another ``.`` put in
front of it, as in SMTP), ``LOGI <login> [password]``, ``LEVE <0-11>`` (service level),
``ALER <0|1>`` (alert override), ``COVE <area>``, ``HOLD <YYMMDDHHMMSS> [+/-GMT offset]``,
``CALL <caller id>`` and ``SUBJ <subject>``.

Reply code classes (RFC 1861 4.2): ``2xx`` success (``214`` lines of a multi-line help text,
ended by ``250``; ``218`` one line of information; ``220`` greeting; ``221`` goodbye);
``3xx`` send DATA input; ``4xx`` failed, the server closes the connection (``421``); ``5xx``
failed, the session goes on: ``500`` command not implemented, ``503`` duplicate or out of
sequence, ``550`` failed for an administrative reason (an invalid pager id, a bad parameter),
``552`` maximum entries exceeded, ``554`` failed for a technical reason (a paging terminal
down). :data:`REPLY_OUTCOMES` says what each means for a message.

This module knows the protocol only; :mod:`oohcore_pager.snpp_channel` runs a page with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "REPLY_OUTCOMES",
    "Reply",
    "ReplyOutcome",
    "SnppConnection",
    "SnppProtocolError",
    "dot_stuff",
    "outcome_of",
    "stated_length_limit",
]

_MAX_LINE = 4096
_REPLY = re.compile(r"^(\d{3})(?:[ -](.*))?$")


class SnppProtocolError(Exception):
    """The server's answer is not SNPP (no three-digit code), or the connection closed."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply: its code, its text, and for ``214`` help the lines that came before it."""

    code: int
    text: str
    info: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class ReplyOutcome(Enum):
    """What a reply that is not success means for the message."""

    RETRY = "retry"  # a temporary failure: another session later may well page
    PERMANENT = "permanent"  # the same page will fail again: fail it and escalate (8.14)


#: the failure replies of RFC 1861 and what each means for a message; any other 2xx is success,
#: any other 4xx is :attr:`ReplyOutcome.RETRY`, any other 5xx :attr:`ReplyOutcome.PERMANENT`,
#: and a code outside the classes of levels 1-2 is :attr:`ReplyOutcome.RETRY` (a new session
#: starts afresh).
REPLY_OUTCOMES: dict[int, tuple[ReplyOutcome, str]] = {
    421: (ReplyOutcome.RETRY, "the gateway closed the session (unavailable or too many errors)"),
    500: (ReplyOutcome.PERMANENT, "the gateway does not implement the command"),
    503: (ReplyOutcome.RETRY, "the gateway says the command is duplicate or out of sequence"),
    550: (ReplyOutcome.PERMANENT, "the gateway refused it (administrative: e.g. invalid pager id)"),
    552: (ReplyOutcome.PERMANENT, "the gateway's maximum number of entries is exceeded"),
    554: (ReplyOutcome.RETRY, "the gateway failed for a technical reason"),
}


def outcome_of(reply: Reply) -> tuple[ReplyOutcome, str]:
    """What a failure ``reply`` means for the message, and why (see :data:`REPLY_OUTCOMES`)."""
    known = REPLY_OUTCOMES.get(reply.code)
    if known is not None:
        return known
    if 400 <= reply.code < 500:
        return ReplyOutcome.RETRY, "the gateway closed the session"
    if 500 <= reply.code < 600:
        return ReplyOutcome.PERMANENT, "the gateway refused it"
    return ReplyOutcome.RETRY, "the gateway gave a reply this client does not expect"


_LENGTH_WORDS = re.compile(r"too long|length|max|limit|characters|chars", re.IGNORECASE)
_NUMBER = re.compile(r"\b(\d{1,5})\b")


def stated_length_limit(reply: Reply) -> int | None:
    """The maximum message length a refusal states (``554 Message too long (max 80)``), if it
    speaks of length and names one number; else None."""
    if reply.ok or not _LENGTH_WORDS.search(reply.text):
        return None
    numbers = [int(n) for n in _NUMBER.findall(reply.text)]
    return numbers[0] if len(numbers) == 1 and numbers[0] > 0 else None


def says_too_long(reply: Reply) -> bool:
    return not reply.ok and re.search(r"too long|length", reply.text, re.IGNORECASE) is not None


def dot_stuff(text: str) -> list[str]:
    """The lines of ``text`` as DATA sends them: a line starting with ``.`` gets another."""
    return ["." + line if line.startswith(".") else line for line in text.split("\n")]


def _check_argument(argument: str) -> None:
    if "\r" in argument or "\n" in argument:
        raise ValueError("an SNPP command argument cannot contain a line break")


class SnppConnection:
    """One SNPP session: open it (reading the greeting), send commands, close it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(
        cls, host: str, port: int, *, tls: ssl.SSLContext | None = None
    ) -> tuple[SnppConnection, Reply]:
        """Connect and read the greeting (``220`` when the gateway is ready)."""
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls is not None else None, limit=_MAX_LINE
        )
        conn = cls(reader, writer)
        try:
            greeting = await conn.read_reply()
        except BaseException:
            await conn.close()
            raise
        return conn, greeting

    async def command(self, verb: str, argument: str | None = None) -> Reply:
        """Send ``verb`` (four letters) with ``argument`` and read the reply."""
        line = verb if argument is None else f"{verb} {argument}"
        _check_argument(line)
        await self._write_lines([line])
        return await self.read_reply()

    async def data(self, text: str) -> Reply:
        """Send a DATA message body (after ``354``): dot-stuffed lines, then ``.``."""
        for line in text.split("\n"):
            _check_argument(line)
        await self._write_lines([*dot_stuff(text), "."])
        return await self.read_reply()

    async def read_reply(self) -> Reply:
        """One reply; the ``214`` lines of a multi-line help text are gathered into ``info``."""
        info: list[str] = []
        while True:
            code, text = await self._read_line()
            if code == 214:
                info.append(text)
                continue
            return Reply(code, text, tuple(info))

    async def close(self) -> None:
        """Close the connection (after QUIT, or without it when the session failed)."""
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self._writer.wait_closed()

    async def _write_lines(self, lines: list[str]) -> None:
        self._writer.write("".join(f"{line}\r\n" for line in lines).encode("ascii", "replace"))
        await self._writer.drain()

    async def _read_line(self) -> tuple[int, str]:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise SnppProtocolError("the gateway closed the connection") from exc
        except asyncio.LimitOverrunError as exc:
            raise SnppProtocolError("the gateway sent a line longer than 4096 bytes") from exc
        line = raw.decode("ascii", "replace").rstrip("\r\n")
        match = _REPLY.match(line)
        if match is None:
            shown = line[:80]
            raise SnppProtocolError(f"the gateway's answer is not an SNPP reply: {shown!r}")
        return int(match.group(1)), (match.group(2) or "").strip()
