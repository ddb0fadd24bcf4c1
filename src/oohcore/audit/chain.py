"""Appending to the audit log: the ``events`` and ``audit_heads`` tables, the canonical hash of an
event, and ``append_event``, which chains an event onto its organisation's head in the step's
transaction (personal data beside the chain, its digest on it). See :mod:`oohcore.audit`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    insert,
    select,
    update,
)

from oohcore.audit import personal as _personal
from oohcore.audit.model import GENESIS_HASH, AuditError, AuditPayloadError
from oohcore.audit.personal import PAYLOAD_KEY
from oohcore.clock import as_utc
from oohcore.store.columns import JSONValueError, UTCDateTime, to_json
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared, insert_ignoring_conflict

__all__ = [
    "append_event",
    "audit_heads",
    "canonical_json",
    "event_hash",
    "events",
    "last_event_at",
]


_ID = BigInteger().with_variant(Integer(), "sqlite")


events = Table(
    "events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("organisation_id", String(100), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    Column("call_id", String(100), nullable=True),
    Column("kind", String(100), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("organisation_id", "seq"),
    Index(None, "call_id"),
)


audit_heads = Table(
    "audit_heads",
    metadata,
    Column("organisation_id", String(100), primary_key=True),
    Column("last_seq", BigInteger(), nullable=False),
    Column("last_hash", String(64), nullable=False),
)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON: sorted keys, no spaces, UTF-8 characters kept, no NaN."""
    try:
        return to_json(value)
    except JSONValueError as exc:
        raise AuditPayloadError(f"event payload: {exc}") from exc


