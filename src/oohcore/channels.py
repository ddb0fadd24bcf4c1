"""Channel adapters: the protocol every way of sending a message implements, and the registry.

The core knows no SMS gateway, mail server or pager bureau. A channel adapter is a small object
with a ``name`` and a ``send(message) -> DeliveryResult`` method; adapters for real services
live in their own distributions (``adapters/<name>/``) and register a **factory** (a class or
function returning a :class:`Channel`) in the entry-point group ``oohcore.channels``::

    [project.entry-points."oohcore.channels"]
    notify = "oohcore_notify:NotifyChannel"

:func:`load_channels` returns every factory found there plus the built-in reference channels
(``local`` and ``console``). The host builds the channels it needs and gives the runner a
mapping from the logical channel names used in messages to channel objects, e.g.
``{"sms": registry["notify"](api_key=...), "email": registry["smtp"](host=...)}``.

The delivery contract
---------------------

* ``send`` is called **at least once** per message. After a crash between a successful send and
  the outbox recording it, the same message (same ``idempotency_key``) is sent again. Adapters
  must pass the key to their provider as its dedupe/reference key where the provider has one,
  and receivers must treat it as a dedupe key: at-least-once delivery plus an idempotent
  receiver gives exactly one effect.
* ``send`` returns :class:`DeliveryResult`: ``sent`` (with the provider's reference when there
  is one), ``retry`` (a temporary failure: the outbox backs off and tries again) or
  ``permanent`` (the message can never be delivered as it is, e.g. an invalid number: it fails
  at once and the caller escalates). An exception raised by ``send`` counts as ``retry``.
* ``send`` should give up well within the runner's claim lease (default 2 minutes) so that a
  slow provider does not cause another runner to send the same message meanwhile.
* ``send`` must not read the clock for anything that matters to the message; everything it needs
  is in the message.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from oohcore.errors import OohcoreError
from oohcore.outbox import OutboundMessage

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ENTRY_POINT_GROUP",
    "Channel",
    "ChannelError",
    "ChannelFactory",
    "ChannelRegistryError",
    "ConsoleChannel",
    "DeliveryResult",
    "DeliveryStatus",
    "LocalChannel",
    "load_channels",
]

ENTRY_POINT_GROUP = "oohcore.channels"


class ChannelError(OohcoreError):
    """A channel adapter could not be set up or used."""


class ChannelRegistryError(ChannelError):
    """Channel adapters registered through entry points could not be loaded."""


class DeliveryStatus(Enum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT_FAILURE = "permanent_failure"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a channel did with one message."""

    status: DeliveryStatus
    provider_ref: str | None = None
    error: str | None = None
    duplicate: bool = False  # True when the channel recognised an earlier delivery of the key

    @classmethod
    def sent(cls, provider_ref: str | None = None, *, duplicate: bool = False) -> DeliveryResult:
        return cls(DeliveryStatus.SENT, provider_ref=provider_ref, duplicate=duplicate)

    @classmethod
    def retry(cls, error: str) -> DeliveryResult:
        return cls(DeliveryStatus.RETRY, error=error)

    @classmethod
    def permanent(cls, error: str) -> DeliveryResult:
        return cls(DeliveryStatus.PERMANENT_FAILURE, error=error)


@runtime_checkable
class Channel(Protocol):
    """One way of delivering messages (SMS, email, pager, feed …)."""

    name: str

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver ``message`` (at least once; dedupe on ``message.idempotency_key``)."""
        ...


ChannelFactory = Callable[..., Channel]


def load_channels(*, group: str = ENTRY_POINT_GROUP) -> dict[str, ChannelFactory]:
    """Channel factories by name: the built-in ones and those registered in ``group``.

    Raises :class:`ChannelRegistryError` naming every entry point that cannot be imported, is
    not callable, or reuses a name already taken.
    """
    factories: dict[str, ChannelFactory] = {"local": LocalChannel, "console": ConsoleChannel}
    problems: list[str] = []
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        origin = f"entry point {ep.name!r} = {ep.value!r}" + (
            f" (from distribution {dist.name!r})" if dist is not None else ""
        )
        if ep.name in factories:
            problems.append(f"{origin}: the channel name {ep.name!r} is already taken")
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            problems.append(f"{origin}: cannot be imported: {type(exc).__name__}: {exc}")
            continue
        if not callable(obj):
            problems.append(f"{origin}: is not a class or function that returns a channel")
            continue
        factories[ep.name] = obj
    if problems:
        raise ChannelRegistryError(
            f"{len(problems)} channel adapter(s) in the entry-point group {group!r} could not be "
            "loaded:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return factories


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

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
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

    @property
    def keys(self) -> frozenset[str]:
        """The idempotency keys written to the file so far."""
        return frozenset(self._keys)

    def send(self, message: OutboundMessage) -> DeliveryResult:
        line = (json.dumps(_record(message), sort_keys=True, ensure_ascii=False) + "\n").encode()
        with self._lock, self._file_lock():
            self._catch_up()
            if os.fstat(self._fd).st_size != self._offset:
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
        """Read lines appended since we last looked (by us on open, or by other processes)."""
        size = os.fstat(self._fd).st_size
        if size <= self._offset:
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # only complete lines
        for raw in data[:end].splitlines():
            self._lines += 1
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

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

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
