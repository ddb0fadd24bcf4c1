"""The KPIs' SQL: each measure is one aggregate query on indexed columns, never a loop over rows.

Every function takes a connection, one organisation's id (tenant scope, DESIGN principle 5)
and a :class:`~oohcore.kpi.periods.Period`, and returns small frozen records. The definitions,
with their paragraphs, are in ``docs/kpis.md``; the comments here name the paragraph each
measure serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Float,
    Index,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from oohcore.audit.chain import events
from oohcore.calls import calls
from oohcore.durable.outbox import outbox
from oohcore.kpi.outages import MAX_OUTAGE_MINUTES, Outage, outages_between
from oohcore.kpi.periods import Period
from oohcore.kpi.targets import UNASSIGNED, ServiceLevelTarget, Targets
from oohcore.referrals import referrals
from oohcore.telephony import cdrs
from oohcore.vocabulary import EventKind, MessagePurpose

__all__ = [
    "ALERT_PURPOSES",
    "EscalationFailure",
    "LatePassOn",
    "OutOfScopeFigures",
    "OutboundFigures",
    "PassOnFigures",
    "QueueFigures",
    "ReceiptException",
    "UnavailableFigures",
    "escalation_failures",
    "late_pass_ons",
    "out_of_scope",
    "outbound_contacts",
    "pass_on_times",
    "receipt_exceptions",
    "telephony",
    "unavailability",
    "volumes_by_hours",
]

# The indexes the KPI queries need on other modules' tables (declared here, created by this
# module's migration): events of one kind for one organisation over time, calls by received
# time, messages by sent time.
KPI_EVENT_KINDS = (
    str(EventKind.ACTION_OUT_OF_SCOPE),
    str(EventKind.MESSAGE_FAILED),
    str(EventKind.REFERRAL_NO_OFFICER),
    str(EventKind.REFERRAL_UNTAKEN),
)
"""The event kinds a KPI query looks up by kind: only these are in ``ix_events_kpi`` (issue 12:
an index every event went into cost every step a page write)."""
KPI_EVENT_KINDS_SQL = "kind IN ({})".format(", ".join(f"'{k}'" for k in KPI_EVENT_KINDS))
# A query uses the partial index only if it repeats its condition word for word.
_KPI_KINDS = text(KPI_EVENT_KINDS_SQL)
Index(
    "ix_events_kpi",
    events.c.organisation_id,
    events.c.kind,
    events.c.at,
    sqlite_where=_KPI_KINDS,
    postgresql_where=_KPI_KINDS,
)
Index("ix_calls_kpi", calls.c.organisation_id, calls.c.received_at)
Index("ix_outbox_kpi", outbox.c.organisation_id, outbox.c.sent_at)

ALERT_PURPOSES = (str(MessagePurpose.REFERRAL_ALERT), str(MessagePurpose.LONE_WORKER_ALERT))
"""Messages that pass a service request to on-call duty staff (11.6.5, 11.7.3e)."""

BUCKETS = (20, 60)
"""11.6.4's boundaries: within 20 s, 20 to 60 s, over 60 s (a wait of exactly 20 s is
"within 20")."""


def seconds_between(conn: Connection, later: Any, earlier: Any) -> ColumnElement[float]:
    """``later - earlier`` in seconds, in SQL, on SQLite and PostgreSQL."""
    if conn.dialect.name == "sqlite":
        return cast((func.julianday(later) - func.julianday(earlier)) * 86400.0, Float)
    return cast(func.extract("epoch", later - earlier), Float)


def _json_text(conn: Connection, column: Any, key: str) -> ColumnElement[str]:
    if conn.dialect.name == "sqlite":
        return func.json_extract(column, f"$.{key}")
    return literal_column(f"(CAST({column.table.name}.{column.name} AS json) ->> '{key}')")


# ---------------------------------------------------------------------------------------------
# Telephony: offered, answered, in SLA, abandoned, waits, handling (6.2-6.3, 11.6, 11.7.3a-c)
# ---------------------------------------------------------------------------------------------

_SUMS = (
    "offered",
    "answered",
    "in_sla",
    "within_upper",
    "abandoned",
    "answered_within_20",
    "answered_20_60",
    "answered_over_60",
    "abandoned_within_20",
    "abandoned_20_60",
    "abandoned_over_60",
    "wait_total",
    "talk_total",
    "wrap_total",
    "outbound_seconds",
    "outbound_calls",
)


_FLOAT_SUMS = frozenset({"wait_total", "wait_max", "talk_total", "wrap_total", "outbound_seconds"})


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """The telephony KPIs of one group of CDRs (its ``key`` names the group).

    Percentages are of calls offered, as Appendix 2's "Call and SLA Summary" gives them:
    % answered = answered / offered; % in SLA = answered within the target / offered (6.2a:
    "80% of all calls received"); % abandoned = abandoned / offered.
    """

    key: Mapping[str, Any]
    target: ServiceLevelTarget | None
    offered: int = 0
    answered: int = 0
    in_sla: int = 0
    within_upper: int = 0
    abandoned: int = 0
    answered_within_20: int = 0
    answered_20_60: int = 0
    answered_over_60: int = 0
    abandoned_within_20: int = 0
    abandoned_20_60: int = 0
    abandoned_over_60: int = 0
    wait_total: float = 0.0
    wait_max: float = 0.0
    talk_total: float = 0.0
    wrap_total: float = 0.0
    outbound_seconds: float = 0.0
    outbound_calls: int = 0

    @property
    def out_sla(self) -> int:
        return self.answered - self.in_sla

    @property
    def pct_answered(self) -> float | None:
        return _ratio(self.answered, self.offered)

    @property
    def pct_in_sla(self) -> float | None:
        return _ratio(self.in_sla, self.offered)

    @property
    def pct_abandoned(self) -> float | None:
        return _ratio(self.abandoned, self.offered)

    @property
    def avg_wait(self) -> float | None:
        """Average queue time of the calls offered (answered or abandoned)."""
        return _ratio(self.wait_total, self.offered)

    @property
    def avg_talk(self) -> float | None:
        return _ratio(self.talk_total, self.answered)

    @property
    def avg_wrap(self) -> float | None:
        return _ratio(self.wrap_total, self.answered)

    @property
    def avg_handling(self) -> float | None:
        """Talk + after-call work + outbound calls, per answered call (11.7.3c)."""
        return _ratio(self.talk_total + self.wrap_total + self.outbound_seconds, self.answered)

    @property
    def avg_outbound(self) -> float | None:
        """Average duration of a call made to on-call staff (11.7.3e)."""
        return _ratio(self.outbound_seconds, self.outbound_calls)

    @property
    def meets_service_level(self) -> bool | None:
        """In SLA share at or above the target (6.2a, 6.3a); None with no target or no call."""
        if self.target is None or not self.offered:
            return None
        return self.in_sla >= self.target.share * self.offered - 1e-9

    @property
    def meets_all_within(self) -> bool | None:
        """Every answered call within the upper time ("the remaining 20%", 2.1.2)."""
        if self.target is None or self.target.all_within_seconds is None or not self.offered:
            return None
        return self.within_upper == self.answered

    @property
    def meets_abandoned(self) -> bool | None:
        """Abandoned share under the limit (6.2b, 6.3b)."""
        if self.target is None or self.target.abandoned_below is None or not self.offered:
            return None
        return self.abandoned < self.target.abandoned_below * self.offered

    @property
    def passes(self) -> bool | None:
        judged = [
            v
            for v in (self.meets_service_level, self.meets_all_within, self.meets_abandoned)
            if v is not None
        ]
        return all(judged) if judged else None

    def merged(self, other: QueueFigures, key: Mapping[str, Any]) -> QueueFigures:
        """The figures of both groups together (one target only when both share it)."""
        values: dict[str, Any] = {n: getattr(self, n) + getattr(other, n) for n in _SUMS}
        values["wait_max"] = max(self.wait_max, other.wait_max)
        target = self.target if self.target == other.target else None
        return QueueFigures(key=key, target=target, **values)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = dict(self.key)
        for f in fields(self):
            if f.name not in ("key", "target"):
                row[f.name] = getattr(self, f.name)
        for name in (
            "out_sla",
            "pct_answered",
            "pct_in_sla",
            "pct_abandoned",
            "avg_wait",
            "avg_talk",
            "avg_wrap",
            "avg_handling",
            "avg_outbound",
            "meets_service_level",
            "meets_all_within",
            "meets_abandoned",
            "passes",
        ):
            row[name] = getattr(self, name)
        if self.target is not None:
            row["target_seconds"] = self.target.within_seconds
            row["target_share"] = self.target.share
            row["target_abandoned"] = self.target.abandoned_below
        return row


def total(figures: Iterable[QueueFigures], key: Mapping[str, Any] | None = None) -> QueueFigures:
    """All the groups' figures added up."""
    items = list(figures)
    if not items:
        return QueueFigures(key=dict(key or {}), target=None)
    result = items[0]
    for item in items[1:]:
        result = result.merged(item, result.key)
    return QueueFigures(
        key=dict(key or {}),
        target=result.target,
        **{
            f.name: getattr(result, f.name)
            for f in fields(result)
            if f.name not in ("key", "target")
        },
    )


