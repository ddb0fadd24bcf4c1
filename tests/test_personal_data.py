"""Personal data beside the audit chain (DESIGN principle 11; specification 7.14.3, 7.14.7).

The chained payload carries only the field names and a keyed digest; the data sits in
``personal_data`` and can be purged while ``verify`` keeps passing; any other change to it is
reported with the event it belongs to and what to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, text, update

from oohcore.audit.chain import append_event, audit_heads, event_hash, events
from oohcore.audit.model import AuditError, AuditPayloadError, ChainPin
from oohcore.audit.personal import PAYLOAD_KEY, personal_data
from oohcore.audit.read import chain_heads, events_for_call, events_for_organisation, organisations
from oohcore.audit.verify import verify
from oohcore.clock import ManualClock
from oohcore.retention import RetentionError, purge_personal_data
from oohcore.store import Store
from pg_support import postgres_database
from plan_support import plan, statements

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night the clocks go forward
CALLER = {"caller_name": "Aisha Khan", "address": "Flat 2, 10 Acacia Road", "phone": "07700900123"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'audit.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


def _call(
    store: Store, call: str = "C1", org: str = "ealing", name: str = "Aisha Khan"
) -> list[int]:
    """Three events of one call: two carry personal data, one does not."""
    with store.transaction() as conn:
        return [
            append_event(
                conn,
                organisation_id=org,
                call_id=call,
                kind="call.offered",
                payload={"service_option": "repairs"},
                personal={"caller_number": "07700900123"},
                at=T0,
            ),
            append_event(
                conn,
                organisation_id=org,
                call_id=call,
                kind="call.answered",
                payload={"handler": "amy"},
                at=T0 + timedelta(seconds=20),
            ),
            append_event(
                conn,
                organisation_id=org,
                call_id=call,
                kind="call.captured",
                payload={"from": "answered", "to": "capturing"},
                personal={**CALLER, "caller_name": name},
                at=T0 + timedelta(minutes=2),
            ),
        ]


def _purge(store: Store, call: str = "C1", org: str = "ealing") -> int:
    with store.transaction() as conn:
        return purge_personal_data(
            conn,
            organisation_id=org,
            call_id=call,
            at=T0 + timedelta(days=400),
            by="retention policy (1 year)",
            reason="7.14.7 retention",
        )


# -- apart from the proof ----------------------------------------------------------------------


def test_the_chain_carries_only_field_names_and_a_keyed_digest(store: Store) -> None:
    ids = _call(store)
    with store.read() as conn:
        chained = [r[0] for r in conn.execute(select(events.c.payload).order_by(events.c.id))]
        row = conn.execute(select(personal_data).where(personal_data.c.event_id == ids[2])).one()
    everything = "".join(chained)
    for value in (*CALLER.values(), "07700900123"):
        assert value not in everything
    reference = json.loads(chained[2])[PAYLOAD_KEY]
    assert reference["fields"] == ["address", "caller_name", "phone"]
    assert (row.organisation_id, row.call_id) == ("ealing", "C1")
    assert json.loads(row.data) == CALLER
    assert len(bytes.fromhex(row.salt)) == 32
    # keyed: the plain SHA-256 of the data (what a guesser could compute) is not the digest
    assert reference["hmac_sha256"] != hashlib.sha256(row.data.encode()).hexdigest()
    assert PAYLOAD_KEY not in json.loads(chained[1])  # an event without personal data
    assert verify(store).ok


def test_reading_an_event_gives_its_personal_data_back(store: Store) -> None:
    ids = _call(store)
    with store.read() as conn:
        offered, answered, captured = events_for_call(conn, "C1")
        assert [e.id for e in events_for_organisation(conn, "ealing")] == ids
    assert answered.personal is None
    assert captured.personal is not None and captured.personal.status == "present"
    assert dict(captured.personal.data or {}) == CALLER
    assert captured.payload_with_personal_data() == {
        "from": "answered",
        "to": "capturing",
        **CALLER,
    }
    assert offered.personal is not None
    assert offered.personal.fields == ("caller_number",)
    # a log line of an event leaks none of it
    for value in CALLER.values():
        assert value not in repr(captured)


def test_a_salt_is_drawn_for_every_record(store: Store) -> None:
    _call(store, "C1")
    _call(store, "C2")  # the same name and address
    with store.read() as conn:
        captured = [
            json.loads(r[0])[PAYLOAD_KEY]["hmac_sha256"]
            for r in conn.execute(select(events.c.payload).where(events.c.kind == "call.captured"))
        ]
        salts = {r[0] for r in conn.execute(select(personal_data.c.salt))}
    assert len(set(captured)) == 2, "equal data must not give equal digests"
    assert len(salts) == 4


def test_the_reserved_key_and_unstorable_data_are_refused(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(AuditPayloadError, match="reserved"):
            append_event(
                conn,
                organisation_id="o",
                call_id="C1",
                kind="k",
                payload={PAYLOAD_KEY: {"hmac_sha256": "0" * 64}},
                at=T0,
            )
        with pytest.raises(AuditPayloadError, match="personal data"):
            append_event(
                conn,
                organisation_id="o",
                call_id="C1",
                kind="k",
                payload={},
                personal={"seen": {1, 2}},
                at=T0,
            )
    report = verify(store)
    assert report.events == 0 and report.personal_records == 0


# -- purging -----------------------------------------------------------------------------------


def test_purging_a_call_leaves_verify_passing(store: Store) -> None:
    ids = _call(store, "C1")
    _call(store, "C2", name="Tom Reid")
    assert _purge(store, "C1") == 2
    report = verify(store)
    assert report.ok, str(report)
    assert (report.personal_records, report.purged_records) == (4, 2)
    with store.read() as conn:
        rows = conn.execute(select(personal_data).where(personal_data.c.call_id == "C1")).all()
        evs = events_for_call(conn, "C1")
        others = events_for_call(conn, "C2")
    assert [(r.data, r.salt) for r in rows] == [(None, None), (None, None)]
    purge = evs[-1]
    assert purge.kind == "personal_data.purged"
    assert purge.payload == {
        "by": "retention policy (1 year)",
        "reason": "7.14.7 retention",
        "records": 2,
    }
    assert purge.personal is None
    captured = next(e for e in evs if e.id == ids[2])
    assert captured.personal is not None and captured.personal.purged
    assert captured.personal.data is None
    assert captured.personal.purged_at == T0 + timedelta(days=400)
    assert captured.personal.purged_by == "retention policy (1 year)"
    assert captured.personal.purge_reason == "7.14.7 retention"
    assert captured.personal.fields == ("address", "caller_name", "phone")
    assert captured.payload_with_personal_data() == {"from": "answered", "to": "capturing"}
    assert dict(others[2].personal.data or {})["caller_name"] == "Tom Reid"  # type: ignore[union-attr]


def test_purging_again_does_nothing(store: Store) -> None:
    _call(store)
    assert _purge(store) == 2
    assert _purge(store) == 0
    assert _purge(store, "no-such-call") == 0
    with store.read() as conn:
        kinds = [e.kind for e in events_for_call(conn, "C1")]
    assert kinds.count("personal_data.purged") == 1
    assert verify(store).ok


def test_a_purge_needs_who_and_why(store: Store) -> None:
    _call(store)
    with store.transaction() as conn:
        for by, reason in (("", "r"), ("dpo", " ")):
            with pytest.raises(RetentionError, match="who or what purged"):
                purge_personal_data(
                    conn, organisation_id="ealing", call_id="C1", at=T0, by=by, reason=reason
                )
        with pytest.raises(RetentionError, match="time zone"):
            purge_personal_data(
                conn,
                organisation_id="ealing",
                call_id="C1",
                at=datetime(2026, 1, 1),
                by="dpo",
                reason="erasure request 42",
            )
    with store.read() as conn:
        assert all(e.personal is None or not e.personal.purged for e in events_for_call(conn, "C1"))


def test_a_purge_is_scoped_to_its_organisation(store: Store) -> None:
    _call(store, "C1", org="ealing")
    _call(store, "C1", org="hounslow")  # call ids are only unique within an organisation here
    assert _purge(store, "C1", org="hounslow") == 2
    with store.read() as conn:
        ealing = events_for_call(conn, "C1", organisation_id="ealing")
    assert all(e.personal is None or e.personal.status == "present" for e in ealing)
    assert verify(store).ok


# -- tampering with the personal data is detected --------------------------------------------


def _tamper(store: Store, sql: str, **params: object) -> None:
    with store.transaction() as conn:
        conn.execute(text(sql), params)


def test_an_edited_personal_record_fails_verify(store: Store) -> None:
    ids = _call(store)
    _tamper(
        store,
        "UPDATE personal_data SET data = replace(data, 'Acacia', 'Laurel') WHERE event_id = :id",
        id=ids[2],
    )
    report = verify(store)
    assert not report.ok
    (problem,) = report.problems
    assert (problem.organisation_id, problem.event_id, problem.seq) == ("ealing", ids[2], 3)
    assert "altered" in problem.message
    assert "restore this event's personal_data row from a backup" in problem.message
    with store.read() as conn:
        captured = events_for_call(conn, "C1")[2]
    assert captured.personal is not None and captured.personal.status == "altered"
    assert "Laurel" not in json.dumps(captured.payload_with_personal_data())


def test_a_replaced_salt_fails_verify(store: Store) -> None:
    ids = _call(store)
    _tamper(
        store, "UPDATE personal_data SET salt = :s WHERE event_id = :id", s="ab" * 32, id=ids[0]
    )
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[0] and "altered" in problem.message


def test_a_deleted_personal_record_is_missing_not_purged(store: Store) -> None:
    ids = _call(store)
    with store.transaction() as conn:
        conn.execute(delete(personal_data).where(personal_data.c.event_id == ids[2]))
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[2]
    assert "missing (deleted without a recorded purge)" in problem.message
    with store.read() as conn:
        assert events_for_call(conn, "C1")[2].personal.status == "missing"  # type: ignore[union-attr]


def test_emptying_a_record_by_hand_is_not_a_purge(store: Store) -> None:
    ids = _call(store)
    with store.transaction() as conn:
        conn.execute(
            update(personal_data)
            .where(personal_data.c.event_id == ids[2])
            .values(data=None, salt=None, purge_event_id=ids[1])  # names an event, not a purge
        )
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[2]
    assert "no purge of this call is recorded" in problem.message


def test_a_purge_of_another_call_does_not_cover_this_one(store: Store) -> None:
    ids = _call(store, "C1")
    _call(store, "C2")
    _purge(store, "C2")
    with store.read() as conn:
        purge_id = events_for_call(conn, "C2")[-1].id
    with store.transaction() as conn:
        conn.execute(
            update(personal_data)
            .where(personal_data.c.event_id == ids[2])
            .values(data=None, salt=None, purge_event_id=purge_id)
        )
    problem = verify(store).first_problem
    assert problem is not None and problem.event_id == ids[2]


def test_a_record_moved_to_another_call_or_added_or_orphaned_is_reported(store: Store) -> None:
    ids = _call(store)
    _tamper(store, "UPDATE personal_data SET call_id = 'C9' WHERE event_id = :id", id=ids[0])
    with store.transaction() as conn:
        conn.execute(
            insert(personal_data).values(
                event_id=ids[1], organisation_id="ealing", call_id="C1", data="{}", salt="00" * 32
            )
        )
        conn.execute(
            insert(personal_data).values(
                event_id=9999, organisation_id="ealing", call_id="C1", data="{}", salt="00" * 32
            )
        )
    report = verify(store)
    messages = {p.event_id: p.message for p in report.problems}
    assert "names another organisation or call" in messages[ids[0]]
    assert "carries no digest" in messages[ids[1]]
    assert "names event id 9999, which is not in the log" in messages[None]


def test_verifying_one_organisation_finds_its_orphaned_records_by_its_own_index(
    store: Store,
) -> None:
    """Verifying one organisation looks for its records without an event through its index of
    records holding data (issue 12 dropped the index by call, which this check had used): not a
    walk over every organisation's records. A record holding data with no event is reported."""
    _call(store)
    _call(store, "H1", org="hounslow")
    with store.transaction() as conn:
        conn.execute(
            insert(personal_data).values(
                event_id=9999, organisation_id="ealing", call_id="C1", data="{}", salt="00" * 32
            )
        )
    with statements(store, "events.id IS NULL") as seen:
        report = verify(store, "ealing")
    assert any("names event id 9999" in p.message for p in report.problems)
    assert verify(store, "hounslow").ok
    with store.read() as conn:
        steps = plan(conn, *seen[0])
    assert "ix_personal_data_present" in steps and "SCAN personal_data" not in steps, steps


