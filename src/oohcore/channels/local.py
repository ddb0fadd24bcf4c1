"""The local reference channels: a JSON-lines file (exactly once per key) and the console.

Neither needs anything outside the standard library. :class:`LocalChannel` is the idempotent
receiver the tests and the demo use; :class:`ConsoleChannel` prints a readable line per message.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from oohcore.channels import (
    ChannelConfig,
    ChannelError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ConsoleChannel",
    "ConsoleConfig",
    "LocalChannel",
    "LocalConfig",
    "MemoryChannel",
    "MemoryConfig",
]

_ANY = frozenset({"sms", "email", "pager", "phone", "feed", "crm"})
# local and in-memory work: one send is a write (and an fsync) or a list append
_LOCAL_SEND = timedelta(seconds=1)


class _StandIn(ChannelConfig):
    contact_field: str | None = None
    """which officer contact point the channel stands in for (phone, email, pager)"""


class LocalConfig(_StandIn):
    """Settings of the ``local`` adapter."""

    path: Path
    """the JSON-lines file messages are written to (created with its folder if missing)"""
    fsync: bool = True
    """fsync each line before reporting it sent (survives a power loss)"""


class ConsoleConfig(_StandIn):
    """Settings of the ``console`` adapter (it prints to standard output)."""


class MemoryConfig(_StandIn):
    """Settings of the ``memory`` adapter (it keeps messages in a list)."""


def _record(message: OutboundMessage) -> dict[str, Any]:
    return {
        "idempotency_key": message.idempotency_key,
        "organisation_id": message.organisation_id,
        "call_id": message.call_id,
        "channel": message.channel,
        "recipient": message.recipient,
        "subject": message.subject,
        "body": message.body,
        "meta": dict(message.meta),
    }


class LocalChannel:
    """The reference channel: each message becomes one JSON line in a file, exactly once.

    Each line is written with a single ``write`` on a file opened for appending and then
    ``fsync``-ed before ``send`` returns, so a message reported as sent survives a crash (and,
    with ``fsync=True``, a power loss). The channel is an idempotent receiver: it keeps the set
    of idempotency keys already in the file (read back when it is opened, and re-read when another
    process has appended to the file) and does not write a key twice, so a message re-sent after
    a crash appears once. A torn last line left by a power loss is cut off when the file is
    opened (its message was not reported as sent, so it is sent again). On POSIX, an exclusive
    ``flock`` makes several processes appending to one file safe.
    """

    name = "local"
    info = ChannelInfo(
        carries=_ANY, contact_field=None, config=LocalConfig, send_timeout=_LOCAL_SEND
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        contact_field: str | None = None,
        carries: frozenset[str] = _ANY,
    ) -> None:
        """``contact_field``: which officer contact point this channel stands in for when the
        host maps a logical channel to it (``"phone"`` for sms, ``"email"`` …); by default the
        field of the logical channel name the engine sends through (see ``DEFAULT_CONTACT``)."""
        self.info = ChannelInfo(
            carries=carries,
            contact_field=contact_field,
            config=LocalConfig,
            send_timeout=_LOCAL_SEND,
        )
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._keys: dict[str, int] = {}
        self._lines = 0
        self._offset = 0
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            with self._file_lock():
                self._repair_torn_tail()
                self._catch_up()
        except BaseException:
            os.close(self._fd)
            raise

    @classmethod
    def from_config(cls, config: LocalConfig) -> LocalChannel:
        return cls(config.path, fsync=config.fsync, contact_field=config.contact_field)

    def __repr__(self) -> str:
        return f"LocalChannel({str(self.path)!r})"

    @property
    def keys(self) -> frozenset[str]:
        """The idempotency keys written to the file so far."""
        return frozenset(self._keys)

    def send(self, message: OutboundMessage) -> DeliveryResult:
        line = (json.dumps(_record(message), sort_keys=True, ensure_ascii=False) + "\n").encode()
        with self._lock, self._file_lock():
            self._catch_up()
            if os.fstat(self._fd).st_size > self._offset:
                # An incomplete line after the last complete one, while we hold the lock: a
                # writer died half-way through it. Cut it off rather than append to it.
                os.ftruncate(self._fd, self._offset)
            existing = self._keys.get(message.idempotency_key)
            if existing is not None:
                return DeliveryResult.sent(self._ref(existing), duplicate=True)
            written = os.write(self._fd, line)
            if written != len(line):  # pragma: no cover - disk full and similar
                raise ChannelError(f"{self.path}: short write ({written} of {len(line)} bytes)")
            if self._fsync:
                os.fsync(self._fd)
            self._lines += 1
            self._offset += written
            self._keys[message.idempotency_key] = self._lines
            return DeliveryResult.sent(self._ref(self._lines))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> LocalChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ref(self, line: int) -> str:
        return f"{self.path.name}:{line}"

    def _file_lock(self) -> _FileLock:
        return _FileLock(self._fd)

    def _repair_torn_tail(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        # Find the last newline; anything after it is a torn write.
        chunk = 4096
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            data = os.pread(self._fd, pos - start, start)
            idx = data.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        else:
            keep = 0
        if keep != size:
            os.truncate(self.path, keep)
            if self._fsync:
                os.fsync(self._fd)

    def _catch_up(self) -> None:
        """Read lines appended since we last looked (by us on open, or by other processes).

        A file shorter than what we have read was truncated by someone else (log rotation by
        copy-and-truncate): read it again from the start. The keys already seen are kept, so a
        message sent before the rotation is still not written twice by this process; the file
        is never extended (extending it would fill the gap with NUL bytes).
        """
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            self._lines = 0
            self._offset = 0
        if size <= self._offset:
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # only complete lines
        for line in data[:end].splitlines():
            self._lines += 1
            # NUL bytes before a line are padding left by a truncation under an older writer
            raw = line.lstrip(b"\0")
            if not raw.strip():
                continue
            try:
                key = json.loads(raw)["idempotency_key"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ChannelError(
                    f"{self.path}:{self._lines}: not a message line written by LocalChannel "
                    f"({exc}); move the file aside or repair that line"
                ) from exc
            self._keys.setdefault(str(key), self._lines)
        self._offset += end


class _FileLock:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class ConsoleChannel:
    """Prints one readable line per message (for the demo and for trying rulesets out).

    It keeps nothing, so it does not dedupe: use it only where a repeated line is harmless.
    """

    name = "console"
    info = ChannelInfo(
        carries=_ANY, contact_field=None, config=ConsoleConfig, send_timeout=_LOCAL_SEND
    )

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        contact_field: str | None = None,
        carries: frozenset[str] = _ANY,
    ) -> None:
        self.info = ChannelInfo(
            carries=carries,
            contact_field=contact_field,
            config=ConsoleConfig,
            send_timeout=_LOCAL_SEND,
        )
        self._stream = stream

    @classmethod
    def from_config(cls, config: ConsoleConfig) -> ConsoleChannel:
        return cls(contact_field=config.contact_field)

    def send(self, message: OutboundMessage) -> DeliveryResult:
        stream = self._stream if self._stream is not None else sys.stdout
        where = message.organisation_id + (f"/{message.call_id}" if message.call_id else "")
        subject = f"{message.subject}: " if message.subject else ""
        body = " ".join(message.body.split())
        if len(body) > 160:
            body = body[:159] + "…"
        stream.write(f"[{message.channel} → {message.recipient}] ({where}) {subject}{body}\n")
        stream.flush()
        return DeliveryResult.sent(message.idempotency_key)

    def close(self) -> None:
        """Nothing to release (the stream belongs to the caller)."""


class MemoryChannel:
    """Keeps every message it is given in a list, once per idempotency key (for tests and for
    hosts trying rulesets out). ``fail`` makes it answer with that result instead, so a test can
    script a provider's failures."""

    name = "memory"
    info = ChannelInfo(
        carries=_ANY, contact_field=None, config=MemoryConfig, send_timeout=_LOCAL_SEND
    )

    def __init__(self, *, contact_field: str | None = None, carries: frozenset[str] = _ANY) -> None:
        self.info = ChannelInfo(
            carries=carries,
            contact_field=contact_field,
            config=MemoryConfig,
            send_timeout=_LOCAL_SEND,
        )
        self.messages: list[OutboundMessage] = []
        self.fail: DeliveryResult | None = None
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self.closed = False

    def send(self, message: OutboundMessage) -> DeliveryResult:
        with self._lock:
            if self.closed:
                raise ChannelError("MemoryChannel: send after close")
            if self.fail is not None:
                return self.fail
            if message.idempotency_key in self._keys:
                return DeliveryResult.sent(message.idempotency_key, duplicate=True)
            self._keys.add(message.idempotency_key)
            self.messages.append(message)
            return DeliveryResult.sent(message.idempotency_key)

    @classmethod
    def from_config(cls, config: MemoryConfig) -> MemoryChannel:
        return cls(contact_field=config.contact_field)

    def close(self) -> None:
        self.closed = True
