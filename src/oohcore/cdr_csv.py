"""The CDR file format (``docs/kpis.md``): a CSV with a header row, read as a stream.

A file is read one line at a time, each line at most :data:`MAX_LINE_BYTES` long (a file of one
huge line is refused without holding it), so :func:`import_cdr_file` imports a month's file in
constant memory, in one transaction: every bad row is reported as ``file:line:col: field: what``
and then nothing is imported (11.6.1). Text cells are neutralised against spreadsheet formula
injection when written and read back as they were (:mod:`oohcore.cells`).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from oohcore.cells import cell_text, plain_text
from oohcore.errors import Problem
from oohcore.telephony import (
    CDR_COLUMNS,
    REQUIRED_COLUMNS,
    CdrError,
    CdrRecord,
    Importer,
    ImportResult,
    check_record,
)

if TYPE_CHECKING:
    from oohcore.rulesets.compiler import Organisation
    from oohcore.store import Store

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_ROWS",
    "check_cdr_file",
    "import_cdr_file",
    "parse_cdr_csv",
    "read_cdr_csv",
    "stream_cdr_csv",
    "write_cdr_csv",
]

MAX_PROBLEMS = 100
"""A file this wrong is reported by its first problems; the rest of it is not read."""
MAX_ROWS = 500_000
"""The rows one file may hold (about a month of a large contract's calls): split larger files."""
MAX_LINE_BYTES = 4096
"""A CDR row is a few hundred bytes; a longer line is refused unread (so a file of one huge line
never fills memory)."""

# ---------------------------------------------------------------------------------------------
# The CSV format, read as a stream (one line in memory at a time)
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


def _lines(
    stream: Iterator[bytes], where: str, problems: list[Problem]
) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of ``stream`` (the file's lines, each read at most
    :data:`MAX_LINE_BYTES` at a time): an overlong or non-UTF-8 line becomes a problem."""
    line = 0
    for raw in stream:
        line += 1
        if len(problems) >= MAX_PROBLEMS:  # a binary file: its first problems say enough
            return
        if raw is _LONG:
            problems.append(
                Problem(where, line, 0, f"the line is longer than {MAX_LINE_BYTES} bytes", "cdr")
            )
            continue
        if line == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            problems.append(Problem(where, 1, 1, "UTF-16 text, not UTF-8; save it as UTF-8"))
            return
        if b"\0" in raw:
            problems.append(
                Problem(where, line, raw.index(b"\0") + 1, "NUL bytes: not a text file", "cdr")
            )
            continue
        try:
            text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                Problem(where, line, exc.start + 1, "not UTF-8 text; save the file as UTF-8", "cdr")
            )
            continue
        yield line, text.rstrip("\r\n")


_LONG = b"\0<too long>"


def _file_lines(f: BinaryIO) -> Iterator[bytes]:
    """The file's lines; a line over :data:`MAX_LINE_BYTES` is read on to its end in bounded
    pieces and given as :data:`_LONG`."""
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(1 << 16)
            yield _LONG
            continue
        yield raw


def _header(names: list[str], where: str) -> list[Problem]:
    problems: list[Problem] = []
    for i, name in enumerate(names, start=1):
        if name not in CDR_COLUMNS:
            problems.append(
                Problem(
                    where,
                    1,
                    i,
                    f"unknown column {name[:40]!r}; the columns are {', '.join(CDR_COLUMNS)}",
                )
            )
    for name in REQUIRED_COLUMNS:
        if name not in names:
            problems.append(Problem(where, 1, 0, f"the header has no {name!r} column (required)"))
    return problems


def _record(
    names: list[str], row: list[str], where: str, line: int, col_of: dict[str, int]
) -> tuple[CdrRecord | None, list[Problem]]:
    """One row as a record, or the row's problems (each at its column)."""
    if len(row) != len(names):
        return None, [
            Problem(where, line, 0, f"row has {len(row)} fields; the header has {len(names)}")
        ]
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, cell in zip(names, row, strict=True):
        try:
            if name.endswith("_at"):
                values[name] = _time(cell) if cell.strip() else None
            elif name == "outbound_calls":
                values[name] = int(_number(cell, integer=True))
            elif name.endswith("_seconds"):
                values[name] = float(_number(cell, integer=False))
            else:
                values[name] = plain_text(cell.strip()) or None
        except (ValueError, OverflowError):
            kind = "an ISO 8601 time with offset" if name.endswith("_at") else "a number"
            problems.append(
                Problem(where, line, col_of[name], f"{name}: {cell[:40]!r} is not {kind}", "cdr")
            )
    if problems:
        return None, problems
    if values.get("offered_at") is None:
        return None, [Problem(where, line, col_of["offered_at"], "offered_at: is empty", "cdr")]
    record = CdrRecord(
        cdr_id=values.get("cdr_id") or "",
        queue=values.get("queue") or "",
        **{k: v for k, v in values.items() if k not in ("cdr_id", "queue") and v is not None},
    )
    return record, check_record(record, where, line, col_of)


def _id_digest(cdr_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(cdr_id.encode(), digest_size=8).digest(), "big")


def stream_cdr_csv(
    stream: Iterator[bytes], where: str, problems: list[Problem]
) -> Iterator[CdrRecord]:
    """The good records of a CDR CSV given as lines of bytes, one at a time; every bad row's
    problems are added to ``problems`` (at most :data:`MAX_PROBLEMS`: then reading stops).
    A caller that meets any problem must keep nothing of what it was given."""
    lines = _lines(stream, where, problems)
    first = next(lines, None)
    if first is None:
        if not problems:
            problems.append(Problem(where, 1, 0, "the file is empty; it needs a header row"))
        return
    try:
        header = next(csv.reader([first[1]], strict=True))
    except (csv.Error, StopIteration) as exc:
        problems.append(Problem(where, 1, 0, f"the header is not readable as CSV: {exc}"))
        return
    names = [h.strip().lstrip("\ufeff") for h in header]
    problems += _header(names, where)
    if problems:
        return
    col_of = {name: i for i, name in enumerate(names, start=1)}
    seen: dict[int, int] = {}  # a digest of each cdr_id → its line: bounded by MAX_ROWS
    for line, text in lines:
        if len(problems) >= MAX_PROBLEMS:
            problems.append(Problem(where, line, 0, "too many problems; the rest is not read"))
            return
        if not text.strip():
            continue
        if len(seen) >= MAX_ROWS:
            problems.append(
                Problem(where, line, 0, f"more than {MAX_ROWS} rows; split the file (by day)")
            )
            return
        try:
            row = next(csv.reader([text], strict=True))
        except (csv.Error, StopIteration) as exc:
            problems.append(Problem(where, line, 0, f"not readable as CSV: {exc}", "cdr"))
            continue
        record, found = _record(names, row, where, line, col_of)
        problems += found
        if record is None or found:
            continue
        digest = _id_digest(record.cdr_id)
        if digest in seen:
            problems.append(
                Problem(
                    where,
                    line,
                    col_of["cdr_id"],
                    f"cdr_id: {record.cdr_id!r} is also on line {seen[digest]}",
                    "cdr",
                )
            )
            continue
        seen[digest] = line
        yield record


def parse_cdr_csv(text: str, where: str = "<csv>") -> list[CdrRecord]:
    """CDRs from CSV text with a header row; :class:`CdrError` lists every bad row."""
    problems: list[Problem] = []
    data = io.BytesIO(text.encode("utf-8", "surrogatepass"))
    records = list(stream_cdr_csv(_file_lines(data), where, problems))
    if problems:
        raise CdrError(problems)
    return records


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise CdrError(
            [Problem(str(path), 0, 0, f"cannot read the file: {exc.strerror}")]
        ) from None


def read_cdr_csv(path: str | Path) -> list[CdrRecord]:
    """CDRs from a CSV file (UTF-8, header row; the format is in ``docs/kpis.md``). For a large
    file, :func:`import_cdr_file` imports it without holding it in memory."""
    p = Path(path)
    problems: list[Problem] = []
    with _open(p) as f:
        records = list(stream_cdr_csv(_file_lines(f), str(p), problems))
    if problems:
        raise CdrError(problems)
    return records


def check_cdr_file(path: str | Path) -> list[Problem]:
    """The problems of a CDR file, read as a stream (``oohcore validate``)."""
    p = Path(path)
    problems: list[Problem] = []
    try:
        with _open(p) as f:
            for _ in stream_cdr_csv(_file_lines(f), str(p), problems):
                pass
    except CdrError as exc:
        return exc.problems
    return problems


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


def import_cdr_file(store: Store, organisation: Organisation, path: str | Path) -> ImportResult:
    """Import a CDR CSV file as a stream (one batch of rows in memory at a time), in one
    transaction: when any row is wrong, :class:`CdrError` names each (line, column, field)
    and nothing is imported. The file is checked in a first reading, outside any transaction,
    so a bad file never holds the store's write lock while desks are taking calls."""
    p = Path(path)
    problems = check_cdr_file(p)
    if problems:
        raise CdrError(problems)
    with _open(p) as f, store.transaction() as conn:
        importer = Importer(conn, organisation, store.clock.now())
        for record in stream_cdr_csv(_file_lines(f), str(p), problems):
            if not problems:
                importer.add(record)
        if problems:  # the file changed between the two readings
            raise CdrError(problems)  # the transaction is rolled back: nothing was written
        return importer.result()
