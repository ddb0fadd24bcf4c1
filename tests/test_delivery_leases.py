"""Leases that hold: two runners over one store send every message exactly once.

The defect (seen with no crash, 200 of 1,600 keys sent twice on SQLite and PostgreSQL): a tick
kept one ``now`` for its whole run, so claims made late in a long tick were already expired for
other runners, and one 2-minute lease covered a batch of 100 messages sent one after another.
SMS and phone alerts to people cannot be deduplicated by their receiver, so the runner itself
must not send a message twice while it is alive.

The test makes the race deterministic instead of hoping for it: the two runners run in two
threads that take turns (a baton passes at every ``send``), each send moves the stores' shared
clock on by five seconds, and each runner ticks with ``now`` read from that clock, as a real
runner does. A send therefore spans ten seconds of clock time (its own five and the other
runner's five), which is what the channel declares as its ``send_timeout``. The receiver counts
deliveries per key and does *not* deduplicate, like a phone.

How we checked that it fails on the code we started from: the same test file, run with
``PYTHONPATH`` pointing at the sources of the commit this work branched from, fails on SQLite and
on PostgreSQL with 100 of the 500 keys delivered twice: the leases were measured from each
tick's ``now`` and one lease covered a batch of 100 sends of ten seconds each, so a runner
starting a new tick took the other runner's batch while it was still being sent.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, func, select

from oohcore.channels import ChannelInfo, DeliveryResult, OutboundMessage
from oohcore.durable.outbox import enqueue, outbox
from oohcore.durable.runner import Runner
from oohcore.durable.timers import TimerRow
from oohcore.store import Store
from test_store import pg_url  # noqa: F401  (the throwaway PostgreSQL database fixture)

T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
MESSAGES = 500
SEND_TAKES = timedelta(seconds=5)


class SharedClock:
    """A manual clock that several threads move on (thread-safe)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: timedelta) -> None:
        with self._lock:
            self._now += by


class Baton:
    """Lets one runner thread at a time go on; ``pass_on`` hands over to the other one."""

    def __init__(self, players: int) -> None:
        self._cond = threading.Condition()
        self._turn = 0
        self._active = set(range(players))

    def wait_turn(self, me: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._turn == me, timeout=60):
                raise TimeoutError("the other runner never handed over")

    def pass_on(self, me: int) -> None:
        with self._cond:
            others = sorted(self._active - {me})
            if others:
                self._turn = others[0]
                self._cond.notify_all()
        self.wait_turn(me)

    def leave(self, me: int) -> None:
        with self._cond:
            self._active.discard(me)
            if self._active:
                self._turn = min(self._active)
            self._cond.notify_all()


class SlowPhone:
    """An SMS channel whose every send takes five seconds of the shared clock; the phone does
    not deduplicate, so every call of ``send`` is a text the officer receives."""

    name = "sms"
    info = ChannelInfo(
        carries=frozenset({"sms"}), contact_field="phone", send_timeout=2 * SEND_TAKES
    )

    def __init__(self, clock: SharedClock, baton: Baton, me: int, received: Counter[str]) -> None:
        self.clock, self.baton, self.me, self.received = clock, baton, me, received

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.clock.advance(SEND_TAKES)
        self.received[message.idempotency_key] += 1
        self.baton.pass_on(self.me)  # the other runner works while this text is in flight
        return DeliveryResult.sent()

    def close(self) -> None:
        pass


def _pending(store: Store) -> int:
    with store.read() as conn:
        query = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        return int(conn.execute(query).scalar_one())


def _no_timers(conn: Connection, timer: TimerRow, now: datetime) -> None:
    raise AssertionError("no timers here")


def _race(url: str) -> tuple[Counter[str], list[BaseException]]:
    clock = SharedClock(T0)
    stores = [Store.open(url, clock=clock) for _ in range(2)]
    received: Counter[str] = Counter()
    errors: list[BaseException] = []
    try:
        with stores[0].transaction() as conn:
            for i in range(MESSAGES):
                enqueue(
                    conn,
                    OutboundMessage(
                        "ealing", f"C{i}", "sms", f"+4477009{i:05d}", "Referral", f"C{i}:ref"
                    ),
                    at=T0,
                )
        baton = Baton(2)

        def work(me: int) -> None:
            channel = SlowPhone(clock, baton, me, received)
            runner = Runner(
                stores[me],
                {"sms": channel},
                on_timer=_no_timers,
                message_batch=100,
                claim_lease=timedelta(minutes=2),
            )
            try:
                baton.wait_turn(me)
                for _ in range(4 * MESSAGES):  # bounded: each round sends or hands over
                    if _pending(stores[me]) == 0:
                        break
                    report = runner.tick(clock.now())
                    if not report.sent:
                        clock.advance(SEND_TAKES)  # nothing for this runner now: time passes
                        baton.pass_on(me)
            except BaseException as exc:  # reported by the test
                errors.append(exc)
            finally:
                baton.leave(me)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return received, errors
    finally:
        for s in stores:
            s.close()


def _check(received: Counter[str], errors: list[BaseException]) -> None:
    assert errors == []
    twice = sorted(k for k, n in received.items() if n > 1)
    assert twice == [], f"{len(twice)} of {MESSAGES} keys were sent more than once"
    assert set(received) == {f"C{i}:ref" for i in range(MESSAGES)}


def test_two_runners_with_long_batches_and_a_slow_channel_send_each_message_once(
    tmp_path: Path,
) -> None:
    _check(*_race(f"sqlite:///{tmp_path / 'race.sqlite'}"))


def test_two_runners_on_postgresql_send_each_message_once(pg_url: str) -> None:  # noqa: F811
    _check(*_race(pg_url))
