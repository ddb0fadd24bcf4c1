"""The webhook's send is over by its deadline against a receiver that trickles its answer one
byte at a time, the message goes to the outbox's retry schedule (nothing lost), and an SMS on
another channel leaves at once meanwhile (8.14; docs/adapters.md, "Deadlines and caps")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection
from webhook_receiver import SECRET

from oohcore.channels import DeliveryResult, DeliveryStatus, OutboundMessage
from oohcore.channels.hostile import HostileHttpPeer
from oohcore.channels.local import MemoryChannel
from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore.durable.outbox import enqueue, get_message
from oohcore.durable.receipts import attempts_for
from oohcore.durable.runner import Runner
from oohcore.durable.timers import TimerRow
from oohcore.store import Store
from oohcore_webhook import WebhookChannel

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
DEADLINE = 1.0  # seconds: the webhook's send_timeout in these tests


@pytest.fixture
def trickle() -> Iterator[HostileHttpPeer]:
    # a byte every 0.25 s: no read ever waits long enough to time out, yet the answer
    # (~70 bytes) would take ~18 s to arrive
    with HostileHttpPeer("trickle", interval=0.25, status=204, body=b"") as peer:
        yield peer


def _webhook(peer: HostileHttpPeer) -> WebhookChannel:
    return WebhookChannel(
        url=peer.url, secret=SECRET, send_timeout=timedelta(seconds=DEADLINE), clock=ManualClock(T0)
    )


def test_a_trickling_receiver_is_cut_off_at_the_deadline(trickle: HostileHttpPeer) -> None:
    channel = _webhook(trickle)
    began = time.monotonic()
    result = channel.send(sample_message("crm", channel="crm"))
    elapsed = time.monotonic() - began
    channel.close()
    assert result.status is DeliveryStatus.RETRY
    assert "no answer within 1 s" in (result.error or "")
    assert elapsed < DEADLINE + 1.5
    assert 0 < trickle.written < 20  # it was cut off mid-answer


class _Sms(MemoryChannel):
    def __init__(self) -> None:
        super().__init__(contact_field="phone", carries=frozenset({"sms"}))
        self.left_at: list[float] = []

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.left_at.append(time.monotonic())
        return super().send(message)


def _noop(conn: Connection, timer: TimerRow, now: datetime) -> None:
    pass


def test_an_sms_leaves_on_time_and_the_webhook_is_retried_not_lost(
    trickle: HostileHttpPeer, tmp_path: Path
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    webhook, sms = _webhook(trickle), _Sms()
    hook = sample_message("crm", key="C1:crm", channel="crm")
    text = sample_message("+447700900123", key="C1:sms", channel="sms")
    with store.transaction() as conn:
        hook_id, _ = enqueue(conn, hook, at=T0)
        sms_id, _ = enqueue(conn, text, at=T0)
    runner = Runner(store, {"crm": webhook, "sms": sms}, on_timer=_noop)
    began = time.monotonic()
    report = runner.tick(T0)
    assert report.sent == [sms_id] and report.retried == [hook_id]
    assert sms.left_at[0] - began < DEADLINE  # it did not wait for the webhook
    assert time.monotonic() - began < DEADLINE + 3  # nor did the tick, for long
    # the receiver recovers: the retry on the outbox's schedule delivers it
    trickle.mode = "ok"
    with store.read() as conn:
        row = get_message(conn, "C1:crm")
        assert row is not None and row.pending
        retry_at = row.next_attempt_at
    report = runner.tick(retry_at)
    assert report.sent == [hook_id]
    with store.read() as conn:
        outcomes = [a.outcome.value for a in attempts_for(conn, hook_id)]
    assert outcomes == ["retry", "sent"]
    assert [method for method, _ in trickle.requests] == ["POST", "POST"]
    runner.close()
    store.close()
