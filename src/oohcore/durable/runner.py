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
2. **Outbox.** Due messages are claimed in a short transaction, sent through their channel
   *outside* any transaction — each channel on a worker thread of its own, so a slow or hung
   channel never holds back another's messages, and a send that outlives its channel's
   ``send_timeout`` (plus ``send_grace``) is abandoned as a failed attempt
   (:mod:`oohcore.durable.sending`) — then one transaction records the results of a batch:
   ``mark_sent`` plus ``on_sent(conn, row, now)`` for each message sent (if anything in it
   fails, each message is recorded in a transaction of its own instead, so one bad callback
   holds back no other). A failed attempt is recorded at once, in a transaction of its own: a
   retry on the durable schedule (backoff with jitter, the provider's ``retry_after``), or a
   failure for good, whose ``on_failed(conn, row, now)`` runs in that same transaction, so the
   engine escalates at once (8.14). Every attempt is kept (``oohcore.durable.receipts.attempts_for``). A
   message whose channel is not in the runner's mapping fails permanently with a message
   saying so (misconfiguration must be visible and escalate, not wait silently).

**Leases hold.** A claim is a lease measured on the *real* time of the claim (the store's clock,
or ``lease_clock``), not on the tick's logical ``now``, and a runner claims no more messages
than it can send, one after another, within 90% of ``claim_lease``, counting each channel's
``ChannelInfo.send_timeout``. Before each send it checks that the lease still covers a whole
send; if not (a channel was slower than it declared), it hands the message back unsent. So
while runners are alive, another runner never takes a message that is being sent, and a message
is sent once; only a runner that dies mid-send, or a send abandoned past its deadline that
reaches the peer after all, leaves a message to be sent again (the receiver dedupes on the
idempotency key where it can: see ``docs/adapters.md``). **Rate limits**: each channel's ``ChannelInfo.rate_limit`` is kept with
a token bucket on the same real clock; a message over the limit is handed back, to be claimed
again when a token is due (``TickReport.deferred``).

A tick works in rounds (one batch of timers, then one batch of messages) until a round finds
nothing due, so a chain of work due at once (a timer whose callback sets the next stage's timer
due now, a message whose ``on_sent`` sets a timer) completes within one tick; ``max_rounds``
cuts off a runaway chain (the rest is done by the next tick).

``tick(now)`` records ``now`` as the time of everything it does, for deterministic driving
in tests and simulations; :meth:`Runner.run` loops with the real clock, reading it again for each
step so that timestamps stay accurate during long ticks.

Contract for callbacks
----------------------

* ``on_timer(conn, timer, now)``: required. ``timer`` is a :class:`~oohcore.durable.timers.TimerRow`
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

* ``on_receipt(conn, row, receipt, now)``: optional; runs when :meth:`Runner.record_receipt`
  is given a failure receipt for a message not already failed (it was sent but did not reach
  the officer): record the event, escalate.

Timing limits: a message claimed by a runner that dies is sent again only when its claim lease
(``claim_lease``, default 2 minutes) ends, so a crash can delay such messages by up to the
lease. Every channel's ``send_timeout`` must fit in 90% of the lease (the runner refuses
otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection

from oohcore.channels import Channel, DeliveryResult, DeliveryStatus, Receipt
from oohcore.clock import Clock, as_utc
from oohcore.durable.health import Health, lag, watch
from oohcore.durable.outbox import (
    LEASE_FILL,
    FailureOutcome,
    OutboxRow,
    RetryPolicy,
    claim_due,
    get_message,
    mark_sent,
    record_failure,
    release,
)
from oohcore.durable.receipts import (
    AttemptOutcome,
    ReceiptCallback,
    ReceiptRecord,
    record_attempt,
    record_receipt,
)
from oohcore.durable.sending import (
    Abandoned,
    ChannelWorker,
    Done,
    Event,
    Finished,
    Handback,
    Job,
    wait_for,
)
from oohcore.durable.timers import TimerRow, due_timers, mark_fired, record_timer_error
from oohcore.errors import OohcoreError
from oohcore.store import Store, StoreError

__all__ = [
    "MessageCallback",
    "Runner",
    "RunnerError",
    "TickError",
    "TickReport",
    "TimerCallback",
    "TokenBucket",
    "store_backoff",
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
    # claimed, then handed back unsent (over the channel's rate limit, or the lease no longer
    # covered a send): they are sent by a later round or tick
    deferred: list[int] = field(default_factory=list)
    errors: list[TickError] = field(default_factory=list)
    # the lag left after the tick (runners given ``lag_threshold``; see oohcore.durable.health)
    lag: Health | None = None

    @property
    def idle(self) -> bool:
        """Nothing was due."""
        return not (
            self.fired
            or self.already_fired
            or self.sent
            or self.retried
            or self.failed
            or self.deferred
            or self.errors
        )


class TokenBucket:
    """At most ``rate`` messages a second on average, in bursts of at most ``burst``, on the
    times it is given (the runner gives it the injected real clock)."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, *, burst: float | None = None) -> None:
        if rate <= 0:
            raise RunnerError("a rate limit must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._at: datetime | None = None

    def take(self, now: datetime) -> timedelta | None:
        """Take a token at ``now``: ``None`` if one was taken, else how long until one is due."""
        if self._at is not None and now > self._at:
            elapsed = (now - self._at).total_seconds()
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._at is None or now > self._at:
            self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return timedelta(seconds=(1 - self._tokens) / self.rate)


_Sent = tuple[OutboxRow, DeliveryResult, datetime]  # the row, the channel's answer, when it began


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
        on_receipt: ReceiptCallback | None = None,
        retry_policy: RetryPolicy | None = None,
        claim_lease: timedelta = timedelta(minutes=2),
        lease_clock: Clock | None = None,
        timer_batch: int = 500,
        message_batch: int = 100,
        raise_errors: bool = False,
        max_rounds: int = 1000,
        lag_threshold: timedelta | None = None,
        send_grace: timedelta = timedelta(seconds=1),
    ) -> None:
        """``lease_clock``: the real clock leases and rate limits are measured on (default the
        store's clock); the ``now`` given to :meth:`tick` is what is recorded.
        ``lag_threshold``: after each tick, read the lag left (``TickReport.lag``) and record a
        lag episode when it passes this (:func:`oohcore.durable.health.watch`, once per episode).
        ``send_grace``: how much longer than its ``send_timeout`` a channel's send is waited
        for before it is abandoned (:mod:`oohcore.durable.sending`)."""
        if claim_lease <= timedelta(0):
            raise RunnerError("claim_lease must be positive")
        for name, channel in channels.items():
            if not isinstance(channel, Channel):
                raise RunnerError(
                    f"channel {name!r} ({type(channel).__name__}) is not a Channel: it needs "
                    "'name' and 'info' attributes and 'send(message)' and 'close()' methods"
                )
            if channel.info.send_timeout > claim_lease * LEASE_FILL:
                raise RunnerError(
                    f"channel {name!r} may take up to {channel.info.send_timeout} a send "
                    f"(ChannelInfo.send_timeout), more than {int(LEASE_FILL * 100)}% of the "
                    f"claim lease ({claim_lease}): give the runner a longer claim_lease"
                )
        if timer_batch < 1 or message_batch < 1:
            raise RunnerError("timer_batch and message_batch must be at least 1")
        self.store = store
        self.channels = dict(channels)
        self.on_timer = on_timer
        self.on_sent = on_sent
        self.on_failed = on_failed
        self.on_receipt = on_receipt
        self.retry_policy = retry_policy or RetryPolicy()
        self.claim_lease = claim_lease
        self.lease_clock: Clock = lease_clock or store.clock
        self.timer_batch = timer_batch
        self.message_batch = message_batch
        self.raise_errors = raise_errors
        self.max_rounds = max_rounds
        if lag_threshold is not None and lag_threshold < timedelta(0):
            raise RunnerError("lag_threshold must not be negative")
        self.lag_threshold = lag_threshold
        self._buckets: dict[int, TokenBucket] = {
            id(ch): TokenBucket(ch.info.rate_limit)
            for ch in self.channels.values()
            if ch.info.rate_limit is not None
        }
        if send_grace < timedelta(0):
            raise RunnerError("send_grace must not be negative")
        self.send_grace = send_grace
        self._workers: dict[int, ChannelWorker] = {}
        self._closed = False

    def _real(self) -> datetime:
        return as_utc(self.lease_clock.now())

    def _send_time(self, channel: str) -> timedelta:
        found = self.channels.get(channel)
        return found.info.send_timeout if found is not None else timedelta(0)

    # -- one tick --------------------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """Fire every timer and send every message due at ``now``; ``now`` is recorded as the
        time of everything done (leases are measured on the real clock, see the module doc)."""
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
                break
        else:
            logger.warning(
                "tick stopped after %d rounds with work still due: a backlog larger than the "
                "batches allow, or a callback that keeps creating work due at once",
                self.max_rounds,
            )
        if self.lag_threshold is not None:
            with self.store.transaction() as conn:
                report.lag = lag(conn, clock())
                watch(conn, report.lag, self.lag_threshold)
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
        """Send one claim of due messages, each channel's on its own worker (see
        :mod:`oohcore.durable.sending`); ``False`` if none was sent or failed."""
        with self.store.transaction() as conn:
            rows = claim_due(
                conn,
                clock(),
                limit=self.message_batch,
                lease=self.claim_lease,
                real_now=self._real(),
                send_time=self._send_time,
            )
        if not rows:
            return False
        events: queue.Queue[Event] = queue.Queue()
        groups: dict[int, list[OutboxRow]] = {}
        workers: dict[int, ChannelWorker] = {}
        finished = 0
        for row in rows:
            channel = self.channels.get(row.channel)
            if channel is None:
                self._record_failure(row, self._send(row), clock(), self._real(), report)
                finished += 1
                continue
            worker = self._worker(row.channel, channel)
            if worker.busy:
                # its thread is still in a send that outlived its deadline: count an attempt
                # now rather than wait, so the retry policy ends in an escalation (8.14)
                timeout = channel.info.send_timeout.total_seconds()
                busy = DeliveryResult.retry(
                    f"channel {row.channel!r} is still busy with a send that gave no answer "
                    f"within its send_timeout ({timeout:g} s); not sent"
                )
                self._record_failure(row, busy, clock(), self._real(), report)
                finished += 1
                continue
            workers[id(channel)] = worker
            groups.setdefault(id(channel), []).append(row)
        jobs: set[Job] = set()
        for key, group in groups.items():
            send_timeout = workers[key].channel.info.send_timeout
            job = Job(rows=group, events=events, send_timeout=send_timeout)
            workers[key].submit(job)
            jobs.add(job)
        sent: list[_Sent] = []
        answered = 0
        try:
            while jobs:
                grace = self.send_grace.total_seconds()
                event = wait_for(jobs, events, grace, holding=bool(sent))
                if not isinstance(event, Done):
                    self._flush(sent, clock, report)
                if isinstance(event, Abandoned):
                    jobs.discard(event.job)
                    self._abandon(event.job, event.row, event.started, clock(), report)
                    finished += 1
                elif isinstance(event, Finished):
                    jobs.discard(event.job)
                elif isinstance(event, Handback):
                    self._handled(event.row, jobs)
                    self._release([event.row], event.until, report)
                elif isinstance(event, Done):
                    self._handled(event.row, jobs)
                    answered += 1
                    if event.result.status is DeliveryStatus.SENT:
                        sent.append((event.row, event.result, event.started))
                    else:
                        self._record_failure(
                            event.row, event.result, clock(), event.started, report
                        )
                        finished += 1
            self._flush(sent, clock, report)
        finally:
            for job in jobs:
                with job.lock:
                    job.cancelled = True  # an error stopped the runner: send nothing more
        return answered > 0 or finished > 0

    def _handled(self, row: OutboxRow, jobs: set[Job]) -> None:
        for job in jobs:
            if any(r.id == row.id for r in job.rows):
                job.handled.add(row.id)
                return

    def _flush(self, sent: list[_Sent], clock: Callable[[], datetime], report: TickReport) -> None:
        if sent:
            batch = list(sent)
            sent.clear()
            self._record_sent(batch, clock(), report)

    def _abandon(
        self, job: Job, row: OutboxRow, started: datetime, now: datetime, report: TickReport
    ) -> None:
        """A send outlived its channel's deadline: record it as a failed attempt (the message
        is retried, or fails for good and the engine escalates), and hand the channel's other
        messages back unsent. If the send did reach the peer, the retry carries the same
        idempotency key, so the receiver can drop the repeat."""
        seconds = job.send_timeout.total_seconds()
        logger.warning(
            "channel %r gave no answer for message %s within its send_timeout (%g s): "
            "abandoned; the channel gets nothing more until that send returns",
            row.channel,
            row.id,
            seconds,
        )
        job.handled.add(row.id)
        result = DeliveryResult.retry(
            f"channel {row.channel!r} gave no answer within its send_timeout ({seconds:g} s); "
            "the send was abandoned (it may yet arrive: the same idempotency key lets the "
            "receiver drop a repeat)"
        )
        self._record_failure(row, result, now, started, report)
        self._release(job.unstarted(), None, report)

    def _worker(self, name: str, channel: Channel) -> ChannelWorker:
        worker = self._workers.get(id(channel))
        if worker is None:
            worker = ChannelWorker(name, channel, self._send, self._gate, self._real)
            self._workers[id(channel)] = worker
        return worker

    def _gate(self, row: OutboxRow) -> datetime | bool | None:
        """In the channel's worker, before each send: True to send; else hand it back (None:
        at once, the lease no longer covers a whole send; a time: over the rate limit)."""
        started = self._real()
        lease_until = row.lease_until or started
        if started + self._send_time(row.channel) > lease_until:
            return None
        channel = self.channels.get(row.channel)
        bucket = self._buckets.get(id(channel)) if channel is not None else None
        wait = bucket.take(started) if bucket is not None else None
        return True if wait is None else started + wait

    def _release(self, rows: list[OutboxRow], until: datetime | None, report: TickReport) -> None:
        with self.store.transaction() as conn:
            for row in rows:
                if release(conn, row, until=until):
                    report.deferred.append(row.id)

    def _record_sent(self, sent: list[_Sent], now: datetime, report: TickReport) -> None:
        """Mark a batch of sent messages, with their ``on_sent`` effects, in one transaction; if
        anything in it fails, fall back to one transaction per message so one bad callback does
        not hold back the others.

        Only on SQLite (where a commit is the cost, and one writer at a time anyway): on
        PostgreSQL each message is recorded in its own transaction, because a batch would hold
        one organisation's audit chain head while it waits for another call's referral row
        that a desk holds while it waits for that head — a deadlock. One step per transaction
        keeps every transaction's lock order (timer, call, referral, chain head:
        :func:`oohcore.engine.result.commit`)."""
        if len(sent) > 1 and self.store.dialect_name == "sqlite":
            try:
                done: list[_Sent] = []
                with self.store.transaction() as conn:
                    for item in sent:
                        if self._mark(conn, item, now):
                            done.append(item)
            except Exception:
                pass  # nothing of the batch was recorded: record each on its own below
            else:
                for row, result, _ in done:
                    report.sent.append(row.id)
                    if result.duplicate:
                        report.duplicates.append(row.id)
                return
        for item in sent:
            row, result, started = item
            try:
                with self.store.transaction() as conn:
                    marked = self._mark(conn, item, now)
            except Exception as exc:
                # The message went out but its consequences did not commit: count the attempt
                # and let it be sent again (the receiver dedupes), so on_sent runs once it works.
                self._callback_failed("on_sent", row, exc, now, started, report)
                continue
            if marked:
                report.sent.append(row.id)
                if result.duplicate:
                    report.duplicates.append(row.id)

    def _mark(self, conn: Connection, item: _Sent, now: datetime) -> bool:
        row, result, started = item
        outcome = AttemptOutcome.DUPLICATE if result.duplicate else AttemptOutcome.SENT
        record_attempt(
            conn, row, at=now, outcome=outcome, provider_ref=result.provider_ref, started_at=started
        )
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
        self,
        row: OutboxRow,
        result: DeliveryResult,
        now: datetime,
        started: datetime,
        report: TickReport,
    ) -> None:
        permanent = result.status is DeliveryStatus.PERMANENT_FAILURE
        error = result.error or result.status.value
        try:
            with self.store.transaction() as conn:
                record_attempt(
                    conn,
                    row,
                    at=now,
                    outcome=AttemptOutcome.PERMANENT if permanent else AttemptOutcome.RETRY,
                    error=error,
                    provider_ref=result.provider_ref,
                    started_at=started,
                )
                outcome = record_failure(
                    conn,
                    row,
                    at=now,
                    error=error,
                    policy=self.retry_policy,
                    permanent=permanent,
                    retry_after=result.retry_after,
                )
                if outcome is FailureOutcome.FAILED and self.on_failed is not None:
                    stored = get_message(conn, row.idempotency_key)  # with the final reason
                    self.on_failed(conn, stored or replace(row, failed_at=now), now)
        except Exception as exc:
            # Nothing was recorded; the lease ends and the message is tried again.
            self._callback_failed("on_failed", row, exc, now, started, report, record=False)
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
        started: datetime,
        report: TickReport,
        *,
        record: bool = True,
    ) -> None:
        message = f"{which} failed: {type(exc).__name__}: {exc}"
        logger.exception("message %s (%r): %s", row.id, row.idempotency_key, message)
        report.errors.append(TickError("message", row.id, message, exc))
        if record:
            with self.store.transaction() as conn:
                record_attempt(
                    conn,
                    row,
                    at=now,
                    outcome=AttemptOutcome.NOT_RECORDED,
                    error=message,
                    started_at=started,
                )
                outcome = record_failure(conn, row, at=now, error=message, policy=self.retry_policy)
            if outcome is FailureOutcome.RETRY_SCHEDULED:
                report.retried.append(row.id)
            elif outcome is FailureOutcome.FAILED:
                # Failing here skips on_failed (the same callbacks are what is failing);
                # the message row keeps the error for whoever looks.
                report.failed.append(row.id)
        if self.raise_errors:
            raise RunnerError(f"{which} failed for message {row.id}") from exc

    # -- receipts --------------------------------------------------------------------------------

    def record_receipt(self, receipt: Receipt, *, now: datetime | None = None) -> ReceiptRecord:
        """Keep a delivery receipt (a provider's callback, a status look-up) in one transaction,
        calling ``on_receipt`` there for a failure receipt of a message not already failed
        (see :func:`oohcore.durable.receipts.record_receipt`). ``now`` (default the store's clock) is
        recorded as the time it arrived. If ``on_receipt`` raises, nothing is kept and the
        error propagates: answer the provider's callback with an error so that it retries."""
        at = as_utc(now) if now is not None else as_utc(self.store.clock.now())
        with self.store.transaction() as conn:
            return record_receipt(conn, receipt, at=at, on_receipt=self.on_receipt)

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every channel (once each, even when several names share one); a channel whose
        ``close`` raises is logged and the others are still closed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers.values():
            worker.stop()
        seen: set[int] = set()
        for name, channel in self.channels.items():
            if id(channel) in seen:
                continue
            seen.add(id(channel))
            try:
                channel.close()
            except Exception:
                logger.exception("closing channel %r failed", name)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------------------

    async def run(
        self, clock: Clock, *, interval: float | timedelta = 1.0, stop: asyncio.Event
    ) -> None:
        """Tick every ``interval`` until ``stop`` is set, in a worker thread so that slow
        channels do not block the event loop. A tick the store cannot serve (a
        :class:`~oohcore.store.StoreError`: the database unreachable, restarting, out of disk
        space) is logged once per outage and the loop backs off (:func:`store_backoff`), then
        carries on by itself when the store is back; nothing due is lost meanwhile. Other
        unexpected errors are logged and the loop carries on (unless ``raise_errors``)."""
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

        faults = 0  # ticks in a row that the store could not be used
        while not stop.is_set():
            wait = seconds
            try:
                await asyncio.to_thread(self._tick, now)
            except StoreError as exc:
                # The store is unreachable, restarting or full: not this runner's fault, and
                # nothing was lost (what was not committed is still due). Say so once per
                # outage, back off so as not to hammer it, and carry on when it is back.
                if self.raise_errors:
                    raise
                faults += 1
                wait = store_backoff(faults, seconds)
                (logger.error if faults == 1 else logger.debug)(
                    "the store cannot be used (%s); the runner tries again in %s s and keeps "
                    "trying until it is back",
                    exc,
                    wait,
                )
            except Exception:
                if self.raise_errors:
                    raise
                logger.exception("runner tick failed; trying again in %s s", seconds)
            else:
                if faults:
                    logger.warning("the store is back after %d failed tick(s)", faults)
                faults = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)


STORE_BACKOFF_MAX = 30.0
"""The longest a runner waits between ticks while its store cannot be used (seconds): well
inside the referral time limit (10 minutes, 6.4b), so due work goes out within half a minute of
the store coming back."""


def store_backoff(faults: int, interval: float) -> float:
    """Seconds to wait after ``faults`` ticks in a row failed with a :class:`StoreError`: the
    tick interval doubled for each, up to :data:`STORE_BACKOFF_MAX` (never less than the
    interval)."""
    return max(interval, min(interval * (1 << min(faults, 16)), STORE_BACKOFF_MAX))
