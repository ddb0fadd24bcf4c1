"""Call detail records (CDRs): what the telephone network saw, the source of answer-time KPIs.

Answer-time KPIs come from the network, not from what a call handler recorded (11.6.1). A CDR
says when a call was offered to a queue (after the recorded greeting, 6.2a), when it was
answered or abandoned, how long the handler talked and wrapped up, and the outbound calls made
for it (11.6.5, 11.7.3c). CDRs come in as a documented CSV file (:mod:`oohcore.cdr_csv`, the format
is in ``docs/kpis.md``) or through the API (:class:`CdrRecord` values), and
:func:`import_cdrs` stores them:

* **all or nothing**: every record is checked first; one bad record stops the import and
  nothing is written. Problems carry the file, line, column and field.
* **idempotent**: a CDR has an id (unique per organisation); importing the same records again
  counts each once (:attr:`ImportResult.already_present`).
* **linked**: each record is matched to its call record by reference, else by the access
  number, the caller's number and the offered time (within :data:`LINK_WINDOW`); the service
  option comes from the linked call, else from the access number (7.1.2), else from a queue
  named like an option. The option's standard is recorded with the CDR as it was when imported
  (6.1: a standard can change on notice, and past calls keep theirs).
* the local date and hour of the offered time, on the organisation's wall clock, are stored
  with the record so that periods and hour-of-day tables are plain indexed ``GROUP BY`` s
  across clock changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Float,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    select,
)

from oohcore.calls import calls
from oohcore.errors import OohcoreError, Problem
from oohcore.phones import e164
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata

if TYPE_CHECKING:
    from oohcore.rulesets.compiler import Organisation
    from oohcore.store import Store

__all__ = [
    "CDR_COLUMNS",
    "LINK_WINDOW",
    "CdrError",
    "CdrRecord",
    "ImportResult",
    "cdrs",
    "cdrs_from_calls",
    "check_records",
    "import_cdrs",
]

LINK_WINDOW = timedelta(minutes=2)
"""How far apart a CDR's offered time and a call's received time may be to link them by
number and time (the network and the desk clocks differ by seconds, not minutes)."""

cdrs = Table(
    "cdrs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organisation_id", String(64), nullable=False),
    Column("cdr_id", String(64), nullable=False),  # the network's own id for the call
    Column("queue", String(64), nullable=False),  # the queue or access number it was offered to
    Column("access_number", String(32)),
    Column("caller_number", String(32)),
    Column("reference", String(32)),
    Column("call_id", String(32)),  # the linked call record, when one was found
    Column("service_option", String(64)),
    Column("standard", String(16)),  # the option's standard when imported (2.1.2, 6.1)
    Column("offered_at", UTCDateTime(), nullable=False),
    Column("answered_at", UTCDateTime()),
    Column("abandoned_at", UTCDateTime()),
    Column("local_day", Date(), nullable=False),  # offered_at on the organisation's wall clock
    Column("local_hour", Integer, nullable=False),
    Column("wait_seconds", Float, nullable=False),  # offered → answered or abandoned
    Column("talk_seconds", Float, nullable=False),
    Column("wrap_seconds", Float, nullable=False),  # after-call work (11.7.3c)
    Column("outbound_calls", Integer, nullable=False),  # calls made to on-call staff (11.6.5)
    Column("outbound_seconds", Float, nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
    UniqueConstraint("organisation_id", "cdr_id"),
    Index(None, "organisation_id", "local_day"),
    Index(None, "call_id"),
)

CDR_COLUMNS: tuple[str, ...] = (
    "cdr_id",
    "queue",
    "access_number",
    "caller_number",
    "reference",
    "offered_at",
    "answered_at",
    "abandoned_at",
    "talk_seconds",
    "wrap_seconds",
    "outbound_calls",
    "outbound_seconds",
)
REQUIRED_COLUMNS = ("cdr_id", "queue", "offered_at")


class CdrError(OohcoreError):
    """CDRs that cannot be imported; ``problems`` says where and what. Nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(str(p) for p in self.problems[:50])
        more = len(self.problems) - 50
        tail = f"\n… and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(self.problems)} problem(s) in the call detail records; "
            f"nothing was imported:\n{shown}{tail}"
        )


