"""The reports: every kind builds; xlsx opens with openpyxl and holds native charts; the HTML
renders in headless Chromium (a real browser, not blank); the daily summary goes through the
outbox once; the invoice tallies with the monthly report; the command line writes files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from chromium_support import assert_renders
from oohcore.cdr_csv import write_cdr_csv
from oohcore.cli import main
from oohcore.durable.outbox import outbox
from oohcore.reports import (
    KINDS,
    ReportError,
    build_report,
    enqueue_daily_summary,
    evening_reports,
    write_report,
)
from oohcore.store import Store
from oohcore.telephony import import_cdrs
from test_kpi_support import (
    FIXTURES,
    NOISE_NUMBER,
    cdr,
    insert_call,
    insert_message,
    insert_referral,
    kpi_store,
    open_store,
    org_a,
    utc,
)


def _fill(store: Store) -> None:
    """A week around the late summer bank holiday (Monday 31 August 2026) and some of October."""
    records = []
    for day in range(7):
        start = utc(2026, 8, 31, 18, 0) + timedelta(days=day)
        for n in range(20 + (30 if day == 0 else 0)):  # the bank holiday is busier
            records.append(
                cdr(
                    f"w{day}-{n}",
                    start + timedelta(minutes=3 * n),
                    wait=5 + n % 40,
                    answered=n % 9 != 0,
                    queue=NOISE_NUMBER if n % 3 else "0100 000 0002",
                    talk=200,
                    wrap=30,
                    outbound_calls=n % 2,
                    outbound_seconds=60 * (n % 2),
                )
            )
    for n in range(60):
        records.append(
            cdr(
                f"o{n}",
                utc(2026, 10, 2, 17, 0) + timedelta(hours=n),
                wait=n % 50,
                talk=150,
                wrap=20,
            )
        )
    import_cdrs(store, org_a(), records)
    t = utc(2026, 10, 2, 21, 0)
    with store.transaction() as conn:
        call = insert_call(
            conn,
            reference="A-1",
            option="repairs",
            received_at=t,
            answered_at=t + timedelta(seconds=4),
        )
        insert_referral(
            conn, call_id=call, call_ended_at=t, dispatched_after=700, late_reason="handler delayed"
        )
        insert_message(conn, call_id=call, channel="sms", at=t + timedelta(seconds=700))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every report is built from the same rows on both stores (the KPI SQL runs on each)."""
    with kpi_store(request.param, tmp_path) as s:
        _fill(s)
        yield s


def test_every_kind_builds_and_the_weekly_report_marks_the_bank_holiday(store: Store) -> None:
    periods = {
        "daily": "2026-08-31",
        "weekly": "2026-W36",
        "monthly": "2026-10",
        "annual": "2026",
        "comparison": "2026",
        "volumes": "2026-10",
        "invoice": "2026-10",
        "staffing": "2026-W36",
    }
    assert set(periods) == set(KINDS)
    for kind, period in periods.items():
        report = build_report(store, org_a(), kind, period)
        assert report.tables, kind
    week = build_report(store, org_a(), "weekly", "2026-W36")
    days = {}
    for row in week.table("by_day").rows:
        days.setdefault(row["local_day"], [row["day_type"], 0])[1] += row["offered"]
    assert days[date(2026, 8, 31)] == ["bank holiday", 50]
    assert days[date(2026, 9, 5)] == ["weekend", 20]
    assert days[date(2026, 9, 1)] == ["weekday", 20]
    assert sum(r["offered"] for r in week.table("week").rows) == 50 + 6 * 20
    hours = week.table("by_hour").rows
    assert sum(r["offered"] for r in hours) == 170


def test_the_invoice_tallies_with_the_monthly_report(store: Store) -> None:
    monthly = build_report(store, org_a(), "monthly", "2026-10")
    invoice = build_report(store, org_a(), "invoice", "2026-10")
    calls = sum(r["volume"] for r in invoice.table("invoice").rows if r["unit"].endswith(" call"))
    assert calls == monthly.table("sla_by_option").total["answered"] == 60  # type: ignore[index]
    assert [r["reference"] for r in monthly.table("late_pass_ons").rows] == ["A-1"]


def test_a_period_of_the_wrong_length_is_refused(store: Store) -> None:
    with pytest.raises(ReportError, match="a monthly report covers a month"):
        build_report(store, org_a(), "monthly", "2026-W36")


