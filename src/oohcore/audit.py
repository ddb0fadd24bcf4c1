"""The audit log: an append-only, hash-chained record of every event, per organisation.

"All transactions are auditable" (specification, Appendix 2): every step of a call (offered,
answered, decided, referred, acknowledged, escalated, closed …) is an event appended here **in
the same transaction** as the state change it records, so the log and the state cannot disagree.

Chain
-----

Each organisation (Participating Organisation) has its own chain. Events of one organisation are
numbered ``seq`` = 1, 2, 3 … without gaps, and each event stores

* ``prev_hash``: the ``hash`` of the event before it (64 zeros for seq 1), and
* ``hash``: SHA-256 of the canonical JSON array
  ``[organisation_id, seq, call_id, kind, at (ISO 8601 UTC, microseconds), payload, prev_hash]``
  where ``payload`` is the stored canonical JSON text (keys sorted, no spaces, UTF-8).

The table ``audit_heads`` holds, per organisation, the last ``seq`` and ``hash``; it is updated in
the same transaction as the append (on PostgreSQL the head row is locked ``FOR UPDATE``, which
serialises concurrent appenders of one organisation; on SQLite the write lock does it).

:func:`verify` recomputes every hash and detects an edited event (payload, kind, time, call,
sequence number or hash), a deleted event (a gap in ``seq`` or a broken ``prev_hash`` link), the
deletion of the newest events (the log ends before the head) and a missing head.

Personal data (DESIGN principle 11; 7.14.3, 7.14.7) is kept beside the chain, not in it:
``append_event(..., personal=...)`` stores it in ``personal_data`` and chains only its field names
and a salted HMAC-SHA256 (see :mod:`oohcore.personal_data`); :mod:`oohcore.retention` purges it
with a ``personal_data.purged`` event, and :func:`verify` checks every record against its digest.

Threat model
------------

* Detected: an edited, inserted, reordered or deleted event; deleted newest events; an edited
  or missing head; a personal record that is altered, deleted, moved to another call, emptied
  without a purge on the chain after it, or attached to an event that has no digest.
* Not detected by the chain alone: someone with write access to the whole database rebuilding a
  consistent chain (every hash and the head), or deleting every event and head. Defence: publish
  the heads (``oohcore audit head`` / :func:`chain_heads`) where they cannot write (a daily
  report to the organisation, a countersigned mail, write-once storage) and verify against them
  (``oohcore audit verify --expect-head ORG:SEQ:HASH`` / ``verify(..., expect=[pin])``).
* A purge is only as legitimate as the code that calls it: anyone who can run oohcore against
  the store can purge, but the purge is on the chain (who, why, how many), so it is never silent.
* Once purged, data and salt are gone: a digest left on the chain cannot be confirmed by
  guessing a name (the 32-byte key is unknown). Backups keep what they held until they expire.
* Out of scope: reading the database (encrypt it at rest, restrict access), the time ``at``
  a host gives (the chain proves order, not wall-clock truth), and copies of personal data in
  other tables (call rows, search keys, outbox messages: clear them with ``purge_expired(also=)``).

Contract
--------

* ``append_event(conn, organisation_id=..., call_id=..., kind=..., payload=..., at=...,
  personal=None)`` → the new event's id. Call it inside ``store.transaction()``. ``payload``
  must be JSON-representable (``datetime``/``date`` values are written as ISO 8601 strings;
  aware datetimes only) and must not hold personal data: pass that as ``personal``.
* ``verify(conn_or_engine_or_store, organisation_id=None, *, expect=())`` → :class:`AuditReport`.
* ``events_for_call(conn, call_id)`` and ``events_for_organisation(conn, organisation_id, ...)``
  read events back in order, each with its ``personal`` data (or why it is gone).
* ``chain_heads(conn)``, ``organisations(conn)``: the heads to publish, the organisations known.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
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
    or_,
    select,
    union,
    update,
)

from oohcore import personal_data as _personal
from oohcore.clock import as_utc
from oohcore.errors import OohcoreError
from oohcore.personal_data import PAYLOAD_KEY, PersonalData, personal_data
from oohcore.store.columns import JSONValueError, UTCDateTime, to_json
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared, insert_ignoring_conflict

if TYPE_CHECKING:
    from oohcore.store import Store

__all__ = [
    "GENESIS_HASH",
    "AuditChainError",
    "AuditError",
    "AuditPayloadError",
    "AuditProblem",
    "AuditReport",
    "ChainHead",
    "ChainPin",
    "EventRow",
    "append_event",
    "audit_heads",
    "canonical_json",
    "chain_head",
    "chain_heads",
    "event_hash",
    "events",
    "events_for_call",
    "events_for_organisation",
    "organisations",
    "payloads_for_call",
    "verify",
]

GENESIS_HASH = "0" * 64

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


class AuditError(OohcoreError):
    """A problem with the audit log."""


class AuditPayloadError(AuditError, TypeError):
    """An event payload cannot be written as canonical JSON."""


class AuditChainError(AuditError):
    """The audit chain failed verification (raised by :meth:`AuditReport.raise_if_broken`)."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        super().__init__(str(report))


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as read back: the chained fields, and its personal data beside the chain.

    ``payload`` is what the chain proves; when the event has personal data, the payload holds
    only its field names and digest (under ``"personal_data"``) and ``personal`` gives the data
    back, or says it was purged (when, by whom, why) or is missing.
    """

    id: int
    organisation_id: str
    seq: int
    call_id: str | None
    kind: str
    payload_json: str
    at: datetime
    prev_hash: str
    hash: str
    personal: PersonalData | None = None

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_json)
        return value

    def payload_with_personal_data(self) -> dict[str, Any]:
        """The payload with the digest reference replaced by the personal data itself (or
        without it, once purged): what the event recorded, for reports and displays."""
        value = self.payload
        value.pop(PAYLOAD_KEY, None)
        value.pop("sealed", None)  # the seal of the step's rows (oohcore.engine.records)
        if self.personal is not None and self.personal.status == "present":
            value.update(
                {k: v for k, v in (self.personal.data or {}).items() if not k.startswith("_")}
            )
        return value


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """A break found in one organisation's chain (the first one), a personal-data record that
    is missing or altered, or a pinned head no longer on the chain."""

    organisation_id: str
    event_id: int | None
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"organisation {self.organisation_id!r}"
        if self.event_id is not None:
            where += f", event id {self.event_id} (seq {self.seq})"
        elif self.seq is not None:
            where += f", seq {self.seq}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of :func:`verify`: ``ok`` when every checked chain is intact, every personal
    record matches its event's digest (or its purge is recorded) and every pin was found."""

    organisations: int
    events: int
    problems: tuple[AuditProblem, ...]
    personal_records: int = 0  # records checked against their digest (purged ones included)
    purged_records: int = 0
    pins: int = 0  # pinned heads (``expect=``) checked

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> AuditProblem | None:
        return self.problems[0] if self.problems else None

    def raise_if_broken(self) -> None:
        if self.problems:
            raise AuditChainError(self)

    def __str__(self) -> str:
        head = (
            f"audit log: {self.events} event(s) in {self.organisations} organisation chain(s), "
            f"{self.personal_records} personal record(s) ({self.purged_records} purged)"
        )
        if self.pins:
            head += f", {self.pins} pinned head(s)"
        if self.ok:
            return f"{head}: intact"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{head}: {len(self.problems)} problem(s)\n{lines}"


