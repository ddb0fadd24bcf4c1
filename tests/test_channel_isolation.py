"""One hung channel never holds back another channel's messages, and loses none of its own
(5.2.3.3, 8.14): each channel sends on its own worker; a send past its ``send_timeout`` is
abandoned and recorded as a failed attempt; a channel still stuck gets its messages recorded as
failed attempts at once, so the retry policy ends in an escalation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection

from engine_support import FIXTURES, FRIDAY_EVENING, refer_heating_call
from oohcore.channels import ChannelInfo, DeliveryResult, OutboundMessage
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.durable.outbox import OutboxRow, RetryPolicy, enqueue, get_message, messages_for_call
from oohcore.durable.receipts import attempts_for
from oohcore.durable.runner import Runner, TickReport
from oohcore.durable.timers import TimerRow
from oohcore.engine import Engine
from oohcore.store import Store

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
HUNG_TIMEOUT = 1.0  # the hung channel's declared send_timeout, in seconds
GRACE = timedelta(seconds=0.2)


class HungChannel:
    """A channel whose ``send`` does not return until the test lets it go."""

    name = "hung"

    def __init__(self, carries: str = "crm", contact_field: str | None = None) -> None:
        self.info = ChannelInfo(
            carries=frozenset({carries}),
            contact_field=contact_field,
            send_timeout=timedelta(seconds=HUNG_TIMEOUT),
        )
        self.let_go = threading.Event()
        self.entered_at: list[float] = []

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.entered_at.append(time.monotonic())
        self.let_go.wait()
        return DeliveryResult.sent(f"crm-{message.idempotency_key}")

    def close(self) -> None:
        self.let_go.set()


class TimedMemory(MemoryChannel):
    """The SMS channel: a memory channel that notes when each message left."""

    def __init__(self) -> None:
        super().__init__(contact_field="phone", carries=frozenset({"sms"}))
        self.sent_at: dict[str, float] = {}

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent_at[message.idempotency_key] = time.monotonic()
        return super().send(message)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


@pytest.fixture
def hung() -> Iterator[HungChannel]:
    channel = HungChannel()
    yield channel
    channel.let_go.set()  # let the worker thread end with the test


def _msg(key: str, channel: str) -> OutboundMessage:
    return OutboundMessage(
        organisation_id="ealing",
        call_id="C1",
        channel=channel,
        recipient="+447700900123" if channel == "sms" else "housing-repairs",
        subject="Referral",
        body="Burst pipe at 2 High St",
        idempotency_key=key,
    )


def _enqueue(store: Store, *messages: OutboundMessage, at: datetime = T0) -> list[int]:
    with store.transaction() as conn:
        return [enqueue(conn, m, at=at)[0] for m in messages]


def _noop(conn: Connection, timer: TimerRow, now: datetime) -> None:
    pass


def _tick(runner: Runner, now: datetime, within: float) -> tuple[TickReport, float]:
    """Tick in a thread and fail (instead of hanging the suite) if it takes over ``within`` s."""
    out: list[TickReport] = []
    began = time.monotonic()
    thread = threading.Thread(target=lambda: out.append(runner.tick(now)), daemon=True)
    thread.start()
    thread.join(timeout=within)
    assert out, f"the tick was still blocked after {within} s: a hung channel held it"
    return out[0], began


def test_a_hung_channel_never_holds_back_an_sms(store: Store, hung: HungChannel) -> None:
    sms = TimedMemory()
    crm_id, sms_id = _enqueue(store, _msg("C1:crm", "crm"), _msg("C1:sms", "sms"))
    runner = Runner(store, {"crm": hung, "sms": sms}, on_timer=_noop, send_grace=GRACE)
    report, _ = _tick(runner, T0, within=20)
    # the SMS left at once, before the hung CRM send's deadline, and is recorded sent
    assert [m.idempotency_key for m in sms.messages] == ["C1:sms"]
    assert sms.sent_at["C1:sms"] < hung.entered_at[0] + HUNG_TIMEOUT
    assert report.sent == [sms_id]
    # the hung send was abandoned at its deadline and goes to the retry schedule, not lost
    assert report.retried == [crm_id]
    with store.read() as conn:
        row = get_message(conn, "C1:crm")
        assert row is not None and row.pending and row.lease_until is None
        assert "abandoned" in (row.last_error or "")
        assert [a.outcome.value for a in attempts_for(conn, crm_id)] == ["retry"]


def test_a_channel_still_stuck_does_not_delay_the_next_tick_and_loses_nothing(
    store: Store, hung: HungChannel
) -> None:
    sms = TimedMemory()
    (crm_id,) = _enqueue(store, _msg("C1:crm", "crm"))
    runner = Runner(store, {"crm": hung, "sms": sms}, on_timer=_noop, send_grace=GRACE)
    _tick(runner, T0, within=20)
    # the CRM send is still hung; its retry falls due with a new SMS: the tick does not wait
    later = T0 + timedelta(minutes=1)
    (sms_id,) = _enqueue(store, _msg("C2:sms", "sms"), at=later)
    report, began = _tick(runner, later, within=20)
    assert time.monotonic() - began < HUNG_TIMEOUT  # no wait on the stuck channel
    assert report.sent == [sms_id] and report.retried == [crm_id]
    assert len(hung.entered_at) == 1  # nothing more was given to the stuck channel
    with store.read() as conn:
        row = get_message(conn, "C1:crm")
        assert row is not None and "still busy" in (row.last_error or "")
    # the channel comes back: the message is sent on its next try, once
    hung.let_go.set()
    worker = runner._workers[id(hung)]
    assert worker.job is not None and worker.job.finished.wait(10)
    report, _ = _tick(runner, later + timedelta(minutes=2), within=20)
    assert report.sent == [crm_id]
    with store.read() as conn:
        row = get_message(conn, "C1:crm")
        assert row is not None and row.sent_at is not None
        assert [a.outcome.value for a in attempts_for(conn, crm_id)] == ["retry", "retry", "sent"]


def test_a_send_that_never_returns_ends_in_a_failure_the_engine_escalates(
    store: Store, hung: HungChannel
) -> None:
    failed: list[OutboxRow] = []
    (crm_id,) = _enqueue(store, _msg("C1:crm", "crm"))
    runner = Runner(
        store,
        {"crm": hung},
        on_timer=_noop,
        on_failed=lambda conn, row, now: failed.append(row),
        retry_policy=RetryPolicy(max_attempts=2),
        send_grace=GRACE,
    )
    first, _ = _tick(runner, T0, within=20)
    second, _ = _tick(runner, T0 + timedelta(minutes=1), within=20)
    assert first.retried == [crm_id] and second.failed == [crm_id]
    assert [r.idempotency_key for r in failed] == ["C1:crm"]
    assert "gave up after 2 attempt(s)" in (failed[0].last_error or "")


def test_through_engine_tick_a_hung_email_adapter_never_holds_back_the_referral_sms(
    tmp_path: Path,
) -> None:
    sms, email = TimedMemory(), HungChannel("email", "email")
    channels = {
        "sms": sms,
        "email": email,
        "pager": MemoryChannel(contact_field="pager"),
        "feed": MemoryChannel(),
        "crm": MemoryChannel(),
    }
    clock = ManualClock(FRIDAY_EVENING)
    engine = Engine.open(FIXTURES, f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=clock,
                         channels=channels)  # fmt: skip
    engine.runner.send_grace = GRACE
    try:
        done: list[tuple[str, str]] = []
        worker = threading.Thread(
            target=lambda: done.append(refer_heating_call(engine)), daemon=True
        )
        worker.start()
        worker.join(timeout=20)
        assert done, "engine.tick() was still blocked on the hung e-mail adapter after 20 s"
        call_id, _ = done[0]
        # the referral's SMS left before the hung e-mail send's deadline, and is recorded sent
        alerts = [m for m in sms.messages if m.purpose == "referral.alert"]
        assert alerts and sms.sent_at[alerts[0].idempotency_key] < email.entered_at[0] + 1.0
        with engine.store.read() as conn:
            rows = {r.channel: r for r in messages_for_call(conn, call_id)}
        assert rows["sms"].sent_at is not None
        assert rows["email"].pending and "abandoned" in (rows["email"].last_error or "")
    finally:
        engine.close()
