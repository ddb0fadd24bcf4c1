"""The KPIs: Appendix 2's telephony rows, periods on the London clock, targets per standard,
organisation and option, and the measures from referrals, messages, events and outages."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from oohcore.errors import RulesetError
from oohcore.kpi import (
    Period,
    PeriodError,
    Targets,
    load_targets,
    measures,
    telephony,
    total,
)
from oohcore.kpi.outages import record_outage
from oohcore.reports.model import Fmt, display
from oohcore.staffing import erlang_c, handlers_needed, service_level
from oohcore.telephony import CdrRecord, import_cdrs
from oohcore.vocabulary import EventKind
from plan_support import plan, statements
from test_kpi_support import (
    NOISE_NUMBER,
    cdr,
    insert_call,
    insert_event,
    insert_message,
    insert_referral,
    kpi_store,
    open_store,
    org_a,
    utc,
)

OPTIONS = ["lone-worker", "noise", "repairs"]


def _queue_row(
    start: datetime,
    queue: str,
    *,
    in_sla: int,
    out_sla: int,
    abandoned_under_20: int,
    abandoned_over_20: int,
    sla_wait: float,
    out_wait: float,
    max_wait: float,
) -> list[CdrRecord]:
    """CDRs whose totals are one row of Appendix 2's "Summary by Queue"."""
    records = []
    n = 0

    def add(wait: float, answered: bool) -> None:
        nonlocal n
        n += 1
        records.append(
            cdr(
                f"{queue}-{n}",
                start + timedelta(minutes=n),
                wait=wait,
                answered=answered,
                queue=queue,
                talk=240,
                wrap=8,
            )
        )

    for _ in range(in_sla):
        add(sla_wait, True)
    for _ in range(out_sla - 1):
        add(out_wait, True)
    add(max_wait, True)  # the longest wait of the row was answered out of SLA
    for _ in range(abandoned_under_20):
        add(7, False)
    for _ in range(abandoned_over_20):
        add(44, False)
    return records


@pytest.mark.parametrize(
    ("queue", "row", "percentages"),
    [
        # Appendix 2, RBKC "Summary by Queue": Plooh RBKC (a Gold queue)
        ("0100 000 0002", (300, 243, 46, 289, 3, 8, 11), ("96.33%", "81.00%", "3.67%", "00:07:32")),
        # Plooh RBKC - Noise (here a Silver queue, so its threshold is Silver's)
        ("0100 000 0003", (473, 429, 36, 465, 3, 5, 8), ("98.31%", "90.70%", "1.69%", "00:04:53")),
    ],
)
@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_cdrs_reproduce_a_queue_row_of_appendix_2(
    tmp_path: Path, queue: str, row: tuple[int, ...], percentages: tuple[str, ...], store_kind: str
) -> None:
    offered, in_sla, out_sla, answered, ab_under, ab_over, ab_total = row
    target = Targets().for_call("org-a", None, "gold" if queue.endswith("2") else "silver")
    max_wait = 7 * 60 + 32 if queue.endswith("2") else 4 * 60 + 53
    records = _queue_row(
        utc(2015, 6, 1, 18, 0),
        queue,
        in_sla=in_sla,
        out_sla=out_sla,
        abandoned_under_20=ab_under,
        abandoned_over_20=ab_over,
        sla_wait=target.within_seconds - 5,
        out_wait=target.within_seconds + 5,
        max_wait=max_wait,
    )
    with kpi_store(store_kind, tmp_path) as store:
        import_cdrs(store, org_a(), records)
        with store.read() as conn:
            [fig] = telephony(
                conn, "org-a", Period.year(2015), Targets(), by=("queue",), options=OPTIONS
            )
    assert (fig.offered, fig.in_sla, fig.out_sla, fig.answered) == (
        offered,
        in_sla,
        out_sla,
        answered,
    )
    assert fig.abandoned == ab_total
    assert fig.abandoned_within_20 == ab_under
    assert fig.abandoned_20_60 + fig.abandoned_over_60 == ab_over
    shown = (
        display(fig.pct_answered, Fmt.PERCENT),
        display(fig.pct_in_sla, Fmt.PERCENT),
        display(fig.pct_abandoned, Fmt.PERCENT),
        display(fig.wait_max, Fmt.DURATION),
    )
    assert shown == percentages
    assert display(fig.avg_talk, Fmt.DURATION) == "00:04:00"
    assert display(fig.avg_handling, Fmt.DURATION) == "00:04:08"