def test_many_record_problems_are_listed_up_to_ten_then_counted(store: Store) -> None:
    for i in range(6):
        _call(store, f"C{i}")
    with store.transaction() as conn:
        conn.execute(delete(personal_data))
    report = verify(store)
    assert len(report.problems) == 11
    assert "and 2 more personal-data record problem(s)" in report.problems[-1].message


def test_a_purge_event_that_is_edited_breaks_the_chain(store: Store) -> None:
    """The purge's own record (who, why) is chained like every other event."""
    _call(store)
    _purge(store)
    _tamper(
        store,
        "UPDATE events SET payload = replace(payload, 'retention policy', 'nobody') "
        "WHERE kind = 'personal_data.purged'",
    )
    problem = verify(store).first_problem
    assert problem is not None and "altered after it was written" in problem.message


# -- heads and pins ----------------------------------------------------------------------------


def test_chain_heads_and_organisations(store: Store) -> None:
    _call(store, "C1", org="ealing")
    _call(store, "C2", org="hounslow")
    with store.transaction() as conn:
        append_event(conn, organisation_id="ealing", call_id=None, kind="k", payload={}, at=T0)
    with store.read() as conn:
        heads = chain_heads(conn)
        last = events_for_organisation(conn, "ealing")[-1]
        assert organisations(conn) == ["ealing", "hounslow"]
        assert chain_heads(conn, "nobody") == []
    assert [(h.organisation_id, h.seq) for h in heads] == [("ealing", 4), ("hounslow", 3)]
    assert heads[0].hash == last.hash and heads[0].at == T0
    assert str(heads[0].pin) == f"ealing:4:{last.hash}"
    assert ChainPin.parse(str(heads[0].pin)) == heads[0].pin


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ealing",
        "ealing:x:" + "a" * 64,
        "ealing:0:" + "a" * 64,
        "ealing:3:abc",
        ":3:" + "a" * 64,
    ],
)
def test_a_malformed_pin_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ChainPin.parse(text)


