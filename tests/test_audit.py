"""The audit log: append-only, hash-chained per organisation, and verification finds tampering."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update

from oohcore.audit.chain import append_event, audit_heads, events
from oohcore.audit.model import GENESIS_HASH, AuditChainError, AuditError, AuditPayloadError
from oohcore.audit.read import chain_head, events_for_call, events_for_organisation
from oohcore.audit.verify import verify
from oohcore.clock import ManualClock
from oohcore.store import Store
from plan_support import plan

T0 = datetime(2025, 10, 26, 0, 45, tzinfo=UTC)  # the night the clocks go back


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'audit.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


def _fill(store: Store, org: str = "ealing", n: int = 5, call: str = "C1") -> list[int]:
    ids = []
    with store.transaction() as conn:
        for i in range(n):
            ids.append(
                append_event(
                    conn,
                    organisation_id=org,
                    call_id=call,
                    kind=f"step{i + 1}",
                    payload={"i": i + 1, "note": "burst pipe, Flat 2"},
                    at=T0 + timedelta(minutes=i),
                )
            )
    return ids


def _seq_of(store: Store, event_id: int) -> int:
    with store.read() as conn:
        return int(conn.execute(select(events.c.seq).where(events.c.id == event_id)).scalar_one())


# -- writing -----------------------------------------------------------------------------------


def test_each_organisation_has_its_own_contiguous_chain(store: Store) -> None:
    _fill(store, "ealing", 3, "C1")
    _fill(store, "hounslow", 2, "C2")
    _fill(store, "ealing", 2, "C3")
    with store.read() as conn:
        ealing = events_for_organisation(conn, "ealing")
        hounslow = events_for_organisation(conn, "hounslow")
        assert [e.seq for e in ealing] == [1, 2, 3, 4, 5]
        assert [e.seq for e in hounslow] == [1, 2]
        assert ealing[0].prev_hash == GENESIS_HASH
        for before, after in itertools.pairwise(ealing):
            assert after.prev_hash == before.hash
        assert chain_head(conn, "ealing") == (5, ealing[-1].hash)
        assert chain_head(conn, "nobody") == (0, GENESIS_HASH)
        assert [e.seq for e in events_for_organisation(conn, "ealing", after_seq=3)] == [4, 5]
        assert len(events_for_organisation(conn, "ealing", limit=2)) == 2
    report = verify(store)
    assert report.ok
    assert report.organisations == 2
    assert report.events == 7
    assert "intact" in str(report)


def test_events_for_call_reads_back_payload_and_time(store: Store) -> None:
    ids = _fill(store, n=3)
    with store.read() as conn:
        evs = events_for_call(conn, "C1")
        assert [e.id for e in evs] == ids
        assert evs[1].payload == {"i": 2, "note": "burst pipe, Flat 2"}
        assert evs[1].at == T0 + timedelta(minutes=1)
        assert events_for_call(conn, "C1", organisation_id="hounslow") == []
        assert len(events_for_call(conn, "C1", organisation_id="ealing")) == 3


def test_payload_is_canonical_json(store: Store) -> None:
    class Stage(Enum):
        FIRST = "first"

    with store.transaction() as conn:
        append_event(
            conn,
            organisation_id="o",
            call_id=None,
            kind="k",
            payload={
                "b": 1,
                "a": ["x", "é"],
                "when": datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
                "day": date(2025, 6, 1),
                "stage": Stage.FIRST,
            },
            at=T0,
        )
    with store.read() as conn:
        stored = conn.execute(select(events.c.payload)).scalar_one()
    assert stored == (
        '{"a":["x","é"],"b":1,"day":"2025-06-01","stage":"first",'
        '"when":"2025-06-01T12:00:00.000000+00:00"}'
    )


@pytest.mark.parametrize(
    "payload",
    [{"x": {1, 2}}, {"x": object()}, {"x": float("nan")}, {"x": datetime(2025, 1, 1)}],
)
def test_unstorable_payloads_are_refused(store: Store, payload: dict[str, object]) -> None:
    with pytest.raises(AuditPayloadError), store.transaction() as conn:
        append_event(conn, organisation_id="o", call_id=None, kind="k", payload=payload, at=T0)
    assert verify(store).events == 0


def test_bad_arguments_are_refused(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(AuditError, match="time zone"):
            append_event(
                conn,
                organisation_id="o",
                call_id=None,
                kind="k",
                payload={},
                at=datetime(2025, 1, 1),
            )
        with pytest.raises(AuditError, match="organisation_id"):
            append_event(conn, organisation_id="", call_id=None, kind="k", payload={}, at=T0)
        with pytest.raises(AuditError, match="kind"):
            append_event(conn, organisation_id="o", call_id=None, kind="", payload={}, at=T0)


# -- tampering is detected ---------------------------------------------------------------------


def _tamper(store: Store, sql: str, **params: object) -> None:
    with store.transaction() as conn:
        conn.execute(text(sql), params)


def test_an_edited_payload_is_detected(store: Store) -> None:
    ids = _fill(store)
    assert verify(store).ok
    _tamper(
        store,
        "UPDATE events SET payload = :p WHERE id = :id",
        p=json.dumps({"i": 3, "note": "nothing to see"}),
        id=ids[2],
    )
    report = verify(store)
    assert not report.ok
    problem = report.first_problem
    assert problem is not None
    assert (problem.organisation_id, problem.event_id, problem.seq) == ("ealing", ids[2], 3)
    assert "altered" in problem.message
    assert f"event id {ids[2]} (seq 3)" in str(report)
    with pytest.raises(AuditChainError) as info:
        report.raise_if_broken()
    assert info.value.report is report


def test_an_edited_timestamp_is_detected(store: Store) -> None:
    ids = _fill(store)
    with store.transaction() as conn:
        conn.execute(
            update(events).where(events.c.id == ids[1]).values(at=T0 + timedelta(seconds=1))
        )
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[1] and problem.seq == 2


def test_an_edited_kind_or_call_is_detected(store: Store) -> None:
    ids = _fill(store)
    _tamper(store, "UPDATE events SET kind = 'acknowledged' WHERE id = :id", id=ids[3])
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[3]
    _tamper(store, "UPDATE events SET kind = 'step4', call_id = 'C9' WHERE id = :id", id=ids[3])
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[3]


def test_a_rewritten_event_with_a_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    """Editing an event and fixing its own hash is caught by the next event's prev_hash."""
    from oohcore.audit.chain import event_hash

    ids = _fill(store)
    with store.transaction() as conn:
        row = conn.execute(select(events).where(events.c.id == ids[1])).one()
        new_payload = '{"i":2,"note":"edited"}'
        new_hash = event_hash(
            organisation_id=row.organisation_id,
            seq=row.seq,
            call_id=row.call_id,
            kind=row.kind,
            at=row.at,
            payload_json=new_payload,
            prev_hash=row.prev_hash,
        )
        conn.execute(
            update(events).where(events.c.id == ids[1]).values(payload=new_payload, hash=new_hash)
        )
    problem = verify(store).first_problem
    assert problem is not None
    assert problem.event_id == ids[2]
    assert "link to the previous event is broken" in problem.message


