"""The report kinds the specification asks for, each built from the KPI queries (11.5-11.10).

``daily`` (11.5.1), ``weekly`` by hour of day (11.6), ``monthly`` (11.7), ``annual`` (11.8.1),
``comparison`` across organisations (11.8.2), ``volumes`` for the contract manager (11.7.14),
``invoice`` statement data (11.10.2) and ``staffing`` (an Erlang C forecast, 7.1.10).
:func:`build_report` is the one entry point; the CLI's ``oohcore report`` calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from oohcore.errors import OohcoreError
from oohcore.kpi import measures as m
from oohcore.kpi.measures import QueueFigures, total
from oohcore.kpi.periods import Period, PeriodKind
from oohcore.kpi.targets import Targets
from oohcore.reports.model import Chart, Column, Fmt, Headline, Report, Table
from oohcore.staffing import handlers_needed, service_level

if TYPE_CHECKING:
    from oohcore.rulesets.compiler import Organisation
    from oohcore.store import Store

__all__ = ["KINDS", "ReportError", "build_report"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, of)`` while a report is built (the CLI draws a bar)."""


class ReportError(OohcoreError):
    """A report that cannot be built as asked (unknown kind, wrong period …)."""


@dataclass(frozen=True)
class _Context:
    conn: Connection
    org: Organisation
    period: Period
    targets: Targets
    now: datetime
    organisations: Sequence[Organisation]
    prices: Mapping[str, Decimal]

    @property
    def tz(self) -> str:
        return self.org.timezone

    @property
    def options(self) -> list[str]:
        return sorted(self.org.service_options)

    def local(self, when: datetime | None) -> datetime | None:
        return when.astimezone(ZoneInfo(self.tz)) if when is not None else None

    def telephony(self, *by: str, org: Organisation | None = None) -> list[QueueFigures]:
        o = org or self.org
        return m.telephony(
            self.conn, o.id, self.period, self.targets, by=by, options=sorted(o.service_options)
        )


# ---------------------------------------------------------------------------------------------
# Columns shared by several kinds
# ---------------------------------------------------------------------------------------------

C = Column
SLA_COLUMNS = (
    C("standard", "Standard"),
    C("offered", "Offered", Fmt.INT),
    C("in_sla", "In SLA", Fmt.INT),
    C("out_sla", "Out SLA", Fmt.INT),
    C("answered", "Answered", Fmt.INT),
    C("pct_answered", "% Ans", Fmt.PERCENT),
    C("pct_in_sla", "% Ans within SLA", Fmt.PERCENT),
    C("pct_abandoned", "% Abn", Fmt.PERCENT),
    C("avg_wait", "Avg wait", Fmt.DURATION),
    C("wait_max", "Max wait", Fmt.DURATION),
    C("avg_handling", "Call handling time", Fmt.DURATION),
    C("avg_talk", "Avg talk", Fmt.DURATION),
    C("avg_wrap", "Avg wrap", Fmt.DURATION),
    C("abandoned_within_20", "Abandoned within 20 s", Fmt.INT),
    C("abandoned_over_20", "Abandoned after 20 s", Fmt.INT),
    C("abandoned", "Abandoned", Fmt.INT),
    C("target_seconds", "Target (s)", Fmt.INT),
    C("target_share", "Target share", Fmt.PERCENT),
    C("meets_service_level", "Service level", Fmt.PASS),
    C("meets_abandoned", "Abandoned limit", Fmt.PASS),
    C("meets_all_within", "All within upper time", Fmt.PASS),
)
WAIT_COLUMNS = (
    C("offered", "Attempted", Fmt.INT),
    C("answered", "Answered", Fmt.INT),
    C("pct_answered", "% answered", Fmt.PERCENT),
    C("abandoned", "Abandoned", Fmt.INT),
    C("pct_abandoned", "% abandoned", Fmt.PERCENT),
    C("answered_within_20", "Answered ≤20 s", Fmt.INT),
    C("answered_20_60", "Answered 20-60 s", Fmt.INT),
    C("answered_over_60", "Answered >60 s", Fmt.INT),
    C("abandoned_within_20", "Abandoned ≤20 s", Fmt.INT),
    C("abandoned_20_60", "Abandoned 20-60 s", Fmt.INT),
    C("abandoned_over_60", "Abandoned >60 s", Fmt.INT),
    C("pct_in_sla", "% in SLA", Fmt.PERCENT),
)
OPTION = C("service_option", "Service option")
QUEUE = C("queue", "Queue / access number")


