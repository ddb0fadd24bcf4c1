"""The store: opening, SQLite settings, schema kept honest by Alembic, one-transaction writes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.schema import CreateIndex, CreateTable

from oohcore import audit
from oohcore.audit import chain as audit_chain
from oohcore.audit import read as audit_read
from oohcore.audit.chain import append_event, events
from oohcore.audit.read import events_for_call
from oohcore.channels import OutboundMessage
from oohcore.clock import ManualClock
from oohcore.durable import outbox, receipts, timers
from oohcore.durable.outbox import enqueue, messages_for_call
from oohcore.durable.timers import set_timer, timers_for_call
from oohcore.store import NestedTransactionError, SchemaError, Store, StoreBusyError, StoreError
from oohcore.store.columns import NaiveDatetimeError, UTCDateTime
from oohcore.store.schema import MIGRATIONS_DIR, alembic_config, load_all_tables
from oohcore.store.statements import Prepared
from pg_support import postgres_database

T0 = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # the night the clocks go forward


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    yield s  # type: ignore[misc]
    s.close()


def _pragma(store: Store, name: str) -> object:
    with store.read() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


# -- opening and settings ----------------------------------------------------------------------


def test_open_creates_the_database_and_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ooh.sqlite"
    with Store.open(f"sqlite:///{path}", clock=ManualClock(T0)) as s:
        assert path.exists()
        assert s.dialect_name == "sqlite"
        with s.read() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        assert [version] == heads


def test_sqlite_settings(store: Store) -> None:
    assert _pragma(store, "journal_mode") == "wal"
    assert _pragma(store, "foreign_keys") == 1
    assert _pragma(store, "synchronous") == 1  # NORMAL
    assert _pragma(store, "busy_timeout") == 10_000
    # issue 12: a checkpoint every 10,000 WAL pages, not SQLite's 1,000 (docs/benchmarks.md)
    assert _pragma(store, "wal_autocheckpoint") == 10_000


def test_checkpoint_pages_option(tmp_path: Path) -> None:
    with Store.open(
        f"sqlite:///{tmp_path / 'c.sqlite'}", clock=ManualClock(T0), checkpoint_pages=500
    ) as s:
        assert _pragma(s, "wal_autocheckpoint") == 500
    for bad in (0, -1, True, 1.5, "1000"):
        with pytest.raises(StoreError, match="checkpoint_pages"):
            Store.open(
                f"sqlite:///{tmp_path / 'x.sqlite'}",
                clock=ManualClock(T0),
                checkpoint_pages=bad,  # type: ignore[arg-type]
            )
    assert not (tmp_path / "x.sqlite").exists(), "a refused option creates nothing"


def test_synchronous_full_option(tmp_path: Path) -> None:
    with Store.open(
        f"sqlite:///{tmp_path / 'full.sqlite'}", clock=ManualClock(T0), synchronous="FULL"
    ) as s:
        assert _pragma(s, "synchronous") == 2  # FULL
    with pytest.raises(StoreError, match="synchronous"):
        Store.open(f"sqlite:///{tmp_path / 'x.sqlite'}", clock=ManualClock(T0), synchronous="OFF")  # type: ignore[arg-type]


def test_reopening_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    with Store.open(url, clock=ManualClock(T0)) as s, s.transaction() as conn:
        append_event(conn, organisation_id="ealing", call_id="C1", kind="k", payload={}, at=T0)
    with Store.open(url, clock=ManualClock(T0)) as s, s.read() as conn:
        assert [e.kind for e in events_for_call(conn, "C1")] == ["k"]


def test_a_database_from_an_unknown_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    with Store.open(url, clock=ManualClock(T0)) as s, s.transaction() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaError, match="9999_from_the_future"):
        Store.open(url, clock=ManualClock(T0))


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    with Store.open("sqlite://", clock=ManualClock(T0)) as s:
        with s.transaction() as conn:
            append_event(conn, organisation_id="o", call_id=None, kind="k", payload={}, at=T0)
        assert audit.verify(s).ok


def test_closed_store_refuses_transactions(tmp_path: Path) -> None:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"), s.transaction():
        pass


# -- migrations are honest ---------------------------------------------------------------------


def test_migrations_match_the_declared_tables(store: Store) -> None:
    """The drift test: after upgrading to head, Alembic sees no difference to the metadata.

    Anyone adding or changing a table must add a revision, or this fails.
    """
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, load_all_tables())
    assert diff == [], (
        "the tables declared in oohcore.store.schema.TABLE_MODULES differ from what the migrations "
        "create; add a revision (see oohcore.store.schema.alembic_config):\n"
        + "\n".join(f"  {d!r}"[:200] for d in diff)
    )


def test_one_line_of_migration_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, "merge the migration heads: keep one line of history"
    assert (MIGRATIONS_DIR / "env.py").exists()
    assert (MIGRATIONS_DIR / "script.py.mako").exists()


def test_my_tables_are_registered() -> None:
    tables = load_all_tables().tables
    for name in ("events", "audit_heads", "timers", "outbox"):
        assert name in tables


def test_statements_and_ddl_compile_for_postgresql() -> None:
    """No SQLite-only SQL: every prepared statement and table compiles for PostgreSQL."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    prepared = [
        value
        for module in (audit_chain, audit_read, timers, outbox, receipts)
        for value in vars(module).values()
        if isinstance(value, Prepared)
    ]
    assert len(prepared) >= 15
    for p in prepared:
        sql = str(p.statement.compile(dialect=dialect))  # type: ignore[attr-defined]
        assert "?" not in sql
    for_update = str(audit_chain._select_head.statement.compile(dialect=dialect))  # type: ignore[attr-defined]
    assert "FOR UPDATE" in for_update
    claim = str(outbox._due.statement.compile(dialect=dialect))  # type: ignore[attr-defined]
    assert "FOR UPDATE SKIP LOCKED" in claim
    for table in (events, audit_chain.audit_heads, timers.timers, outbox.outbox):
        ddl = str(CreateTable(table).compile(dialect=dialect))
        assert "TIMESTAMP WITH TIME ZONE" in ddl or table is audit_chain.audit_heads
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=dialect))


