"""Faults of the machine: a PostgreSQL restart mid-run, a full disk, a damaged file, a commit
whose answer is lost. The façade and the runner raise the documented ``StoreError`` (saying
whether a retry is safe), never a raw driver error; the store stays intact; a desk's step
retried once the store is back is recorded once; a runner carries on by itself and delivers
everything, once.

The outage tests use real peers: a PostgreSQL server of the test's own, stopped and started
again (tests/pg_support.py), and a small tmpfs the test mounts (root only) and fills.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine_support import CHANNELS, FIXTURES, FRIDAY_EVENING, HEATING, REPAIRS
from oohcore import audit
from oohcore.audit import chain as audit_chain
from oohcore.channels import DeliveryResult, OutboundMessage
from oohcore.channels.local import MemoryChannel
from oohcore.cli import main as cli
from oohcore.clock import ManualClock
from oohcore.durable.outbox import outbox
from oohcore.durable.runner import STORE_BACKOFF_MAX, store_backoff
from oohcore.engine import Engine, OrganisationDesk
from oohcore.store import Store, StoreError
from oohcore.vocabulary import EventKind
from pg_support import OwnServer, own_postgres_server

# -- helpers ------------------------------------------------------------------------------------


class OutageChannel:
    """A MemoryChannel (which, like a provider, recognises a message it has had before by its
    idempotency key) that runs ``during_send`` once, at its first send: a fault that strikes
    after the runner claimed its messages and before it recorded them."""

    def __init__(self, inner: MemoryChannel) -> None:
        self.inner = inner
        self.name = inner.name
        # stopping a server inside a send takes seconds on a loaded machine: the send is given
        # time for it, so the runner does not abandon it as a hung send (docs/adapters.md)
        self.info = replace(inner.info, send_timeout=timedelta(seconds=10))
        self.during_send: Callable[[], None] | None = None

    def send(self, message: OutboundMessage) -> DeliveryResult:
        hook, self.during_send = self.during_send, None
        result = self.inner.send(message)
        if hook is not None:
            hook()
        return result

    def close(self) -> None:
        self.inner.close()


def _channels() -> tuple[dict[str, MemoryChannel], dict[str, object]]:
    memory = {name: MemoryChannel() for name in CHANNELS}
    given: dict[str, object] = dict(memory)
    given["sms"] = OutageChannel(memory["sms"])
    return memory, given


def _engine(url: str, clock: ManualClock, channels: dict[str, object]) -> Engine:
    return Engine.open(FIXTURES, url, clock=clock, channels=channels)  # type: ignore[arg-type]


def _referred(engine: Engine) -> str:
    """A heating call taken as far as its referral (its alerts queued, not yet sent)."""
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, HEATING)
    desk.next_step(call.id)
    desk.complete(call.id)
    return call.id


def _kinds(desk: OrganisationDesk, call_id: str) -> Counter[str]:
    return Counter(str(e.kind) for e in desk.events(call_id))


def _delivered_once(engine: Engine, memory: dict[str, MemoryChannel]) -> None:
    """Every message in the outbox was sent, each once to its channel, each with one
    ``message.sent`` event; and the audit log verifies (through the CLI, as an auditor would)."""
    with engine.store.read() as conn:
        rows = conn.execute(select(outbox.c.idempotency_key, outbox.c.sent_at)).all()
        sent_events = conn.execute(
            select(func.count())
            .select_from(audit_chain.events)
            .where(audit_chain.events.c.kind == EventKind.MESSAGE_SENT)
        ).scalar_one()
    assert rows and all(sent_at is not None for _, sent_at in rows)
    given = Counter(m.idempotency_key for ch in memory.values() for m in ch.messages)
    assert given == Counter(key for key, _ in rows)  # each once: nothing lost, nothing doubled
    assert sent_events == len(rows)
    assert audit.verify(engine.store).ok
    url = engine.store.engine.url.render_as_string(hide_password=False)
    assert cli(["audit", "verify", "--store", url]) == 0


@pytest.fixture
def server() -> Iterator[OwnServer]:
    with own_postgres_server() as own:
        yield own


# -- a PostgreSQL restart mid-run ---------------------------------------------------------------


def test_a_postgresql_restart_mid_run_loses_and_doubles_nothing(server: OwnServer) -> None:
    clock = ManualClock(FRIDAY_EVENING)
    memory, channels = _channels()
    engine = _engine(server.url, clock, channels)
    try:
        desk = engine.organisation("org-a")
        first = _referred(engine)
        second = engine.offer(REPAIRS, caller_number="07700900124").id

        # The server goes down (a restart) while the runner is sending the first alerts: the
        # alert has left, but recording it cannot be committed.
        sms: OutageChannel = channels["sms"]  # type: ignore[assignment]
        sms.during_send = server.stop
        with pytest.raises(StoreError) as raised:
            engine.tick()
        assert raised.value.retry_safe is True
        assert type(raised.value.__cause__).__module__.startswith("sqlalchemy")

        # A desk's step during the outage: refused, nothing written, and safe to retry.
        with pytest.raises(StoreError) as refused:
            desk.answer(second, handler="amy")
        assert refused.value.retry_safe is True
        assert "nothing was written" in str(refused.value)
        with pytest.raises(StoreError):  # reading too: the documented error, not a driver's
            desk.get(second)
        clock.advance(timedelta(minutes=3))  # the runner's claim lease ends meanwhile
        with pytest.raises(StoreError):
            engine.tick()  # the runner survives the outage: it raises, and is used again below

        server.start()
        # The same step retried once the server is back: recorded exactly once.
        assert desk.answer(second, handler="amy").state == "answered"
        assert _kinds(desk, second)[EventKind.CALL_ANSWERED] == 1
        # The runner carries on: the alert sent during the outage is recognised by its
        # channel (idempotency key), not sent twice, and the rest goes out.
        engine.tick()
        assert _kinds(desk, first)[EventKind.MESSAGE_SENT] >= 1
        _delivered_once(engine, memory)
    finally:
        engine.close()


def test_a_runner_loop_backs_off_through_a_postgresql_outage_and_carries_on(
    server: OwnServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(FRIDAY_EVENING)
    memory, channels = _channels()
    engine = _engine(server.url, clock, channels)
    try:
        call_id = _referred(engine)
        server.stop()

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.create_task(engine.runner.run(clock, interval=0, stop=stop))

            async def until(what: Callable[[], bool]) -> None:
                # an observable state, polled within a bounded deadline (nothing is timed)
                for _ in range(6000):
                    if what() or loop.done():
                        return
                    await asyncio.sleep(0.01)

            def failed_ticks() -> int:
                return sum("store cannot be used" in r.getMessage() for r in caplog.records)

            await until(lambda: failed_ticks() >= 3)
            assert not loop.done()  # the outage did not end the loop
            await asyncio.to_thread(server.start)
            await until(lambda: bool(memory["sms"].messages))
            assert not loop.done()
            stop.set()
            await asyncio.wait_for(loop, timeout=60)

        with caplog.at_level(logging.DEBUG, logger="oohcore.runner"):
            asyncio.run(main())
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "store cannot be used" in errors[0].getMessage()
        assert any("store is back" in r.getMessage() for r in caplog.records)
        assert memory["sms"].messages
        engine.tick()
        assert _kinds(engine.organisation("org-a"), call_id)[EventKind.MESSAGE_SENT] >= 1
        _delivered_once(engine, memory)
    finally:
        engine.close()


def test_a_commit_whose_answer_is_lost_is_resolved_by_asking_the_server(
    server: OwnServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit reached the server but its answer did not reach us (the connection dropped
    just then): the store asks the server whether the transaction arrived. It did, so the step
    succeeds, once; when the server cannot be asked, the step is reported in doubt
    (``retry_safe=False``), and reading the call back shows what happened."""
    import psycopg

    clock = ManualClock(FRIDAY_EVENING)
    _, channels = _channels()
    engine = _engine(server.url, clock, channels)
    try:
        desk = engine.organisation("org-a")
        first = engine.offer(REPAIRS, caller_number="07700900123").id
        second = engine.offer(REPAIRS, caller_number="07700900124").id
        dialect = engine.store.engine.dialect
        real_commit = dialect.do_commit

        def lost_answer(dbapi_connection: object, *, then: Callable[[], None]) -> None:
            real_commit(dbapi_connection)  # it arrives …
            then()
            raise psycopg.OperationalError("consuming input failed: server closed the connection")

        monkeypatch.setattr(dialect, "do_commit", lambda c: lost_answer(c, then=lambda: None))
        assert desk.answer(first, handler="amy").state == "answered"
        monkeypatch.undo()
        assert _kinds(desk, first)[EventKind.CALL_ANSWERED] == 1

        monkeypatch.setattr(dialect, "do_commit", lambda c: lost_answer(c, then=server.stop))
        with pytest.raises(StoreError) as doubt:
            desk.answer(second, handler="amy")
        monkeypatch.undo()
        assert doubt.value.retry_safe is False
        assert "may or may not have been recorded" in str(doubt.value)
        server.start()
        assert desk.get(second).state == "answered"  # read back: it was recorded, once
        assert _kinds(desk, second)[EventKind.CALL_ANSWERED] == 1
        assert audit.verify(engine.store).ok
    finally:
        engine.close()