@dataclass(frozen=True, slots=True)
class ChainPin:
    """An event a host published or wrote down (``ORG:SEQ:HASH``), to check it is still on the
    chain: the defence against someone who rewrites a whole chain and its head."""

    organisation_id: str
    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> ChainPin:
        """``ORG:SEQ:HASH`` (as ``oohcore audit head`` prints it) → a pin; ``ValueError`` if not."""
        parts = text.strip().rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{text!r} is not ORG:SEQ:HASH (as 'oohcore audit head' prints it)")
        org, seq_text, digest = parts
        if not seq_text.isdigit() or int(seq_text) < 1:
            raise ValueError(f"{text!r}: the sequence number must be a whole number from 1")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise ValueError(f"{text!r}: the hash must be 64 hexadecimal characters")
        return cls(org, int(seq_text), digest.lower())

    def __str__(self) -> str:
        return f"{self.organisation_id}:{self.seq}:{self.hash}"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest event of one organisation's chain: publish :attr:`pin` somewhere the
    database's administrators cannot write, and verify against it later."""

    organisation_id: str
    seq: int
    hash: str
    at: datetime | None  # the time of that event; None if it is missing (run verify)

    @property
    def pin(self) -> ChainPin:
        return ChainPin(self.organisation_id, self.seq, self.hash)


# -- canonical form --------------------------------------------------------------------------


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


# -- statements (built once) -----------------------------------------------------------------

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


# -- verification ----------------------------------------------------------------------------


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