@dataclass(frozen=True, slots=True)
class CdrRecord:
    """One call as the telephone network saw it. Times are aware datetimes."""

    cdr_id: str
    queue: str
    offered_at: datetime
    answered_at: datetime | None = None
    abandoned_at: datetime | None = None
    talk_seconds: float = 0.0
    wrap_seconds: float = 0.0
    outbound_calls: int = 0
    outbound_seconds: float = 0.0
    access_number: str | None = None
    caller_number: str | None = None
    reference: str | None = None

    @property
    def wait_seconds(self) -> float:
        end = self.answered_at or self.abandoned_at
        return (end - self.offered_at).total_seconds() if end is not None else 0.0


@dataclass(frozen=True, slots=True)
class ImportResult:
    inserted: int
    already_present: int
    linked: int

    def __str__(self) -> str:
        return (
            f"{self.inserted} CDR(s) imported, {self.already_present} already present, "
            f"{self.linked} linked to their call record"
        )


# ---------------------------------------------------------------------------------------------
# Checking records (from a file or the API)
# ---------------------------------------------------------------------------------------------

MAX_SECONDS = 86_400.0
"""The longest plausible wait, talk, after-call work or outbound time of one call: a day."""
MAX_OUTBOUND_CALLS = 1_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Times outside [EARLIEST, LATEST) are no call's (a year-9999 time is a broken export)."""
_LENGTHS = {"cdr_id": 64, "queue": 64, "access_number": 64, "caller_number": 64, "reference": 32}


def _utc(value: datetime) -> datetime | None:
    """``value`` in UTC, or None when it is unset, naive or outside the plausible range."""
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return utc if EARLIEST <= utc < LATEST else None