def _row(fig: QueueFigures) -> dict[str, Any]:
    row = fig.as_row()
    row["abandoned_over_20"] = fig.abandoned_20_60 + fig.abandoned_over_60
    for name in ("service_option", "queue"):
        if name in row and row[name] is None:
            row[name] = "(not established)"  # 11.7.3a: no option from the number or a link
    return row


def _total_row(figs: Sequence[QueueFigures], first: str) -> dict[str, Any]:
    row = _row(total(figs))
    row[first] = "Total"
    return row


def _sla_table(
    key: str, title: str, clause: str, figs: Sequence[QueueFigures], lead: Sequence[Column]
) -> Table:
    return Table(
        key,
        title,
        clause,
        (*lead, *SLA_COLUMNS),
        [_row(f) for f in figs],
        _total_row(figs, lead[0].key) if figs else None,
    )


def _passes(values: Iterable[bool | None]) -> bool | None:
    judged = [v for v in values if v is not None]
    return all(judged) if judged else None


# ---------------------------------------------------------------------------------------------
# The sections of the monthly report (11.7), reused by the annual one (11.8.1)
# ---------------------------------------------------------------------------------------------


def _monthly_sections(
    ctx: _Context, step: Callable[[str], None]
) -> tuple[list[Table], list[Chart], list[Headline]]:
    tables: list[Table] = []
    charts: list[Chart] = []
    step("service level per option")
    by_option = ctx.telephony("service_option", "standard")
    tables.append(
        _sla_table(
            "sla_by_option",
            "Call and SLA summary by service option",
            "6.2a, 6.3a, 11.7.1, 11.7.3a-c, Appendix 2",
            by_option,
            (OPTION,),
        )
    )
    step("service level per access number")
    by_queue = ctx.telephony("queue", "service_option", "standard")
    tables.append(
        _sla_table(
            "sla_by_queue",
            "Summary by queue (access number)",
            "11.6, 11.7.1, Appendix 2",
            by_queue,
            (QUEUE, OPTION),
        )
    )
    step("totals by standard")
    by_standard = ctx.telephony("standard")
    tables.append(
        Table(
            "by_standard",
            "Totals by standard",
            "11.7.2",
            SLA_COLUMNS[:8],
            [_row(f) for f in by_standard],
            _total_row(by_standard, "standard") if by_standard else None,
        )
    )
    step("answered and abandoned by wait")
    tables.append(
        Table(
            "waits_by_option",
            "Answered and abandoned by time waited",
            "11.6.2, 11.6.4, 11.7.1",
            (OPTION, *WAIT_COLUMNS),
            [_row(f) for f in ctx.telephony("service_option")],
        )
    )
    step("service level by hour of day")
    by_hour = ctx.telephony("local_hour")
    hour_rows = [_row(f) for f in by_hour]
    tables.append(
        Table(
            "sla_by_hour",
            "Service level by hour of day",
            "11.6.1, 11.6.2, 11.6.4",
            (C("local_hour", "Hour", Fmt.INT), *WAIT_COLUMNS),
            hour_rows,
        )
    )
    gold = ctx.targets.for_call(ctx.org.id, None, "gold").share
    charts.append(
        Chart(
            "chart_sla_by_hour",
            "Service level by hour of day",
            "sla_by_hour",
            "local_hour",
            ("pct_in_sla", "pct_answered"),
            "line",
            target=gold,
        )
    )
    charts.append(
        Chart(
            "chart_volume_by_option",
            "Calls by service option",
            "sla_by_option",
            "service_option",
            ("answered", "abandoned"),
            "bar",
        )
    )
    step("handling and outbound calls")
    handling = ctx.telephony("service_option")
    tables.append(
        Table(
            "handling",
            "Talk, handling time and calls to on-call staff",
            "11.7.3b, 11.7.3c, 11.7.3e",
            (
                OPTION,
                C("answered", "Answered", Fmt.INT),
                C("avg_talk", "Avg talk", Fmt.DURATION),
                C("avg_wrap", "Avg after-call work", Fmt.DURATION),
                C("avg_handling", "Avg handling time", Fmt.DURATION),
                C("outbound_calls", "Calls to on-call staff", Fmt.INT),
                C("avg_outbound", "Avg call to on-call staff", Fmt.DURATION),
            ),
            [_row(f) for f in handling],
        )
    )
    step("messages to on-call staff")
    outbound = m.outbound_contacts(ctx.conn, ctx.org.id, ctx.period, ctx.tz)
    tables.append(
        Table(
            "outbound_by_channel",
            "Contacts with on-call staff by channel",
            "11.6.5, 11.7.3e",
            (
                OPTION,
                C("channel", "Channel"),
                C("sent", "Sent", Fmt.INT),
                C("failed", "Failed", Fmt.INT),
            ),
            [
                {
                    "service_option": o.service_option or "(none)",
                    "channel": o.channel,
                    "sent": o.sent,
                    "failed": o.failed,
                }
                for o in outbound
            ],
            {
                "service_option": "Total",
                "sent": sum(o.sent for o in outbound),
                "failed": sum(o.failed for o in outbound),
            },
        )
    )
    step("pass-on times")
    pass_on = m.pass_on_times(ctx.conn, ctx.org.id, ctx.period, ctx.tz)
    tables.append(
        Table(
            "pass_on",
            "Time to pass on service requests",
            "6.4b, 11.7.3g",
            (
                OPTION,
                C("passed_on", "Passed on", Fmt.INT),
                C("avg_seconds", "Average", Fmt.DURATION),
                C("max_seconds", "Longest", Fmt.DURATION),
                C("late", "Passed on over the limit", Fmt.INT),
                C("not_passed_on", "Not passed on by the deadline", Fmt.INT),
                C("passes", "Within limits", Fmt.PASS),
            ),
            [
                {
                    "service_option": p.service_option,
                    "passed_on": p.passed_on,
                    "avg_seconds": p.avg_seconds,
                    "max_seconds": p.max_seconds,
                    "late": p.late,
                    "not_passed_on": p.not_passed_on,
                    "passes": p.passes,
                }
                for p in pass_on
            ],
        )
    )
    charts.append(
        Chart(
            "chart_pass_on",
            "Pass-on times (seconds)",
            "pass_on",
            "service_option",
            ("avg_seconds", "max_seconds"),
            "column",
            target=ctx.org.referral_time_limit.total_seconds(),
        )
    )
    late = m.late_pass_ons(ctx.conn, ctx.org.id, ctx.period, ctx.tz, now=ctx.now)
    tables.append(
        Table(
            "late_pass_ons",
            "Service requests passed on after the time allowed",
            "11.7.3g, 11.7.3h",
            (
                C("reference", "Reference"),
                OPTION,
                C("call_ended_at", "Call ended", Fmt.DATETIME),
                C("dispatched_at", "Passed on", Fmt.DATETIME),
                C("seconds", "Time taken", Fmt.DURATION),
                C("limit_seconds", "Allowed", Fmt.DURATION),
                C("reason", "Reason"),
            ),
            [
                {
                    "reference": p.reference,
                    "service_option": p.service_option,
                    "call_ended_at": ctx.local(p.call_ended_at),
                    "dispatched_at": ctx.local(p.dispatched_at),
                    "seconds": p.seconds,
                    "limit_seconds": p.limit_seconds,
                    "reason": p.reason
                    or ("not passed on" if p.dispatched_at is None else "(not recorded)"),
                }
                for p in late
            ],
        )
    )
    step("e-mail receipts")
    emails, exceptions = m.receipt_exceptions(ctx.conn, ctx.org.id, ctx.period, ctx.tz)
    tables.append(
        Table(
            "receipt_exceptions",
            f"E-mails to on-call staff: {emails} sent, {len(exceptions)} without a receipt",
            "11.7.3i",
            (
                C("reference", "Reference"),
                C("channel", "Channel"),
                C("sent_at", "Sent", Fmt.DATETIME),
                C("problem", "Exception"),
            ),
            [
                {
                    "reference": e.reference,
                    "channel": e.channel,
                    "sent_at": ctx.local(e.sent_at),
                    "problem": e.problem,
                }
                for e in exceptions
            ],
        )
    )
    step("out-of-scope calls")
    oos = m.out_of_scope(ctx.conn, ctx.org.id, ctx.period, ctx.tz)
    all_oos = sum(o.calls for o in oos)
    tables.append(
        Table(
            "out_of_scope",
            "Out-of-scope calls by category",
            "11.7.3f",
            (
                OPTION,
                C("category", "Category"),
                C("calls", "Calls", Fmt.INT),
                C("share_of_option", "% of the option's calls", Fmt.PERCENT),
                C("share_of_out_of_scope", "% of out-of-scope calls", Fmt.PERCENT),
            ),
            [
                {
                    "service_option": o.service_option,
                    "category": o.category,
                    "calls": o.calls,
                    "share_of_option": o.share_of_option,
                    "share_of_out_of_scope": o.calls / all_oos if all_oos else None,
                }
                for o in oos
            ],
            {"service_option": "Total", "calls": all_oos},
        )
    )
    step("availability")
    unavailable = m.unavailability(ctx.conn, ctx.org.id, ctx.period, ctx.tz, ctx.options)
    tables.append(
        Table(
            "unavailability",
            "Minutes each service option was unavailable",
            "6.4a, 11.7.3d, 11.7.5",
            (
                OPTION,
                C("minutes", "Minutes", Fmt.MINUTES),
                C("incidents", "Incidents", Fmt.INT),
                C("longest", "Longest (min)", Fmt.MINUTES),
                C("passes", "Within 30 min", Fmt.PASS),
                C("year_incidents", "Incidents, last 12 months", Fmt.INT),
                C("year_minutes", "Minutes, last 12 months", Fmt.MINUTES),
            ),
            [
                {
                    "service_option": u.service_option,
                    "minutes": u.minutes,
                    "incidents": u.incidents,
                    "longest": u.longest_minutes,
                    "passes": u.passes,
                    "year_incidents": u.year_incidents,
                    "year_minutes": u.year_minutes,
                }
                for u in unavailable
            ],
        )
    )
    seen: set[tuple[datetime, str]] = set()
    incidents = []
    for u in unavailable:
        for o in u.outages:
            if (o.started_at, o.cause) in seen:
                continue
            seen.add((o.started_at, o.cause))
            start, end = ctx.period.utc_bounds(ctx.tz)
            incidents.append(
                {
                    "service_option": o.service_option or "(all)",
                    "started_at": ctx.local(o.started_at),
                    "ended_at": ctx.local(o.ended_at),
                    "minutes": o.minutes_within(start, end),
                    "cause": o.cause,
                    "steps_taken": o.steps_taken,
                }
            )
    tables.append(
        Table(
            "outages",
            "Periods of unavailability",
            "11.7.5a-c",
            (
                OPTION,
                C("started_at", "From", Fmt.DATETIME),
                C("ended_at", "To", Fmt.DATETIME),
                C("minutes", "Minutes", Fmt.MINUTES),
                C("cause", "Cause"),
                C("steps_taken", "Steps taken"),
            ),
            incidents,
        )
    )
    step("escalation failures")
    failures = m.escalation_failures(ctx.conn, ctx.org.id, ctx.period, ctx.tz)
    tables.append(
        Table(
            "escalation_failures",
            "Escalation procedure not complied with",
            "6.4e, 11.7.6",
            (
                C("at", "When", Fmt.DATETIME),
                C("kind", "What"),
                C("reference", "Reference"),
                OPTION,
                C("detail", "Detail"),
            ),
            [
                {
                    "at": ctx.local(f.at),
                    "kind": f.kind,
                    "reference": f.reference,
                    "service_option": f.service_option,
                    "detail": f.detail,
                }
                for f in failures
            ],
        )
    )
    headlines = [
        Headline(
            f"{f.key['service_option'] or '(not established)'} ({f.key['standard']})",
            f"{_pct(f.pct_in_sla)} in SLA, {_pct(f.pct_abandoned)} abandoned of {f.offered}",
            f.passes,
        )
        for f in by_option
    ]
    headlines.append(Headline("Referrals passed on late or not at all", len(late), not late))
    headlines.append(Headline("Escalation failures", len(failures), not failures))
    return tables, charts, headlines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


