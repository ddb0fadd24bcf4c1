"""Through the outbox and the runner (8.14): a failing Notify is retried then dead-lettered with
the escalation callback raised; a bad number is not retried; a timeout after Notify accepted
does not cause a second send."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection

from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore.durable.outbox import OutboxRow, RetryPolicy, enqueue, get_message
from oohcore.durable.runner import Runner
from oohcore.store import Store
from oohcore_notify import NotifyChannel, NotifyConfig
from oohcore_notify.testing import FakeNotify

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=15))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=clock)
    yield s
    s.close()


class _Escalations:
    """Stands in for the engine's on_failed: it would record message.failed and escalate."""

    def __init__(self) -> None:
        self.failed: list[OutboxRow] = []

    def __call__(self, conn: Connection, row: OutboxRow, now: datetime) -> None:
        self.failed.append(row)


def _setup(
    store: Store, channel: NotifyChannel, phone: str = "07700900123"
) -> tuple[Runner, _Escalations, str]:
    escalations = _Escalations()
    runner = Runner(
        store,
        {"sms": channel},
        on_timer=lambda conn, timer, now: None,
        on_failed=escalations,
        retry_policy=POLICY,
    )
    message = sample_message(phone, key="referral:call-7:stage-0")
    with store.transaction() as conn:
        enqueue(conn, message, at=T0)  # as the engine does on complete()
    return runner, escalations, message.idempotency_key


def _tick_through_retries(
    runner: Runner, clock: ManualClock, key: str, floor: timedelta = timedelta(0)
) -> None:
    """Tick at each retry as the policy schedules it (its jitter is drawn from the key; a
    provider's Retry-After is a floor under it)."""
    runner.tick(clock.now())
    for attempt in range(1, POLICY.max_attempts):
        runner.tick(clock.advance(max(POLICY.delay_after(attempt, key), floor)))


@pytest.mark.parametrize("failure", ["5xx", "refused", "429"])
def test_a_failing_provider_is_retried_then_dead_lettered_with_the_escalation_raised(
    failure: str,
    store: Store,
    clock: ManualClock,
    fake_notify: FakeNotify,
    make_config: Callable[..., NotifyConfig],
) -> None:
    channel = NotifyChannel(make_config())
    runner, escalations, key = _setup(store, channel)
    if failure == "5xx":
        fake_notify.fail_next(100, status=500)
    elif failure == "refused":
        fake_notify.refuse_connections()
    else:
        fake_notify.limit_next(100, retry_after=20)
    floor = timedelta(seconds=20) if failure == "429" else timedelta(0)
    _tick_through_retries(runner, clock, key, floor)
    with store.read() as conn:
        row = get_message(conn, key)
    assert row is not None and row.failed_at is not None and row.sent_at is None
    assert row.attempts == POLICY.max_attempts
    assert [r.idempotency_key for r in escalations.failed] == [key]
    expected = {
        "5xx": "500 Exception: Internal server error",
        "refused": "no answer from Notify",
        "429": "429 RateLimitError",
    }[failure]
    assert expected in (row.last_error or "")
    assert fake_notify.notifications == []
    channel.close()


def test_a_provider_that_recovers_gets_the_message_once(
    store: Store,
    clock: ManualClock,
    fake_notify: FakeNotify,
    make_config: Callable[..., NotifyConfig],
) -> None:
    channel = NotifyChannel(make_config())
    runner, escalations, key = _setup(store, channel)
    fake_notify.limit_next(1, retry_after=5)
    fake_notify.fail_next(1, status=503)
    report = runner.tick(clock.now())
    assert report.retried
    runner.tick(clock.advance(timedelta(seconds=15)))
    runner.tick(clock.advance(timedelta(seconds=30)))
    with store.read() as conn:
        row = get_message(conn, key)
    assert row is not None and row.sent_at is not None and row.attempts == 3
    assert row.provider_ref == fake_notify.notifications[0].id
    assert fake_notify.received_keys() == [key] and escalations.failed == []
    channel.close()


def test_a_bad_number_is_failed_at_once_not_retried(
    store: Store,
    clock: ManualClock,
    fake_notify: FakeNotify,
    make_config: Callable[..., NotifyConfig],
) -> None:
    channel = NotifyChannel(make_config())
    runner, escalations, key = _setup(store, channel, phone="07700 90012")  # a digit short
    report = runner.tick(clock.now())
    with store.read() as conn:
        row = get_message(conn, key)
    assert row is not None and row.failed_at is not None
    assert row.attempts == 1 and report.failed == [row.id] and not report.retried
    assert "phone_number Not a UK mobile number" in (row.last_error or "")
    assert [r.idempotency_key for r in escalations.failed] == [key]
    assert [m for m, _ in fake_notify.requests] == ["POST"]  # one request, no retry
    channel.close()


def test_a_timeout_after_notify_accepted_causes_no_second_send(
    store: Store,
    clock: ManualClock,
    fake_notify: FakeNotify,
    make_config: Callable[..., NotifyConfig],
) -> None:
    channel = NotifyChannel(make_config(timeout_seconds=0.3))
    runner, escalations, key = _setup(store, channel)
    fake_notify.stall_next(1)
    first = runner.tick(clock.now())
    fake_notify.release()
    assert first.retried and not first.sent
    runner.tick(clock.advance(timedelta(seconds=15)))
    with store.read() as conn:
        row = get_message(conn, key)
    assert row is not None and row.sent_at is not None and row.attempts == 2
    assert fake_notify.received_keys() == [key]
    assert [m for m, _ in fake_notify.requests] == ["POST", "GET"]
    assert row.provider_ref == fake_notify.notifications[0].id
    assert escalations.failed == []
    channel.close()
