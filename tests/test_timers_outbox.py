"""Durable timers, the transactional outbox, channels and the runner that drives them."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from oohcore.audit.chain import append_event, events
from oohcore.audit.read import events_for_call
from oohcore.audit.verify import verify
from oohcore.channels import (
    Channel,
    ChannelError,
    ChannelInfo,
    ChannelRegistryError,
    DeliveryResult,
    OutboundMessage,
    load_channels,
)
from oohcore.channels.local import ConsoleChannel, LocalChannel
from oohcore.clock import ManualClock
from oohcore.durable.outbox import (
    OutboxError,
    OutboxRow,
    RetryPolicy,
    claim_due,
    enqueue,
    get_message,
    mark_sent,
    messages_for_call,
    outbox,
)
from oohcore.durable.runner import Runner, RunnerError
from oohcore.durable.timers import (
    TimerError,
    TimerRow,
    cancel_timers,
    due_timers,
    get_timer,
    mark_fired,
    next_due_at,
    set_timer,
    timers_for_call,
)
from oohcore.store import Store

T0 = datetime(2025, 1, 10, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


def _timer(conn: Connection, call: str, minutes: int, kind: str = "ack", **kw: object) -> int:
    return set_timer(
        conn,
        organisation_id="ealing",
        call_id=call,
        kind=kind,
        due_at=T0 + timedelta(minutes=minutes),
        key=str(kw.pop("key", f"{call}:{kind}:{minutes}")),
        payload={"stage": minutes},
    )


def _record_firing(conn: Connection, timer: TimerRow, now: datetime) -> None:
    append_event(
        conn,
        organisation_id=timer.organisation_id,
        call_id=timer.call_id,
        kind="timer.fired",
        payload={"timer": timer.id, "key": timer.key},
        at=now,
    )


def _firings(store: Store) -> Counter[str]:
    with store.read() as conn:
        rows = conn.execute(select(events.c.payload).where(events.c.kind == "timer.fired"))
        return Counter(json.loads(r[0])["key"] for r in rows)


def _msg(
    call: str, key: str, channel: str = "sms", body: str | None = None, **kw: object
) -> OutboundMessage:
    return OutboundMessage(
        organisation_id="ealing",
        call_id=call,
        channel=channel,
        recipient="+447700900123",
        subject="Referral",
        body=body if body is not None else f"Burst pipe at 2 High St ({call})",
        idempotency_key=key,
        **kw,  # type: ignore[arg-type]
    )


class ScriptedChannel:
    """Answers with a scripted list of results (then ``sent``), recording every send."""

    name = "scripted"
    info = ChannelInfo(carries=frozenset({"sms"}), contact_field="phone")

    def __init__(self, script: list[DeliveryResult | Exception] | None = None) -> None:
        self.script = list(script or [])
        self.sent: list[str] = []

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message.idempotency_key)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        return DeliveryResult.sent(f"ref-{len(self.sent)}")

    def close(self) -> None:
        pass


def _noop_timer(conn: Connection, timer: TimerRow, now: datetime) -> None:
    pass


# -- timers ------------------------------------------------------------------------------------


def test_set_timer_is_idempotent_on_its_key(store: Store) -> None:
    with store.transaction() as conn:
        first = _timer(conn, "C1", 10)
        again = _timer(conn, "C1", 99, key="C1:ack:10")
        assert first == again
        assert len(timers_for_call(conn, "C1")) == 1
        timer = get_timer(conn, "C1:ack:10")
        assert timer is not None
        assert timer.due_at == T0 + timedelta(minutes=10)
        assert timer.payload == {"stage": 10}
        assert timer.pending


def test_due_timers_in_order_with_a_limit(store: Store) -> None:
    with store.transaction() as conn:
        for m in (30, 10, 20, 40):
            _timer(conn, "C1", m)
        assert next_due_at(conn) == T0 + timedelta(minutes=10)
        due = due_timers(conn, T0 + timedelta(minutes=30), limit=10)
        assert [t.payload["stage"] for t in due] == [10, 20, 30]
        assert len(due_timers(conn, T0 + timedelta(minutes=30), limit=2)) == 2
        assert due_timers(conn, T0, limit=10) == []


def test_mark_fired_wins_once(store: Store) -> None:
    with store.transaction() as conn:
        tid = _timer(conn, "C1", 0)
        assert mark_fired(conn, tid, T0) is True
        assert mark_fired(conn, tid, T0) is False
        assert due_timers(conn, T0 + timedelta(days=1), 10) == []
        (t,) = timers_for_call(conn, "C1")
        assert t.fired_at == T0 and not t.pending


def test_cancelled_timers_never_fire(store: Store) -> None:
    with store.transaction() as conn:
        _timer(conn, "C1", 5, kind="ack")
        _timer(conn, "C1", 6, kind="escalate")
        _timer(conn, "C2", 5, kind="ack")
        assert cancel_timers(conn, call_id="C1", kind="ack", at=T0) == 1
        assert cancel_timers(conn, call_id="C1", at=T0) == 1
        assert cancel_timers(conn, call_id="C1", at=T0) == 0
        tid = timers_for_call(conn, "C1")[0].id
        assert mark_fired(conn, tid, T0) is False
    runner = Runner(store, {}, on_timer=_record_firing)
    report = runner.tick(T0 + timedelta(hours=1))
    assert _firings(store) == Counter({"C2:ack:5": 1})
    assert len(report.fired) == 1


def test_bad_timers_are_refused(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(TimerError, match="key"):
            _timer(conn, "C1", 1, key="")
        with pytest.raises(TimerError, match="time zone"):
            set_timer(
                conn,
                organisation_id="o",
                call_id="C1",
                kind="k",
                due_at=datetime(2025, 1, 1),
                key="k",
            )


def test_a_timer_fires_once_when_tick_runs_twice(store: Store) -> None:
    with store.transaction() as conn:
        _timer(conn, "C1", 10)
        _timer(conn, "C2", 20)
    runner = Runner(store, {}, on_timer=_record_firing)
    assert runner.tick(T0 + timedelta(minutes=5)).idle
    first = runner.tick(T0 + timedelta(minutes=15))
    second = runner.tick(T0 + timedelta(minutes=15))
    assert len(first.fired) == 1 and second.idle
    runner.tick(T0 + timedelta(minutes=25))
    runner.tick(T0 + timedelta(minutes=25))
    assert _firings(store) == Counter({"C1:ack:10": 1, "C2:ack:20": 1})
    with store.read() as conn:
        fired = {t.key: t.fired_at for t in timers_for_call(conn, "C1")}
    assert fired == {"C1:ack:10": T0 + timedelta(minutes=15)}


def test_two_racing_runners_fire_each_timer_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.sqlite'}"
    stores = [Store.open(url, clock=ManualClock(T0)) for _ in range(2)]
    try:
        with stores[0].transaction() as conn:
            for i in range(300):
                _timer(conn, f"C{i}", i % 7)
        # Both runners see the same due timers before either fires any.
        with stores[0].read() as c0, stores[1].read() as c1:
            assert [t.id for t in due_timers(c0, T0 + timedelta(hours=1), 1000)] == [
                t.id for t in due_timers(c1, T0 + timedelta(hours=1), 1000)
            ]
        reports = []
        barrier = threading.Barrier(2)

        def run(s: Store) -> None:
            runner = Runner(s, {}, on_timer=_record_firing, timer_batch=50)
            barrier.wait()
            reports.append(runner.tick(T0 + timedelta(hours=1)))

        threads = [threading.Thread(target=run, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        firings = _firings(stores[0])
        assert len(firings) == 300
        assert set(firings.values()) == {1}
        assert sum(len(r.fired) for r in reports) == 300
        assert not any(r.errors for r in reports)
        assert verify(stores[0]).ok
    finally:
        for s in stores:
            s.close()


def test_a_failing_timer_callback_commits_nothing_and_is_retried(store: Store) -> None:
    with store.transaction() as conn:
        _timer(conn, "C1", 0)
    broken = {"yes": True}

    def on_timer(conn: Connection, timer: TimerRow, now: datetime) -> None:
        _record_firing(conn, timer, now)
        if broken["yes"]:
            raise RuntimeError("rota service unavailable")

    runner = Runner(store, {}, on_timer=on_timer)
    report = runner.tick(T0)
    assert report.fired == [] and len(report.errors) == 1
    assert "rota service unavailable" in report.errors[0].error
    assert _firings(store) == Counter()
    with store.read() as conn:
        (t,) = timers_for_call(conn, "C1")
    assert t.pending and t.attempts == 1 and "rota service" in (t.last_error or "")
    broken["yes"] = False
    assert len(runner.tick(T0).fired) == 1
    assert _firings(store) == Counter({"C1:ack:0": 1})
    strict = Runner(store, {}, on_timer=on_timer, raise_errors=True)
    with store.transaction() as conn:
        _timer(conn, "C2", 0)
    broken["yes"] = True
    with pytest.raises(RunnerError, match="on_timer failed"):
        strict.tick(T0)


def test_timers_set_by_a_timer_fire_in_the_same_tick_when_due(store: Store) -> None:
    """An escalation chain whose next stage is due at once runs through in one tick."""
    with store.transaction() as conn:
        _timer(conn, "C1", 0, kind="stage1")

    def on_timer(conn: Connection, timer: TimerRow, now: datetime) -> None:
        _record_firing(conn, timer, now)
        n = int(timer.kind[-1])
        if n < 3:
            set_timer(
                conn,
                organisation_id="ealing",
                call_id="C1",
                kind=f"stage{n + 1}",
                due_at=now,
                key=f"C1:stage{n + 1}",
            )
            enqueue(conn, _msg("C1", f"C1:escalate:{n}", channel="sms"), at=now)

    channel = ScriptedChannel()
    report = Runner(store, {"sms": channel}, on_timer=on_timer).tick(T0)
    assert len(report.fired) == 3
    assert channel.sent == ["C1:escalate:1", "C1:escalate:2"]


# -- outbox ------------------------------------------------------------------------------------


def test_duplicate_enqueue_is_harmless(store: Store) -> None:
    with store.transaction() as conn:
        first, created = enqueue(conn, _msg("C1", "C1:referral:1"), at=T0)
        assert created
    with store.transaction() as conn:
        again, created_again = enqueue(conn, _msg("C1", "C1:referral:1", body="other"), at=T0)
        assert (again, created_again) == (first, False)
        (row,) = messages_for_call(conn, "C1")
        assert row.message.body.startswith("Burst pipe")
    channel = ScriptedChannel()
    Runner(store, {"sms": channel}, on_timer=_noop_timer).tick(T0)
    with store.transaction() as conn:
        assert enqueue(conn, _msg("C1", "C1:referral:1"), at=T0) == (first, False)
    Runner(store, {"sms": channel}, on_timer=_noop_timer).tick(T0 + timedelta(hours=1))
    assert channel.sent == ["C1:referral:1"]


def test_enqueue_validates(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(OutboxError, match="idempotency_key"):
            enqueue(conn, _msg("C1", ""), at=T0)
        with pytest.raises(OutboxError, match="time zone"):
            enqueue(conn, _msg("C1", "k", due_at=datetime(2025, 1, 1)), at=T0)
        with pytest.raises(OutboxError, match="set"):
            enqueue(conn, _msg("C1", "k", meta={"x": {1}}), at=T0)


def test_a_delayed_message_waits_for_its_due_time(store: Store) -> None:
    with store.transaction() as conn:
        enqueue(conn, _msg("C1", "later", due_at=T0 + timedelta(minutes=5)), at=T0)
    channel = ScriptedChannel()
    runner = Runner(store, {"sms": channel}, on_timer=_noop_timer)
    assert runner.tick(T0 + timedelta(minutes=4)).idle
    assert channel.sent == []
    runner.tick(T0 + timedelta(minutes=5))
    assert channel.sent == ["later"]


def test_retry_with_backoff_then_sent(store: Store) -> None:
    policy = RetryPolicy(max_attempts=5, first_delay=timedelta(seconds=10), multiplier=2, jitter=0)
    with store.transaction() as conn:
        enqueue(conn, _msg("C1", "C1:ref"), at=T0)
    channel = ScriptedChannel(
        [
            DeliveryResult.retry("gateway 503"),
            ConnectionResetError("peer reset"),
            DeliveryResult.retry("gateway 503"),
        ]
    )
    sent_rows: list[OutboxRow] = []
    runner = Runner(
        store,
        {"sms": channel},
        on_timer=_noop_timer,
        on_sent=lambda conn, row, now: sent_rows.append(row),
        retry_policy=policy,
    )

    def state() -> OutboxRow:
        with store.read() as conn:
            row = get_message(conn, "C1:ref")
            assert row is not None
            return row

    now = T0
    assert runner.tick(now).retried == [1]
    assert (state().attempts, state().next_attempt_at) == (1, now + timedelta(seconds=10))
    assert state().last_error == "gateway 503"
    assert runner.tick(now + timedelta(seconds=9)).idle  # not before the backoff ends
    now += timedelta(seconds=10)
    runner.tick(now)
    assert state().attempts == 2
    assert state().next_attempt_at == now + timedelta(seconds=20)
    assert "ConnectionResetError: peer reset" in (state().last_error or "")
    now += timedelta(seconds=20)
    runner.tick(now)
    assert state().next_attempt_at == now + timedelta(seconds=40)
    now += timedelta(seconds=40)
    report = runner.tick(now)
    assert report.sent == [1]
    final = state()
    assert final.sent_at == now and final.attempts == 4 and final.provider_ref == "ref-4"
    assert final.last_error is None
    assert channel.sent == ["C1:ref"] * 4
    assert len(sent_rows) == 1 and sent_rows[0].sent_at == now


def test_after_max_attempts_the_message_fails_and_an_event_is_recorded(store: Store) -> None:
    policy = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=15), multiplier=2)
    with store.transaction() as conn:
        enqueue(conn, _msg("C1", "C1:ref"), at=T0)
    channel = ScriptedChannel([DeliveryResult.retry("no signal")] * 10)

    def on_failed(conn: Connection, row: OutboxRow, now: datetime) -> None:
        append_event(
            conn,
            organisation_id=row.organisation_id,
            call_id=row.call_id,
            kind="message.failed",
            payload={"key": row.idempotency_key, "error": row.last_error},
            at=now,
        )

    runner = Runner(
        store, {"sms": channel}, on_timer=_noop_timer, on_failed=on_failed, retry_policy=policy
    )
    now = T0
    failed: list[int] = []
    for _ in range(10):
        report = runner.tick(now)
        failed += report.failed
        now += timedelta(minutes=5)
    assert len(channel.sent) == 3
    assert failed == [1]
    with store.read() as conn:
        row = get_message(conn, "C1:ref")
        assert row is not None and row.failed_at is not None and row.sent_at is None
        assert row.attempts == 3
        (ev,) = events_for_call(conn, "C1")
    assert ev.kind == "message.failed"
    assert ev.payload["error"] == "gave up after 3 attempt(s): no signal"


def test_a_permanent_failure_fails_at_once(store: Store) -> None:
    with store.transaction() as conn:
        enqueue(conn, _msg("C1", "C1:ref"), at=T0)
        enqueue(conn, _msg("C1", "C1:pager", channel="pager"), at=T0)
    channel = ScriptedChannel([DeliveryResult.permanent("not a mobile number")])
    failures: list[str] = []
    report = Runner(
        store,
        {"sms": channel},
        on_timer=_noop_timer,
        on_failed=lambda conn, row, now: failures.append(row.last_error or ""),
    ).tick(T0)
    assert sorted(report.failed) == [1, 2]
    # each channel sends on its own worker: the two failures come in either order
    assert "not a mobile number" in failures
    assert any("no channel named 'pager'" in f for f in failures)
    assert channel.sent == ["C1:ref"]


def test_a_claimed_message_is_not_taken_again_until_its_lease_ends(store: Store) -> None:
    """The lease is measured on the real clock (the runner's ``lease_clock``), not on the
    logical ``now`` of a tick: a runner ticking far ahead in logical time still waits."""
    with store.transaction() as conn:
        enqueue(conn, _msg("C1", "C1:ref"), at=T0)
    real = ManualClock(T0)
    with store.transaction() as conn:
        (claimed,) = claim_due(conn, T0, limit=10, lease=timedelta(minutes=2), real_now=real.now())
        assert claimed.attempts == 1 and claimed.claim_token
        assert claimed.lease_until == T0 + timedelta(minutes=2)
    # The claimant "crashed". Another runner sees nothing until the lease ends …
    channel = ScriptedChannel()
    runner = Runner(store, {"sms": channel}, on_timer=_noop_timer, lease_clock=real)
    real.advance(timedelta(minutes=1))
    assert runner.tick(T0 + timedelta(hours=5)).idle
    # … then sends it.
    real.advance(timedelta(minutes=1))
    assert runner.tick(T0 + timedelta(minutes=2)).sent == [claimed.id]
    with store.transaction() as conn:
        assert mark_sent(conn, claimed.id, at=T0) is False  # the first claimant was too late


def test_a_crash_between_send_and_mark_resends_and_the_receiver_dedupes(
    store: Store, tmp_path: Path
) -> None:
    with store.transaction() as conn:
        enqueue(conn, _msg("C1", "C1:ref"), at=T0)
    local = LocalChannel(tmp_path / "out.jsonl")
    crash = {"on": True}

    def on_sent(conn: Connection, row: OutboxRow, now: datetime) -> None:
        append_event(
            conn,
            organisation_id=row.organisation_id,
            call_id=row.call_id,
            kind="message.sent",
            payload={"key": row.idempotency_key},
            at=now,
        )
        if crash["on"]:
            raise RuntimeError("power cut")

    policy = RetryPolicy(first_delay=timedelta(seconds=5))
    runner = Runner(
        store, {"sms": local}, on_timer=_noop_timer, on_sent=on_sent, retry_policy=policy
    )
    report = runner.tick(T0)
    assert report.sent == [] and report.retried == [1] and len(report.errors) == 1
    crash["on"] = False
    report = runner.tick(T0 + timedelta(seconds=5))
    assert report.sent == [1] and report.duplicates == [1]
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(x)["idempotency_key"] for x in lines] == ["C1:ref"]
    with store.read() as conn:
        assert [e.kind for e in events_for_call(conn, "C1")] == ["message.sent"]


# -- channels ----------------------------------------------------------------------------------


def test_local_channel_writes_each_key_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "messages.jsonl"
    with LocalChannel(path) as ch:
        assert isinstance(ch, Channel)
        first = ch.send(_msg("C1", "k1"))
        assert first.status.value == "sent" and first.provider_ref == "messages.jsonl:1"
        again = ch.send(_msg("C1", "k1"))
        assert again.duplicate and again.provider_ref == "messages.jsonl:1"
        ch.send(_msg("C2", "k2", meta={"encrypt": True}))
    with LocalChannel(path) as ch:
        assert ch.keys == {"k1", "k2"}
        assert ch.send(_msg("C1", "k1")).duplicate
        assert ch.send(_msg("C3", "k3")).provider_ref == "messages.jsonl:3"
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["idempotency_key"] for r in records] == ["k1", "k2", "k3"]
    assert records[1]["meta"] == {"encrypt": True}
    assert records[0]["recipient"] == "+447700900123"


def test_local_channel_sees_lines_written_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    a, b = LocalChannel(path, fsync=False), LocalChannel(path, fsync=False)
    try:
        a.send(_msg("C1", "k1"))
        assert b.send(_msg("C1", "k1")).duplicate
        b.send(_msg("C1", "k2"))
        assert a.send(_msg("C1", "k2")).duplicate
    finally:
        a.close()
        b.close()
    assert len(path.read_text().splitlines()) == 2


def test_local_channel_cuts_off_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    with LocalChannel(path) as ch:
        ch.send(_msg("C1", "k1"))
    with path.open("a") as f:
        f.write('{"idempotency_key": "k2", "bo')  # a write cut short by a power loss
    with LocalChannel(path) as ch:
        assert ch.keys == {"k1"}
        assert not ch.send(_msg("C1", "k2")).duplicate
    assert [json.loads(x)["idempotency_key"] for x in path.read_text().splitlines()] == [
        "k1",
        "k2",
    ]


def test_local_channel_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("this is not json\n")
    with pytest.raises(ChannelError, match=r"m.jsonl:1"):
        LocalChannel(path)


def test_console_channel_prints_a_readable_line() -> None:
    out = io.StringIO()
    result = ConsoleChannel(out).send(_msg("C1", "k1"))
    assert result.status.value == "sent"
    line = out.getvalue()
    assert line.startswith("[sms → +447700900123] (ealing/C1) Referral: Burst pipe")
    assert line.count("\n") == 1


def _fake_distribution(tmp_path: Path, entry_points: str) -> None:
    dist = tmp_path / "site" / "oohcore_fake_adapter-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: oohcore-fake-adapter\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(entry_points)
    (tmp_path / "site" / "oohcore_fake_adapter.py").write_text(
        "class PagerChannel:\n"
        "    name = 'fakepager'\n"
        "    info = None\n"
        "    def close(self):\n"
        "        pass\n"
        "    def __init__(self, **config):\n"
        "        self.config = config\n"
        "    def send(self, message):\n"
        "        raise NotImplementedError\n"
        "NOT_CALLABLE = 42\n"
    )


def test_load_channels_discovers_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path, "[oohcore.channels]\nfakepager = oohcore_fake_adapter:PagerChannel\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry = load_channels()
    assert registry["local"] is LocalChannel
    assert registry["console"] is ConsoleChannel
    pager = registry["fakepager"](bureau="test")
    assert isinstance(pager, Channel)
    assert pager.name == "fakepager"


def test_load_channels_reports_broken_adapters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "[oohcore.channels]\n"
        "missing = oohcore_fake_adapter_gone:Channel\n"
        "number = oohcore_fake_adapter:NOT_CALLABLE\n"
        "local = oohcore_fake_adapter:PagerChannel\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("oohcore_fake_adapter", None)
    with pytest.raises(ChannelRegistryError) as info:
        load_channels()
    message = str(info.value)
    assert "3 channel adapter(s)" in message
    assert "'missing'" in message and "cannot be imported" in message
    assert "'number'" in message and "not a class or function" in message
    assert "'local' is already taken" in message
    assert "oohcore-fake-adapter" in message


def test_runner_refuses_things_that_are_not_channels(store: Store) -> None:
    with pytest.raises(RunnerError, match="not a Channel"):
        Runner(store, {"sms": object()}, on_timer=_noop_timer)  # type: ignore[dict-item]


# -- the async loop ----------------------------------------------------------------------------


def test_run_loops_until_stopped_without_sleeping(store: Store) -> None:
    clock = ManualClock(T0)
    with store.transaction() as conn:
        _timer(conn, "C1", 0)
        enqueue(conn, _msg("C1", "C1:ref"), at=T0)
    channel = ScriptedChannel()

    async def main() -> None:
        stop = asyncio.Event()

        def on_sent(conn: Connection, row: OutboxRow, now: datetime) -> None:
            stop.set()  # the first tick sends the message, then the loop ends at once

        runner = Runner(store, {"sms": channel}, on_timer=_record_firing, on_sent=on_sent)
        await asyncio.wait_for(runner.run(clock, interval=3600, stop=stop), timeout=30)

    asyncio.run(main())
    assert channel.sent == ["C1:ref"]
    assert _firings(store) == Counter({"C1:ack:0": 1})
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1


def test_a_runaway_chain_of_timers_is_cut_off_per_tick(store: Store) -> None:
    with store.transaction() as conn:
        _timer(conn, "C1", 0, kind="loop", key="loop:0")

    def on_timer(conn: Connection, timer: TimerRow, now: datetime) -> None:
        n = int(timer.key.split(":")[1]) + 1
        set_timer(conn, organisation_id="o", call_id="C1", kind="loop", due_at=now, key=f"loop:{n}")

    runner = Runner(store, {}, on_timer=on_timer, max_rounds=5)
    assert len(runner.tick(T0).fired) == 5
    assert len(runner.tick(T0).fired) == 5
    with store.read() as conn:
        assert len(timers_for_call(conn, "C1")) == 11


def test_local_channel_cuts_a_torn_line_left_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    with LocalChannel(path, fsync=False) as ch:
        ch.send(_msg("C1", "k1"))
        with path.open("a") as f:
            f.write('{"idempotency_key": "k2"')  # another process died mid-line
        ch.send(_msg("C1", "k3"))
    lines = path.read_text().splitlines()
    assert [json.loads(x)["idempotency_key"] for x in lines] == ["k1", "k3"]


def test_a_batch_of_sent_messages_is_recorded_in_one_transaction(store: Store) -> None:
    with store.transaction() as conn:
        for i in range(5):
            enqueue(conn, _msg(f"C{i}", f"C{i}:ref"), at=T0)
    recorded: list[str] = []
    runner = Runner(
        store,
        {"sms": ScriptedChannel()},
        on_timer=_noop_timer,
        on_sent=lambda conn, row, now: recorded.append(row.idempotency_key),
    )
    commits = 0

    def count(conn: Connection) -> None:
        nonlocal commits
        commits += 1

    from sqlalchemy import event

    event.listen(store.engine, "commit", count)
    report = runner.tick(T0)
    event.remove(store.engine, "commit", count)
    assert sorted(report.sent) == [1, 2, 3, 4, 5]
    assert recorded == [f"C{i}:ref" for i in range(5)]
    with store.read() as conn:
        assert all(get_message(conn, f"C{i}:ref").sent_at == T0 for i in range(5))  # type: ignore[union-attr]
    assert commits <= 2  # the claim, then all five marks with their effects


def test_one_failing_on_sent_does_not_hold_back_the_rest_of_its_batch(store: Store) -> None:
    with store.transaction() as conn:
        for i in range(3):
            enqueue(conn, _msg(f"C{i}", f"C{i}:ref"), at=T0)

    def on_sent(conn: Connection, row: OutboxRow, now: datetime) -> None:
        # callbacks write only through conn: what a failed batch wrote is rolled back with it
        if row.idempotency_key == "C1:ref":
            raise RuntimeError("the host's callback failed")
        append_event(
            conn, organisation_id="ealing", call_id=row.call_id, kind="sent", payload={}, at=now
        )

    runner = Runner(store, {"sms": ScriptedChannel()}, on_timer=_noop_timer, on_sent=on_sent)
    report = runner.tick(T0)
    assert sorted(report.sent) == [1, 3]
    with store.read() as conn:
        assert get_message(conn, "C1:ref").sent_at is None  # type: ignore[union-attr]
        assert get_message(conn, "C0:ref").sent_at == T0  # type: ignore[union-attr]
        assert [e.kind for e in events_for_call(conn, "C0")] == ["sent"]  # once, not twice
        assert [e.kind for e in events_for_call(conn, "C2")] == ["sent"]
        assert events_for_call(conn, "C1") == []
    assert verify(store).ok
