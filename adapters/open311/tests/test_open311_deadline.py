"""The open311 channel against a hostile CRM on loopback: a send (discovery, POST, token polls)
is over by its deadline when the CRM trickles, and an answer claiming 300 MB is refused unread
instead of filling memory (8.14; docs/adapters.md, "Deadlines and caps")."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oohcore.channels import DeliveryStatus
from oohcore.channels.hostile import HostileHttpPeer
from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore_open311 import Open311Channel

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
DEADLINE = 1.0


@pytest.fixture
def peer() -> Iterator[HostileHttpPeer]:
    body = b'[{"service_request_id": "SR-1"}]'
    with HostileHttpPeer("trickle", interval=0.25, body=body) as server:
        yield server


def _channel(peer: HostileHttpPeer, **kw: Any) -> Open311Channel:
    return Open311Channel(
        endpoint=peer.url,
        send_timeout=timedelta(seconds=DEADLINE),
        clock=ManualClock(T0),
        sleep=lambda s: None,
        **kw,
    )


@pytest.mark.parametrize("check_definitions", [False, True])
def test_a_trickling_crm_is_cut_off_at_the_deadline(
    peer: HostileHttpPeer, check_definitions: bool
) -> None:
    channel = _channel(peer, check_definitions=check_definitions)
    began = time.monotonic()
    result = channel.send(sample_message("HR-OOH", channel="crm"))
    elapsed = time.monotonic() - began
    channel.close()
    assert result.status is DeliveryStatus.RETRY
    assert elapsed < DEADLINE + 1.5
    assert len(peer.requests) == 1  # the deadline is the whole send's, not each request's


@pytest.mark.parametrize("mode", ["huge", "endless"])
@pytest.mark.parametrize("check_definitions", [False, True])
def test_an_answer_past_the_cap_is_refused_unread(
    peer: HostileHttpPeer, mode: str, check_definitions: bool
) -> None:
    peer.mode = mode  # a 200 claiming 300 MB, or one with no length that never ends
    channel = _channel(peer, check_definitions=check_definitions)
    tracemalloc.start()
    try:
        result = channel.send(sample_message("HR-OOH", channel="crm"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        channel.close()
    assert result.status is DeliveryStatus.RETRY
    assert "cap" in (result.error or "")
    assert peak < 8 * 1024 * 1024
    assert peer.written < 40 * 1024 * 1024  # it stopped reading long before 300 MB