# -- a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for the test (root only, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (CI runs the suite as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_refuses_the_step_keeps_the_store_and_recovers(small_disk: Path) -> None:
    clock = ManualClock(FRIDAY_EVENING)
    memory, channels = _channels()
    url = f"sqlite:///{small_disk / 'ooh.sqlite'}"
    engine = _engine(url, clock, channels)
    try:
        desk = engine.organisation("org-a")
        call_id = _referred(engine)
        other = engine.offer(REPAIRS, caller_number="07700900124").id
        desk.answer(other, handler="amy")
        before = desk.get(other)
        filler = _fill(small_disk)

        with pytest.raises(StoreError) as full:
            desk.capture(other, HEATING)
        assert full.value.retry_safe is True
        assert "disk" in str(full.value) and "nothing was written" in str(full.value)
        # the call is in its last committed state, and the log is intact
        assert desk.get(other) == before
        assert _kinds(desk, other)[EventKind.CALL_CAPTURED] == 0
        assert audit.verify(engine.store).ok
        # the runner cannot record its work either: it says so, and is used again below
        with pytest.raises(StoreError):
            engine.tick()

        filler.unlink()
        assert desk.capture(other, HEATING).answers["repair"] == "no_heating"
        assert _kinds(desk, other)[EventKind.CALL_CAPTURED] == 1
        clock.advance(timedelta(minutes=3))  # past the claim lease of anything sent meanwhile
        engine.tick()
        assert _kinds(desk, call_id)[EventKind.MESSAGE_SENT] >= 1
        _delivered_once(engine, memory)
    finally:
        engine.close()


# -- a damaged file, and the backoff ---------------------------------------------------------------


def test_a_damaged_database_file_is_a_store_error_that_no_retry_mends(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(b"this is not a database, it is a file a disk mangled" * 200)
    with pytest.raises(StoreError) as damaged:
        Store.open(f"sqlite:///{path}", clock=ManualClock(FRIDAY_EVENING))
    assert damaged.value.retry_safe is False
    assert "restore" in str(damaged.value)


def test_the_runner_backs_off_up_to_half_a_minute_while_the_store_is_down() -> None:
    assert [store_backoff(n, 1.0) for n in (1, 2, 3, 4, 5, 6, 20, 100)] == [
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
        30.0,
    ]
    assert store_backoff(1, 60.0) == 60.0  # never less than the tick interval
    assert timedelta(minutes=10).total_seconds() > STORE_BACKOFF_MAX  # inside 6.4b's limit