_HASH_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def event_hash(
    *,
    organisation_id: str,
    seq: int,
    call_id: str | None,
    kind: str,
    at: datetime,
    payload_json: str,
    prev_hash: str,
) -> str:
    """The SHA-256 (hex) of one event, as defined in the module documentation."""
    material = _HASH_ENCODER.encode(
        [
            organisation_id,
            seq,
            call_id,
            kind,
            as_utc(at).isoformat(timespec="microseconds"),
            payload_json,
            prev_hash,
        ]
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


_select_head = Prepared(
    select(audit_heads.c.last_seq, audit_heads.c.last_hash)
    .where(audit_heads.c.organisation_id == bindparam("org"))
    .with_for_update()
)


_insert_event = Prepared(
    insert(events),
    keys=["organisation_id", "seq", "call_id", "kind", "payload", "at", "prev_hash", "hash"],
)


_update_head = Prepared(
    update(audit_heads)
    .where(audit_heads.c.organisation_id == bindparam("org"))
    .values(last_seq=bindparam("seq"), last_hash=bindparam("hash"))
)


# Move the head on only if it is where this process last saw it (same seq and hash): one
# statement instead of reading the head first. Anything else (another process appended, a
# transaction rolled back, a new store) makes it match no row, and the head is read instead.
_advance_head = Prepared(
    update(audit_heads)
    .where(
        and_(
            audit_heads.c.organisation_id == bindparam("org"),
            audit_heads.c.last_seq == bindparam("old_seq"),
            audit_heads.c.last_hash == bindparam("old_hash"),
        )
    )
    .values(last_seq=bindparam("seq"), last_hash=bindparam("hash"))
)


_seen_heads: dict[tuple[int, str], tuple[int, str]] = {}  # (id(engine), org) -> (seq, hash)


_event_columns = (
    events.c.id,
    events.c.organisation_id,
    events.c.seq,
    events.c.call_id,
    events.c.kind,
    events.c.payload,
    events.c.at,
    events.c.prev_hash,
    events.c.hash,
)


def append_event(
    conn: Connection,
    *,
    organisation_id: str,
    call_id: str | None,
    kind: str,
    payload: Mapping[str, Any],
    at: datetime,
    personal: Mapping[str, Any] | None = None,
) -> int:
    """Append one event to ``organisation_id``'s chain and return its id.

    Must run inside the transaction that makes the change the event records.

    ``personal`` is the personal data the event covers (a caller's name, address, number,
    answers: 7.14.3). It is stored beside the chain, and the chained payload carries only its
    field names and keyed digest under ``"personal_data"`` (a key ``payload`` may not use), so
    a retention purge (:func:`oohcore.retention.purge_personal_data`) can delete it and the
    chain still verifies. Keep personal data out of ``payload``: what is chained is kept for
    ever.
    """
    if not organisation_id:
        raise AuditError("an event needs an organisation_id")
    if not kind:
        raise AuditError("an event needs a kind")
    try:
        at = as_utc(at)
    except ValueError as exc:
        raise AuditError(f"event time: {exc}") from exc
    if PAYLOAD_KEY in payload:
        raise AuditPayloadError(
            f"event payload: the key {PAYLOAD_KEY!r} is reserved for the digest of the event's "
            "personal data; pass the data itself as personal=..."
        )
    record: tuple[str, str] | None = None
    if personal:
        try:
            data_json, salt, reference = _personal.sealed(personal)
        except JSONValueError as exc:
            raise AuditPayloadError(f"personal data: {exc}") from exc
        record = (data_json, salt)
        payload = {**payload, PAYLOAD_KEY: reference}
    event_id = _append(conn, organisation_id, call_id, kind, canonical_json(dict(payload)), at)
    if record is not None:
        _personal.insert_record.execute(
            conn,
            {
                "event_id": event_id,
                "organisation_id": organisation_id,
                "call_id": call_id,
                "data": record[0],
                "salt": record[1],
            },
        )
    return event_id


def _append(
    conn: Connection,
    organisation_id: str,
    call_id: str | None,
    kind: str,
    payload_json: str,
    at: datetime,
) -> int:
    cache_key = (id(conn.engine), organisation_id)
    seen = _seen_heads.get(cache_key)
    if seen is not None:
        seq, digest = _next(organisation_id, seen, call_id, kind, at, payload_json)
        moved = _advance_head.execute(
            conn,
            {
                "org": organisation_id,
                "old_seq": seen[0],
                "old_hash": seen[1],
                "seq": seq,
                "hash": digest,
            },
        )
        if moved.rowcount == 1:
            event_id = _insert(
                conn, organisation_id, seq, call_id, kind, payload_json, at, seen[1], digest
            )
            _seen_heads[cache_key] = (seq, digest)
            return event_id
    head = _select_head.execute(conn, {"org": organisation_id}).first()
    if head is None:
        # The organisation's first event: create its head (harmless if a concurrent appender
        # just did), then read it again, locked.
        insert_ignoring_conflict(
            conn,
            audit_heads,
            "organisation_id",
            {"organisation_id": organisation_id, "last_seq": 0, "last_hash": GENESIS_HASH},
        )
        head = _select_head.execute(conn, {"org": organisation_id}).first()
        assert head is not None
    last = (int(head[0]), str(head[1]))
    seq, digest = _next(organisation_id, last, call_id, kind, at, payload_json)
    event_id = _insert(conn, organisation_id, seq, call_id, kind, payload_json, at, last[1], digest)
    _update_head.execute(conn, {"org": organisation_id, "seq": seq, "hash": digest})
    _seen_heads[cache_key] = (seq, digest)
    return event_id


def _next(
    organisation_id: str,
    last: tuple[int, str],
    call_id: str | None,
    kind: str,
    at: datetime,
    payload_json: str,
) -> tuple[int, str]:
    seq = last[0] + 1
    digest = event_hash(
        organisation_id=organisation_id,
        seq=seq,
        call_id=call_id,
        kind=kind,
        at=at,
        payload_json=payload_json,
        prev_hash=last[1],
    )
    return seq, digest


def _insert(
    conn: Connection,
    organisation_id: str,
    seq: int,
    call_id: str | None,
    kind: str,
    payload_json: str,
    at: datetime,
    prev_hash: str,
    digest: str,
) -> int:
    event_id = _insert_event.execute(
        conn,
        {
            "organisation_id": organisation_id,
            "seq": seq,
            "call_id": call_id,
            "kind": kind,
            "payload": payload_json,
            "at": at,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    ).lastrowid
    assert event_id is not None
    return int(event_id)


_last_event_at = Prepared(
    select(func.max(events.c.at))
    .where(events.c.call_id == bindparam("call_id"))
    .where(events.c.organisation_id == bindparam("org"))
)


def last_event_at(conn: Connection, organisation_id: str, call_id: str) -> datetime | None:
    """When the call's last event was recorded (its steps are recorded in time order: a step
    is not recorded before it, see :mod:`oohcore.engine.inputs`), or None for no event."""
    value = _last_event_at.execute(conn, {"call_id": call_id, "org": organisation_id}).scalar()
    return as_utc(value) if isinstance(value, datetime) else None