def test_a_deleted_middle_event_is_detected(store: Store) -> None:
    ids = _fill(store)
    with store.transaction() as conn:
        conn.execute(delete(events).where(events.c.id == ids[2]))
    report = verify(store)
    problem = report.first_problem
    assert problem is not None
    assert problem.event_id == ids[3]
    assert problem.seq == 4
    assert "seq 3 is missing" in problem.message
    assert "deleted" in problem.message


def test_a_deleted_middle_event_with_renumbering_is_detected(store: Store) -> None:
    ids = _fill(store)
    with store.transaction() as conn:
        conn.execute(delete(events).where(events.c.id == ids[2]))
        conn.execute(update(events).where(events.c.id == ids[3]).values(seq=3))
        conn.execute(update(events).where(events.c.id == ids[4]).values(seq=4))
        conn.execute(update(audit_heads).values(last_seq=4))
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[3]


def test_a_deleted_last_event_is_detected(store: Store) -> None:
    ids = _fill(store)
    with store.transaction() as conn:
        conn.execute(delete(events).where(events.c.id == ids[-1]))
    problem = verify(store).first_problem
    assert problem is not None
    assert problem.organisation_id == "ealing"
    assert problem.seq == 5
    assert "newest event(s) were deleted" in problem.message
    assert "ends at seq 4" in problem.message


