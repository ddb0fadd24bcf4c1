"""The pager-http channel against a hostile gateway on loopback: a send is over by its deadline
when the gateway trickles its answer, and an answer claiming 300 MB is not read (8.14;
docs/adapters.md, "Deadlines and caps")."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from oohcore.channels import DeliveryStatus
from oohcore.channels.hostile import HostileHttpPeer
from oohcore.clock import ManualClock
from oohcore_pager import PagerHttpChannel
from oohcore_pager.testing import pager_message

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
DEADLINE = 1.0


@pytest.fixture
def peer() -> Iterator[HostileHttpPeer]:
    with HostileHttpPeer("trickle", interval=0.25, body=b'{"id": "P-1"}') as server:
        yield server


def _channel(peer: HostileHttpPeer) -> PagerHttpChannel:
    return PagerHttpChannel(
        url=peer.url, send_timeout=timedelta(seconds=DEADLINE), clock=ManualClock(T0)
    )


def test_a_trickling_gateway_is_cut_off_at_the_deadline(peer: HostileHttpPeer) -> None:
    channel = _channel(peer)
    began = time.monotonic()
    result = channel.send(pager_message(recipient="PGR-1042", key="k-trickle"))
    elapsed = time.monotonic() - began
    channel.close()
    assert result.status is DeliveryStatus.RETRY
    assert "no answer within 1 s" in (result.error or "")
    assert elapsed < DEADLINE + 1.5
    assert 0 < peer.written < 20


@pytest.mark.parametrize("mode", ["huge", "endless"])
def test_an_answer_past_the_cap_is_not_read(peer: HostileHttpPeer, mode: str) -> None:
    peer.mode = mode  # a 200 claiming 300 MB, or one with no length that never ends
    channel = _channel(peer)
    tracemalloc.start()
    try:
        result = channel.send(pager_message(recipient="PGR-1042", key=f"k-{mode}"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        channel.close()
    # the gateway accepted (200): the page is sent, judged on the status without its body
    assert result.status is DeliveryStatus.SENT and result.provider_ref is None
    assert peak < 4 * 1024 * 1024
    assert peer.written < 32 * 1024 * 1024  # it stopped reading long before 300 MB
