"""Through the core's outbox and runner: a failing provider is retried until it pages, a
permanent error (SNPP 550) fails at once and is not retried (8.14: the engine escalates)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from oohcore.clock import ManualClock
from oohcore.durable.outbox import RetryPolicy, enqueue, get_message
from oohcore.durable.runner import Runner
from oohcore.durable.timers import TimerRow
from oohcore.store import Store
from oohcore_pager import PagerHttpChannel, SnppChannel
from oohcore_pager.testing import GatewayTestServer, SnppTestServer, pager_message

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=5, first_delay=timedelta(seconds=10), multiplier=1)


def _no_timers(conn: Connection, timer: TimerRow, now: Any) -> None:
    raise AssertionError("no timers in these tests")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


def test_a_refused_then_failing_gateway_is_retried_until_it_pages(
    store: Store, snpp_server: SnppTestServer
) -> None:
    snpp_server.replies_once["SEND"] = ["554 Message Failed (paging terminal down)"]
    snpp_server.greeting = "421 Gateway Service Unavailable"
    channel = SnppChannel(host="127.0.0.1", port=snpp_server.port)
    runner = Runner(store, {"pager": channel}, on_timer=_no_timers, retry_policy=POLICY)
    message = pager_message()
    with store.transaction() as conn:
        enqueue(conn, message, at=T0)
    assert runner.tick(T0).retried  # 421 at the greeting
    snpp_server.greeting = "220 SNPP Gateway Ready"
    assert runner.tick(T0 + timedelta(seconds=10)).retried  # 554 on SEND
    assert runner.tick(T0 + timedelta(seconds=20)).sent
    channel.close()
    with store.transaction() as conn:
        row = get_message(conn, message.idempotency_key)
    assert row is not None and row.sent_at is not None and row.attempts == 3
    assert len(snpp_server.pages) == 1


def test_an_invalid_pager_id_fails_at_once_and_is_not_retried(
    store: Store, snpp_server: SnppTestServer
) -> None:
    snpp_server.valid_pagers = {"0000"}
    failed: list[str] = []
    channel = SnppChannel(host="127.0.0.1", port=snpp_server.port)
    runner = Runner(
        store,
        {"pager": channel},
        on_timer=_no_timers,
        on_failed=lambda conn, row, now: failed.append(row.last_error or ""),
        retry_policy=POLICY,
    )
    with store.transaction() as conn:
        enqueue(conn, pager_message(), at=T0)
    report = runner.tick(T0)
    assert report.failed and not report.retried
    assert "550" in failed[0]
    assert runner.tick(T0 + timedelta(hours=1)).idle  # nothing left to try
    channel.close()
    assert snpp_server.sessions == 1


def test_a_429_from_the_http_gateway_is_retried(
    store: Store, gateway: GatewayTestServer, certificates: Any
) -> None:
    gateway.script.append((429, {"Retry-After": "5"}, {"message": "slow down"}))
    gateway.script.append((503, {}, {}))
    channel = PagerHttpChannel(url=gateway.url, ca_file=certificates.ca, auth_value="Bearer k-123")
    runner = Runner(store, {"pager": channel}, on_timer=_no_timers, retry_policy=POLICY)
    with store.transaction() as conn:
        enqueue(conn, pager_message(), at=T0)
    assert runner.tick(T0).retried
    assert runner.tick(T0 + timedelta(seconds=10)).retried
    assert runner.tick(T0 + timedelta(seconds=20)).sent
    channel.close()
    assert len(gateway.deliveries) == 1