def check_record(record: CdrRecord, where: str, line: int, col_of: dict[str, int]) -> list[Problem]:
    problems: list[Problem] = []

    def bad(name: str, message: str) -> None:
        problems.append(Problem(where, line, col_of.get(name, 0), f"{name}: {message}", "cdr"))

    for name, limit in _LENGTHS.items():
        value = getattr(record, name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            shown = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
            bad(name, f"must be text of at most {limit} characters, not {shown}")
    if problems:
        return problems
    if not record.cdr_id.strip():
        bad("cdr_id", "is empty; every CDR needs the network's id for the call")
    if not record.queue.strip():
        bad("queue", "is empty; give the queue name or the access number dialled")
    times: dict[str, datetime] = {}
    for name in ("offered_at", "answered_at", "abandoned_at"):
        value = getattr(record, name)
        if value is None:
            continue
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            bad(name, "has no time zone; write it with its offset, e.g. 2026-10-03T22:14:05+01:00")
            return problems
        utc = _utc(value)
        if utc is None:
            bad(name, f"{value.isoformat()} is not a plausible time (years 2000 to 2099)")
            return problems
        times[name] = utc
    offered = times["offered_at"]
    if record.answered_at is not None and record.abandoned_at is not None:
        bad("abandoned_at", "is set on an answered call; a call is answered or abandoned, not both")
    for name in ("answered_at", "abandoned_at"):
        end = times.get(name)
        if end is not None and end < offered:
            bad(name, f"is before offered_at ({record.offered_at.isoformat()})")
        elif end is not None and (end - offered).total_seconds() > MAX_SECONDS:
            bad(name, "is more than a day after offered_at; no call waits that long")
    for name in ("talk_seconds", "wrap_seconds", "outbound_seconds"):
        value = getattr(record, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad(name, f"is not a number ({value!r:.40})")
        elif not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
            bad(name, f"is {value:g}; give seconds from 0 to {MAX_SECONDS:g} (a day)")
    calls_ = record.outbound_calls
    if isinstance(calls_, bool) or not isinstance(calls_, int):
        bad("outbound_calls", f"is not a whole number ({calls_!r:.40})")
    elif not 0 <= calls_ <= MAX_OUTBOUND_CALLS:
        shown = str(calls_) if abs(calls_) < 10**12 else "too large"
        bad("outbound_calls", f"is {shown}; give a count from 0 to {MAX_OUTBOUND_CALLS}")
    if problems:
        return problems
    if record.answered_at is None and record.talk_seconds > 0:
        bad("talk_seconds", "is more than 0 on a call that was not answered")
    return problems


def check_records(records: Sequence[CdrRecord], where: str = "<api>") -> list[Problem]:
    """The problems of records given through the API (line = the record's 1-based position)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for n, record in enumerate(records, start=1):
        if not isinstance(record, CdrRecord):
            problems.append(Problem(where, n, 0, f"not a CdrRecord: {type(record).__name__}"))
            continue
        problems += check_record(record, where, n, {})
        if record.cdr_id in seen:
            problems.append(
                Problem(
                    where, n, 0, f"cdr_id: {record.cdr_id!r} is also record {seen[record.cdr_id]}"
                )
            )
        seen.setdefault(record.cdr_id, n)
    return problems


# ---------------------------------------------------------------------------------------------
# Importing
# ---------------------------------------------------------------------------------------------

_BATCH = 1000


def _links(
    conn: Connection, organisation_id: str, records: Sequence[CdrRecord]
) -> dict[str, tuple[str, str | None]]:
    """cdr_id → (call id, service option) for the records whose call record can be found:
    by reference, else by access number and caller number (both read as E.164) and time."""
    if not records:
        return {}
    start = min(r.offered_at for r in records) - LINK_WINDOW
    end = max(r.offered_at for r in records) + LINK_WINDOW
    rows = conn.execute(
        select(
            calls.c.id,
            calls.c.reference,
            calls.c.access_number,
            calls.c.caller_number,
            calls.c.received_at,
            calls.c.service_option,
        ).where(
            calls.c.organisation_id == organisation_id,
            calls.c.received_at >= start,
            calls.c.received_at <= end,
        )
    ).all()
    by_reference = {r.reference: r for r in rows}
    by_number: dict[tuple[str | None, str | None], list[Any]] = {}
    for r in rows:
        by_number.setdefault((e164(r.access_number), e164(r.caller_number)), []).append(r)
    taken: set[str] = set()
    found: dict[str, tuple[str, str | None]] = {}
    # references first: they are certain; number and time only for the rest
    for rec in records:
        if rec.reference and rec.reference in by_reference:
            row = by_reference[rec.reference]
            found[rec.cdr_id] = (row.id, row.service_option)
            taken.add(row.id)
    for rec in records:
        caller = e164(rec.caller_number)
        if rec.cdr_id in found or caller is None:
            continue
        key = (e164(rec.access_number or rec.queue), caller)
        best = None
        for row in by_number.get(key, []):
            gap = abs((row.received_at - rec.offered_at).total_seconds())
            close = row.id not in taken and gap <= LINK_WINDOW.total_seconds()
            if close and (best is None or gap < best[0]):
                best = (gap, row)
        if best is not None:
            found[rec.cdr_id] = (best[1].id, best[1].service_option)
            taken.add(best[1].id)
    return found


def _option_for(record: CdrRecord, organisation: Organisation) -> str | None:
    for number in (record.access_number, record.queue):
        key = e164(number)
        access = organisation.access_numbers.get(key) if key is not None else None
        if access is not None:
            return access.service_option
    if record.queue in organisation.service_options:
        return record.queue
    return None


class Importer:
    """Writes checked records in batches inside the caller's one transaction."""

    def __init__(self, conn: Connection, organisation: Organisation, now: datetime) -> None:
        self.conn, self.organisation, self.now = conn, organisation, now
        self.zone = ZoneInfo(organisation.timezone)
        self.batch: list[CdrRecord] = []
        self.inserted = self.already_present = self.linked = 0

    def add(self, record: CdrRecord) -> None:
        self.batch.append(record)
        if len(self.batch) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        records, self.batch = self.batch, []
        if not records:
            return
        org = self.organisation
        present = _present(self.conn, org.id, [r.cdr_id for r in records])
        fresh = [r for r in records if r.cdr_id not in present]
        links = _links(self.conn, org.id, fresh)
        rows: list[dict[str, Any]] = []
        for r in fresh:
            call_id, option = links.get(r.cdr_id, (None, None))
            option = option or _option_for(r, org)
            known = org.service_options.get(option) if option else None
            standard = known.standard if known is not None else None
            local = r.offered_at.astimezone(self.zone)
            rows.append(
                {
                    "organisation_id": org.id,
                    "cdr_id": r.cdr_id,
                    "queue": r.queue,
                    # numbers in E.164, as every number is stored; other text as given
                    "access_number": e164(r.access_number) or _short(r.access_number),
                    "caller_number": e164(r.caller_number) or _short(r.caller_number),
                    "reference": r.reference,
                    "call_id": call_id,
                    "service_option": option,
                    "standard": str(standard) if standard is not None else None,
                    "offered_at": r.offered_at,
                    "answered_at": r.answered_at,
                    "abandoned_at": r.abandoned_at,
                    "local_day": local.date(),
                    "local_hour": local.hour,
                    "wait_seconds": r.wait_seconds,
                    "talk_seconds": r.talk_seconds,
                    "wrap_seconds": r.wrap_seconds,
                    "outbound_calls": r.outbound_calls,
                    "outbound_seconds": r.outbound_seconds,
                    "imported_at": self.now,
                }
            )
        if rows:
            self.conn.execute(cdrs.insert(), rows)
        self.inserted += len(rows)
        self.already_present += len(records) - len(fresh)
        self.linked += len(links)

    def result(self) -> ImportResult:
        self.flush()
        return ImportResult(self.inserted, self.already_present, self.linked)


def _short(text: str | None) -> str | None:
    """A number column's text that is no telephone number (``anonymous``), cut to fit."""
    return text[:32] if text else None


def import_cdrs(
    store: Store,
    organisation: Organisation,
    records: Sequence[CdrRecord],
    *,
    where: str = "<api>",
) -> ImportResult:
    """Store ``records`` for ``organisation`` in one transaction: all or none, each id once."""
    problems = check_records(records, where)
    if problems:
        raise CdrError(problems)
    with store.transaction() as conn:
        importer = Importer(conn, organisation, store.clock.now())
        for record in records:
            importer.add(record)
        return importer.result()


def _present(conn: Connection, organisation_id: str, ids: Sequence[str]) -> set[str]:
    present: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        present.update(
            conn.execute(
                select(cdrs.c.cdr_id).where(
                    cdrs.c.organisation_id == organisation_id, cdrs.c.cdr_id.in_(chunk)
                )
            ).scalars()
        )
    return present


# ---------------------------------------------------------------------------------------------
# The simulation's CDRs
# ---------------------------------------------------------------------------------------------


def cdrs_from_calls(
    conn: Connection,
    organisation_id: str,
    *,
    since: datetime | None = None,
    wrap_seconds: float = 30.0,
) -> list[CdrRecord]:
    """CDRs for the calls the store holds, as a telephone network would have written them.

    For a simulation or the demo, which has no telephone network: offered = the call received,
    answered = the handler answered, abandoned = the caller hung up first, talk = answered until
    the action was decided (or the call closed), ``wrap_seconds`` of after-call work each.
    """
    query = select(calls).where(calls.c.organisation_id == organisation_id)
    if since is not None:
        query = query.where(calls.c.received_at >= since)
    records: list[CdrRecord] = []
    for c in conn.execute(query.order_by(calls.c.received_at, calls.c.id)):
        talk = 0.0
        if c.answered_at is not None:
            end = c.actioned_at or c.decided_at or c.closed_at or c.answered_at
            talk = max(0.0, (end - c.answered_at).total_seconds())
        records.append(
            CdrRecord(
                cdr_id=f"sim-{c.id}",
                queue=c.access_number,
                access_number=c.access_number,
                caller_number=c.caller_number,
                reference=c.reference,
                offered_at=c.received_at,
                answered_at=c.answered_at,
                abandoned_at=c.abandoned_at if c.answered_at is None else None,
                talk_seconds=talk,
                wrap_seconds=wrap_seconds if c.answered_at is not None else 0.0,
            )
        )
    return records