def test_the_xlsx_opens_with_openpyxl_and_holds_its_charts(store: Store, tmp_path: Path) -> None:
    import openpyxl

    report = build_report(store, org_a(), "monthly", "2026-10")
    path = write_report(report, tmp_path / "october.xlsx")
    book = openpyxl.load_workbook(path)
    charts = sum(len(ws._charts) for ws in book.worksheets)
    assert charts >= 2 * 3  # each chart beside its table and on the summary
    [name] = [n for n in book.sheetnames if n.startswith("Call and SLA summary by service")]
    sheet = book[name]
    header = [c.value for c in sheet[3]]
    pct = sheet.cell(row=4, column=header.index("% Ans within SLA") + 1)
    assert pct.number_format == "0.00%" and isinstance(pct.value, float)
    wait = sheet.cell(row=4, column=header.index("Max wait") + 1)
    assert wait.number_format == "[h]:mm:ss"
    assert wait.value == timedelta(seconds=49)  # the longest wait in October


def test_the_csv_holds_every_table(store: Store, tmp_path: Path) -> None:
    report = build_report(store, org_a(), "monthly", "2026-10")
    text = write_report(report, tmp_path / "october.csv").read_text()
    for table in report.tables:
        assert table.title in text
    # 60 calls waiting 0-49 s: 31 within Gold's 20 s; average 21 s, longest 49 s
    assert "\nTotal,,60,31,29,60,100.00%,51.67%,0.00%,00:00:21,00:00:49," in text


def test_the_html_report_renders_in_headless_chromium(store: Store, tmp_path: Path) -> None:
    report = build_report(store, org_a(), "monthly", "2026-10")
    page = write_report(report, tmp_path / "october.html")
    html = page.read_text()
    assert "<svg" in html and "Service level by hour of day" in html and "FAIL" in html
    assert_renders(page, tmp_path)


def test_the_daily_summary_goes_through_the_outbox_once(store: Store) -> None:
    day = date(2026, 8, 31)
    assert enqueue_daily_summary(store, org_a(), day, channel="sms", recipient="07700900001")
    assert not enqueue_daily_summary(store, org_a(), day, channel="sms", recipient="07700900001")
    with store.read() as conn:
        [row] = conn.execute(
            select(outbox.c.body, outbox.c.purpose, outbox.c.due_at).where(
                outbox.c.purpose == "report"
            )
        ).all()
    assert row.purpose == "report"
    assert row.due_at == utc(2026, 9, 1, 6, 0)  # 07:00 BST, before 10 a.m. (11.5.1)
    assert "Gold 17 received, 11 answered" in row.body
    assert "Silver 33 received" in row.body
    assert "Total 50 received" in row.body


def test_the_demo_evening_imports_prints_and_writes(tmp_path: Path) -> None:
    import io

    store = open_store(tmp_path)
    t = utc(2026, 10, 2, 18, 0)
    records = [cdr(f"e{n}", t + timedelta(minutes=n), wait=n) for n in range(30)]
    cdr_file = write_cdr_csv(records, tmp_path / "evening.csv")
    out = io.StringIO()
    result = evening_reports(store, org_a(), tmp_path / "reports", cdr_file=cdr_file, out=out)
    assert result.imported == 30
    assert "30 received" in out.getvalue()
    assert result.html.stat().st_size > 1000 and result.xlsx.stat().st_size > 1000


def test_the_report_command_writes_each_format(store: Store, tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    for fmt in ("xlsx", "csv", "html"):
        out = tmp_path / f"r.{fmt}"
        code = main(
            [
                "report",
                "org-a",
                "--rulesets",
                str(FIXTURES),
                "--period",
                "2026-10",
                "--kind",
                "monthly",
                "--format",
                fmt,
                "--store",
                url,
                "--out",
                str(out),
            ]
        )
        assert code == 0 and out.stat().st_size > 500
    assert (
        main(
            ["report", "org-z", "--rulesets", str(FIXTURES), "--period", "2026-10", "--store", url]
        )
        == 1
    )
    assert (
        main(
            ["report", "org-a", "--rulesets", str(FIXTURES), "--period", "October", "--store", url]
        )
        == 1
    )
