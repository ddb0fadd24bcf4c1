"""Hostile call detail record files for ``oohcore cdr import`` (the second hostile-input round).

Each :class:`CdrCase` writes its file at test time into a temporary folder (the big ones are
generated, never committed: a 1 GB line of NUL bytes is a sparse file, so it costs no disk).
``tests/test_hostile_cdrs.py`` runs the import in a measured subprocess and requires what the
first round required of ``validate``: exit 0 or 1, every line of output located
(``file:line:col:``), no traceback, an answer within 60 s, at most 200 MB of memory, and — for a
refused file — nothing imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

HEADER = (
    "cdr_id,queue,access_number,caller_number,reference,offered_at,answered_at,abandoned_at,"
    "talk_seconds,wrap_seconds,outbound_calls,outbound_seconds\n"
)
GOOD = "c1,0100 000 0002,0100 000 0002,07700 900123,,2026-10-03T21:00:00Z,2026-10-03T21:00:05Z,,100,10,0,0\n"


def _row(**cells: str) -> str:
    """The good row with some cells replaced (by column name)."""
    names = HEADER.strip().split(",")
    values = dict(zip(names, GOOD.strip().split(","), strict=True))
    values.update(cells)
    return ",".join(values[n] for n in names) + "\n"


Write = Callable[[Path], None]


@dataclass(frozen=True)
class CdrCase:
    name: str
    write: Write
    expect: str | None = None  # a phrase of the located message the case is about
    imported: int = 0  # rows the store holds afterwards (0: the file is refused)


def _text(text: str) -> Write:
    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    return write


def _nul_line(size: int) -> Write:
    """A header, then one line of ``size`` NUL bytes (a sparse file: no disk is used)."""

    def write(path: Path) -> None:
        with path.open("wb") as f:
            f.write(HEADER.encode())
            f.truncate(len(HEADER) + size)

    return write


def _long_cell(path: Path) -> None:
    path.write_text(HEADER + _row(queue="q" * 100_000), encoding="utf-8")


def _many_rows(rows: int) -> Write:
    """A month's worth of good rows (to show the import streams: its memory does not grow)."""

    def write(path: Path) -> None:
        start = datetime(2026, 10, 1, tzinfo=UTC)
        with path.open("w", encoding="utf-8") as f:
            f.write(HEADER)
            for n in range(rows):
                t = start + timedelta(seconds=20 * n)
                f.write(
                    f"m{n},0100 000 0002,0100 000 0002,0770090{n % 10_000:04d},,"
                    f"{t.isoformat()},{(t + timedelta(seconds=9)).isoformat()},,120,30,1,45\n"
                )

    return write


def _blank_lines(size: int) -> Write:
    """A header and ``size`` bytes of lines of spaces: nothing to import, and nothing to hold."""

    def write(path: Path) -> None:
        line = b" " * 4000 + b"\n"
        with path.open("wb") as f:
            f.write(HEADER.encode())
            for _ in range(size // len(line)):
                f.write(line)

    return write


CDR_CASES: tuple[CdrCase, ...] = (
    CdrCase("a 1 GB line of NUL bytes", _nul_line(1 << 30), "longer than 4096 bytes"),
    CdrCase(
        "100 MB of short lines of NUL bytes",
        lambda p: p.write_bytes(HEADER.encode() + (b"\0" * 99 + b"\n") * (1 << 20)),
        "NUL bytes",
    ),
    CdrCase("NUL bytes in a short line", _text(HEADER + "\0" * 100 + "\n"), "NUL bytes"),
    CdrCase("300 MB of blank lines, streamed", _blank_lines(300 << 20), None),
    CdrCase("a 100,000-character queue name", _long_cell, "longer than 4096 bytes"),
    CdrCase("talk_seconds=nan", _text(HEADER + _row(talk_seconds="nan")), "talk_seconds: is nan"),
    CdrCase("talk_seconds=inf", _text(HEADER + _row(talk_seconds="inf")), "talk_seconds: is inf"),
    CdrCase(
        "talk_seconds=1e308", _text(HEADER + _row(talk_seconds="1e308")), "talk_seconds: is 1e+308"
    ),
    CdrCase(
        "wrap_seconds=-0.5", _text(HEADER + _row(wrap_seconds="-0.5")), "wrap_seconds: is -0.5"
    ),
    CdrCase(
        "outbound_calls of 5,000 digits",
        _text(HEADER + _row(outbound_calls="9" * 3000)),
        "outbound_calls:",
    ),
    CdrCase(
        "outbound_calls=10**9",
        _text(HEADER + _row(outbound_calls="1000000000")),
        "outbound_calls: is 1000000000",
    ),
    CdrCase(
        "offered_at in year 9999 at -14:00",
        _text(
            HEADER
            + _row(offered_at="9999-12-31T23:59:59-14:00", answered_at="9999-12-31T23:59:59-14:00")
        ),
        "not a plausible time",
    ),
    CdrCase(
        "answered a week after it was offered",
        _text(HEADER + _row(answered_at="2026-10-10T21:00:05Z")),
        "more than a day after offered_at",
    ),
    CdrCase("a UTF-16 file", lambda p: p.write_bytes(HEADER.encode("utf-16")), "not UTF-8"),
    CdrCase("an unclosed quote", _text(HEADER + '"c1,q\n'), "not readable as CSV"),
    CdrCase("a 65-character cdr_id", _text(HEADER + _row(cdr_id="x" * 65)), "cdr_id: must be"),
    CdrCase(
        "a good row, then a bad one: nothing imported",
        _text(HEADER + GOOD + _row(cdr_id="c2", talk_seconds="nan")),
        "talk_seconds: is nan",
    ),
    CdrCase("5,000 good rows", _many_rows(5_000), None, imported=5_000),
)
