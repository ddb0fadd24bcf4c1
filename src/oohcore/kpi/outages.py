"""Periods when a service option was not available to the public (6.4a, 11.7.3d, 11.7.5).

Nothing in a call's record shows that callers could not get through, so an outage is recorded
by the service provider (or its monitoring) with :func:`record_outage`: which option (or all
of an organisation's, ``service_option=None``), from when to when, the cause and the steps
taken to resolve it. The KPIs clip each outage to the reporting period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Connection, Index, Integer, String, Table, Text, or_, select

from oohcore.clock import as_utc
from oohcore.errors import OohcoreError
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata

__all__ = [
    "MAX_OUTAGE_MINUTES",
    "Outage",
    "OutageError",
    "outages",
    "outages_between",
    "record_outage",
]

MAX_OUTAGE_MINUTES = 30
"""6.4a: the longest failure allowed to affect an option's availability during its hours."""

outages = Table(
    "outages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organisation_id", String(64), nullable=False),
    Column("service_option", String(64)),  # None: every option of the organisation
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),  # None: still going on
    Column("cause", Text, nullable=False),
    Column("steps_taken", Text, nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index(None, "organisation_id", "started_at"),
)


class OutageError(OohcoreError, ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Outage:
    service_option: str | None
    started_at: datetime
    ended_at: datetime | None
    cause: str
    steps_taken: str

    def minutes_within(self, start: datetime, end: datetime) -> float:
        """Minutes of this outage inside ``[start, end)`` (an ongoing one runs to ``end``)."""
        lo = max(self.started_at, start)
        hi = min(self.ended_at or end, end)
        return max(0.0, (hi - lo).total_seconds() / 60)


def record_outage(
    conn: Connection,
    *,
    organisation_id: str,
    started_at: datetime,
    ended_at: datetime | None,
    cause: str,
    steps_taken: str = "",
    service_option: str | None = None,
    at: datetime,
) -> int:
    """Record an outage (inside the caller's transaction); returns its id."""
    started_at = as_utc(started_at)
    if ended_at is not None and as_utc(ended_at) < started_at:
        raise OutageError(f"an outage cannot end ({ended_at}) before it starts ({started_at})")
    if not cause.strip():
        raise OutageError("say what caused the outage (11.7.5a)")
    result = conn.execute(
        outages.insert().values(
            organisation_id=organisation_id,
            service_option=service_option,
            started_at=started_at,
            ended_at=ended_at,
            cause=cause,
            steps_taken=steps_taken,
            recorded_at=at,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def outages_between(
    conn: Connection, organisation_id: str, start: datetime, end: datetime
) -> list[Outage]:
    """The organisation's outages that overlap ``[start, end)``, oldest first."""
    rows = conn.execute(
        select(outages)
        .where(
            outages.c.organisation_id == organisation_id,
            outages.c.started_at < end,
            or_(outages.c.ended_at.is_(None), outages.c.ended_at > start),
        )
        .order_by(outages.c.started_at)
    )
    return [
        Outage(r.service_option, r.started_at, r.ended_at, r.cause, r.steps_taken) for r in rows
    ]
