"""Call detail records (CDRs): what the telephone network saw, the source of answer-time KPIs.

Answer-time KPIs come from the network, not from what a call handler recorded (11.6.1). A CDR
says when a call was offered to a queue (after the recorded greeting, 6.2a), when it was
answered or abandoned, how long the handler talked and wrapped up, and the outbound calls made
for it (11.6.5, 11.7.3c). CDRs come in as a documented CSV file (:func:`read_cdr_csv`, the format
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

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
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
from oohcore.cells import cell_text, plain_text
from oohcore.db import metadata
from oohcore.errors import OohcoreError, Problem
from oohcore.store import UTCDateTime

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
    "import_cdrs",
    "parse_cdr_csv",
    "read_cdr_csv",
    "write_cdr_csv",
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
_REQUIRED = ("cdr_id", "queue", "offered_at")


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


def _check(record: CdrRecord, where: str, line: int, col_of: dict[str, int]) -> list[Problem]:
    problems: list[Problem] = []

    def bad(name: str, message: str) -> None:
        problems.append(Problem(where, line, col_of.get(name, 0), f"{name}: {message}", "cdr"))

    if not record.cdr_id.strip():
        bad("cdr_id", "is empty; every CDR needs the network's id for the call")
    if not record.queue.strip():
        bad("queue", "is empty; give the queue name or the access number dialled")
    for name in ("offered_at", "answered_at", "abandoned_at"):
        value = getattr(record, name)
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            bad(name, "has no time zone; write it with its offset, e.g. 2026-10-03T22:14:05+01:00")
            return problems
    if record.answered_at is not None and record.abandoned_at is not None:
        bad("abandoned_at", "is set on an answered call; a call is answered or abandoned, not both")
    for name in ("answered_at", "abandoned_at"):
        value = getattr(record, name)
        if value is not None and value < record.offered_at:
            bad(name, f"is before offered_at ({record.offered_at.isoformat()})")
    for name in ("talk_seconds", "wrap_seconds", "outbound_seconds"):
        value = getattr(record, name)
        if value < 0:
            bad(name, f"is negative ({value}); give seconds as 0 or more")
    if record.outbound_calls < 0:
        bad("outbound_calls", f"is negative ({record.outbound_calls})")
    if record.answered_at is None and record.talk_seconds > 0:
        bad("talk_seconds", "is more than 0 on a call that was not answered")
    return problems


def check_records(records: Sequence[CdrRecord], where: str = "<api>") -> list[Problem]:
    """The problems of records given through the API (line = the record's 1-based position)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for n, record in enumerate(records, start=1):
        problems += _check(record, where, n, {})
        if record.cdr_id in seen:
            problems.append(
                Problem(
                    where, n, 0, f"cdr_id: {record.cdr_id!r} is also record {seen[record.cdr_id]}"
                )
            )
        seen.setdefault(record.cdr_id, n)
    return problems


# ---------------------------------------------------------------------------------------------
# The CSV format
# ---------------------------------------------------------------------------------------------


def _time(text: str) -> datetime:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def _number(text: str, *, integer: bool) -> float:
    value = text.strip()
    if not value:
        return 0
    return int(value) if integer else float(value)


def parse_cdr_csv(text: str, where: str = "<csv>") -> list[CdrRecord]:
    """CDRs from CSV text with a header row; :class:`CdrError` lists every bad row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CdrError([Problem(where, 1, 0, "the file is empty; it needs a header row")]) from None
    except csv.Error as exc:
        raise CdrError([Problem(where, 1, 0, f"not readable as CSV: {exc}")]) from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    problems: list[Problem] = []
    for i, name in enumerate(names, start=1):
        if name not in CDR_COLUMNS:
            problems.append(
                Problem(
                    where,
                    1,
                    i,
                    f"unknown column {name!r}; the columns are {', '.join(CDR_COLUMNS)}",
                )
            )
    for name in _REQUIRED:
        if name not in names:
            problems.append(Problem(where, 1, 0, f"the header has no {name!r} column (required)"))
    if problems:
        raise CdrError(problems)
    col_of = {name: i for i, name in enumerate(names, start=1)}
    records: list[CdrRecord] = []
    seen: dict[str, int] = {}
    try:
        rows = list(_numbered(reader))
    except csv.Error as exc:
        raise CdrError(
            [Problem(where, reader.line_num, 0, f"not readable as CSV: {exc}")]
        ) from None
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            problems.append(
                Problem(where, line, 0, f"row has {len(row)} fields; the header has {len(names)}")
            )
            continue
        cells = dict(zip(names, row, strict=True))
        values: dict[str, Any] = {}
        row_ok = True
        for name, cell in cells.items():
            try:
                if name.endswith("_at"):
                    values[name] = _time(cell) if cell.strip() else None
                elif name == "outbound_calls":
                    values[name] = int(_number(cell, integer=True))
                elif name.endswith("_seconds"):
                    values[name] = float(_number(cell, integer=False))
                else:
                    values[name] = plain_text(cell.strip()) or None
            except ValueError:
                kind = "an ISO 8601 time with offset" if name.endswith("_at") else "a number"
                problems.append(
                    Problem(where, line, col_of[name], f"{name}: {cell!r} is not {kind}", "cdr")
                )
                row_ok = False
        if not row_ok:
            continue
        if values.get("offered_at") is None:
            problems.append(
                Problem(where, line, col_of["offered_at"], "offered_at: is empty", "cdr")
            )
            continue
        record = CdrRecord(
            cdr_id=values.get("cdr_id") or "",
            queue=values.get("queue") or "",
            **{k: v for k, v in values.items() if k not in ("cdr_id", "queue") and v is not None},
        )
        problems += _check(record, where, line, col_of)
        if record.cdr_id and record.cdr_id in seen:
            problems.append(
                Problem(
                    where,
                    line,
                    col_of["cdr_id"],
                    f"cdr_id: {record.cdr_id!r} is also on line {seen[record.cdr_id]}",
                    "cdr",
                )
            )
        seen.setdefault(record.cdr_id, line)
        records.append(record)
    if problems:
        raise CdrError(problems)
    return records


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    line = reader.line_num
    for row in reader:
        yield line + 1, row
        line = reader.line_num


def read_cdr_csv(path: str | Path) -> list[CdrRecord]:
    """CDRs from a CSV file (UTF-8, header row; the format is in ``docs/kpis.md``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CdrError([Problem(str(p), 0, 0, f"cannot read the file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise CdrError(
            [Problem(str(p), 0, 0, f"not UTF-8 text ({exc.reason}); save it as UTF-8")]
        ) from None
    return parse_cdr_csv(text, str(p))


def write_cdr_csv(records: Iterable[CdrRecord], path: str | Path) -> Path:
    """Write records in the documented CSV format (the simulation's and the tests' files)."""
    p = Path(path)
    with p.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(CDR_COLUMNS)
        for r in records:
            out.writerow(
                [  # text neutralised against formula injection; read_cdr_csv undoes it
                    cell_text(r.cdr_id),
                    cell_text(r.queue),
                    cell_text(r.access_number or ""),
                    cell_text(r.caller_number or ""),
                    cell_text(r.reference or ""),
                    r.offered_at.isoformat(),
                    r.answered_at.isoformat() if r.answered_at else "",
                    r.abandoned_at.isoformat() if r.abandoned_at else "",
                    f"{r.talk_seconds:g}",
                    f"{r.wrap_seconds:g}",
                    r.outbound_calls,
                    f"{r.outbound_seconds:g}",
                ]
            )
    return p


# ---------------------------------------------------------------------------------------------
# Importing
# ---------------------------------------------------------------------------------------------


def _digits(number: str | None) -> str | None:
    if not number:
        return None
    from oohcore.rulesets.compiler import normalise_number

    return normalise_number(number) or None


def _links(
    conn: Connection, organisation_id: str, records: Sequence[CdrRecord]
) -> dict[str, tuple[str, str | None]]:
    """cdr_id → (call id, service option) for the records whose call record can be found."""
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
        by_number.setdefault((_digits(r.access_number), _digits(r.caller_number)), []).append(r)
    taken: set[str] = set()
    found: dict[str, tuple[str, str | None]] = {}
    # references first: they are certain; number and time only for the rest
    for rec in records:
        if rec.reference and rec.reference in by_reference:
            row = by_reference[rec.reference]
            found[rec.cdr_id] = (row.id, row.service_option)
            taken.add(row.id)
    for rec in records:
        if rec.cdr_id in found or not rec.caller_number:
            continue
        key = (_digits(rec.access_number or rec.queue), _digits(rec.caller_number))
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
        digits = _digits(number)
        if digits:
            for key, access in organisation.access_numbers.items():
                if _digits(key) == digits or _digits(access.number) == digits:
                    return access.service_option
    if record.queue in organisation.service_options:
        return record.queue
    return None


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
    zone = ZoneInfo(organisation.timezone)
    now = store.clock.now()
    with store.transaction() as conn:
        present = _present(conn, organisation.id, [r.cdr_id for r in records])
        fresh = [r for r in records if r.cdr_id not in present]
        links = _links(conn, organisation.id, fresh)
        rows: list[dict[str, Any]] = []
        for r in fresh:
            call_id, option = links.get(r.cdr_id, (None, None))
            option = option or _option_for(r, organisation)
            known = organisation.service_options.get(option) if option else None
            standard = known.standard if known is not None else None
            local = r.offered_at.astimezone(zone)
            rows.append(
                {
                    "organisation_id": organisation.id,
                    "cdr_id": r.cdr_id,
                    "queue": r.queue,
                    "access_number": r.access_number,
                    "caller_number": r.caller_number,
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
                    "imported_at": now,
                }
            )
        for start in range(0, len(rows), 1000):
            conn.execute(cdrs.insert(), rows[start : start + 1000])
    return ImportResult(
        inserted=len(rows), already_present=len(records) - len(fresh), linked=len(links)
    )


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
