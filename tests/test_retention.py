"""Retention (specification 7.14.7): the personal data of calls that ended before a date is purged
in batches, per organisation and service option; the chain keeps verifying."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select

from oohcore.audit.chain import append_event, events
from oohcore.audit.personal import personal_data
from oohcore.audit.read import events_for_call
from oohcore.audit.verify import verify
from oohcore.calls import calls
from oohcore.clock import ManualClock
from oohcore.retention import RetentionError, purge_expired
from oohcore.store import Store
from plan_support import plan, statements

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=365)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'retention.sqlite'}", clock=ManualClock(NOW))
    yield s
    s.close()


def _add_call(
    conn: Connection,
    call_id: str,
    *,
    org: str = "ealing",
    option: str = "repairs",
    received: datetime,
    closed: datetime | None = None,
    abandoned: datetime | None = None,
) -> None:
    n = int(call_id.lstrip("CX") or 0)
    conn.execute(
        insert(calls).values(
            id=call_id,
            organisation_id=org,
            seq=n,
            reference=f"R{call_id}",
            access_number="0100 000 0001",
            service_option=option,
            organisation_version="v1",
            state="closed" if closed else ("abandoned" if abandoned else "referred"),
            priority=0,
            in_hours=0,
            answers="{}",
            received_at=received,
            closed_at=closed,
            abandoned_at=abandoned,
            version=1,
        )
    )
    for kind, personal in (
        ("call.offered", {"caller_number": "07700900123"}),
        ("call.captured", {"caller_name": f"caller of {call_id}", "address": "1 High St"}),
    ):
        append_event(
            conn,
            organisation_id=org,
            call_id=call_id,
            kind=kind,
            payload={},
            personal=personal,
            at=received,
        )


def _present(store: Store) -> set[str]:
    with store.read() as conn:
        rows = conn.execute(
            select(personal_data.c.call_id).where(personal_data.c.data.is_not(None))
        )
        return {str(r[0]) for r in rows}


def _old(days: int) -> datetime:
    return CUTOFF - timedelta(days=days)


@pytest.fixture
def calls_of_two_years(store: Store) -> None:
    with store.transaction() as conn:
        for i in range(1, 8):  # seven calls closed more than a year ago
            _add_call(
                conn, f"C{i}", received=_old(100 - i), closed=_old(100 - i) + timedelta(hours=1)
            )
        _add_call(conn, "C8", received=_old(10), abandoned=_old(10) + timedelta(minutes=1))
        _add_call(conn, "C9", received=NOW - timedelta(days=30), closed=NOW - timedelta(days=30))
        _add_call(conn, "C10", received=_old(200))  # still open (a stuck referral): kept
        _add_call(conn, "C11", option="noise", received=_old(50), closed=_old(50))
        _add_call(conn, "C12", org="hounslow", received=_old(50), closed=_old(50))
        # closed just after the cut-off: kept
        _add_call(conn, "C13", received=_old(1), closed=CUTOFF + timedelta(seconds=1))


def _purge_all(store: Store, **kwargs: object) -> list[int]:
    counts = []
    while True:
        with store.transaction() as conn:
            n = purge_expired(
                conn,
                organisation_id="ealing",
                older_than=CUTOFF,
                at=NOW,
                by="retention policy (1 year)",
                **kwargs,  # type: ignore[arg-type]
            )
        counts.append(n)
        if n == 0:
            return counts


@pytest.mark.usefixtures("calls_of_two_years")
def test_calls_that_ended_before_the_cutoff_are_purged_in_batches(store: Store) -> None:
    cleared: list[str] = []
    counts = _purge_all(store, batch_size=3, also=lambda conn, call_id: cleared.append(call_id))
    assert counts == [3, 3, 3, 0]  # C1-C7, the abandoned C8 and C11, three a batch
    assert cleared == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C11"]  # oldest first
    assert _present(store) == {"C9", "C10", "C12", "C13"}
    report = verify(store)
    assert report.ok, str(report)
    assert report.purged_records == 18
    with store.read() as conn:
        purge = events_for_call(conn, "C8", organisation_id="ealing")[-1]
    assert purge.kind == "personal_data.purged"
    assert purge.payload["by"] == "retention policy (1 year)"
    assert "ended before 2025-12-02T03:00:00+00:00" in purge.payload["reason"]


@pytest.mark.usefixtures("calls_of_two_years")
def test_a_policy_per_service_option(store: Store) -> None:
    assert _purge_all(store, service_option="noise", reason="noise: 1 year") == [1, 0]
    assert "C11" not in _present(store)
    assert {"C1", "C8"} <= _present(store)
    assert verify(store).ok


@pytest.mark.usefixtures("calls_of_two_years")
def test_a_purge_that_fails_half_way_keeps_everything_of_its_batch(store: Store) -> None:
    def fail(conn: Connection, call_id: str) -> None:
        if call_id == "C2":
            raise RuntimeError("the host's own clean-up failed")

    with pytest.raises(RuntimeError), store.transaction() as conn:
        purge_expired(
            conn,
            organisation_id="ealing",
            older_than=CUTOFF,
            at=NOW,
            by="retention",
            batch_size=5,
            also=fail,
        )
    assert {"C1", "C2"} <= _present(store)
    with store.read() as conn:
        kinds = {r[0] for r in conn.execute(select(events.c.kind))}
    assert "personal_data.purged" not in kinds
    assert verify(store).ok


def test_bad_arguments_are_refused(store: Store) -> None:
    with store.transaction() as conn:
        with pytest.raises(RetentionError, match="time zone"):
            purge_expired(
                conn, organisation_id="ealing", older_than=datetime(2025, 1, 1), at=NOW, by="x"
            )
        with pytest.raises(RetentionError, match="batch_size"):
            purge_expired(
                conn, organisation_id="ealing", older_than=CUTOFF, at=NOW, by="x", batch_size=0
            )
        with pytest.raises(RetentionError, match="by="):
            purge_expired(conn, organisation_id="ealing", older_than=CUTOFF, at=NOW, by="")


@pytest.mark.usefixtures("calls_of_two_years")
def test_a_purge_finds_the_calls_records_through_its_events(store: Store) -> None:
    """Issue 12 dropped the personal records' index by call (one page fewer for every record
    written): a purge reads the call's events by their call index and the records by the event
    id — never a walk over the organisation's records — and still purges exactly that call's."""
    from oohcore.retention import purge_personal_data

    with store.transaction() as conn, statements(store, "FROM events JOIN personal_data") as seen:
        assert (
            purge_personal_data(
                conn, organisation_id="ealing", call_id="C3", at=NOW, by="dpo", reason="request 9"
            )
            == 2
        )
        assert len(seen) == 1
        steps = plan(conn, *seen[0])
        assert "ix_events_call_id" in steps and "ix_personal_data_present" not in steps, steps
    assert "C3" not in _present(store) and {"C2", "C4", "C12"} <= _present(store)
