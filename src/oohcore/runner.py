"""The runner: fires due timers and sends due outbox messages, safely under crashes and races.

A host runs one (or several, in several processes) :class:`Runner` next to its store. Each
:meth:`Runner.tick` does, until nothing more is due at ``now``:

1. **Timers.** For each due timer, one transaction does ``mark_fired`` and, only if that
   conditional update won, the ``on_timer(conn, timer, now)`` callback. The timer's effects
   (a state change, events, messages, new timers) and its firing commit together, so a timer
   handled twice, or by two racing runners, has one effect, and a crash before the commit leaves
   it pending to fire again. If ``on_timer`` raises, the transaction rolls back, the timer stays
   pending, the error is noted on the timer row (``attempts``, ``last_error``) and in the report,
   and it is tried again on the next tick.
2. **Outbox.** Due messages are claimed in a short transaction (each claim counts an attempt and
   leases the message for ``claim_lease``), sent through their channel *outside* any
   transaction, then one transaction records the results of the whole batch: ``mark_sent`` plus
   ``on_sent(conn, row, now)`` for each message sent (if anything in it fails, each message is
   recorded in a transaction of its own instead, so one bad callback holds back no other), and
   the retry/failure with backoff plus ``on_failed(conn, row, now)`` when a message fails for
   good. A crash between sending and recording means the batch's messages are sent again when
   their lease ends; the channel and receiver dedupe on the idempotency key (``message_batch``
   bounds how many that can be). A message whose channel
   is not in the runner's mapping fails permanently with a message saying so (misconfiguration
   must be visible and escalate, not wait silently).

A tick works in rounds (one batch of timers, then one batch of messages) until a round finds
nothing due, so a chain of work due at once (a timer whose callback sets the next stage's timer
due now, a message whose ``on_sent`` sets a timer) completes within one tick; ``max_rounds``
cuts off a runaway chain (the rest is done by the next tick).

``tick(now)`` records ``now`` as the time of everything it does, for deterministic driving
in tests and simulations; :meth:`Runner.run` loops with the real clock, reading it again for each
step so that timestamps stay accurate during long ticks.

Contract for callbacks
----------------------

* ``on_timer(conn, timer, now)``: required. ``timer`` is a :class:`~oohcore.timers.TimerRow`
  (already marked fired at ``now``). Typical work: check the call's state (the timer may be
  stale: an acknowledgement may have arrived; do nothing then), append events, enqueue the next
  escalation's messages, set the next timer.
* ``on_sent(conn, row, now)``: optional; runs in the transaction that marks the message sent,
  once per message even when the channel saw it twice. If it raises, the attempt counts as
  failed and the message is sent again later (the receiver dedupes), so ``on_sent`` runs again.
* ``on_failed(conn, row, now)``: optional; runs in the transaction that marks the message failed
  for good (``row.last_error`` says why): record the event, start the escalation.

Callbacks run inside the store transaction and receive its connection: they must write only
through it, must not open another transaction of the same store, and must not wait for the
network (they hold SQLite's write lock). Errors they raise are logged, noted on the row and in
:class:`TickReport` ``errors``; with ``raise_errors=True`` (for tests) they are raised as
:class:`RunnerError` after being noted.

Timing limits: a message claimed by a runner that dies is sent again only when its claim lease
(``claim_lease``, default 2 minutes) ends, so a crash can delay such messages by up to the
lease; channels must give up well within the lease, or another runner may send the same message
meanwhile (harmless for an idempotent receiver, but a second SMS to a phone is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection

from oohcore.channels import Channel, DeliveryResult, DeliveryStatus
from oohcore.clock import Clock, as_utc
from oohcore.errors import OohcoreError
from oohcore.outbox import (
    FailureOutcome,
    OutboxRow,
    RetryPolicy,
    claim_due,
    mark_sent,
    record_failure,
)
from oohcore.store import Store
from oohcore.timers import TimerRow, due_timers, mark_fired, record_timer_error

__all__ = [
    "MessageCallback",
    "Runner",
    "RunnerError",
    "TickError",
    "TickReport",
    "TimerCallback",
]

logger = logging.getLogger("oohcore.runner")

TimerCallback = Callable[[Connection, TimerRow, datetime], None]
MessageCallback = Callable[[Connection, OutboxRow, datetime], None]


class RunnerError(OohcoreError):
    """The runner was set up wrongly, or (with ``raise_errors``) a callback failed."""


@dataclass(frozen=True, slots=True)
class TickError:
    """A callback or channel failure the runner survived."""

    what: str  # "timer" or "message"
    id: int
    error: str
    exception: BaseException = field(compare=False, repr=False)


@dataclass(slots=True)
class TickReport:
    """What one :meth:`Runner.tick` did (ids of timers and outbox rows)."""

    now: datetime
    fired: list[int] = field(default_factory=list)
    already_fired: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # sent; the channel had it already
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    errors: list[TickError] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        """Nothing was due."""
        return not (
            self.fired
            or self.already_fired
            or self.sent
            or self.retried
            or self.failed
            or self.errors
        )


class Runner:
    """Drives durable timers and the outbox of one :class:`~oohcore.store.Store`."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        on_timer: TimerCallback,
        on_sent: MessageCallback | None = None,
        on_failed: MessageCallback | None = None,
        retry_policy: RetryPolicy | None = None,
        claim_lease: timedelta = timedelta(minutes=2),
        timer_batch: int = 500,
        message_batch: int = 100,
        raise_errors: bool = False,
        max_rounds: int = 1000,
    ) -> None:
        for name, channel in channels.items():
            if not isinstance(channel, Channel):
                raise RunnerError(
                    f"channel {name!r} ({type(channel).__name__}) is not a Channel: it needs a "
                    "'name' attribute and a 'send(message)' method"
                )
        if claim_lease <= timedelta(0):
            raise RunnerError("claim_lease must be positive")
        if timer_batch < 1 or message_batch < 1:
            raise RunnerError("timer_batch and message_batch must be at least 1")
        self.store = store
        self.channels = dict(channels)
        self.on_timer = on_timer
        self.on_sent = on_sent
        self.on_failed = on_failed
        self.retry_policy = retry_policy or RetryPolicy()
        self.claim_lease = claim_lease
        self.timer_batch = timer_batch
        self.message_batch = message_batch
        self.raise_errors = raise_errors
        self.max_rounds = max_rounds

    # -- one tick --------------------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """Fire every timer and send every message due at ``now``; ``now`` is recorded as the
        time of everything done."""
        now = as_utc(now)
        return self._tick(lambda: now)

    def _tick(self, clock: Callable[[], datetime]) -> TickReport:
        report = TickReport(now=clock())
        failed_timers: set[int] = set()
        # One batch of timers, then one batch of messages, per round. Timers may enqueue
        # messages and message callbacks may set timers due already: go round until a round
        # does nothing (or, against a runaway chain of callbacks that keep creating work due at
        # once, until ``max_rounds``; the rest waits for the next tick).
        for _ in range(self.max_rounds):
            progressed = self._fire_timers(clock, report, failed_timers)
            progressed = self._dispatch_messages(clock, report) or progressed
            if not progressed:
                return report
        logger.warning(
            "tick stopped after %d rounds with work still due: a backlog larger than the "
            "batches allow, or a callback that keeps creating work due at once",
            self.max_rounds,
        )
        return report

    def _fire_timers(
        self, clock: Callable[[], datetime], report: TickReport, failed: set[int]
    ) -> bool:
        """Fire one batch of due timers; ``False`` if none was due."""
        with self.store.read() as conn:
            due = due_timers(conn, clock(), self.timer_batch + len(failed))
        todo = [t for t in due if t.id not in failed]
        for timer in todo:
            self._fire_one(timer, clock(), report, failed)
        return bool(todo)

    def _fire_one(
        self, timer: TimerRow, now: datetime, report: TickReport, failed: set[int]
    ) -> None:
        try:
            with self.store.transaction() as conn:
                if not mark_fired(conn, timer.id, now):
                    report.already_fired.append(timer.id)
                    return
                self.on_timer(conn, replace(timer, fired_at=now), now)
        except Exception as exc:
            failed.add(timer.id)
            message = f"{type(exc).__name__}: {exc}"
            logger.exception(
                "timer %s (%s, key %r) failed: %s", timer.id, timer.kind, timer.key, message
            )
            with self.store.transaction() as conn:
                record_timer_error(conn, timer.id, message)
            report.errors.append(TickError("timer", timer.id, message, exc))
            if self.raise_errors:
                raise RunnerError(f"on_timer failed for timer {timer.id} ({timer.key!r})") from exc
            return
        report.fired.append(timer.id)

    def _dispatch_messages(self, clock: Callable[[], datetime], report: TickReport) -> bool:
        """Send one batch of due messages; ``False`` if none was due."""
        with self.store.transaction() as conn:
            rows = claim_due(conn, clock(), limit=self.message_batch, lease=self.claim_lease)
        sent: list[tuple[OutboxRow, DeliveryResult]] = []
        for row in rows:
            result = self._send(row)
            if result.status is DeliveryStatus.SENT:
                sent.append((row, result))
            else:
                self._record_failure(row, result, clock(), report)
        if sent:
            self._record_sent(sent, clock(), report)
        return bool(rows)

    def _record_sent(
        self, sent: list[tuple[OutboxRow, DeliveryResult]], now: datetime, report: TickReport
    ) -> None:
        """Mark a batch of sent messages, with their ``on_sent`` effects, in one transaction; if
        anything in it fails, fall back to one transaction per message so one bad callback does
        not hold back the others."""
        if len(sent) > 1:
            try:
                done: list[tuple[OutboxRow, DeliveryResult]] = []
                with self.store.transaction() as conn:
                    for row, result in sent:
                        if self._mark(conn, row, result, now):
                            done.append((row, result))
            except Exception:
                pass  # nothing of the batch was recorded: record each on its own below
            else:
                for row, result in done:
                    report.sent.append(row.id)
                    if result.duplicate:
                        report.duplicates.append(row.id)
                return
        for row, result in sent:
            try:
                with self.store.transaction() as conn:
                    marked = self._mark(conn, row, result, now)
            except Exception as exc:
                # The message went out but its consequences did not commit: count the attempt
                # and let it be sent again (the receiver dedupes), so on_sent runs once it works.
                self._callback_failed("on_sent", row, exc, now, report)
                continue
            if marked:
                report.sent.append(row.id)
                if result.duplicate:
                    report.duplicates.append(row.id)

    def _mark(
        self, conn: Connection, row: OutboxRow, result: DeliveryResult, now: datetime
    ) -> bool:
        if not mark_sent(conn, row.id, at=now, provider_ref=result.provider_ref):
            return False
        if self.on_sent is not None:
            self.on_sent(conn, replace(row, sent_at=now, provider_ref=result.provider_ref), now)
        return True

    def _send(self, row: OutboxRow) -> DeliveryResult:
        channel = self.channels.get(row.channel)
        result: DeliveryResult
        if channel is None:
            known = ", ".join(sorted(self.channels)) or "none"
            result = DeliveryResult.permanent(
                f"no channel named {row.channel!r} is configured in this runner (known: {known})"
            )
        else:
            try:
                result = channel.send(row.message)
            except Exception as exc:
                logger.warning(
                    "channel %r raised while sending message %s: %r", row.channel, row.id, exc
                )
                result = DeliveryResult.retry(f"{type(exc).__name__}: {exc}")
        return result

    def _record_failure(
        self, row: OutboxRow, result: DeliveryResult, now: datetime, report: TickReport
    ) -> None:
        permanent = result.status is DeliveryStatus.PERMANENT_FAILURE
        error = result.error or result.status.value
        try:
            with self.store.transaction() as conn:
                outcome = record_failure(
                    conn, row, at=now, error=error, policy=self.retry_policy, permanent=permanent
                )
                if outcome is FailureOutcome.FAILED and self.on_failed is not None:
                    self.on_failed(conn, replace(row, failed_at=now, last_error=error), now)
        except Exception as exc:
            # Nothing was recorded; the lease ends and the message is tried again.
            self._callback_failed("on_failed", row, exc, now, report, record=False)
            return
        if outcome is FailureOutcome.RETRY_SCHEDULED:
            report.retried.append(row.id)
        elif outcome is FailureOutcome.FAILED:
            report.failed.append(row.id)

    def _callback_failed(
        self,
        which: str,
        row: OutboxRow,
        exc: Exception,
        now: datetime,
        report: TickReport,
        *,
        record: bool = True,
    ) -> None:
        message = f"{which} failed: {type(exc).__name__}: {exc}"
        logger.exception("message %s (%r): %s", row.id, row.idempotency_key, message)
        report.errors.append(TickError("message", row.id, message, exc))
        if record:
            with self.store.transaction() as conn:
                outcome = record_failure(conn, row, at=now, error=message, policy=self.retry_policy)
            if outcome is FailureOutcome.RETRY_SCHEDULED:
                report.retried.append(row.id)
            elif outcome is FailureOutcome.FAILED:
                # Failing here skips on_failed (the same callbacks are what is failing);
                # the message row keeps the error for whoever looks.
                report.failed.append(row.id)
        if self.raise_errors:
            raise RunnerError(f"{which} failed for message {row.id}") from exc

    # -- the loop ------------------------------------------------------------------------------

    async def run(
        self, clock: Clock, *, interval: float | timedelta = 1.0, stop: asyncio.Event
    ) -> None:
        """Tick every ``interval`` until ``stop`` is set, in a worker thread so that slow
        channels do not block the event loop. Unexpected errors (e.g. the database is
        unreachable) are logged and the loop carries on (unless ``raise_errors``)."""
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
        if seconds < 0:
            raise RunnerError("interval must not be negative")

        last: list[datetime] = []

        def now() -> datetime:
            # Never let recorded time go backwards within a run, whatever the wall clock does.
            current = as_utc(clock.now())
            if last and current < last[0]:
                current = last[0]
            last[:] = [current]
            return current

        while not stop.is_set():
            try:
                await asyncio.to_thread(self._tick, now)
            except Exception:
                if self.raise_errors:
                    raise
                logger.exception("runner tick failed; trying again in %s s", seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