def _rebuild(store: Store, org: str) -> None:
    """What someone with write access to the whole database can do: rewrite one event and every
    hash after it, and the head, so that the chain is consistent again."""
    with store.transaction() as conn:
        rows = conn.execute(
            select(events).where(events.c.organisation_id == org).order_by(events.c.seq)
        ).all()
        prev = "0" * 64
        for row in rows:
            payload = row.payload.replace("amy", "eve")
            digest = event_hash(
                organisation_id=org,
                seq=row.seq,
                call_id=row.call_id,
                kind=row.kind,
                at=row.at,
                payload_json=payload,
                prev_hash=prev,
            )
            conn.execute(
                update(events)
                .where(events.c.id == row.id)
                .values(payload=payload, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(
            update(audit_heads).where(audit_heads.c.organisation_id == org).values(last_hash=prev)
        )


def test_a_rebuilt_chain_verifies_unless_a_published_head_is_checked(store: Store) -> None:
    _call(store)
    with store.read() as conn:
        (head,) = chain_heads(conn)
    assert verify(store, expect=[head.pin]).ok
    assert verify(store, expect=[head.pin]).pins == 1
    _rebuild(store, "ealing")
    assert verify(store).ok  # the chain alone cannot tell
    report = verify(store, expect=[head.pin])
    (problem,) = report.problems
    assert problem.seq == head.seq and "is no longer on the chain" in problem.message
    assert str(head.pin) in problem.message


def test_a_pin_past_the_end_of_a_truncated_chain_is_reported(store: Store) -> None:
    _call(store)
    with store.read() as conn:
        (head,) = chain_heads(conn)
        first = events_for_organisation(conn, "ealing")[0]
    with store.transaction() as conn:
        conn.execute(delete(personal_data))
        conn.execute(delete(events).where(events.c.seq > 1))
        conn.execute(update(audit_heads).values(last_seq=1, last_hash=first.hash))
    problems = verify(store, expect=[head.pin]).problems
    assert any("the chain ends at seq 1" in p.message for p in problems)
    pin = ChainPin("camden", 1, "a" * 64)
    (problem,) = verify(store, "camden", expect=[pin]).problems
    assert "it has no events" in problem.message
    with pytest.raises(AuditError, match="only 'ealing' is being verified"):
        verify(store, "ealing", expect=[pin])


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def pg_store() -> Iterator[Store]:
    """A store in a fresh PostgreSQL database (as tests/test_store.py makes them)."""
    with postgres_database() as url, Store.open(url, clock=ManualClock(T0)) as s:
        yield s


def test_postgresql_personal_data_purge_and_tampering(pg_store: Store) -> None:
    ids = _call(pg_store, "C1")
    _call(pg_store, "C2")
    assert _purge(pg_store, "C1") == 2
    report = verify(pg_store)
    assert report.ok and report.purged_records == 2, str(report)
    with pg_store.read() as conn:
        assert events_for_call(conn, "C1")[2].personal.purged  # type: ignore[union-attr]
        assert dict(events_for_call(conn, "C2")[2].personal.data or {}) == CALLER  # type: ignore[union-attr]
    with pg_store.transaction() as conn:
        conn.execute(
            update(personal_data)
            .where(personal_data.c.call_id == "C2")
            .values(data=text("replace(data, 'Aisha', 'Eve')"))
        )
    problem = verify(pg_store).first_problem
    assert problem is not None and problem.event_id == ids[2] + 3 and "altered" in problem.message