def test_service_level_pass_and_fail_per_option_not_as_an_average(tmp_path: Path) -> None:
    """6.2a: met per service option; a good option does not carry a bad one."""
    store = open_store(tmp_path)
    t = utc(2026, 10, 5, 19, 0)
    good = [cdr(f"g{n}", t + timedelta(minutes=n), wait=5) for n in range(90)]
    # noise is Silver (40 s by 2.1.2d): 6 of 10 in time, 60% < 80%
    bad = [
        cdr(f"b{n}", t + timedelta(minutes=n), wait=10 if n < 6 else 50, queue=NOISE_NUMBER)
        for n in range(10)
    ]
    import_cdrs(store, org_a(), good + bad)
    with store.read() as conn:
        figs = {
            f.key["service_option"]: f
            for f in telephony(
                conn,
                "org-a",
                Period.month(2026, 10),
                Targets(),
                by=("service_option", "standard"),
                options=OPTIONS,
            )
        }
        everything = total(figs.values())
    assert figs["repairs"].meets_service_level is True
    assert figs["noise"].meets_service_level is False
    assert figs["noise"].passes is False
    assert everything.pct_in_sla is not None and everything.pct_in_sla > 0.8  # the average hides it


def test_targets_per_organisation_option_and_standard(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "standards:\n"
        "  silver: {within_seconds: 60}        # 6.3a instead of 2.1.2d\n"
        "organisations:\n"
        "  org-a:\n"
        "    options:\n"
        "      noise: {within_seconds: 15, abandoned_below_percent: 2}\n"
    )
    targets = load_targets(path)
    assert targets.for_call("org-b", "noise", "silver").within_seconds == 60
    noise = targets.for_call("org-a", "noise", "silver")
    assert (noise.within_seconds, noise.abandoned_below, noise.share) == (15, 0.02, 0.8)
    assert targets.for_call("org-a", "repairs", "gold").within_seconds == 20
    store = open_store(tmp_path)
    t = utc(2026, 10, 5, 19, 0)
    import_cdrs(
        store,
        org_a(),
        [
            cdr("n1", t, wait=10, queue=NOISE_NUMBER),
            cdr("n2", t, wait=30, queue=NOISE_NUMBER),
            cdr("r1", t, wait=30),
        ],
    )
    with store.read() as conn:
        by_option = {
            f.key["service_option"]: f
            for f in telephony(
                conn,
                "org-a",
                Period.month(2026, 10),
                targets,
                by=("service_option", "standard"),
                options=OPTIONS,
            )
        }
        defaults = {
            f.key["service_option"]: f
            for f in telephony(
                conn,
                "org-a",
                Period.month(2026, 10),
                Targets(),
                by=("service_option", "standard"),
                options=OPTIONS,
            )
        }
    assert by_option["noise"].in_sla == 1  # 15 s for this option: only the 10 s call
    assert defaults["noise"].in_sla == 2  # Silver's 40 s
    assert by_option["repairs"].in_sla == 0  # Gold's 20 s: the 30 s call is late