# ---------------------------------------------------------------------------------------------
# The kinds
# ---------------------------------------------------------------------------------------------


def _daily(ctx: _Context, step: Callable[[str], None]) -> Report:
    step("totals by standard")
    figs = ctx.telephony("standard")
    tables = [
        Table(
            "daily",
            "Calls received and answered by standard",
            "11.5.1",
            (
                C("standard", "Standard"),
                C("offered", "Received", Fmt.INT),
                C("answered", "Answered", Fmt.INT),
                C("pct_in_sla", "% within standard", Fmt.PERCENT),
                C("meets_service_level", "Service level", Fmt.PASS),
            ),
            [_row(f) for f in figs],
            _total_row(figs, "standard") if figs else None,
        )
    ]
    heads = [
        Headline(
            f.key["standard"],
            f"{f.answered}/{f.offered} answered, {_pct(f.pct_in_sla)} within standard",
            f.meets_service_level,
        )
        for f in figs
    ]
    return _report(ctx, "daily", "Daily performance summary", heads, tables, [])


def _weekly(ctx: _Context, step: Callable[[str], None]) -> Report:
    step("by option, day and hour")
    cells = ctx.telephony("service_option", "queue", "standard", "local_day", "local_hour")
    step("messages by hour")
    outbound = m.outbound_contacts(ctx.conn, ctx.org.id, ctx.period, ctx.tz, by_hour=True)
    tables = []
    lead = (
        OPTION,
        QUEUE,
        C("standard", "Standard"),
        C("local_day", "Day", Fmt.DATE),
        C("local_hour", "Hour", Fmt.INT),
    )
    rows = [_row(f) for f in cells]
    tables.append(
        Table(
            "by_hour",
            "Calls by hour, for each day",
            "11.6.1-11.6.4",
            (*lead, *WAIT_COLUMNS, C("outbound_calls", "Outbound calls", Fmt.INT)),
            rows,
        )
    )
    day_figs = ctx.telephony("service_option", "queue", "standard", "local_day")
    day_rows = []
    for f in day_figs:
        row = _row(f)
        row["day_type"] = _day_type(f.key["local_day"], ctx.org.nation)
        day_rows.append(row)
    tables.append(
        Table(
            "by_day",
            "Calls by day",
            "11.6.1-11.6.4",
            (
                *lead[:4],
                C("day_type", "Day type"),
                *WAIT_COLUMNS,
                C("outbound_calls", "Outbound calls", Fmt.INT),
            ),
            day_rows,
        )
    )
    week = ctx.telephony("service_option", "queue", "standard")
    tables.append(
        Table(
            "week",
            "Totals for the week",
            "11.6.1-11.6.4",
            (*lead[:3], *WAIT_COLUMNS, C("outbound_calls", "Outbound calls", Fmt.INT)),
            [_row(f) for f in week],
            _total_row(week, "service_option") if week else None,
        )
    )
    hours = ctx.telephony("local_hour")
    tables.append(
        Table(
            "sla_by_hour",
            "Service level by hour of day (whole week)",
            "11.6.2, 11.6.4",
            (C("local_hour", "Hour", Fmt.INT), *WAIT_COLUMNS),
            [_row(f) for f in hours],
        )
    )
    tables.append(
        Table(
            "messages_by_hour",
            "E-mails, SMS and pager messages to on-call staff by hour",
            "11.6.5",
            (
                OPTION,
                C("channel", "Channel"),
                C("local_hour", "Hour", Fmt.INT),
                C("sent", "Sent", Fmt.INT),
                C("failed", "Failed", Fmt.INT),
            ),
            [
                {
                    "service_option": o.service_option,
                    "channel": o.channel,
                    "local_hour": o.local_hour,
                    "sent": o.sent,
                    "failed": o.failed,
                }
                for o in outbound
            ],
        )
    )
    charts = [
        Chart(
            "chart_sla_by_hour",
            "Service level by hour of day",
            "sla_by_hour",
            "local_hour",
            ("pct_in_sla", "pct_answered"),
            "line",
            target=ctx.targets.for_call(ctx.org.id, None, "gold").share,
        ),
        Chart(
            "chart_calls_by_day",
            "Calls by day",
            "by_day",
            "local_day",
            ("answered", "abandoned"),
            "column",
        ),
    ]
    heads = [
        Headline(
            f"{f.key['service_option']} via {f.key['queue']} ({f.key['standard']})",
            f"{f.offered} attempted, {_pct(f.pct_answered)} answered",
            f.passes,
        )
        for f in week
    ]
    return _report(ctx, "weekly", "Weekly performance report", heads, tables, charts)