# -- transactions ------------------------------------------------------------------------------


class Boom(Exception):
    pass


def _write_everything(conn: object, call_id: str) -> None:
    from sqlalchemy import Connection

    assert isinstance(conn, Connection)
    append_event(
        conn, organisation_id="ealing", call_id=call_id, kind="referred", payload={}, at=T0
    )
    enqueue(
        conn,
        OutboundMessage(
            "ealing", call_id, "sms", "+447700900001", "Repair: burst pipe", f"{call_id}:m"
        ),
        at=T0,
    )
    set_timer(
        conn,
        organisation_id="ealing",
        call_id=call_id,
        kind="ack",
        due_at=T0 + timedelta(minutes=10),
        key=f"{call_id}:ack",
    )


def test_a_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(Boom), store.transaction() as conn:
        _write_everything(conn, "C1")
        raise Boom
    with store.read() as conn:
        assert events_for_call(conn, "C1") == []
        assert messages_for_call(conn, "C1") == []
        assert timers_for_call(conn, "C1") == []
        assert conn.execute(select(audit_chain.audit_heads)).all() == []
    # The store is still usable, and a successful transaction keeps all three.
    with store.transaction() as conn:
        _write_everything(conn, "C2")
    with store.read() as conn:
        assert len(events_for_call(conn, "C2")) == 1
        assert len(messages_for_call(conn, "C2")) == 1
        assert len(timers_for_call(conn, "C2")) == 1
    assert audit.verify(store).ok


def test_rollback_is_complete_even_after_sqlalchemy_statements(store: Store) -> None:
    """A block mixing prepared statements and ordinary ``conn.execute`` rolls back as one."""
    with pytest.raises(Boom), store.transaction() as conn:
        _write_everything(conn, "C1")
        conn.execute(
            insert(events).values(
                organisation_id="x",
                seq=1,
                call_id="C1",
                kind="raw",
                payload="{}",
                at=T0,
                prev_hash="0" * 64,
                hash="0" * 64,
            )
        )
        raise Boom
    with store.read() as conn:
        assert conn.execute(select(events.c.id)).all() == []
        assert messages_for_call(conn, "C1") == []


def test_transactions_do_not_nest(store: Store) -> None:
    with store.transaction() as conn:
        append_event(conn, organisation_id="o", call_id="C1", kind="outer", payload={}, at=T0)
        with pytest.raises(NestedTransactionError), store.transaction():
            pass
    with store.read() as conn:
        assert [e.kind for e in events_for_call(conn, "C1")] == ["outer"]


def test_read_snapshot_discards_writes(store: Store) -> None:
    with store.read() as conn:
        append_event(conn, organisation_id="o", call_id="C1", kind="k", payload={}, at=T0)
    with store.read() as conn:
        assert events_for_call(conn, "C1") == []


def test_prepared_statements_autobegin_on_a_plain_connection(store: Store) -> None:
    with store.engine.connect() as conn:
        append_event(conn, organisation_id="o", call_id="C1", kind="k", payload={}, at=T0)
        assert conn.in_transaction()
        conn.rollback()
    with store.read() as conn:
        assert events_for_call(conn, "C1") == []


