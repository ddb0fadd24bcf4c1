"""Reading the audit log back: a call's or an organisation's events in chain order, each with its
personal record (or why it is gone), payloads of given kinds, the chain heads to publish.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    or_,
    select,
    union,
)

from oohcore.audit import personal as _personal
from oohcore.audit.chain import _event_columns, audit_heads, events
from oohcore.audit.model import GENESIS_HASH, ChainHead, EventRow
from oohcore.audit.personal import PAYLOAD_KEY, personal_data
from oohcore.store.statements import Prepared

if TYPE_CHECKING:
    from oohcore.store import Store

__all__ = [
    "chain_head",
    "chain_heads",
    "events_for_call",
    "events_for_organisation",
    "organisations",
    "payloads_for_call",
]


# Every read of events brings the event's personal record (if any) and the purge event a
# tombstone names, in one statement.
_purge_event = events.alias("purge_event")


_with_personal = events.outerjoin(personal_data, personal_data.c.event_id == events.c.id).outerjoin(
    _purge_event, _purge_event.c.id == personal_data.c.purge_event_id
)


_read_columns = (
    *_event_columns,
    personal_data.c.event_id,  # 9: NULL when the event has no personal record
    personal_data.c.data,
    personal_data.c.salt,
    personal_data.c.organisation_id,
    personal_data.c.call_id,
    _purge_event.c.organisation_id,  # 14
    _purge_event.c.call_id,
    _purge_event.c.kind,
    _purge_event.c.seq,
    _purge_event.c.at,
    _purge_event.c.payload,
)


_PURGED = "personal_data.purged"  # oohcore.vocabulary.EventKind.PERSONAL_DATA_PURGED


# A call's events are a handful: they are put in order here, not by the database, because an
# ORDER BY seq led SQLite (which keeps no statistics) to read them through the organisation's
# (organisation_id, seq) index, walking every event of the organisation, rather than through
# the call's own index.
_events_for_call = Prepared(
    select(*_read_columns)
    .select_from(_with_personal)
    .where(events.c.call_id == bindparam("call_id"))
)


_events_for_call_scoped = Prepared(
    select(*_read_columns)
    .select_from(_with_personal)
    .where(events.c.call_id == bindparam("call_id"))
    .where(events.c.organisation_id == bindparam("org"))
)


_CHAIN_ORDER = itemgetter(1, 2)  # (organisation_id, seq) of a row of ``_read_columns``


def _event(row: Sequence[Any]) -> EventRow:
    return EventRow(
        id=int(row[0]),
        organisation_id=row[1],
        seq=int(row[2]),
        call_id=row[3],
        kind=row[4],
        payload_json=row[5],
        at=row[6],
        prev_hash=row[7],
        hash=row[8],
    )


def _row(row: Sequence[Any]) -> EventRow:
    ev = _event(row)
    reference = _reference(ev.payload_json)
    if reference is _NONE and row[9] is None:
        return ev
    valid_purge = _purge_is_recorded(ev, row)
    personal = _personal.read(
        None if reference is _NONE else reference,
        row[10],
        row[11],
        exists=row[9] is not None,
        purged_at=row[18] if valid_purge else None,
        purge_payload=_loads(row[19]) if valid_purge else None,
    )
    return replace(ev, personal=personal)


_NONE: Any = object()


def _reference(payload_json: str) -> Any:
    """The personal-data reference a chained payload carries, or ``_NONE``."""
    if f'"{PAYLOAD_KEY}":' not in payload_json:  # most events: no JSON parse
        return _NONE
    value = _loads(payload_json)
    if value is None or PAYLOAD_KEY not in value:
        return _NONE
    return value[PAYLOAD_KEY]


def _loads(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _purge_is_recorded(ev: EventRow, row: Sequence[Any]) -> bool:
    """Whether a tombstone names a purge event of the same call, later on the same chain."""
    return (
        row[10] is None
        and row[14] == ev.organisation_id
        and row[15] == ev.call_id
        and row[16] == _PURGED
        and row[17] is not None
        and int(row[17]) > ev.seq
    )


def events_for_call(
    conn: Connection, call_id: str, *, organisation_id: str | None = None
) -> list[EventRow]:
    """The events of one call, oldest first (scoped to ``organisation_id`` when given)."""
    if organisation_id is None:
        rows = _events_for_call.execute(conn, {"call_id": call_id}).rows
    else:
        rows = _events_for_call_scoped.execute(
            conn, {"call_id": call_id, "org": organisation_id}
        ).rows
    rows.sort(key=_CHAIN_ORDER)
    return [_row(r) for r in rows]


_payloads_of_kinds: dict[int, Prepared] = {}


def payloads_for_call(
    conn: Connection, organisation_id: str, call_id: str, kinds: Sequence[str]
) -> list[dict[str, Any]]:
    """The chained payloads of one call's events of ``kinds``, oldest first.

    For a step that needs only what some events said (the referrals a call's attendance was
    recorded against, say): one indexed read of those rows, no personal data joined or checked,
    where :func:`events_for_call` reads and checks every event of the call."""
    stmt = _payloads_of_kinds.get(len(kinds))
    if stmt is None:
        stmt = Prepared(
            select(events.c.seq, events.c.payload)
            .where(events.c.call_id == bindparam("call_id"))
            .where(events.c.organisation_id == bindparam("org"))
            .where(or_(*(events.c.kind == bindparam(f"kind_{i}") for i in range(len(kinds)))))
        )  # no ORDER BY: see _events_for_call
        _payloads_of_kinds[len(kinds)] = stmt
    params: dict[str, Any] = {"call_id": call_id, "org": organisation_id}
    params.update({f"kind_{i}": str(kind) for i, kind in enumerate(kinds)})
    return [json.loads(payload) for _, payload in sorted(stmt.execute(conn, params).rows)]


def events_for_organisation(
    conn: Connection, organisation_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[EventRow]:
    """One organisation's events with ``seq > after_seq``, oldest first."""
    stmt = (
        select(*_read_columns)
        .select_from(_with_personal)
        .where(events.c.organisation_id == organisation_id)
        .where(events.c.seq > after_seq)
        .order_by(events.c.seq)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_row(r) for r in conn.execute(stmt)]