def _day_type(day: date, nation: Any) -> str:
    """Bank holiday, weekend or weekday: a week's calls differ with it (2.1.5)."""
    from oohcore.calendar import is_bank_holiday

    if is_bank_holiday(day, nation):
        return "bank holiday"
    return "weekend" if day.weekday() >= 5 else "weekday"


def _monthly(ctx: _Context, step: Callable[[str], None]) -> Report:
    tables, charts, heads = _monthly_sections(ctx, step)
    daily = ctx.telephony("local_day")
    tables.append(
        Table(
            "by_day",
            "Calls by day",
            "11.7.1",
            (C("local_day", "Day", Fmt.DATE), C("day_type", "Day type"), *WAIT_COLUMNS),
            [{**_row(f), "day_type": _day_type(f.key["local_day"], ctx.org.nation)} for f in daily],
        )
    )
    charts.append(
        Chart(
            "chart_calls_by_day",
            "Calls by day",
            "by_day",
            "local_day",
            ("answered", "abandoned"),
            "column",
        )
    )
    return _report(ctx, "monthly", "Monthly performance report", heads, tables, charts)


def _annual(ctx: _Context, step: Callable[[str], None]) -> Report:
    tables, charts, heads = _monthly_sections(ctx, step)
    step("month by month")
    months = []
    for month in range(1, 13):
        p = Period.month(ctx.period.first.year, month)
        figs = m.telephony(
            ctx.conn, ctx.org.id, p, ctx.targets, by=("standard",), options=ctx.options
        )
        row = _row(total(figs))
        row["month"] = p.label
        months.append(row)
    tables.insert(
        0,
        Table("by_month", "Month by month", "11.8.1", (C("month", "Month"), *WAIT_COLUMNS), months),
    )
    charts.append(
        Chart(
            "chart_by_month",
            "Calls by month",
            "by_month",
            "month",
            ("answered", "abandoned"),
            "column",
        )
    )
    return _report(ctx, "annual", "Annual summary report", heads, tables, charts)