def _threshold_case(
    organisation_id: str, targets: Targets, options: Sequence[str], *, upper: bool
) -> ColumnElement[float]:
    """The target time of each CDR's (option, standard), as one SQL CASE."""

    def pick(t: ServiceLevelTarget) -> float:
        if upper:
            return t.all_within_seconds if t.all_within_seconds is not None else t.within_seconds
        return t.within_seconds

    standards = ("platinum", "gold", "silver", "bronze")
    whens: list[tuple[ColumnElement[bool], float]] = []
    for option in options:
        for std in standards:
            value = pick(targets.for_call(organisation_id, option, std))
            default = pick(targets.for_call(organisation_id, None, std))
            if value != default:
                whens.append((and_(cdrs.c.service_option == option, cdrs.c.standard == std), value))
    for std in standards:
        whens.append((cdrs.c.standard == std, pick(targets.for_call(organisation_id, None, std))))
    return case(*whens, else_=literal(pick(targets.for_call(organisation_id, None, "silver"))))


TELEPHONY_KEYS = ("service_option", "queue", "standard", "local_day", "local_hour")


def telephony(
    conn: Connection,
    organisation_id: str,
    period: Period,
    targets: Targets,
    *,
    by: Sequence[str] = ("service_option", "queue", "standard"),
    options: Sequence[str] = (),
) -> list[QueueFigures]:
    """The telephony KPIs grouped ``by`` any of :data:`TELEPHONY_KEYS` (6.2, 11.6, 11.7.1-3).

    ``options``: the organisation's service option ids, so that an option's own target
    (a targets file) is applied to its calls.
    """
    for name in by:
        if name not in TELEPHONY_KEYS:
            raise ValueError(f"cannot group CDRs by {name!r}; use {', '.join(TELEPHONY_KEYS)}")
    c = cdrs.c
    answered = c.answered_at.is_not(None)
    abandoned = c.abandoned_at.is_not(None)
    wait = c.wait_seconds
    low, high = BUCKETS

    def count(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    threshold = _threshold_case(organisation_id, targets, options, upper=False)
    upper = _threshold_case(organisation_id, targets, options, upper=True)
    group = [c[name] for name in by]
    query = (
        select(
            *group,
            func.count().label("offered"),
            count(answered).label("answered"),
            count(and_(answered, wait <= threshold)).label("in_sla"),
            count(and_(answered, wait <= upper)).label("within_upper"),
            count(abandoned).label("abandoned"),
            count(and_(answered, wait <= low)).label("answered_within_20"),
            count(and_(answered, wait > low, wait <= high)).label("answered_20_60"),
            count(and_(answered, wait > high)).label("answered_over_60"),
            count(and_(abandoned, wait <= low)).label("abandoned_within_20"),
            count(and_(abandoned, wait > low, wait <= high)).label("abandoned_20_60"),
            count(and_(abandoned, wait > high)).label("abandoned_over_60"),
            func.coalesce(func.sum(wait), 0).label("wait_total"),
            func.coalesce(func.max(wait), 0).label("wait_max"),
            func.coalesce(func.sum(c.talk_seconds), 0).label("talk_total"),
            func.coalesce(func.sum(c.wrap_seconds), 0).label("wrap_total"),
            func.coalesce(func.sum(c.outbound_seconds), 0).label("outbound_seconds"),
            func.coalesce(func.sum(c.outbound_calls), 0).label("outbound_calls"),
        )
        .where(
            c.organisation_id == organisation_id,
            c.local_day >= period.first,
            c.local_day < period.after,
        )
        .group_by(*group)
        .order_by(*group)
    )
    result: list[QueueFigures] = []
    for row in conn.execute(query):
        m = row._mapping
        key = {name: m[name] for name in by}
        if "standard" in key and key["standard"] is None:
            key["standard"] = UNASSIGNED
        target = None
        if "standard" in by:
            std = key["standard"]
            option = key.get("service_option")
            target = None if std == UNASSIGNED else targets.for_call(organisation_id, option, std)
        values: dict[str, Any] = {
            n: (float(m[n]) if n in _FLOAT_SUMS else int(m[n])) for n in (*_SUMS, "wait_max")
        }
        result.append(QueueFigures(key=key, target=target, **values))
    return result


# ---------------------------------------------------------------------------------------------
# Pass-on times of referrals (6.4b, 11.7.3g-h)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassOnFigures:
    """The engine's pass-on verdicts (6.4b) of one option's referrals whose deadline was judged.

    ``passed_on`` counts referrals passed on (within the limit or not); ``late`` those of them
    passed on after the limit, so ``late <= passed_on`` always; ``not_passed_on`` those nobody
    had been passed by the deadline. Times are from the end of the call to the pass-on, never
    below zero: a referral sent while the caller was still on the line was passed on in 0 s.
    """

    service_option: str | None
    passed_on: int
    avg_seconds: float | None
    max_seconds: float | None
    late: int
    not_passed_on: int = 0

    @property
    def passes(self) -> bool | None:
        if not self.passed_on and not self.not_passed_on:
            return None
        return self.late == 0 and self.not_passed_on == 0


@dataclass(frozen=True, slots=True)
class LatePassOn:
    reference: str
    service_option: str | None
    call_ended_at: datetime
    dispatched_at: datetime | None
    seconds: float | None  # None: not passed on at all
    limit_seconds: int
    reason: str | None


def _pass_on_base(conn: Connection, organisation_id: str, period: Period, timezone: str) -> Any:
    """The referrals whose pass-on the engine has judged (``call_ended_at`` is written with the
    verdict, engine/steps.py ``_deadline``), by the end of their call in the period."""
    start, end = period.utc_bounds(timezone)
    r = referrals.c
    return and_(
        r.organisation_id == organisation_id,
        r.kind == "refer",
        r.call_ended_at.is_not(None),
        r.call_ended_at >= start,
        r.call_ended_at < end,
    )


def _pass_on_terms(conn: Connection) -> tuple[Any, Any, Any, Any]:
    """(passed on, seconds taken, passed on late, not passed on), as the engine judges 6.4b:
    from the end of the call to the first alert delivered (or the officer's acknowledgement),
    at least 0 s; late when after the deadline (the end of the call plus the limit)."""
    r = referrals.c
    dispatched = r.dispatched_at.is_not(None)
    raw = seconds_between(conn, r.dispatched_at, r.call_ended_at)
    took = case((raw < 0, literal(0.0)), else_=raw)
    late = and_(dispatched, r.dispatched_at > r.deadline_at)
    return dispatched, took, late, ~dispatched


def pass_on_times(
    conn: Connection, organisation_id: str, period: Period, timezone: str
) -> list[PassOnFigures]:
    """Count, average and longest time to pass on a referral, per option (11.7.3g)."""
    r = referrals.c
    dispatched, took, late, never = _pass_on_terms(conn)
    query = (
        select(
            calls.c.service_option,
            func.sum(case((dispatched, 1), else_=0)).label("passed_on"),
            func.avg(case((dispatched, took), else_=null())).label("avg_seconds"),
            func.max(case((dispatched, took), else_=null())).label("max_seconds"),
            func.sum(case((late, 1), else_=0)).label("late"),
            func.sum(case((never, 1), else_=0)).label("not_passed_on"),
        )
        .select_from(referrals.join(calls, calls.c.id == r.call_id))
        .where(_pass_on_base(conn, organisation_id, period, timezone))
        .group_by(calls.c.service_option)
        .order_by(calls.c.service_option)
    )
    return [
        PassOnFigures(
            row.service_option,
            int(row.passed_on or 0),
            float(row.avg_seconds) if row.avg_seconds is not None else None,
            float(row.max_seconds) if row.max_seconds is not None else None,
            int(row.late or 0),
            int(row.not_passed_on or 0),
        )
        for row in conn.execute(query)
    ]


def late_pass_ons(
    conn: Connection, organisation_id: str, period: Period, timezone: str, *, now: datetime
) -> list[LatePassOn]:
    """Every referral passed on after its limit, or not at all by its deadline, with the
    reason recorded (11.7.3g's separate list, 11.7.3h): the same verdicts as
    :func:`pass_on_times` counts. ``now`` is kept for callers; a verdict is only recorded
    once its deadline has passed."""
    r = referrals.c
    _, took, late, never = _pass_on_terms(conn)
    query = (
        select(
            calls.c.reference,
            calls.c.service_option,
            r.call_ended_at,
            r.dispatched_at,
            took.label("took"),
            r.limit_seconds,
            r.late_reason,
        )
        .select_from(referrals.join(calls, calls.c.id == r.call_id))
        .where(_pass_on_base(conn, organisation_id, period, timezone), or_(late, never))
        .order_by(r.call_ended_at, calls.c.reference)
    )
    return [
        LatePassOn(
            row.reference,
            row.service_option,
            row.call_ended_at,
            row.dispatched_at,
            float(row.took) if row.dispatched_at is not None else None,
            int(row.limit_seconds or 0),
            row.late_reason,
        )
        for row in conn.execute(query)
    ]


# ---------------------------------------------------------------------------------------------
# Outbound contacts to on-call staff, by channel (11.6.5, 11.7.3e)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundFigures:
    service_option: str | None
    channel: str
    local_hour: int | None
    sent: int
    failed: int


def _utc_hour(conn: Connection, column: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return func.substr(column, 1, 13)  # 'YYYY-MM-DD HH' of the stored UTC text
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")


def outbound_contacts(
    conn: Connection,
    organisation_id: str,
    period: Period,
    timezone: str,
    *,
    by_hour: bool = False,
) -> list[OutboundFigures]:
    """Messages sent to on-call duty staff, per option and channel (and local hour)."""
    start, end = period.utc_bounds(timezone)
    o = outbox.c
    when = func.coalesce(o.sent_at, o.failed_at)
    hour = _utc_hour(conn, when)
    group: list[Any] = [calls.c.service_option, o.channel]
    if by_hour:
        group.append(hour)
    query = (
        select(
            *group,
            func.sum(case((o.sent_at.is_not(None), 1), else_=0)).label("sent"),
            func.sum(case((o.sent_at.is_(None), 1), else_=0)).label("failed"),
        )
        .select_from(outbox.outerjoin(calls, calls.c.id == o.call_id))
        .where(
            o.organisation_id == organisation_id,
            o.purpose.in_(ALERT_PURPOSES),
            or_(
                and_(o.sent_at >= start, o.sent_at < end),
                and_(o.sent_at.is_(None), o.failed_at >= start, o.failed_at < end),
            ),
        )
        .group_by(*group)
    )
    zone = ZoneInfo(timezone)
    merged: dict[tuple[str | None, str, int | None], list[int]] = {}
    for row in conn.execute(query):
        local_hour = None
        if by_hour:
            utc = datetime.fromisoformat(f"{row[2]}:00:00+00:00")
            local_hour = utc.astimezone(zone).hour
        counts = merged.setdefault((row[0], row[1], local_hour), [0, 0])
        counts[0] += int(row.sent or 0)
        counts[1] += int(row.failed or 0)
    return [
        OutboundFigures(option, channel, hour_, sent, failed)
        for (option, channel, hour_), (sent, failed) in sorted(
            merged.items(), key=lambda kv: (kv[0][0] or "", kv[0][1], kv[0][2] or 0)
        )
    ]


# ---------------------------------------------------------------------------------------------
# E-mail auto-receipts (11.7.3i)
# ---------------------------------------------------------------------------------------------

EMAIL_CHANNEL_WORDS = ("email", "e-mail", "mail", "smtp")


@dataclass(frozen=True, slots=True)
class ReceiptException:
    reference: str | None
    channel: str
    sent_at: datetime | None
    problem: str


def receipt_exceptions(
    conn: Connection, organisation_id: str, period: Period, timezone: str
) -> tuple[int, list[ReceiptException]]:
    """E-mails to on-call staff in the period, and those with no acknowledgement or that
    failed (the summary and exception report of 11.7.3i)."""
    start, end = period.utc_bounds(timezone)
    o = outbox.c
    is_email = or_(*[func.lower(o.channel).contains(w) for w in EMAIL_CHANNEL_WORDS])
    acknowledged = (
        select(referrals.c.id)
        .where(referrals.c.call_id == o.call_id, referrals.c.acknowledged_at.is_not(None))
        .exists()
    )
    query = (
        select(
            o.reference, o.channel, o.sent_at, o.failed_at, o.last_error, acknowledged.label("ack")
        )
        .where(
            o.organisation_id == organisation_id,
            o.purpose.in_(ALERT_PURPOSES),
            is_email,
            o.created_at >= start,
            o.created_at < end,
        )
        .order_by(o.created_at)
    )
    total_ = 0
    exceptions: list[ReceiptException] = []
    for row in conn.execute(query):
        total_ += 1
        if row.sent_at is None and row.failed_at is not None:
            exceptions.append(
                ReceiptException(
                    row.reference, row.channel, None, f"not delivered: {row.last_error or 'failed'}"
                )
            )
        elif row.sent_at is not None and not row.ack:
            exceptions.append(
                ReceiptException(
                    row.reference, row.channel, row.sent_at, "sent; no acknowledgement received"
                )
            )
    return total_, exceptions


# ---------------------------------------------------------------------------------------------
# Out-of-scope categories (11.7.3f) and escalation failures (11.7.6)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutOfScopeFigures:
    service_option: str | None
    category: str
    calls: int
    share_of_option: float | None  # of the option's calls received in the period


def out_of_scope(
    conn: Connection, organisation_id: str, period: Period, timezone: str
) -> list[OutOfScopeFigures]:
    start, end = period.utc_bounds(timezone)
    e = events.c
    category = _json_text(conn, e.payload, "category")
    query = (
        select(calls.c.service_option, category.label("category"), func.count().label("n"))
        .select_from(events.outerjoin(calls, calls.c.id == e.call_id))
        .where(
            e.organisation_id == organisation_id,
            e.kind == str(EventKind.ACTION_OUT_OF_SCOPE),
            _KPI_KINDS,
            e.at >= start,
            e.at < end,
        )
        .group_by(calls.c.service_option, category)
    )
    per_option: dict[str | None, int] = dict(
        conn.execute(
            select(calls.c.service_option, func.count())
            .where(
                calls.c.organisation_id == organisation_id,
                calls.c.received_at >= start,
                calls.c.received_at < end,
            )
            .group_by(calls.c.service_option)
        ).all()
    )
    return sorted(
        (
            OutOfScopeFigures(
                row.service_option,
                str(row.category or "(none)"),
                int(row.n),
                _ratio(int(row.n), per_option.get(row.service_option, 0)),
            )
            for row in conn.execute(query)
        ),
        key=lambda f: (f.service_option or "", f.category),
    )


@dataclass(frozen=True, slots=True)
class EscalationFailure:
    at: datetime
    kind: str
    reference: str | None
    service_option: str | None
    detail: str


_DETAIL_KEYS = ("reason", "error", "role", "stage", "channel")


def escalation_failures(
    conn: Connection, organisation_id: str, period: Period, timezone: str
) -> list[EscalationFailure]:
    """No officer found, a referral nobody on the rota could take (its last resort alerted),
    or a message that failed for good (11.7.6, 6.4e)."""
    import json

    start, end = period.utc_bounds(timezone)
    e = events.c
    kinds = (
        str(EventKind.REFERRAL_NO_OFFICER),
        str(EventKind.MESSAGE_FAILED),
        str(EventKind.REFERRAL_UNTAKEN),  # nobody on the rota could take it (issue 7 defect 1)
    )
    query = (
        select(e.at, e.kind, e.payload, calls.c.reference, calls.c.service_option)
        .select_from(events.outerjoin(calls, calls.c.id == e.call_id))
        .where(e.organisation_id == organisation_id, e.kind.in_(kinds), _KPI_KINDS)
        .where(e.at >= start, e.at < end)
        .order_by(e.at, e.id)
    )
    failures = []
    for row in conn.execute(query):
        try:
            payload = json.loads(row.payload)
        except ValueError:
            payload = {}
        detail = "; ".join(
            f"{k}: {payload[k]}" for k in _DETAIL_KEYS if isinstance(payload, dict) and k in payload
        )
        failures.append(
            EscalationFailure(row.at, row.kind, row.reference, row.service_option, detail)
        )
    return failures


# ---------------------------------------------------------------------------------------------
# Unavailability (6.4a, 11.7.3d, 11.7.5)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnavailableFigures:
    service_option: str
    minutes: float
    incidents: int
    longest_minutes: float
    year_minutes: float  # the rolling total over the last year (11.7.5)
    year_incidents: int
    outages: tuple[Outage, ...] = field(default=())

    @property
    def passes(self) -> bool:
        return self.longest_minutes <= MAX_OUTAGE_MINUTES


def unavailability(
    conn: Connection, organisation_id: str, period: Period, timezone: str, options: Sequence[str]
) -> list[UnavailableFigures]:
    start, end = period.utc_bounds(timezone)
    year_start = end - timedelta(days=365)
    rows = outages_between(conn, organisation_id, min(start, year_start), end)
    result = []
    for option in options:
        mine = [o for o in rows if o.service_option in (None, option)]
        inside = [o for o in mine if o.minutes_within(start, end) > 0]
        year = [o for o in mine if o.minutes_within(year_start, end) > 0]
        result.append(
            UnavailableFigures(
                option,
                sum(o.minutes_within(start, end) for o in inside),
                len(inside),
                max((o.minutes_within(start, end) for o in inside), default=0.0),
                sum(o.minutes_within(year_start, end) for o in year),
                len(year),
                tuple(inside),
            )
        )
    return result


# ---------------------------------------------------------------------------------------------
# Volumes by standard, day and out of hours (11.7.2, 11.7.14, 11.10.2)
# ---------------------------------------------------------------------------------------------


def volumes_by_hours(
    conn: Connection, organisation_id: str, period: Period
) -> list[dict[str, Any]]:
    """Per standard and in-hours/out-of-hours: calls offered, answered, handling minutes and
    outbound calls (11.7.14 asks for daytime volumes and call-handling minutes too)."""
    c = cdrs.c
    in_hours = func.coalesce(calls.c.in_hours, 0)
    query = (
        select(
            c.standard,
            in_hours.label("in_hours"),
            func.count().label("offered"),
            func.sum(case((c.answered_at.is_not(None), 1), else_=0)).label("answered"),
            func.coalesce(func.sum(c.talk_seconds + c.wrap_seconds + c.outbound_seconds), 0).label(
                "handling_seconds"
            ),
            func.coalesce(func.sum(c.outbound_calls), 0).label("outbound_calls"),
        )
        .select_from(cdrs.outerjoin(calls, calls.c.id == c.call_id))
        .where(
            c.organisation_id == organisation_id,
            c.local_day >= period.first,
            c.local_day < period.after,
        )
        .group_by(c.standard, in_hours)
        .order_by(c.standard, in_hours)
    )
    return [
        {
            "standard": row.standard or UNASSIGNED,
            "daytime": bool(row.in_hours),
            "offered": int(row.offered),
            "answered": int(row.answered or 0),
            "handling_minutes": float(row.handling_seconds) / 60,
            "outbound_calls": int(row.outbound_calls),
        }
        for row in conn.execute(query)
    ]
