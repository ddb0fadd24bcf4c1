"""The channel protocol: what every way of sending a message implements. It stands alone.

The core knows no SMS gateway, mail server or pager bureau. A **channel** is a small object with a
``name``, an ``info`` (:class:`ChannelInfo`: what it carries, which officer contact field it
uses, its limits), a ``send(message) -> DeliveryResult`` method and ``close()``. Adapters for
real services live in their own distributions (``adapters/<name>/``) and register a **factory**
(a class or function returning a :class:`Channel`) in the entry-point group ``oohcore.channels``::

    [project.entry-points."oohcore.channels"]
    notify = "oohcore_notify:NotifyChannel"

:func:`load_channels` returns every factory found there (the built-in reference channels
``local``, ``console`` and ``memory`` register through the same group). The host builds the
channels it needs and gives the engine a mapping from the logical channel names that rulesets
use (``sms``, ``email``, ``pager``, ``feed``, ``crm``) to channel objects.

This package imports nothing of the store, the engine or the rulesets: an adapter that imports
the protocol loads only the standard library and pydantic. :mod:`oohcore.channels.testing` is the
contract test kit every adapter's tests run.

The delivery contract
---------------------

* ``send`` is called **at least once** per message. After a crash between a successful send and
  the outbox recording it, the same message (same ``idempotency_key``) is sent again. Adapters
  pass the key to their provider as its reference where the provider has one, and use it to
  find an earlier send before sending again where the provider lets them look it up.
* ``send`` returns a :class:`DeliveryResult`: ``sent`` (with the provider's id), ``retry`` (a
  temporary failure; ``retry_after`` when the provider said how long to wait) or ``permanent``
  (the message can never be delivered as it is, e.g. an invalid number: the outbox fails it at
  once and the engine escalates, 8.14). An exception raised by ``send`` counts as ``retry``.
* ``send`` gives up within ``ChannelInfo.send_timeout`` as a whole (not per read) so that the
  runner's lease on the message holds, and reads no unbounded answer
  (:mod:`oohcore.channels.deadline` does both for HTTP adapters); it must not read the clock
  for anything that matters to the message. The runner sends each channel's messages on a
  thread of its own and abandons a send that outlives ``send_timeout`` (:mod:`oohcore.durable.sending`).
* Delivery reports that arrive later (a provider's callback, a status look-up) are
  :class:`Receipt` values, matched to the message by the provider's id or the idempotency key.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from oohcore.errors import OohcoreError, Problem
from oohcore.vocabulary import MessagePurpose

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_RETRY_AFTER",
    "Channel",
    "ChannelConfig",
    "ChannelConfigError",
    "ChannelError",
    "ChannelFactory",
    "ChannelInfo",
    "ChannelRegistryError",
    "DeliveryResult",
    "DeliveryStatus",
    "OutboundMessage",
    "Receipt",
    "ReceiptState",
    "build_channels",
    "https_endpoint",
    "is_loopback",
    "load_channels",
    "retry_after",
    "tls_verify",
]

ENTRY_POINT_GROUP = "oohcore.channels"


class ChannelError(OohcoreError):
    """A channel adapter could not be set up or used."""


class ChannelRegistryError(ChannelError):
    """Channel adapters registered through entry points could not be loaded."""


class ChannelConfigError(ChannelError):
    """An organisation's channel configuration is wrong. ``problems`` lists each mistake, with
    its file, line and column when the configuration came from a file; no channel was built."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the channel configuration:\n{lines}")


class ChannelConfig(BaseModel):
    """The base of every adapter's typed configuration (``ChannelInfo.config``).

    Frozen, and unknown settings are refused (a misspelt setting must not be ignored at 3 a.m.).
    Declare secrets (API keys, passwords, signing keys) as ``pydantic.SecretStr``: they then
    never appear in a repr, a log line or an error, and the adapter reads them with
    ``get_secret_value()`` only where it uses them. A rejected value is never quoted in a
    validation error (``hide_input_in_errors``): a mistyped field may hold a secret.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message to send: what, to whom, through which channel, why, and its dedupe key.

    ``channel`` is the logical channel name the host's channel mapping knows (``"sms"``,
    ``"email"``, ``"pager"``, ``"feed"`` …). ``recipient`` is the officer's contact point for
    that channel (its ``ChannelInfo.contact_field``) or the channel's configured endpoint.
    ``idempotency_key`` is unique per intended delivery and stable across retries.
    ``purpose`` says why it is sent (:class:`~oohcore.vocabulary.MessagePurpose`); ``reference``
    is the caller's reference number when the message is about a call (5.2.2); ``fields`` holds
    the case data by name (caller_name, address, phone, details, uprn …) so that a channel with a
    tight budget can compose its own text (5.2.5); ``meta`` holds anything else
    (officer, stage, protective marking, encryption required …). ``due_at`` delays sending.
    """

    organisation_id: str
    call_id: str | None
    channel: str
    recipient: str
    body: str
    idempotency_key: str
    subject: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)
    due_at: datetime | None = None
    purpose: str = MessagePurpose.OTHER
    reference: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)


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
    duplicate: bool = False  # sent: the channel recognised an earlier delivery of the key
    retry_after: timedelta | None = None  # retry: the provider asked us to wait this long

    @classmethod
    def sent(cls, provider_ref: str | None = None, *, duplicate: bool = False) -> DeliveryResult:
        return cls(DeliveryStatus.SENT, provider_ref=provider_ref, duplicate=duplicate)

    @classmethod
    def retry(cls, error: str, *, after: timedelta | None = None) -> DeliveryResult:
        return cls(DeliveryStatus.RETRY, error=error, retry_after=after)

    @classmethod
    def permanent(cls, error: str) -> DeliveryResult:
        return cls(DeliveryStatus.PERMANENT_FAILURE, error=error)