def _comparison(ctx: _Context, step: Callable[[str], None]) -> Report:
    """This organisation beside the total of all organisations on the agreement (11.8.2)."""
    rows = []
    everyone: list[QueueFigures] = []
    for n, org in enumerate(ctx.organisations, start=1):
        step(f"organisation {n} of {len(ctx.organisations)}")
        figs = ctx.telephony("standard", org=org)
        everyone += figs
        if org.id == ctx.org.id:
            for f in figs:
                row = _row(f)
                row["who"] = ctx.org.name
                rows.append(row)
    for std in sorted({f.key["standard"] for f in everyone}):
        row = _row(total([f for f in everyone if f.key["standard"] == std], {"standard": std}))
        row["who"] = "All organisations"
        rows.append(row)
    columns = (C("who", "Organisation"), *SLA_COLUMNS[:11])
    tables = [
        Table(
            "comparison",
            "Performance beside all participating organisations",
            "11.8.2",
            columns,
            rows,
        )
    ]
    charts = [
        Chart(
            "chart_comparison", "% answered within SLA", "comparison", "who", ("pct_in_sla",), "bar"
        )
    ]
    return _report(
        ctx, "comparison", "Annual comparison with all organisations", [], tables, charts
    )


def _volumes(ctx: _Context, step: Callable[[str], None]) -> Report:
    """Calls each organisation had under each standard, and daytime calls and minutes (11.7.14)."""
    rows = []
    for n, org in enumerate(ctx.organisations, start=1):
        step(f"organisation {n} of {len(ctx.organisations)}")
        for v in m.volumes_by_hours(ctx.conn, org.id, ctx.period):
            rows.append(
                {
                    "organisation": org.name,
                    **v,
                    "daytime": "daytime" if v["daytime"] else "out of hours",
                }
            )
    columns = (
        C("organisation", "Organisation"),
        C("standard", "Standard"),
        C("daytime", "Hours"),
        C("offered", "Offered", Fmt.INT),
        C("answered", "Handled", Fmt.INT),
        C("handling_minutes", "Call handling minutes", Fmt.MINUTES),
        C("outbound_calls", "Outbound calls", Fmt.INT),
    )
    total_row = {
        "organisation": "Total",
        "offered": sum(r["offered"] for r in rows),
        "answered": sum(r["answered"] for r in rows),
        "handling_minutes": sum(r["handling_minutes"] for r in rows),
        "outbound_calls": sum(r["outbound_calls"] for r in rows),
    }
    tables = [
        Table(
            "volumes",
            "Monthly call volumes by organisation and standard",
            "11.7.14",
            columns,
            rows,
            total_row,
        )
    ]
    return _report(
        ctx, "volumes", "Call volumes for the Strategic Monitoring Manager", [], tables, []
    )


