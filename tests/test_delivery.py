"""Delivery you can prove (8.14, 11.7.3g-h): retries on the durable schedule, every attempt kept,
receipts matched and kept, rate limits, leases that a slow channel cannot overrun, and closing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from oohcore.channels import (
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    Receipt,
    ReceiptState,
)
from oohcore.clock import ManualClock
from oohcore.durable.outbox import OutboxRow, RetryPolicy, enqueue, get_message
from oohcore.durable.receipts import AttemptOutcome, attempts_for, delivery_receipts, receipts_for
from oohcore.durable.runner import Runner, RunnerError, TokenBucket
from oohcore.durable.timers import TimerRow
from oohcore.store import Store

T0 = datetime(2025, 1, 10, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


def _msg(key: str, channel: str = "sms") -> OutboundMessage:
    return OutboundMessage(
        "ealing", key.split(":")[0], channel, "+447700900123", "Burst pipe, 2 High St", key
    )


def _no_timers(conn: Connection, timer: TimerRow, now: datetime) -> None:
    raise AssertionError("no timers here")


class Scripted:
    """Answers with the scripted results in turn (then ``sent``); each send moves the real clock
    on by ``takes``."""

    name = "scripted"

    def __init__(
        self,
        script: list[DeliveryResult] | None = None,
        *,
        clock: ManualClock | None = None,
        takes: timedelta = timedelta(0),
        info: ChannelInfo | None = None,
    ) -> None:
        self.script = list(script or [])
        self.clock, self.takes = clock, takes
        self.info = info or ChannelInfo(carries=frozenset({"sms"}), contact_field="phone")
        self.sent: list[str] = []
        self.closed = 0

    def send(self, message: OutboundMessage) -> DeliveryResult:
        if self.clock is not None:
            self.clock.advance(self.takes)
        self.sent.append(message.idempotency_key)
        if self.script:
            return self.script.pop(0)
        return DeliveryResult.sent(f"prov-{len(self.sent)}")

    def close(self) -> None:
        self.closed += 1


def _row(store: Store, key: str) -> OutboxRow:
    with store.read() as conn:
        row = get_message(conn, key)
    assert row is not None
    return row


# -- the retry schedule ------------------------------------------------------------------------


def test_backoff_has_jitter_drawn_from_the_key_and_kept_below_the_base() -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=20), multiplier=2, jitter=0.25)
    for attempt, base in ((1, 20.0), (2, 40.0), (3, 80.0)):
        delays = {policy.delay_after(attempt, f"C{i}:ref").total_seconds() for i in range(50)}
        assert all(base * 0.75 <= d <= base for d in delays), (attempt, sorted(delays))
        assert len(delays) > 40  # spread out: messages that failed together come back apart
    # reproducible: the same message and attempt always get the same delay
    assert policy.delay_after(2, "C7:ref") == policy.delay_after(2, "C7:ref")
    assert RetryPolicy(jitter=0).delay_after(2, "x") == timedelta(seconds=30)


def test_a_providers_retry_after_is_respected(store: Store) -> None:
    with store.transaction() as conn:
        enqueue(conn, _msg("C1:ref"), at=T0)
    channel = Scripted([DeliveryResult.retry("429 too many requests", after=timedelta(seconds=90))])
    runner = Runner(store, {"sms": channel}, on_timer=_no_timers)
    assert runner.tick(T0).retried == [1]
    assert _row(store, "C1:ref").next_attempt_at == T0 + timedelta(seconds=90)
    assert runner.tick(T0 + timedelta(seconds=89)).idle
    assert runner.tick(T0 + timedelta(seconds=90)).sent == [1]


def test_the_cap_on_total_time_fails_the_message_and_escalates_at_once(store: Store) -> None:
    """A retry that would fall later than ``max_elapsed`` after the message was due is not
    scheduled: the message fails now and ``on_failed`` runs in the same tick (8.14)."""
    policy = RetryPolicy(
        max_attempts=10,
        first_delay=timedelta(seconds=40),
        jitter=0,
        max_elapsed=timedelta(minutes=1),
    )
    with store.transaction() as conn:
        enqueue(conn, _msg("C1:ref"), at=T0)
    channel = Scripted([DeliveryResult.retry("gateway 503")] * 5)
    failed: list[tuple[str | None, datetime]] = []
    runner = Runner(
        store,
        {"sms": channel},
        on_timer=_no_timers,
        on_failed=lambda conn, row, now: failed.append((row.last_error, now)),
        retry_policy=policy,
    )
    assert runner.tick(T0).retried == [1]  # the next at +40 s is within the minute
    report = runner.tick(T0 + timedelta(seconds=40))  # the next would be at +120 s
    assert report.failed == [1] and report.retried == []
    assert len(failed) == 1
    reason, when = failed[0]
    assert when == T0 + timedelta(seconds=40)
    assert reason is not None and reason.startswith("gave up after 2 attempt(s)")
    assert "1 min after the message was due: gateway 503" in reason
    row = _row(store, "C1:ref")
    assert row.failed_at == T0 + timedelta(seconds=40) and row.last_error == reason
    assert runner.tick(T0 + timedelta(hours=1)).idle  # failed for good: never sent again
    assert channel.sent == ["C1:ref", "C1:ref"]


def test_every_attempt_is_kept_with_its_outcome_error_and_provider_id(store: Store) -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=10), jitter=0)
    real = ManualClock(T0)
    with store.transaction() as conn:
        enqueue(conn, _msg("C1:ref"), at=T0)
    channel = Scripted(
        [DeliveryResult.retry("no signal"), DeliveryResult.retry("gateway 503")],
        clock=real,
        takes=timedelta(seconds=1),
    )
    runner = Runner(
        store, {"sms": channel}, on_timer=_no_timers, retry_policy=policy, lease_clock=real
    )
    runner.tick(T0)
    runner.tick(T0 + timedelta(seconds=10))
    runner.tick(T0 + timedelta(seconds=30))
    with store.read() as conn:
        row = get_message(conn, "C1:ref")
        assert row is not None
        attempts = attempts_for(conn, row.id)
    assert [(a.attempt, a.outcome, a.error, a.provider_ref) for a in attempts] == [
        (1, AttemptOutcome.RETRY, "no signal", None),
        (2, AttemptOutcome.RETRY, "gateway 503", None),
        (3, AttemptOutcome.SENT, None, "prov-3"),
    ]
    assert [a.at for a in attempts] == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=30)]
    # when each send really began, on the runner's real clock
    assert [a.started_at for a in attempts] == [T0 + timedelta(seconds=s) for s in (0, 1, 2)]
    assert row.sent_at == T0 + timedelta(seconds=30) and row.provider_ref == "prov-3"


def test_a_permanent_failure_is_kept_as_the_final_state_and_reason(store: Store) -> None:
    with store.transaction() as conn:
        enqueue(conn, _msg("C1:ref"), at=T0)
    channel = Scripted([DeliveryResult.permanent("not a mobile number")])
    runner = Runner(store, {"sms": channel}, on_timer=_no_timers)
    assert runner.tick(T0).failed == [1]
    with store.read() as conn:
        row = get_message(conn, "C1:ref")
        assert row is not None
        (attempt,) = attempts_for(conn, row.id)
    assert row.failed_at == T0 and row.last_error == "not a mobile number"
    assert attempt.outcome is AttemptOutcome.PERMANENT


# -- receipts ----------------------------------------------------------------------------------


def _sent(store: Store, *keys: str) -> Runner:
    with store.transaction() as conn:
        for key in keys:
            enqueue(conn, _msg(key), at=T0)
    undelivered: list[tuple[str, ReceiptState]] = []

    def on_receipt(conn: Connection, row: OutboxRow, receipt: Receipt, now: datetime) -> None:
        undelivered.append((row.idempotency_key, receipt.state))

    runner = Runner(store, {"sms": Scripted()}, on_timer=_no_timers, on_receipt=on_receipt)
    assert len(runner.tick(T0).sent) == len(keys)
    runner.undelivered = undelivered  # type: ignore[attr-defined]
    return runner


def test_a_receipt_is_matched_by_provider_id_or_key_and_kept(store: Store) -> None:
    runner = _sent(store, "C1:ref", "C2:ref")
    delivered = Receipt("sms", ReceiptState.DELIVERED, T0 + timedelta(seconds=4), "prov-1")
    record = runner.record_receipt(delivered, now=T0 + timedelta(seconds=5))
    assert record.recorded and record.message is not None
    assert record.message.idempotency_key == "C1:ref" and not record.undelivered
    by_key = Receipt("sms", ReceiptState.PENDING, T0, idempotency_key="C2:ref")
    assert runner.record_receipt(by_key).message.idempotency_key == "C2:ref"  # type: ignore[union-attr]
    first = _row(store, "C1:ref")
    assert (first.receipt_state, first.receipt_at) == ("delivered", T0 + timedelta(seconds=4))
    with store.read() as conn:
        assert receipts_for(conn, first.id) == [delivered]
    assert runner.undelivered == []  # type: ignore[attr-defined]


def test_a_failure_receipt_for_a_sent_message_calls_on_receipt_once(store: Store) -> None:
    runner = _sent(store, "C1:ref")
    bounced = Receipt(
        "sms",
        ReceiptState.PERMANENT_FAILURE,
        T0 + timedelta(minutes=1),
        "prov-1",
        detail="no such number",
    )
    first = runner.record_receipt(bounced)
    again = runner.record_receipt(bounced)  # the provider retries its callback
    assert first.recorded and first.undelivered
    assert not again.recorded
    assert runner.undelivered == [("C1:ref", ReceiptState.PERMANENT_FAILURE)]  # type: ignore[attr-defined]
    row = _row(store, "C1:ref")
    assert row.sent_at == T0 and row.receipt_state == "permanent_failure"
    with store.read() as conn:
        assert len(receipts_for(conn, row.id)) == 1


def test_an_older_receipt_does_not_overwrite_a_newer_state(store: Store) -> None:
    runner = _sent(store, "C1:ref")
    runner.record_receipt(
        Receipt("sms", ReceiptState.DELIVERED, T0 + timedelta(seconds=9), "prov-1")
    )
    runner.record_receipt(Receipt("sms", ReceiptState.PENDING, T0 + timedelta(seconds=2), "prov-1"))
    assert _row(store, "C1:ref").receipt_state == "delivered"
    message_id = _row(store, "C1:ref").id
    with store.read() as conn:
        states = [r.state for r in receipts_for(conn, message_id)]
    assert states == [ReceiptState.PENDING, ReceiptState.DELIVERED]  # both kept, in order


def test_an_unknown_receipt_is_recorded_not_an_error(store: Store) -> None:
    runner = _sent(store, "C1:ref")
    stray = Receipt("sms", ReceiptState.PERMANENT_FAILURE, T0, "prov-that-we-never-sent")
    record = runner.record_receipt(stray)
    assert record.recorded and record.message is None and not record.undelivered
    assert runner.undelivered == []  # type: ignore[attr-defined]
    with store.read() as conn:
        kept = conn.execute(
            select(delivery_receipts.c.provider_ref, delivery_receipts.c.message_id)
        ).all()
    assert kept == [("prov-that-we-never-sent", None)]


def test_a_failing_on_receipt_keeps_nothing_so_the_callback_can_be_retried(store: Store) -> None:
    with store.transaction() as conn:
        enqueue(conn, _msg("C1:ref"), at=T0)

    def on_receipt(conn: Connection, row: OutboxRow, receipt: Receipt, now: datetime) -> None:
        raise RuntimeError("escalation failed")

    runner = Runner(store, {"sms": Scripted()}, on_timer=_no_timers, on_receipt=on_receipt)
    runner.tick(T0)
    bounced = Receipt("sms", ReceiptState.TEMPORARY_FAILURE, T0, "prov-1")
    with pytest.raises(RuntimeError, match="escalation failed"):
        runner.record_receipt(bounced)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(delivery_receipts)).scalar() == 0


# -- rate limits, leases, closing --------------------------------------------------------------


def test_token_bucket() -> None:
    bucket = TokenBucket(2.0)  # two a second, bursts of two
    assert bucket.take(T0) is None and bucket.take(T0) is None
    assert bucket.take(T0) == timedelta(seconds=0.5)
    assert bucket.take(T0 + timedelta(seconds=0.5)) is None
    assert bucket.take(T0 + timedelta(seconds=0.5)) == timedelta(seconds=0.5)
    assert bucket.take(T0 + timedelta(seconds=10)) is None  # refills up to the burst only
    assert bucket.take(T0 + timedelta(seconds=10)) is None
    assert bucket.take(T0 + timedelta(seconds=10)) is not None


def test_a_channels_rate_limit_is_respected_on_the_injected_clock(store: Store) -> None:
    real = ManualClock(T0)
    with store.transaction() as conn:
        for i in range(3):
            enqueue(conn, _msg(f"C{i}:ref"), at=T0)
    info = ChannelInfo(carries=frozenset({"pager"}), contact_field="pager", rate_limit=1.0)
    channel = Scripted(info=info)
    runner = Runner(store, {"sms": channel}, on_timer=_no_timers, lease_clock=real)
    first = runner.tick(T0)
    assert len(first.sent) == 1 and sorted(first.deferred) == [2, 3]
    assert runner.tick(T0).idle  # the deferred ones wait for their token on the real clock
    real.advance(timedelta(seconds=1))
    assert len(runner.tick(T0).sent) == 1
    real.advance(timedelta(seconds=1))
    assert len(runner.tick(T0).sent) == 1
    assert channel.sent == ["C0:ref", "C1:ref", "C2:ref"]
    with store.read() as conn:  # a deferral is not an attempt
        assert [r.attempts for r in map(lambda k: get_message(conn, k), channel.sent)] == [1, 1, 1]  # type: ignore[union-attr]


def test_a_channel_slower_than_it_declared_cannot_overrun_its_lease(store: Store) -> None:
    """A claim fits the declared send time into 90% of the lease; if sends take longer, the
    runner hands the rest back instead of sending into an expired lease."""
    real = ManualClock(T0)
    with store.transaction() as conn:
        for i in range(10):
            enqueue(conn, _msg(f"C{i}:ref"), at=T0)
    info = ChannelInfo(
        carries=frozenset({"sms"}), contact_field="phone", send_timeout=timedelta(seconds=10)
    )
    channel = Scripted(info=info, clock=real, takes=timedelta(seconds=30))  # it lies
    runner = Runner(
        store,
        {"sms": channel},
        on_timer=_no_timers,
        claim_lease=timedelta(minutes=1),
        lease_clock=real,
    )
    report = runner.tick(T0)
    # each claim takes up to 5 (5 x 10 s fits in 54 s); two sends of 30 s use the lease up and
    # the rest of the claim is handed back, to be claimed afresh by the next round: rounds of
    # 5, 5, 5, 4 and 2 claimed, 2 sent each, 3 + 3 + 3 + 2 + 0 handed back
    assert len(report.sent) == 10
    assert len(report.deferred) == 11
    assert channel.sent == [f"C{i}:ref" for i in range(10)]  # each once, in order


def test_a_channel_whose_send_may_outlast_the_lease_is_refused(store: Store) -> None:
    info = ChannelInfo(
        carries=frozenset({"phone"}), contact_field="phone", send_timeout=timedelta(minutes=5)
    )
    with pytest.raises(RunnerError, match=r"'phone' may take up to 0:05:00 a send"):
        Runner(store, {"phone": Scripted(info=info)}, on_timer=_no_timers)


def test_close_closes_every_channel_once_even_when_one_fails(store: Store) -> None:
    sms, shared = Scripted(), Scripted()

    class Broken(Scripted):
        def close(self) -> None:
            super().close()
            raise OSError("socket already gone")

    broken = Broken()
    runner = Runner(
        store, {"sms": sms, "email": shared, "crm": shared, "pager": broken}, on_timer=_no_timers
    )
    with runner:
        pass
    runner.close()
    assert (sms.closed, shared.closed, broken.closed) == (1, 1, 1)