def test_two_processes_worth_of_writers_serialise(tmp_path: Path) -> None:
    """Two stores (two connections) appending at once: BEGIN IMMEDIATE serialises them, the
    busy timeout makes the loser wait, and the chain stays contiguous."""
    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    stores = [Store.open(url, clock=ManualClock(T0)) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(s: Store, n: int) -> None:
        try:
            barrier.wait()
            for i in range(150):
                with s.transaction() as conn:
                    append_event(
                        conn, organisation_id="o", call_id=f"W{n}", kind=str(i), payload={}, at=T0
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        report = audit.verify(stores[0])
        assert report.ok, str(report)
        assert report.events == 300
    finally:
        for s in stores:
            s.close()


# -- timestamps --------------------------------------------------------------------------------


def test_timestamps_round_trip_as_aware_utc(store: Store) -> None:
    bst = timezone(timedelta(hours=1))
    local = datetime(2025, 6, 1, 13, 0, 0, 123456, tzinfo=bst)
    with store.transaction() as conn:
        append_event(conn, organisation_id="o", call_id="C1", kind="k", payload={}, at=local)
    with store.read() as conn:
        (ev,) = events_for_call(conn, "C1")
        stored = conn.execute(text("SELECT at FROM events")).scalar()
    assert ev.at == local
    assert ev.at.tzinfo is UTC
    assert ev.at.hour == 12
    assert stored == "2025-06-01 12:00:00.123456"  # naive UTC text, fixed width, sortable


def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    md = MetaData()
    t = Table("t", md, Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    with Store.open(
        f"sqlite:///{tmp_path / 'x.sqlite'}", clock=ManualClock(T0), migrate=False
    ) as s:
        with s.transaction() as conn:
            md.create_all(conn)
        with pytest.raises(StatementError) as info, s.transaction() as conn:
            conn.execute(insert(t).values(at=datetime(2025, 1, 1)))
        assert isinstance(info.value.orig, NaiveDatetimeError)
        with s.transaction() as conn:
            conn.execute(insert(t).values(at=T0))
        with s.read() as conn:
            assert conn.execute(select(t.c.at)).scalar() == T0


def test_sqlite_file_is_a_plain_database(tmp_path: Path, store: Store) -> None:
    """Another tool can read the file while the store has it open (WAL readers)."""
    with store.transaction() as conn:
        append_event(conn, organisation_id="o", call_id="C1", kind="k", payload={"a": 1}, at=T0)
    raw = sqlite3.connect(tmp_path / "ooh.sqlite")
    try:
        assert raw.execute("SELECT kind, payload FROM events").fetchall() == [("k", '{"a":1}')]
    finally:
        raw.close()


# -- PostgreSQL (runs when OOHCORE_TEST_POSTGRES_URL names a server and psycopg is installed) --


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    with postgres_database() as url:
        yield url


def test_postgresql_store_end_to_end(pg_url: str) -> None:
    with Store.open(pg_url, clock=ManualClock(T0)) as s:
        assert s.dialect_name == "postgresql"
        with s.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, load_all_tables()) == []
        with pytest.raises(Boom), s.transaction() as conn:
            _write_everything(conn, "C1")
            raise Boom
        with s.transaction() as conn:
            _write_everything(conn, "C2")
            _write_everything(conn, "C2")  # idempotent keys: no second message or timer
        bst = timezone(timedelta(hours=1))
        with s.transaction() as conn:
            append_event(
                conn,
                organisation_id="ealing",
                call_id="C3",
                kind="k",
                payload={},
                at=datetime(2025, 6, 1, 13, 0, 0, 5, tzinfo=bst),
            )
        with s.read() as conn:
            assert events_for_call(conn, "C1") == []
            assert messages_for_call(conn, "C1") == []
            assert len(messages_for_call(conn, "C2")) == 1
            assert len(timers_for_call(conn, "C2")) == 1
            (ev,) = events_for_call(conn, "C3")
            assert ev.at == datetime(2025, 6, 1, 12, 0, 0, 5, tzinfo=UTC)
        report = audit.verify(s)
        assert report.ok and report.events == 3
    with Store.open(pg_url, clock=ManualClock(T0)) as s:  # reopening is idempotent
        assert audit.verify(s).events == 3


def test_postgresql_concurrent_appenders_and_runners(pg_url: str) -> None:
    """Several writers append to one chain and two runners race over timers and messages:
    the head lock keeps the chain contiguous; conditional updates and SKIP LOCKED give each
    timer one firing and each message one send."""
    from sqlalchemy import Connection

    from oohcore.channels import ChannelInfo, DeliveryResult
    from oohcore.durable.runner import Runner
    from oohcore.durable.timers import TimerRow

    stores = [Store.open(pg_url, clock=ManualClock(T0)) for _ in range(3)]
    try:
        with stores[0].transaction() as conn:
            for i in range(100):
                set_timer(
                    conn,
                    organisation_id="ealing",
                    call_id=f"T{i}",
                    kind="ack",
                    due_at=T0,
                    key=f"T{i}",
                )
                enqueue(
                    conn,
                    OutboundMessage("ealing", f"M{i}", "sms", "+447700900000", "b", f"M{i}"),
                    at=T0,
                )
        sent: list[str] = []
        lock = threading.Lock()

        class Sms:
            name = "sms"
            info = ChannelInfo(carries=frozenset({"sms"}), contact_field="phone")

            def send(self, message: OutboundMessage) -> DeliveryResult:
                with lock:
                    sent.append(message.idempotency_key)
                return DeliveryResult.sent()

            def close(self) -> None:
                pass

        def on_timer(conn: Connection, timer: TimerRow, now: datetime) -> None:
            append_event(
                conn,
                organisation_id="ealing",
                call_id=timer.call_id,
                kind="fired",
                payload={},
                at=now,
            )

        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                barrier.wait()
                if n == 2:
                    for i in range(100):
                        with stores[2].transaction() as conn:
                            append_event(
                                conn,
                                organisation_id="ealing",
                                call_id="W",
                                kind=str(i),
                                payload={},
                                at=T0,
                            )
                else:
                    runner = Runner(
                        stores[n],
                        {"sms": Sms()},
                        on_timer=on_timer,
                        timer_batch=10,
                        message_batch=10,
                    )
                    runner.tick(T0)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(sent) == sorted(f"M{i}" for i in range(100))
        report = audit.verify(stores[0])
        assert report.ok, str(report)
        assert report.events == 200
    finally:
        for s in stores:
            s.close()


def test_a_locked_database_gives_a_clear_error_and_the_store_recovers(tmp_path: Path) -> None:
    path = tmp_path / "ooh.sqlite"
    with Store.open(f"sqlite:///{path}", clock=ManualClock(T0), busy_timeout_ms=0) as s:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(StoreBusyError, match="locked"), s.transaction():
                pass
            other.execute("ROLLBACK")
        finally:
            other.close()
        with s.transaction() as conn:
            append_event(conn, organisation_id="o", call_id="C1", kind="k", payload={}, at=T0)
        assert audit.verify(s).events == 1


def test_prepared_statements_raise_sqlalchemy_exceptions(store: Store) -> None:
    row = {
        "organisation_id": "o",
        "seq": 1,
        "call_id": None,
        "kind": "k",
        "payload": "{}",
        "at": T0,
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }
    with pytest.raises(IntegrityError), store.transaction() as conn:
        assert audit_chain._insert_event.execute(conn, row).lastrowid == 1
        audit_chain._insert_event.execute(conn, row)  # same (organisation_id, seq)
    with store.read() as conn:
        assert conn.execute(select(events.c.id)).all() == []


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        with Store.open(f"sqlite:///{tmp_path / 'r.sqlite'}", clock=ManualClock(T0)) as s:
            yield s
        return
    with postgres_database() as url, Store.open(url, clock=ManualClock(T0)) as s:
        yield s


def test_insert_or_replace_writes_a_row_then_overwrites_it_in_one_statement(
    any_store: Store,
) -> None:
    """``insert_or_replace`` (the search index's entry of a call, issue 12): a row by its
    unique key columns is inserted, and written again it is overwritten, not doubled."""
    from oohcore.search.index import call_search
    from oohcore.store.statements import insert_or_replace

    row = {
        "organisation_id": "ealing",
        "call_id": "C1",
        "service_option": "repairs",
        "received_at": T0,
        "caller_name": "ANN LEE",
        "address": "12 HIGH STREET",
    }
    key = ("organisation_id", "call_id")
    with any_store.transaction() as conn:
        insert_or_replace(conn, call_search, key, row)
        insert_or_replace(conn, call_search, key, {**row, "call_id": "C2"})
    with any_store.transaction() as conn:
        insert_or_replace(conn, call_search, key, {**row, "address": "4 MILL ROAD"})
    with any_store.read() as conn:
        got = conn.execute(
            select(call_search.c.call_id, call_search.c.address).order_by(call_search.c.call_id)
        ).all()
    assert [tuple(r) for r in got] == [("C1", "4 MILL ROAD"), ("C2", "12 HIGH STREET")]
