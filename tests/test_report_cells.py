"""What a spreadsheet reads in oohcore's CSV and xlsx files: no text cell is a formula (OWASP's
CSV-injection guidance: a leading ``= + - @``, tab or carriage return is neutralised with a
quote), text is written as text, and every number as a number."""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oohcore.cdr_csv import read_cdr_csv, write_cdr_csv
from oohcore.cells import FORMULA_TRIGGERS, cell_text, plain_text
from oohcore.reports import build_report, write_report
from oohcore.rota.exchange import read_csv, write_csv
from oohcore.rota.model import OnCallOfficer
from oohcore.rota.schedule import Layer, RoleSchedule, RotaData, Shift
from oohcore.telephony import CdrRecord, import_cdrs
from test_kpi_support import cdr, insert_call, insert_referral, open_store, org_a, utc

HOSTILE = "=cmd|' /C calc'!A0"
HOSTILES = (HOSTILE, "+1+cmd|'/C calc'!A0", "-2+3", "@SUM(1+1)*cmd|'/C calc'!A0", "\t=1", "\r=1")


def _report(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = open_store(tmp_path)
    records = [
        cdr(f"h{n}", utc(2026, 10, 2, 20, n), wait=5, queue=q) for n, q in enumerate(HOSTILES)
    ]
    records.append(cdr("plain", utc(2026, 10, 2, 21, 0), wait=5))
    import_cdrs(store, org_a(), records)
    t = utc(2026, 10, 2, 21, 0)
    with store.transaction() as conn:
        call = insert_call(conn, reference="A-1", option="repairs", received_at=t, answered_at=t)
        insert_referral(conn, call_id=call, call_ended_at=t, dispatched_after=60)
    report = build_report(store, org_a(), "monthly", "2026-10")
    store.close()
    return dataclasses.replace(report, organisation_name=HOSTILE)


def test_the_helper_neutralises_exactly_the_formula_triggers() -> None:
    for text in HOSTILES:
        assert cell_text(text) == "'" + text and plain_text(cell_text(text)) == text
    for text in ("Borough A", "0100 000 0002", "'quoted", ""):
        assert cell_text(text) == text == plain_text(text)


def test_no_csv_report_cell_is_a_formula(tmp_path: Path) -> None:
    report = _report(tmp_path)
    text = write_report(report, tmp_path / "r.csv").read_text(encoding="utf-8")
    cells = [cell for row in csv.reader(text.splitlines()) for cell in row]
    assert [c for c in cells if c.startswith(FORMULA_TRIGGERS)] == []
    assert "'" + HOSTILE in cells  # the queue name, shown as text
    assert any(c.startswith("'" + HOSTILE) for c in cells)  # the organisation's name


def test_no_xlsx_report_cell_is_a_formula_and_numbers_are_numbers(tmp_path: Path) -> None:
    import openpyxl

    report = _report(tmp_path)
    book = openpyxl.load_workbook(write_report(report, tmp_path / "r.xlsx"))
    texts: list[str] = []
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts.append(cell.value)
    assert [t for t in texts if t.startswith(FORMULA_TRIGGERS)] == []
    assert "'" + HOSTILE in texts
    summary = book["Summary"]
    assert summary["A2"].value.startswith("'" + HOSTILE)
    counts = {
        row[0].value: row[1].value
        for row in summary.iter_rows(min_row=4)
        if row[0].value in ("Referrals passed on late or not at all", "Escalation failures")
    }
    assert counts == {"Referrals passed on late or not at all": 0, "Escalation failures": 0}
    assert all(isinstance(v, int) for v in counts.values())
    # every cell of a numeric column holds a number
    [name] = [n for n in book.sheetnames if n.startswith("Time to pass on")]
    sheet = book[name]
    header = [c.value for c in sheet[3]]
    passed = sheet.cell(row=4, column=header.index("Passed on") + 1).value
    assert passed == 1 and isinstance(passed, int)


def test_the_cdr_file_neutralises_its_text_and_reads_back_as_written(tmp_path: Path) -> None:
    at = datetime(2026, 10, 2, 20, 0, tzinfo=UTC)
    records = [
        CdrRecord(
            cdr_id=f"c{n}",
            queue=q,
            offered_at=at + timedelta(minutes=n),
            caller_number="+447700900123",
        )
        for n, q in enumerate(HOSTILES[:4])
    ]
    path = write_cdr_csv(records, tmp_path / "cdrs.csv")
    cells = [c for row in csv.reader(path.read_text().splitlines()) for c in row]
    assert [c for c in cells if c.startswith(FORMULA_TRIGGERS)] == []
    assert [(r.queue, r.caller_number) for r in read_cdr_csv(path)] == [
        (q, "+447700900123") for q in HOSTILES[:4]
    ]


def test_the_rota_export_neutralises_its_text(tmp_path: Path) -> None:
    officer = OnCallOfficer("rita", HOSTILE, "07700 900001", "@rita@a.example", None, ("sms",))
    start = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    layer = Layer("csv", shifts=(Shift(start, start + timedelta(hours=12), "rita"),))
    data = RotaData({"rita": officer}, (RoleSchedule("duty", ((layer,),)),))
    text = write_csv(data, "duty", start, start + timedelta(hours=12), timezone="Europe/London")
    cells = [c for row in csv.reader(text.splitlines()) for c in row]
    assert [c for c in cells if c.startswith(FORMULA_TRIGGERS)] == []
    assert "'" + HOSTILE in cells
    back = read_csv(text, {"rita": officer}, timezone="Europe/London")
    assert [s.officer for s in back.shifts] == ["rita"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_plain_report_is_unchanged(tmp_path: Path, fmt: str) -> None:
    """Ordinary text starts with none of the triggers and is written as it is."""
    report = dataclasses.replace(_report(tmp_path), organisation_name="Borough A")
    path = write_report(report, tmp_path / f"r.{fmt}")
    if fmt == "csv":
        assert "Borough A — 2026-10" in path.read_text(encoding="utf-8").splitlines()[1]
