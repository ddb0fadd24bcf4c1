"""The daily summary sent by SMS or e-mail before 10 a.m. (11.5.1), and the demo's evening.

:func:`daily_summary_text` is the short message: calls received and answered under each
standard, the share answered within it, and the totals. :func:`enqueue_daily_summary` puts it
in the outbox (``purpose=report``) in one transaction, due at the next 07:00 on the
organisation's clock after the day (well before 10:00; "or Monday for the weekend just gone" is
the caller's choice of ``due_at``), with one idempotency key per organisation, day and
recipient, so a repeated run sends nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from oohcore.channels import OutboundMessage
from oohcore.durable.outbox import enqueue
from oohcore.kpi.measures import telephony, total
from oohcore.kpi.periods import Period
from oohcore.kpi.targets import Targets
from oohcore.vocabulary import MessagePurpose

if TYPE_CHECKING:
    from oohcore.rulesets.compiler import Organisation
    from oohcore.store import Store

__all__ = ["EveningOutput", "daily_summary_text", "enqueue_daily_summary", "evening_reports"]

SEND_AT = time(7, 0)
"""When the summary is due on the organisation's clock (11.5.1: no later than 10 a.m.)."""


def _pct(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%" if whole else "-"


def daily_summary_text(
    store: Store, organisation: Organisation, day: date, *, targets: Targets | None = None
) -> str:
    """The summary of ``day`` (a local date) as a short text, e.g. for an SMS."""
    period = Period.day(day)
    with store.read() as conn:
        figs = telephony(
            conn,
            organisation.id,
            period,
            targets or Targets(),
            by=("standard",),
            options=sorted(organisation.service_options),
        )
    parts = [f"{organisation.name} {day:%a %d %b %Y}:"]
    for f in figs:
        std = str(f.key["standard"]).capitalize()
        parts.append(
            f"{std} {f.offered} received, {f.answered} answered, "
            f"{_pct(f.in_sla, f.offered)} within standard."
        )
    t = total(figs)
    parts.append(
        f"Total {t.offered} received, {t.answered} answered ({_pct(t.answered, t.offered)})."
    )
    return " ".join(parts)


def enqueue_daily_summary(
    store: Store,
    organisation: Organisation,
    day: date,
    *,
    channel: str,
    recipient: str,
    targets: Targets | None = None,
    due_at: datetime | None = None,
) -> bool:
    """Put the day's summary in the outbox for ``recipient`` on ``channel``; False when that
    summary was already there (it is not written twice)."""
    body = daily_summary_text(store, organisation, day, targets=targets)
    zone = ZoneInfo(organisation.timezone)
    nxt = day + timedelta(days=1)
    due = due_at or datetime.combine(nxt, SEND_AT, tzinfo=zone).astimezone(UTC)
    message = OutboundMessage(
        organisation_id=organisation.id,
        call_id=None,
        channel=channel,
        recipient=recipient,
        subject=f"Daily performance summary {day.isoformat()}",
        body=body,
        idempotency_key=f"report:daily:{organisation.id}:{day.isoformat()}:{channel}:{recipient}",
        due_at=due,
        purpose=MessagePurpose.REPORT,
    )
    with store.transaction() as conn:
        _id, created = enqueue(conn, message, at=store.clock.now())
    return created


@dataclass(frozen=True, slots=True)
class EveningOutput:
    summary: str
    html: Path
    xlsx: Path
    imported: int


def evening_reports(
    store: Store,
    organisation: Organisation,
    folder: str | Path,
    *,
    day: date | None = None,
    cdr_file: str | Path | None = None,
    targets: Targets | None = None,
    out: TextIO | None = None,
) -> EveningOutput:
    """What the demo does after its evening of calls (issue: KPIs and reports, item 5).

    Imports the CDRs (``cdr_file`` if given; else built from the store's calls with
    :func:`~oohcore.telephony.cdrs_from_calls`, as a simulation has no telephone network),
    prints the daily summary to ``out``, and writes the day's HTML and xlsx reports into
    ``folder``. ``day``: the local date of the evening (default: the first call's).
    """
    from oohcore.cdr_csv import read_cdr_csv
    from oohcore.reports.kinds import build_report
    from oohcore.reports.render import write_report
    from oohcore.telephony import cdrs_from_calls, import_cdrs

    if cdr_file is not None:
        records = read_cdr_csv(cdr_file)
    else:
        with store.read() as conn:
            records = cdrs_from_calls(conn, organisation.id)
    result = import_cdrs(store, organisation, records)
    zone = ZoneInfo(organisation.timezone)
    if day is None:
        first = min((r.offered_at for r in records), default=store.clock.now())
        day = first.astimezone(zone).date()
    summary = daily_summary_text(store, organisation, day, targets=targets)
    if out is not None:
        print(f"Telephony: {result}", file=out)
        print(f"Daily summary (11.5.1): {summary}", file=out)
    report = build_report(store, organisation, "daily", Period.day(day), targets=targets)
    # the fuller picture of the evening: the weekly layout (by hour) over that one day
    detail = build_report(store, organisation, "weekly", Period.week(day), targets=targets)
    target = Path(folder)
    html = write_report(detail, target / f"{organisation.id}-{day.isoformat()}.html", "html")
    xlsx = write_report(detail, target / f"{organisation.id}-{day.isoformat()}.xlsx", "xlsx")
    write_report(report, target / f"{organisation.id}-{day.isoformat()}-daily.csv", "csv")
    if out is not None:
        print(f"Reports: {html} and {xlsx}", file=out)
    return EveningOutput(summary, html, xlsx, result.inserted)
