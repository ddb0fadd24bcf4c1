"""What a report is, apart from how it is drawn: titled tables of typed columns, and charts.

A report kind (:mod:`oohcore.reports.kinds`) fills a :class:`Report`; each renderer (CSV, Excel,
HTML) draws any report the same way, so every kind comes out in every format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from oohcore.kpi.periods import Period

__all__ = ["Chart", "Column", "Fmt", "Headline", "Report", "Table", "display"]


class Fmt(StrEnum):
    """How a column's values are shown (and which Excel number format they get, 11.9.4)."""

    TEXT = "text"
    INT = "int"
    DECIMAL = "decimal"
    PERCENT = "percent"  # a fraction: 0.8123 is shown 81.23%
    DURATION = "duration"  # seconds, shown hh:mm:ss
    MINUTES = "minutes"  # minutes, one decimal
    DATE = "date"
    DATETIME = "datetime"
    PASS = "pass"  # True / False / None: pass, FAIL, blank
    MONEY = "money"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    fmt: Fmt = Fmt.TEXT


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    clause: str  # the paragraphs of the specification the table answers
    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]
    total: Mapping[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    table: str  # the key of the table it draws
    category: str  # the column along the x axis
    series: Sequence[str]  # the columns drawn
    kind: str = "column"  # "column" (vertical bars), "bar" (horizontal), "line"
    target: float | None = None  # a horizontal line (e.g. the 80% service level)


@dataclass(frozen=True, slots=True)
class Headline:
    label: str
    value: str | int | float  # a count is a number, so a spreadsheet holds it as one
    passes: bool | None = None


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    organisation_id: str
    organisation_name: str
    period: Period
    generated_at: datetime
    timezone: str
    headlines: Sequence[Headline] = ()
    tables: Sequence[Table] = ()
    charts: Sequence[Chart] = ()
    notes: Sequence[str] = field(default_factory=tuple)

    def table(self, key: str) -> Table:
        for t in self.tables:
            if t.key == key:
                return t
        raise KeyError(f"the report has no table {key!r}")


def _hms(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def display(value: Any, fmt: Fmt) -> str:
    """A value as text, the way every renderer writes it (CSV, HTML, the daily message)."""
    if value is None:
        return ""
    if fmt is Fmt.PERCENT:
        return f"{value * 100:.2f}%"
    if fmt is Fmt.DURATION:
        return _hms(float(value))
    if fmt is Fmt.MINUTES:
        return f"{value:.1f}"
    if fmt is Fmt.DECIMAL:
        return f"{value:.2f}"
    if fmt is Fmt.MONEY:
        return f"{value:,.2f}"
    if fmt is Fmt.INT:
        return f"{int(value)}"
    if fmt is Fmt.PASS:
        return "pass" if value else "FAIL"
    if fmt is Fmt.DATETIME and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if fmt is Fmt.DATE and isinstance(value, date):
        return value.isoformat()
    return str(value)