class ReceiptState(Enum):
    """What the provider later said about a message it accepted."""

    DELIVERED = "delivered"
    PENDING = "pending"  # accepted, not yet delivered
    TEMPORARY_FAILURE = "temporary_failure"  # the provider gave up for now (phone off …)
    PERMANENT_FAILURE = "permanent_failure"  # it will never arrive (no such number …)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery report that arrives after ``send`` (a callback or a status look-up)."""

    channel: str
    state: ReceiptState
    at: datetime
    provider_ref: str | None = None
    idempotency_key: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What a channel declares about itself.

    ``carries``: the kinds of message it delivers (``"sms"``, ``"email"``, ``"pager"``,
    ``"phone"``, ``"feed"``, ``"crm"``); ``contact_field``: which of an on-call officer's contact
    points it sends to (``"phone"``, ``"email"``, ``"pager"``), or None when it sends to its own
    configured endpoint (a feed, a CRM); ``max_body`` / ``max_subject``: the longest text it
    takes, in characters (None: no limit); ``rate_limit``: messages per second it may be given
    (None: no limit); ``receipts``: whether delivery reports arrive later; ``requires``: the
    Python modules it needs; ``config``: its typed configuration (a pydantic model whose secrets
    are ``SecretStr``, so they never print); ``send_timeout``: how long one ``send`` may take.
    """

    carries: frozenset[str]
    contact_field: str | None
    max_body: int | None = None
    max_subject: int | None = None
    rate_limit: float | None = None
    receipts: bool = False
    requires: tuple[str, ...] = ()
    config: type[Any] | None = None
    send_timeout: timedelta = timedelta(seconds=30)


@runtime_checkable
class Channel(Protocol):
    """One way of delivering messages (SMS, email, pager, feed …)."""

    name: str
    info: ChannelInfo

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver ``message`` (at least once; dedupe on ``message.idempotency_key``)."""
        ...

    def close(self) -> None:
        """Release connections and files; ``send`` is not called afterwards."""
        ...


ChannelFactory = Callable[..., Channel]
"""What an entry point names: a class (or function) that makes a channel. A factory that
declares ``info`` (a :class:`ChannelInfo` whose ``config`` is a :class:`ChannelConfig` subclass)
is built from its validated configuration by ``from_config(config)`` (or by calling it with the
configuration); one without is called with the settings as keyword arguments."""


def load_channels(
    *, group: str = ENTRY_POINT_GROUP, problems: list[str] | None = None
) -> dict[str, ChannelFactory]:
    """Channel factories by name: the built-in ones and those registered in ``group``.

    Raises :class:`ChannelRegistryError` naming every entry point that cannot be imported, is
    not callable, or reuses a name already taken; with ``problems`` given, those are appended
    to it instead and the factories that did load are returned.
    """
    from oohcore.channels.local import ConsoleChannel, LocalChannel, MemoryChannel

    factories: dict[str, ChannelFactory] = {
        "local": LocalChannel,
        "console": ConsoleChannel,
        "memory": MemoryChannel,
    }
    report = problems
    problems = []
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        origin = f"entry point {ep.name!r} = {ep.value!r}" + (
            f" (from distribution {dist.name!r})" if dist is not None else ""
        )
        if ep.name in factories:
            if ep.value == f"{factories[ep.name].__module__}:{factories[ep.name].__qualname__}":
                continue  # the core's own registration of a built-in channel
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
    if report is not None:
        report.extend(problems)
    elif problems:
        raise ChannelRegistryError(
            f"{len(problems)} channel adapter(s) in the entry-point group {group!r} could not be "
            "loaded:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return factories


MAX_RETRY_AFTER = timedelta(hours=1)
"""The longest wait a provider's ``Retry-After`` is followed for (a bad header must not park a
referral for a day); the outbox's retry policy caps it again."""


def retry_after(
    value: str | None, now: datetime, *, cap: timedelta = MAX_RETRY_AFTER
) -> timedelta | None:
    """An HTTP ``Retry-After`` header (RFC 9110 10.2.3: seconds, or an HTTP date) as a wait from
    ``now``, at most ``cap``; None when it is absent or unreadable. For HTTP adapters, which pass
    it on as ``DeliveryResult.retry(after=...)`` (8.14)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        wait = max(timedelta(0), when - now)
    return min(wait, cap)


def tls_verify(
    channel: str, ca_file: os.PathLike[str] | str | None, peer: str
) -> ssl.SSLContext | bool:
    """How an HTTPS adapter checks its peer's certificate: the system's CAs (True), or only
    those in ``ca_file`` (a PEM file); an unreadable file is a :class:`ChannelError` naming it
    and the ``peer`` whose certificates it should hold."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ChannelError(
            f"{channel}: ca_file {ca_file} cannot be read ({exc}); give a PEM file of the CA "
            f"certificates that sign {peer}"
        ) from None


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (IPv6 in brackets too): where plain HTTP or SMTP
    without TLS may be allowed, because nothing leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def https_endpoint(value: str, *, key_goes_in: str, query: bool = True) -> str:
    """``value`` checked as an adapter's HTTPS endpoint, for a config model's validator: an
    https:// address with a host (http:// only to loopback), no user or password in it (the
    key belongs in the ``key_goes_in`` setting, a secret), and no query unless ``query``.
    Raises ``ValueError`` with a message that never repeats the value (it may hold a key)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// address with a host")
    if parts.username is not None or parts.password is not None or (parts.query and not query):
        what = "user or password" if query else "user, password or query"
        raise ValueError(f"must hold no {what}: put the key in {key_goes_in}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must be https:// (http:// is allowed only to a loopback address)")
    return value


from oohcore.channels.registry import build_channels  # noqa: E402  (uses the names above)
