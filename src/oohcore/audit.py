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

Limits: the chain proves the log has not been altered *by someone who did not also rewrite every
later hash and the head*. Someone with write access to the whole database can rebuild a
consistent chain; to detect that, publish or countersign the head hash (``chain_head``)
somewhere they cannot write, e.g. in a daily report to the organisation, and compare.

Contract
--------

* ``append_event(conn, organisation_id=..., call_id=..., kind=..., payload=..., at=...)`` → the
  new event's id. Call it inside ``store.transaction()``. ``payload`` must be JSON-representable
  (``datetime``/``date`` values are written as ISO 8601 strings; aware datetimes only).
* ``verify(conn_or_engine_or_store, organisation_id=None)`` → :class:`AuditReport`.
* ``events_for_call(conn, call_id)`` and ``events_for_organisation(conn, organisation_id, ...)``
  read events back in order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
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
    insert,
    select,
    update,
)

from oohcore.clock import as_utc
from oohcore.db import metadata
from oohcore.errors import OohcoreError
from oohcore.store import (
    JSONValueError,
    Prepared,
    UTCDateTime,
    insert_ignoring_conflict,
    to_json,
)

if TYPE_CHECKING:
    from oohcore.store import Store

__all__ = [
    "GENESIS_HASH",
    "AuditChainError",
    "AuditError",
    "AuditPayloadError",
    "AuditProblem",
    "AuditReport",
    "EventRow",
    "append_event",
    "audit_heads",
    "canonical_json",
    "chain_head",
    "event_hash",
    "events",
    "events_for_call",
    "events_for_organisation",
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
    id: int
    organisation_id: str
    seq: int
    call_id: str | None
    kind: str
    payload_json: str
    at: datetime
    prev_hash: str
    hash: str

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_json)
        return value


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """The first break found in one organisation's chain."""

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
    """The result of :func:`verify`: ``ok`` when every checked chain is intact."""

    organisations: int
    events: int
    problems: tuple[AuditProblem, ...]

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
        head = f"audit log: {self.events} event(s) in {self.organisations} organisation chain(s)"
        if self.ok:
            return f"{head}: intact"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{head}: {len(self.problems)} chain(s) broken\n{lines}"


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
_events_for_call = Prepared(
    select(*_event_columns)
    .where(events.c.call_id == bindparam("call_id"))
    .order_by(events.c.organisation_id, events.c.seq)
)
_events_for_call_scoped = Prepared(
    select(*_event_columns)
    .where(events.c.call_id == bindparam("call_id"))
    .where(events.c.organisation_id == bindparam("org"))
    .order_by(events.c.seq)
)


def append_event(
    conn: Connection,
    *,
    organisation_id: str,
    call_id: str | None,
    kind: str,
    payload: Mapping[str, Any],
    at: datetime,
) -> int:
    """Append one event to ``organisation_id``'s chain and return its id.

    Must run inside the transaction that makes the change the event records.
    """
    if not organisation_id:
        raise AuditError("an event needs an organisation_id")
    if not kind:
        raise AuditError("an event needs a kind")
    try:
        at = as_utc(at)
    except ValueError as exc:
        raise AuditError(f"event time: {exc}") from exc
    payload_json = canonical_json(dict(payload))
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


def _row(row: Sequence[Any]) -> EventRow:
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
    return [_row(r) for r in rows]


def events_for_organisation(
    conn: Connection, organisation_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[EventRow]:
    """One organisation's events with ``seq > after_seq``, oldest first."""
    stmt = (
        select(*_event_columns)
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


def verify(source: Connection | Engine | Store, organisation_id: str | None = None) -> AuditReport:
    """Check every organisation's chain (or one) and report the first break in each.

    ``source`` is a connection (its transaction is used as is), an engine or a store (a
    read-only snapshot is taken). Reads stream in ``seq`` order, so memory use is constant.
    """
    with _reading(source) as conn:
        head_stmt = select(
            audit_heads.c.organisation_id, audit_heads.c.last_seq, audit_heads.c.last_hash
        )
        ev_stmt = select(*_event_columns).order_by(events.c.organisation_id, events.c.seq)
        if organisation_id is not None:
            head_stmt = head_stmt.where(audit_heads.c.organisation_id == organisation_id)
            ev_stmt = ev_stmt.where(events.c.organisation_id == organisation_id)
        heads = {str(r[0]): (int(r[1]), str(r[2])) for r in conn.execute(head_stmt)}
        problems: list[AuditProblem] = []
        organisations: set[str] = set()
        count = 0
        current: str | None = None
        broken = False
        expected_seq = 1
        prev_hash = GENESIS_HASH

        def finish(org: str) -> None:
            if broken:
                return
            head = heads.get(org)
            last_seq = expected_seq - 1
            if head is None:
                problems.append(
                    AuditProblem(
                        org,
                        None,
                        last_seq,
                        "the chain head record is missing (audit_heads was edited or deleted)",
                    )
                )
            elif head[0] != last_seq or head[1] != prev_hash:
                if head[0] > last_seq:
                    message = (
                        f"the chain head says the log ends at seq {head[0]} but it ends at seq "
                        f"{last_seq}: the newest event(s) were deleted"
                    )
                elif head[0] < last_seq:
                    message = (
                        f"the log continues to seq {last_seq} past the chain head (seq "
                        f"{head[0]}): events were added outside append_event"
                    )
                else:
                    message = (
                        "the hash of the last event does not match the chain head: the last "
                        "event was replaced or the head was edited"
                    )
                problems.append(AuditProblem(org, None, head[0], message))

        for raw in conn.execute(ev_stmt):
            ev = _row(raw)
            count += 1
            if ev.organisation_id != current:
                if current is not None:
                    finish(current)
                current = ev.organisation_id
                organisations.add(current)
                broken = False
                expected_seq = 1
                prev_hash = GENESIS_HASH
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
        for org, (last_seq, _) in sorted(heads.items()):
            if org not in organisations:
                organisations.add(org)
                if last_seq != 0:
                    problems.append(
                        AuditProblem(
                            org,
                            None,
                            1,
                            f"the chain head says the log ends at seq {last_seq} but the "
                            "organisation has no events: all its events were deleted",
                        )
                    )
        return AuditReport(organisations=len(organisations), events=count, problems=tuple(problems))


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