def _invoice(ctx: _Context, step: Callable[[str], None]) -> Report:
    """The statement's volumes per chargeable unit, tallying with the monthly report (11.10.2)."""
    step("inbound calls by standard and option")
    figs = ctx.telephony("service_option", "standard")
    rows: list[dict[str, Any]] = []

    def add(unit: str, service: str, direction: str, volume: float) -> None:
        price = ctx.prices.get(unit)
        rows.append(
            {
                "unit": unit,
                "service": service,
                "direction": direction,
                "volume": volume,
                "unit_price": float(price) if price is not None else None,
                "cost": float(price * Decimal(str(volume))) if price is not None else None,
            }
        )

    for f in figs:
        std, option = f.key["standard"], f.key["service_option"] or "(not established)"
        add(f"{std} call", option, "inbound", f.answered)
        add(f"{std} call minute", option, "inbound", round((f.talk_total + f.wrap_total) / 60, 2))
        add("outbound call", option, "outbound", f.outbound_calls)
    step("messages by channel")
    for o in m.outbound_contacts(ctx.conn, ctx.org.id, ctx.period, ctx.tz):
        add(f"{o.channel} message", o.service_option or "(none)", "outbound", o.sent)
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    columns = (
        C("unit", "Chargeable unit"),
        C("service", "Service type"),
        C("direction", "In / out"),
        C("volume", "Volume this month", Fmt.DECIMAL),
        C("unit_price", "Unit price", Fmt.MONEY),
        C("cost", "Total this month", Fmt.MONEY),
    )
    tables = [
        Table(
            "invoice",
            "Invoice statement",
            "11.10.2",
            columns,
            rows,
            {"unit": "Total", "cost": sum(costs) if costs else None},
            note="Volumes of calls are the answered calls of the monthly report (11.10.2).",
        )
    ]
    return _report(ctx, "invoice", "Invoice statement data", [], tables, [])