def test_deleting_every_event_or_the_head_is_detected(store: Store) -> None:
    _fill(store, "ealing")
    _fill(store, "hounslow", call="C2")
    with store.transaction() as conn:
        conn.execute(delete(events).where(events.c.organisation_id == "ealing"))
        conn.execute(delete(audit_heads).where(audit_heads.c.organisation_id == "hounslow"))
    report = verify(store)
    by_org = {p.organisation_id: p.message for p in report.problems}
    assert "all its events were deleted" in by_org["ealing"]
    assert "chain head record is missing" in by_org["hounslow"]


def test_verification_reports_each_organisation_separately(store: Store) -> None:
    ids = _fill(store, "ealing")
    _fill(store, "hounslow", call="C2")
    _tamper(store, "UPDATE events SET payload = '{}' WHERE id = :id", id=ids[0])
    assert not verify(store).ok
    assert not verify(store, "ealing").ok
    assert verify(store, "hounslow").ok
    assert verify(store, "hounslow").events == 5


def test_verify_accepts_a_connection_an_engine_or_a_store(store: Store) -> None:
    _fill(store)
    with store.read() as conn:
        assert verify(conn).ok
    assert verify(store.engine).ok
    assert verify(store).ok


def test_appending_after_verification_continues_the_chain(store: Store) -> None:
    _fill(store, n=2)
    assert verify(store).ok
    _fill(store, n=2, call="C2")
    report = verify(store)
    assert report.ok and report.events == 4


def test_two_stores_appending_in_turn_keep_one_valid_chain(tmp_path: Path) -> None:
    """Each appender remembers the head it last wrote; when another process has appended since
    (or a transaction rolled back), that memory is stale and the head is read again."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    first = Store.open(url, clock=ManualClock(T0))
    second = Store.open(url, clock=ManualClock(T0))
    try:
        for i in range(6):
            store = first if i % 3 else second
            with store.transaction() as conn:
                append_event(
                    conn, organisation_id="ealing", call_id="C1", kind=f"k{i}", payload={}, at=T0
                )
        with pytest.raises(RuntimeError), first.transaction() as conn:
            append_event(
                conn, organisation_id="ealing", call_id="C1", kind="lost", payload={}, at=T0
            )
            raise RuntimeError("the step failed: nothing of it is kept")
        for store in (first, second, first):
            with store.transaction() as conn:
                append_event(
                    conn, organisation_id="ealing", call_id="C1", kind="after", payload={}, at=T0
                )
        report = verify(first)
        assert report.ok, str(report)
        with first.read() as conn:
            kinds = [e.kind for e in events_for_call(conn, "C1")]
            assert chain_head(conn, "ealing")[0] == 9
        assert kinds == ["k0", "k1", "k2", "k3", "k4", "k5", "after", "after", "after"]
    finally:
        first.close()
        second.close()


def test_a_calls_events_are_read_through_its_own_index_and_come_back_in_chain_order(
    store: Store,
) -> None:
    """A call's events (and ``payloads_for_call``) are read through ``ix_events_call_id``: an
    ORDER BY seq in the statement had SQLite walk the organisation's whole (organisation_id,
    seq) index instead — every event of the organisation for each call read — so they are put
    in chain order after the read, interleaved with other calls' events or not."""
    from oohcore.audit import read as audit_read

    with store.transaction() as conn:
        for i in range(6):
            for call in ("C1", "C2"):
                append_event(
                    conn,
                    organisation_id="ealing",
                    call_id=call,
                    kind="referral.attended" if i % 2 else "k",
                    payload={"i": i, "referral": f"{call}-{i}"},
                    at=T0 + timedelta(minutes=i),
                )
    with store.read() as conn:
        evs = events_for_call(conn, "C2", organisation_id="ealing")
        assert [e.payload["i"] for e in evs] == list(range(6))
        assert [e.seq for e in evs] == sorted(e.seq for e in evs)
        got = audit_read.payloads_for_call(conn, "ealing", "C2", ("referral.attended", "none"))
        assert [p["referral"] for p in got] == ["C2-1", "C2-3", "C2-5"]
        for statement in (
            audit_read._events_for_call_scoped,
            audit_read._events_for_call,
            audit_read._payloads_of_kinds[2],
        ):
            compiled = statement._plan_sqlite(conn.dialect)
            steps = plan(conn, compiled.sql, [None] * len(compiled.names))
            assert "ix_events_call_id" in steps, compiled.sql