def test_a_wrong_targets_file_is_located(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text("standards:\n  golden: {within_seconds: 20}\n  silver: {within: 60}\n")
    with pytest.raises(RulesetError) as caught:
        load_targets(path)
    text = "\n".join(str(p) for p in caught.value.problems)
    assert f"{path}:3:" in text and "within" in text and "within_seconds" in text


def test_periods_on_the_london_clock_across_both_2026_changes() -> None:
    assert Period.day(date(2026, 3, 29)).hours("Europe/London") == 23
    assert Period.day(date(2026, 10, 25)).hours("Europe/London") == 25
    assert Period.month(2026, 3).hours("Europe/London") == 31 * 24 - 1
    assert Period.month(2026, 10).hours("Europe/London") == 31 * 24 + 1
    start, end = Period.month(2026, 4).utc_bounds("Europe/London")
    assert (start, end) == (utc(2026, 3, 31, 23, 0), utc(2026, 4, 30, 23, 0))
    assert Period.parse("2026-W41") == Period.week(date(2026, 10, 5))
    assert Period.parse("2026-10").label == "2026-10"
    with pytest.raises(PeriodError, match="2026-W41"):
        Period.parse("Oct 2026")
    with pytest.raises(PeriodError, match=r"month must be in 1\.\.12"):
        Period.parse("2026-13")


def test_months_split_at_local_midnight_across_clock_changes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    import_cdrs(
        store,
        org_a(),
        [
            cdr("mar-end", utc(2026, 3, 31, 23, 30), wait=5),  # 00:30 BST on 1 April
            cdr("mar-last", utc(2026, 3, 31, 22, 30), wait=5),  # 23:30 BST on 31 March
            cdr("oct-end", utc(2026, 10, 31, 23, 30), wait=5),  # 23:30 GMT on 31 October
            cdr("sep-end", utc(2026, 9, 30, 23, 30), wait=5),  # 00:30 BST on 1 October
        ],
    )
    with store.read() as conn:

        def offered(p: Period) -> int:
            return total(telephony(conn, "org-a", p, Targets(), by=("standard",))).offered

        assert offered(Period.month(2026, 3)) == 1
        assert offered(Period.month(2026, 4)) == 1
        assert offered(Period.month(2026, 10)) == 2
        assert offered(Period.month(2026, 9)) == 0


def test_a_call_offered_before_midnight_and_answered_after_counts_on_its_day(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path)
    offered = utc(2026, 11, 13, 23, 59, 50)  # GMT: 23:59:50 on Friday 13 November
    import_cdrs(store, org_a(), [cdr("late", offered, wait=15)])  # answered 00:00:05
    with store.read() as conn:
        fri = telephony(
            conn, "org-a", Period.day(date(2026, 11, 13)), Targets(), by=("local_hour",)
        )
        sat = telephony(
            conn, "org-a", Period.day(date(2026, 11, 14)), Targets(), by=("local_hour",)
        )
    assert [(f.key["local_hour"], f.offered, f.in_sla) for f in fri] == [(23, 1, 1)]
    assert sat == []


def test_referrals_messages_events_and_outages(tmp_path: Path) -> None:
    store = open_store(tmp_path, now=utc(2026, 11, 2, 9, 0))
    period = Period.month(2026, 10)
    t = utc(2026, 10, 10, 22, 0)
    with store.transaction() as conn:
        calls = [
            insert_call(
                conn,
                reference=f"A-{n}",
                option="repairs",
                received_at=t,
                answered_at=t + timedelta(seconds=5),
            )
            for n in range(1, 5)
        ]
        noise = insert_call(
            conn,
            reference="A-9",
            option="noise",
            received_at=t,
            access_number=NOISE_NUMBER,
            answered_at=t,
        )
        insert_referral(conn, call_id=calls[0], call_ended_at=t, dispatched_after=120)
        insert_referral(conn, call_id=calls[1], call_ended_at=t, dispatched_after=300)
        insert_referral(
            conn,
            call_id=calls[2],
            call_ended_at=t,
            dispatched_after=900,
            late_reason="e-mail service down",
        )
        insert_referral(conn, call_id=calls[3], call_ended_at=t, dispatched_after=None)
        insert_message(conn, call_id=calls[0], channel="sms", at=t + timedelta(minutes=2))
        insert_message(conn, call_id=calls[1], channel="email", at=t + timedelta(minutes=5))
        insert_message(conn, call_id=calls[2], channel="email", at=t, sent=False, reference="A-3")
        insert_message(conn, call_id=calls[0], channel="sms", at=t, purpose="caller.sms")
        insert_event(
            conn,
            call_id=noise,
            kind=EventKind.ACTION_OUT_OF_SCOPE,
            at=t,
            payload={"category": "non-urgent-repair"},
        )
        insert_event(
            conn,
            call_id=calls[3],
            kind=EventKind.REFERRAL_NO_OFFICER,
            at=t,
            payload={"role": "repairs-duty"},
        )
        insert_event(
            conn,
            call_id=calls[2],
            kind=EventKind.MESSAGE_FAILED,
            at=t - timedelta(days=30),
            payload={"error": "last month"},
        )
        record_outage(
            conn,
            organisation_id="org-a",
            service_option="noise",
            started_at=utc(2026, 10, 31, 23, 40),
            ended_at=utc(2026, 11, 1, 0, 20),
            cause="carrier fault",
            at=t,
        )
        record_outage(
            conn,
            organisation_id="org-a",
            service_option=None,
            started_at=utc(2026, 10, 3, 2, 0),
            ended_at=utc(2026, 10, 3, 2, 45),
            cause="power",
            at=t,
        )
    with store.read() as conn:
        [pass_on] = measures.pass_on_times(conn, "org-a", period, "Europe/London")
        late = measures.late_pass_ons(conn, "org-a", period, "Europe/London", now=store.clock.now())
        outbound = measures.outbound_contacts(conn, "org-a", period, "Europe/London")
        emails, exceptions = measures.receipt_exceptions(conn, "org-a", period, "Europe/London")
        oos = measures.out_of_scope(conn, "org-a", period, "Europe/London")
        failures = measures.escalation_failures(conn, "org-a", period, "Europe/London")
        unavailable = {
            u.service_option: u
            for u in measures.unavailability(conn, "org-a", period, "Europe/London", OPTIONS)
        }
    # A-3 passed on over the limit; A-4 never passed on (not "over the limit" of a pass-on)
    assert (pass_on.service_option, pass_on.passed_on, pass_on.late) == ("repairs", 3, 1)
    assert pass_on.not_passed_on == 1
    assert pass_on.avg_seconds == pytest.approx(440, abs=0.01)
    assert pass_on.max_seconds == pytest.approx(900, abs=0.01)
    assert [(x.reference, x.reason, x.seconds) for x in late] == [
        ("A-3", "e-mail service down", pytest.approx(900, abs=0.01)),
        ("A-4", None, None),  # never passed on, its deadline long gone
    ]
    assert {(o.channel, o.sent, o.failed) for o in outbound} == {("sms", 1, 0), ("email", 1, 1)}
    assert emails == 2
    # the e-mail to A-2 was acknowledged; the one to A-3 never arrived
    assert [(e.reference, e.problem) for e in exceptions] == [
        ("A-3", "not delivered: mailbox unavailable")
    ]
    [category] = oos
    assert (category.service_option, category.category, category.calls) == (
        "noise",
        "non-urgent-repair",
        1,
    )
    assert category.share_of_option == 1.0
    assert [(f.kind, f.detail) for f in failures] == [("referral.no_officer", "role: repairs-duty")]
    # the carrier fault's 20 minutes in October, plus the 45-minute power cut for every option
    assert unavailable["noise"].minutes == pytest.approx(65)
    assert unavailable["noise"].passes is False  # 45 minutes > 6.4a's 30
    assert unavailable["repairs"].minutes == pytest.approx(45)
    assert unavailable["repairs"].incidents == 1


def _erlang_c_by_factorials(n: int, a: float) -> float:
    """Erlang C from its textbook definition, independently of the recursion."""
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


@pytest.mark.parametrize(("n", "a"), [(11, 10.0), (3, 2.5), (25, 20.0), (1, 0.5)])
def test_erlang_c_agrees_with_its_definition(n: int, a: float) -> None:
    assert erlang_c(n, a) == pytest.approx(_erlang_c_by_factorials(n, a), rel=1e-9)


def test_handlers_needed_is_the_fewest_that_meet_the_service_level() -> None:
    # 100 calls an hour of 180 s each: 5 Erlangs
    n = handlers_needed(100, 180, within=20, share=0.8)
    assert service_level(n, 100, 180, 20) >= 0.8
    assert service_level(n - 1, 100, 180, 20) < 0.8
    assert n == 8  # 5 Erlangs: 7 handlers answer 74% within 20 s, 8 answer 88%
    assert handlers_needed(0, 180, 20, 0.8) == 0
    assert erlang_c(5, 5.0) == 1.0


def test_the_event_kpi_queries_read_the_partial_index_and_its_kinds_match_the_migration(
    tmp_path: Path,
) -> None:
    """Issue 12: ``ix_events_kpi`` holds only the kinds the KPI queries look up (migration 0014),
    and a query uses a partial index only if it repeats the index's condition: the SQLite plan of
    each such query names the index, and every kind the queries ask for is in it."""
    import importlib
    from zoneinfo import ZoneInfo

    from oohcore.clock import ManualClock
    from oohcore.kpi import measures
    from oohcore.kpi.periods import Period
    from oohcore.store import Store

    LONDON_T0 = datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/London"))
    migration = importlib.import_module(
        "oohcore.store.migrations.versions.0014_fewer_index_pages_a_step"
    )
    assert migration.KPI_KINDS == measures.KPI_EVENT_KINDS_SQL
    store = Store.open(f"sqlite:///{tmp_path / 'k.sqlite'}", clock=ManualClock(LONDON_T0))
    period = Period.day(date(2026, 1, 1))
    with store.read() as conn, statements(store, "FROM events") as seen:
        measures.out_of_scope(conn, "org-a", period, "Europe/London")
        measures.escalation_failures(conn, "org-a", period, "Europe/London")
    assert len(seen) == 2
    with store.read() as conn:
        for sql, params in seen:
            assert "ix_events_kpi" in plan(conn, sql, params), sql
    store.close()
    # every kind the two queries ask for is one the index holds
    kinds = {str(k) for k in EventKind}
    asked = {p for _, params in seen for p in params if p in kinds}
    assert asked and asked <= set(measures.KPI_EVENT_KINDS), asked