def chain_head(conn: Connection, organisation_id: str) -> tuple[int, str]:
    """``(last_seq, last_hash)`` of an organisation's chain (``(0, GENESIS_HASH)`` if empty).

    Publishing this pair outside the database makes a rebuilt chain detectable.
    """
    row = conn.execute(
        select(audit_heads.c.last_seq, audit_heads.c.last_hash).where(
            audit_heads.c.organisation_id == organisation_id
        )
    ).first()
    if row is None:
        return 0, GENESIS_HASH
    return int(row[0]), str(row[1])


def chain_heads(conn: Connection, organisation_id: str | None = None) -> list[ChainHead]:
    """The head of every organisation's chain (or one's), by organisation.

    An organisation with no event has no head (an empty list for it).
    """
    stmt = (
        select(
            audit_heads.c.organisation_id,
            audit_heads.c.last_seq,
            audit_heads.c.last_hash,
            events.c.at,
        )
        .select_from(
            audit_heads.outerjoin(
                events,
                and_(
                    events.c.organisation_id == audit_heads.c.organisation_id,
                    events.c.seq == audit_heads.c.last_seq,
                    events.c.hash == audit_heads.c.last_hash,
                ),
            )
        )
        .where(audit_heads.c.last_seq > 0)
        .order_by(audit_heads.c.organisation_id)
    )
    if organisation_id is not None:
        stmt = stmt.where(audit_heads.c.organisation_id == organisation_id)
    return [ChainHead(str(r[0]), int(r[1]), str(r[2]), r[3]) for r in conn.execute(stmt)]


def organisations(conn: Connection) -> list[str]:
    """Every organisation the audit log knows (with events or a chain head), sorted."""
    stmt = union(select(audit_heads.c.organisation_id), select(events.c.organisation_id).distinct())
    return sorted(str(r[0]) for r in conn.execute(stmt))


@contextmanager
def _reading(source: Connection | Engine | Store) -> Iterator[Connection]:
    if isinstance(source, Connection):
        yield source
        return
    if isinstance(source, Engine):
        with source.connect() as conn:
            if source.dialect.name == "sqlite":
                conn.info["oohcore.sqlite_begin"] = "BEGIN"
            with conn.begin():
                yield conn
        return
    with source.read() as conn:
        yield conn
