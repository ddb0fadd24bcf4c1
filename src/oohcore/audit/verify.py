"""Verifying the audit log: every hash recomputed, every link and head checked, every personal
record checked against its digest (see :mod:`oohcore.audit` for what is detected and what is not).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    select,
)

from oohcore.audit import personal as _personal
from oohcore.audit.chain import audit_heads, event_hash, events
from oohcore.audit.model import (
    GENESIS_HASH,
    AuditError,
    AuditProblem,
    AuditReport,
    ChainPin,
    EventRow,
)
from oohcore.audit.personal import PAYLOAD_KEY, personal_data
from oohcore.audit.read import (
    _NONE,
    _event,
    _purge_is_recorded,
    _read_columns,
    _reading,
    _reference,
    _with_personal,
)

if TYPE_CHECKING:
    from oohcore.store import Store

__all__ = [
    "verify",
]


def verify(
    source: Connection | Engine | Store,
    organisation_id: str | None = None,
    *,
    expect: Iterable[ChainPin] = (),
) -> AuditReport:
    """Check every organisation's chain (or one) and its personal-data records.

    Reports the first break in each chain, each personal-data record that is missing, altered
    or emptied without a recorded purge (the first ten per organisation, then a count), and
    each pin of ``expect`` whose event is no longer on the chain.

    ``source`` is a connection (its transaction is used as is), an engine or a store (a
    read-only snapshot is taken). Reads stream in ``seq`` order, so memory use is constant.
    """
    pins = {(p.organisation_id, p.seq): p for p in expect}
    if organisation_id is not None:
        others = sorted({org for org, _ in pins if org != organisation_id})
        if others:
            raise AuditError(
                f"a pinned head names organisation(s) {', '.join(others)} but only "
                f"{organisation_id!r} is being verified; verify them all, or drop those pins"
            )
    with _reading(source) as conn:
        head_stmt = select(
            audit_heads.c.organisation_id, audit_heads.c.last_seq, audit_heads.c.last_hash
        )
        ev_stmt = (
            select(*_read_columns)
            .select_from(_with_personal)
            .order_by(events.c.organisation_id, events.c.seq)
        )
        orphan_stmt = (
            select(personal_data.c.organisation_id, personal_data.c.event_id)
            .select_from(personal_data.outerjoin(events, events.c.id == personal_data.c.event_id))
            .where(events.c.id.is_(None))
            .order_by(personal_data.c.organisation_id, personal_data.c.event_id)
        )
        if organisation_id is not None:
            head_stmt = head_stmt.where(audit_heads.c.organisation_id == organisation_id)
            ev_stmt = ev_stmt.where(events.c.organisation_id == organisation_id)
            # one organisation's records still holding data, by its index of them (a record
            # without its event that holds no data carries nothing; its deleted event is a gap
            # the chain check reports): not a walk over every organisation's records
            orphan_stmt = orphan_stmt.where(
                personal_data.c.organisation_id == organisation_id,
                personal_data.c.data.is_not(None),
            )
        heads = {str(r[0]): (int(r[1]), str(r[2])) for r in conn.execute(head_stmt)}
        problems: list[AuditProblem] = []
        organisations: set[str] = set()
        count = records = purged = 0
        current: str | None = None
        broken = False
        expected_seq = 1
        prev_hash = GENESIS_HASH
        record_problems: dict[str, int] = {}
        found_pins: set[tuple[str, int]] = set()
        last_seq: dict[str, int] = {}

        def finish(org: str) -> None:
            last_seq[org] = expected_seq - 1
            if broken:
                return
            head = heads.get(org)
            end = expected_seq - 1
            if head is None:
                problems.append(
                    AuditProblem(
                        org,
                        None,
                        end,
                        "the chain head record is missing (audit_heads was edited or deleted)",
                    )
                )
            elif head[0] != end or head[1] != prev_hash:
                if head[0] > end:
                    message = (
                        f"the chain head says the log ends at seq {head[0]} but it ends at seq "
                        f"{end}: the newest event(s) were deleted"
                    )
                elif head[0] < end:
                    message = (
                        f"the log continues to seq {end} past the chain head (seq "
                        f"{head[0]}): events were added outside append_event"
                    )
                else:
                    message = (
                        "the hash of the last event does not match the chain head: the last "
                        "event was replaced or the head was edited"
                    )
                problems.append(AuditProblem(org, None, head[0], message))

        def record_problem(org: str, event_id: int | None, seq: int | None, message: str) -> None:
            seen = record_problems.get(org, 0)
            record_problems[org] = seen + 1
            if seen < _MAX_RECORD_PROBLEMS:
                problems.append(AuditProblem(org, event_id, seq, message))

        for raw in conn.execute(ev_stmt):
            ev = _event(raw)
            count += 1
            if ev.organisation_id != current:
                if current is not None:
                    finish(current)
                current = ev.organisation_id
                organisations.add(current)
                broken = False
                expected_seq = 1
                prev_hash = GENESIS_HASH
            pin = pins.get((ev.organisation_id, ev.seq)) if pins else None
            if pin is not None:
                found_pins.add((pin.organisation_id, pin.seq))
                if pin.hash != ev.hash:
                    problems.append(
                        AuditProblem(
                            ev.organisation_id,
                            ev.id,
                            ev.seq,
                            f"the pinned event {pin} is no longer on the chain: the event at "
                            f"seq {ev.seq} now has hash {ev.hash}, so the chain was rewritten "
                            "from there (or the pin belongs to another store); restore the "
                            "store from a backup that holds the pinned event",
                        )
                    )
            if raw[9] is not None or '"' + PAYLOAD_KEY + '":' in ev.payload_json:
                state = _check_record(ev, raw)
                if state == "present":
                    records += 1
                elif state == "purged":
                    records += 1
                    purged += 1
                elif state is not None:
                    record_problem(ev.organisation_id, ev.id, ev.seq, state)
            if broken:
                continue
            problem = _check_event(ev, expected_seq, prev_hash)
            if problem is not None:
                problems.append(problem)
                broken = True
                continue
            expected_seq = ev.seq + 1
            prev_hash = ev.hash
        if current is not None:
            finish(current)
        for org, (head_seq, _) in sorted(heads.items()):
            if org not in organisations:
                organisations.add(org)
                if head_seq != 0:
                    problems.append(
                        AuditProblem(
                            org,
                            None,
                            1,
                            f"the chain head says the log ends at seq {head_seq} but the "
                            "organisation has no events: all its events were deleted",
                        )
                    )
        for org, event_id in conn.execute(orphan_stmt):
            record_problem(
                str(org),
                None,
                None,
                f"a personal-data record names event id {event_id}, which is not in the log: "
                "the event was deleted, or the record was added outside append_event",
            )
        for org, extra in sorted(record_problems.items()):
            if extra > _MAX_RECORD_PROBLEMS:
                problems.append(
                    AuditProblem(
                        org,
                        None,
                        None,
                        f"and {extra - _MAX_RECORD_PROBLEMS} more personal-data record "
                        "problem(s) like those above",
                    )
                )
        for key, pin in sorted(pins.items()):
            if key not in found_pins:
                end = last_seq.get(pin.organisation_id, 0)
                where = f"the chain ends at seq {end}" if end else "it has no events"
                problems.append(
                    AuditProblem(
                        pin.organisation_id,
                        None,
                        pin.seq,
                        f"the pinned event {pin} is no longer on the chain ({where}): events "
                        "were deleted or the chain was rebuilt, or the pin belongs to another "
                        "store; restore the store from a backup that holds the pinned event",
                    )
                )
        return AuditReport(
            organisations=len(organisations),
            events=count,
            problems=tuple(problems),
            personal_records=records,
            purged_records=purged,
            pins=len(pins),
        )


_MAX_RECORD_PROBLEMS = 10  # personal-data record problems listed per organisation


def _check_record(ev: EventRow, raw: Sequence[Any]) -> str | None:
    """``"present"`` or ``"purged"`` for a good personal-data record of ``ev``, ``None`` when it
    has none and needs none, or what is wrong with it."""
    reference = _reference(ev.payload_json)
    restore = (
        "restore this event's personal_data row from a backup (personal data may only be "
        "removed through oohcore.retention.purge_personal_data, which records who and why)"
    )
    if reference is _NONE:
        if raw[9] is None:
            return None
        return (
            "a personal-data record is attached to this event, but the event carries no digest "
            "of one: it was added outside append_event; delete that personal_data row"
        )
    if raw[9] is None:
        return f"its personal-data record is missing (deleted without a recorded purge): {restore}"
    if raw[12] != ev.organisation_id or raw[13] != ev.call_id:
        return (
            "its personal-data record names another organisation or call than the event: it was "
            f"edited; {restore}"
        )
    if raw[10] is None:
        if _purge_is_recorded(ev, raw):
            return "purged"
        return (
            "its personal-data record was emptied, but no purge of this call is recorded on the "
            f"chain after it: the data was deleted behind the library's back; {restore}"
        )
    if not _personal.matches(reference, raw[10], raw[11]):
        return (
            "its personal-data record was altered: the stored data no longer matches the digest "
            f"the event carries; {restore}"
        )
    return "present"


def _check_event(ev: EventRow, expected_seq: int, prev_hash: str) -> AuditProblem | None:
    org = ev.organisation_id
    if ev.seq != expected_seq:
        if ev.seq > expected_seq:
            missing = (
                f"seq {expected_seq}"
                if ev.seq == expected_seq + 1
                else f"seq {expected_seq}–{ev.seq - 1}"
            )
            return AuditProblem(
                org,
                ev.id,
                ev.seq,
                f"{missing} is missing before this event: an event was deleted",
            )
        return AuditProblem(
            org, ev.id, ev.seq, f"expected seq {expected_seq}: the sequence number was edited"
        )
    computed = event_hash(
        organisation_id=ev.organisation_id,
        seq=ev.seq,
        call_id=ev.call_id,
        kind=ev.kind,
        at=ev.at,
        payload_json=ev.payload_json,
        prev_hash=ev.prev_hash,
    )
    if computed != ev.hash:
        return AuditProblem(
            org,
            ev.id,
            ev.seq,
            "the event was altered after it was written: its contents (kind, payload, time or "
            "call) no longer match its hash",
        )
    if ev.prev_hash != prev_hash:
        return AuditProblem(
            org,
            ev.id,
            ev.seq,
            "the link to the previous event is broken (its prev_hash does not match the "
            "previous event's hash): an event before it was replaced or removed",
        )
    return None