def _staffing(ctx: _Context, step: Callable[[str], None], weeks: int = 4) -> Report:
    """Handlers needed per hour of day to meet each standard (Erlang C), beside the actual
    service level (7.1.10). The load is the average of the ``weeks`` weeks before the period's
    end."""
    step("past weeks' calls by hour")
    past = Period(PeriodKind.WEEK, ctx.period.after - timedelta(weeks=weeks), ctx.period.after)
    figs = m.telephony(
        ctx.conn, ctx.org.id, past, ctx.targets, by=("local_hour",), options=ctx.options
    )
    days = (past.after - past.first).days
    standards = sorted({str(o.standard) for o in ctx.org.service_options.values()}) or ["silver"]
    rows = []
    for f in figs:
        per_hour = f.offered / days
        aht = f.avg_handling or 0.0
        row: dict[str, Any] = {
            "local_hour": f.key["local_hour"],
            "calls_per_hour": per_hour,
            "aht": aht,
            "actual": f.pct_in_sla,
        }
        for std in standards:
            t = ctx.targets.for_call(ctx.org.id, None, std)
            n = handlers_needed(per_hour, aht, t.within_seconds, t.share)
            row[f"need_{std}"] = n
            row[f"level_{std}"] = service_level(n, per_hour, aht, t.within_seconds) if n else None
        rows.append(row)
    columns = [
        C("local_hour", "Hour", Fmt.INT),
        C("calls_per_hour", "Calls per hour", Fmt.DECIMAL),
        C("aht", "Avg handling time", Fmt.DURATION),
        C("actual", "Actual % in SLA", Fmt.PERCENT),
    ]
    for std in standards:
        columns += [
            C(f"need_{std}", f"Handlers for {std}", Fmt.INT),
            C(f"level_{std}", f"Forecast {std} SLA", Fmt.PERCENT),
        ]
    tables = [
        Table(
            "staffing",
            f"Handlers needed per hour (Erlang C, {weeks} weeks to {past.last})",
            "7.1.10, 2.1.2",
            columns,
            rows,
        )
    ]
    charts = [
        Chart(
            "chart_staffing",
            "Handlers needed per hour",
            "staffing",
            "local_hour",
            tuple(f"need_{s}" for s in standards),
            "column",
        )
    ]
    return _report(ctx, "staffing", "Staffing forecast", [], tables, charts)


