"""Health and back-pressure (issue 12, part 2): the runners' lag, its Prometheus text, the CLI
line, and a lag episode recorded once when lag passes the threshold.

The lag is what puts the clocked promises at risk: the referral time limit (5.2.3.3, 6.4 b) and
escalation waits (5.3.2) are kept only if due timers and messages are handled promptly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection

from oohcore.channels import OutboundMessage
from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.durable import health
from oohcore.durable.outbox import enqueue
from oohcore.durable.runner import Runner
from oohcore.durable.timers import TimerRow, set_timer
from oohcore.store import Store

T0 = datetime(2025, 1, 10, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


def _message(key: str) -> OutboundMessage:
    return OutboundMessage(
        organisation_id="ealing",
        call_id="C1",
        channel="sms",
        recipient="+447700900001",
        subject="Referral",
        body="Referral",
        idempotency_key=key,
    )


def test_lag_is_the_age_of_the_oldest_due_timer_and_message(store: Store) -> None:
    with store.transaction() as conn:
        set_timer(conn, organisation_id="ealing", call_id="C1", kind="k", due_at=T0, key="t1")
        set_timer(
            conn,
            organisation_id="ealing",
            call_id="C1",
            kind="k",
            due_at=T0 + timedelta(minutes=5),
            key="t2",
        )
        set_timer(  # not due yet at the moment looked at: not lag
            conn,
            organisation_id="ealing",
            call_id="C1",
            kind="k",
            due_at=T0 + timedelta(hours=1),
            key="t3",
        )
        enqueue(conn, _message("m1"), at=T0 + timedelta(minutes=2))
    seen = health.read_lag(store, T0 + timedelta(minutes=10))
    assert seen.timers_due == 2
    assert seen.oldest_timer_due_at == T0
    assert seen.timer_lag == timedelta(minutes=10)
    assert seen.messages_due == 1
    assert seen.message_lag == timedelta(minutes=8)
    assert seen.lag == timedelta(minutes=10) and seen.behind == "timers"
    nothing = health.read_lag(store, T0 - timedelta(minutes=1))
    assert (nothing.timers_due, nothing.messages_due, nothing.lag) == (0, 0, timedelta(0))

    text = health.prometheus(seen)
    assert "# TYPE oohcore_timer_lag_seconds gauge\noohcore_timer_lag_seconds 600\n" in text
    assert "oohcore_message_lag_seconds 480\n" in text
    assert "oohcore_timers_due 2\n" in text and "oohcore_messages_due 1\n" in text
    assert "oohcore_lag_episode_open 0\n" in text
    for line in text.splitlines():  # every sample line is "name value"
        assert line.startswith("# ") or len(line.split(" ")) == 2


def test_a_lag_episode_is_recorded_once_then_closed(store: Store) -> None:
    """The runner reports its lag after each tick; passing the threshold records one episode,
    however many ticks (and runners) see it, and the episode ends when lag is back under."""
    broken = [True]
    fired: list[str] = []

    def on_timer(conn: Connection, timer: TimerRow, now: datetime) -> None:
        if broken[0]:
            raise RuntimeError("the rota service is down")
        fired.append(timer.key)

    with store.transaction() as conn:
        set_timer(conn, organisation_id="ealing", call_id="C1", kind="k", due_at=T0, key="t1")
    runners = [
        Runner(store, {}, on_timer=on_timer, lag_threshold=timedelta(minutes=5)) for _ in range(2)
    ]
    first = runners[0].tick(T0 + timedelta(minutes=1))
    assert first.errors and first.lag is not None
    assert first.lag.lag == timedelta(minutes=1) and first.lag.timers_due == 1
    with store.read() as conn:
        assert health.episodes(conn) == []
    for minutes in (10, 11, 12, 13):
        report = runners[minutes % 2].tick(T0 + timedelta(minutes=minutes))
        assert report.lag is not None and report.lag.lag == timedelta(minutes=minutes)
    with store.read() as conn:
        (episode,) = health.episodes(conn)  # one, though four ticks of two runners saw it
    assert episode.ended_at is None and episode.what == "timers"
    assert episode.started_at == T0 + timedelta(minutes=10)
    assert (episode.threshold_seconds, episode.lag_seconds, episode.worst_seconds) == (
        300,
        600,
        780,
    )
    seen = health.read_lag(store, T0 + timedelta(minutes=13))
    assert seen.open_episode_since == T0 + timedelta(minutes=10)
    assert "oohcore_lag_episode_open 1\n" in health.prometheus(seen)

    broken[0] = False
    report = runners[0].tick(T0 + timedelta(minutes=14))
    assert report.fired and report.lag is not None and report.lag.lag == timedelta(0)
    with store.read() as conn:
        (episode,) = health.episodes(conn)
    assert episode.ended_at == T0 + timedelta(minutes=14)
    # the next episode is a new row
    broken[0] = True
    with store.transaction() as conn:
        set_timer(conn, organisation_id="ealing", call_id="C2", kind="k", due_at=T0, key="t2")
    runners[1].tick(T0 + timedelta(hours=1))
    with store.read() as conn:
        assert [e.ended_at is None for e in health.episodes(conn)] == [False, True]
    assert fired == ["t1"]


def test_watch_records_one_start_however_often_it_is_told(store: Store) -> None:
    seen = health.Health(
        now=T0,
        timers_due=1,
        oldest_timer_due_at=T0 - timedelta(minutes=20),
        messages_due=0,
        oldest_message_due_at=None,
    )
    threshold = timedelta(minutes=5)
    with store.transaction() as conn:
        assert health.watch(conn, seen, threshold) is health.EpisodeChange.STARTED
        assert health.watch(conn, seen, threshold) is None
    calm = health.Health(T0, 0, None, 0, None)
    with store.transaction() as conn:
        assert health.watch(conn, calm, threshold) is health.EpisodeChange.ENDED
        assert health.watch(conn, calm, threshold) is None
        (episode,) = health.episodes(conn)
    assert episode.what == "timers" and episode.lag_seconds == 1200


def test_health_cli(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    with store.transaction() as conn:
        set_timer(
            conn,
            organisation_id="ealing",
            call_id="C1",
            kind="k",
            due_at=datetime(2000, 1, 1, tzinfo=UTC),
            key="t1",
        )
    assert main(["health", "--store", url, "--prometheus"]) == 0
    out = capsys.readouterr().out
    assert "oohcore_timers_due 1\n" in out
    assert main(["health", "--store", url, "--max-lag", "60"]) == 1
    captured = capsys.readouterr()
    assert "1 timer(s) due" in captured.out and "lag over 60 s" in captured.err
    assert main(["health", "--store", url, "--json"]) == 0
    assert '"timers_due": 1' in capsys.readouterr().out

    empty = tmp_path / "not-a-store.sqlite"
    empty.write_bytes(b"")
    assert main(["health", "--store", f"sqlite:///{empty}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oohcore: cannot read the lag from") and "Traceback" not in err