KINDS: dict[str, Callable[[_Context, Callable[[str], None]], Report]] = {
    "daily": _daily,
    "weekly": _weekly,
    "monthly": _monthly,
    "annual": _annual,
    "comparison": _comparison,
    "volumes": _volumes,
    "invoice": _invoice,
    "staffing": _staffing,
}
_PERIOD_KIND = {
    "daily": PeriodKind.DAY,
    "weekly": PeriodKind.WEEK,
    "monthly": PeriodKind.MONTH,
    "annual": PeriodKind.YEAR,
    "comparison": PeriodKind.YEAR,
    "volumes": PeriodKind.MONTH,
    "invoice": PeriodKind.MONTH,
}
_STEPS = {"daily": 1, "weekly": 2, "monthly": 14, "annual": 15, "invoice": 2, "staffing": 1}


def _report(
    ctx: _Context,
    kind: str,
    title: str,
    heads: Sequence[Headline],
    tables: Sequence[Table],
    charts: Sequence[Chart],
) -> Report:
    return Report(
        kind=kind,
        title=title,
        organisation_id=ctx.org.id,
        organisation_name=ctx.org.name,
        period=ctx.period,
        generated_at=ctx.now,
        timezone=ctx.tz,
        headlines=tuple(heads),
        tables=tuple(tables),
        charts=tuple(charts),
    )


def build_report(
    store: Store,
    organisation: Organisation,
    kind: str,
    period: Period | str,
    *,
    targets: Targets | None = None,
    organisations: Sequence[Organisation] = (),
    prices: Mapping[str, Decimal] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Build one report of ``kind`` for ``organisation`` over ``period``.

    ``organisations``: every organisation on the agreement, for ``comparison`` and ``volumes``
    (a provider-wide view, 7.10: it must be given explicitly). ``prices``: unit prices by
    chargeable unit name (``"gold call"``, ``"sms message"`` …) for the invoice statement.
    """
    if kind not in KINDS:
        raise ReportError(f"unknown report kind {kind!r}; choose one of {', '.join(KINDS)}")
    if isinstance(period, str):
        period = Period.parse(period)
    wanted = _PERIOD_KIND.get(kind)
    if wanted is not None and period.kind is not wanted:
        raise ReportError(
            f"a {kind} report covers a {wanted.value}; {period.label} is a {period.kind.value} "
            f"(e.g. --period {_example(wanted)})"
        )
    if kind in ("comparison", "volumes") and not organisations:
        organisations = (organisation,)
    steps = _STEPS.get(kind, len(organisations) or 1)
    done = 0

    def step(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(name, min(done, steps), steps)

    with store.read() as conn:
        ctx = _Context(
            conn,
            organisation,
            period,
            targets or Targets(),
            store.clock.now(),
            tuple(organisations),
            dict(prices or {}),
        )
        report = KINDS[kind](ctx, step)
    if progress is not None:
        progress("done", steps, steps)
    return report


def _example(kind: PeriodKind) -> str:
    return {
        PeriodKind.DAY: "2026-10-03",
        PeriodKind.WEEK: "2026-W41",
        PeriodKind.MONTH: "2026-10",
        PeriodKind.YEAR: "2026",
    }[kind]


def local_today(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()
