"""Call detail records in: the CSV format, all-or-nothing and idempotent imports, linking to
call records, and the local day and hour across clock changes (11.6.1, 6.2a)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from oohcore.cdr_csv import parse_cdr_csv, read_cdr_csv, write_cdr_csv
from oohcore.cli import main
from oohcore.telephony import (
    CdrError,
    CdrRecord,
    cdrs,
    cdrs_from_calls,
    import_cdrs,
)
from test_kpi_support import (
    NOISE_NUMBER,
    REPAIRS_NUMBER,
    cdr,
    insert_call,
    open_store,
    org_a,
    utc,
)

HEADER = "cdr_id,queue,offered_at,answered_at,abandoned_at,talk_seconds,wrap_seconds\n"


def _count(store: object) -> int:
    with store.read() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(cdrs)).scalar_one())


def test_a_good_file_round_trips_through_the_documented_format(tmp_path: Path) -> None:
    records = [
        cdr("a1", utc(2026, 10, 3, 21, 0), wait=12, talk=180, wrap=20),
        cdr("a2", utc(2026, 10, 3, 21, 5), wait=41, answered=False, queue=NOISE_NUMBER),
    ]
    path = write_cdr_csv(records, tmp_path / "cdrs.csv")
    assert read_cdr_csv(path) == records


def test_bad_rows_are_reported_with_their_line_and_column_and_nothing_is_imported(
    tmp_path: Path,
) -> None:
    text = (
        HEADER
        + "ok-1,q,2026-10-03T21:00:00+01:00,2026-10-03T21:00:10+01:00,,100,10\n"
        + "bad-2,q,yesterday,,,0,0\n"  # line 3: not a time
        + "bad-3,q,2026-10-03T21:00:00,,,0,0\n"  # line 4: no offset
        + "bad-4,q,2026-10-03T21:00:00Z,2026-10-03T20:59:00Z,,0,0\n"  # line 5: answered first
        + "ok-1,q,2026-10-03T21:01:00Z,,2026-10-03T21:01:30Z,0,0\n"  # line 6: repeated id
        + "bad-6,q,2026-10-03T21:00:00Z,,,-5,0\n"  # line 7: negative talk
    )
    path = tmp_path / "bad.csv"
    path.write_text(text)
    store = open_store(tmp_path)
    with pytest.raises(CdrError) as caught:
        read_cdr_csv(path)
    where = {(p.line, p.col) for p in caught.value.problems}
    assert (3, 3) in where  # offered_at is the third column
    assert (4, 3) in where
    assert (5, 4) in where
    assert (6, 1) in where
    assert (7, 6) in where
    messages = "\n".join(str(p) for p in caught.value.problems)
    assert f"{path}:3:3: offered_at: 'yesterday' is not an ISO 8601 time" in messages
    assert "has no time zone; write it with its offset" in messages
    assert "is also on line 2" in messages
    assert _count(store) == 0
    # the command line says the same and exits 1, changing nothing
    code = main(
        [
            "cdr",
            "import",
            str(Path(__file__).parent / "fixtures/engine/org-a"),
            str(path),
            "--store",
            f"sqlite:///{tmp_path / 'kpi.sqlite'}",
        ]
    )
    assert code == 1
    assert _count(store) == 0


def test_unknown_and_missing_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(CdrError) as caught:
        parse_cdr_csv("cdr_id,queue,offerd_at\nx,q,2026-10-03T21:00:00Z\n", "f.csv")
    text = str(caught.value)
    assert "f.csv:1:3: unknown column 'offerd_at'" in text
    assert "no 'offered_at' column" in text


def test_importing_the_same_file_twice_counts_once(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    records = [cdr(f"c{n}", utc(2026, 10, 3, 20, n), wait=5) for n in range(10)]
    first = import_cdrs(store, org_a(), records)
    assert (first.inserted, first.already_present) == (10, 0)
    again = import_cdrs(store, org_a(), [*records, cdr("c10", utc(2026, 10, 3, 21, 0), wait=5)])
    assert (again.inserted, again.already_present) == (1, 10)
    assert _count(store) == 11


def test_a_bad_record_through_the_api_stops_the_whole_import(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    good = cdr("g", utc(2026, 10, 3, 20, 0), wait=5)
    bad = CdrRecord("b", "q", utc(2026, 10, 3, 20, 0), answered_at=utc(2026, 10, 3, 19, 0))
    with pytest.raises(CdrError, match="<api>:2:0: answered_at: is before offered_at"):
        import_cdrs(store, org_a(), [good, bad])
    assert _count(store) == 0


def test_records_link_to_calls_by_reference_then_by_number_and_time(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    t = utc(2026, 10, 3, 21, 0)
    with store.transaction() as conn:
        by_ref = insert_call(
            conn, reference="A-1", option="noise", received_at=t, access_number=NOISE_NUMBER
        )
        by_num = insert_call(
            conn,
            reference="A-2",
            option="repairs",
            received_at=t + timedelta(minutes=10),
            caller_number="07700 900999",
        )
        insert_call(
            conn,
            reference="A-3",
            option="repairs",
            received_at=t + timedelta(hours=2),
            caller_number="07700 900555",
        )
    records = [
        # the network knew the reference (e.g. keyed in at the IVR); its queue says nothing
        cdr("r1", t + timedelta(seconds=3), wait=5, queue="overflow", reference="A-1"),
        # number and time, 40 s apart on the two clocks
        cdr("r2", t + timedelta(minutes=10, seconds=40), wait=5, caller="+44 7700 900999"),
        # same caller as A-3 but an hour away: no link; the option comes from the number
        cdr("r3", t + timedelta(hours=1), wait=5, caller="07700 900555"),
        # an IVR number with no link: the option cannot be established (11.7.3a)
        cdr("r4", t, wait=5, queue="0100 000 0001", answered=False),
    ]
    result = import_cdrs(store, org_a(), records)
    assert result.linked == 2
    with store.read() as conn:
        rows = {
            r.cdr_id: r
            for r in conn.execute(
                select(cdrs.c.cdr_id, cdrs.c.call_id, cdrs.c.service_option, cdrs.c.standard)
            )
        }
    assert (rows["r1"].call_id, rows["r1"].service_option, rows["r1"].standard) == (
        by_ref,
        "noise",
        "silver",
    )
    assert (rows["r2"].call_id, rows["r2"].service_option, rows["r2"].standard) == (
        by_num,
        "repairs",
        "gold",
    )
    assert (rows["r3"].call_id, rows["r3"].service_option) == (None, "repairs")
    assert (rows["r4"].service_option, rows["r4"].standard) == (None, None)


@pytest.mark.parametrize(
    ("offered", "day", "hour"),
    [
        # spring forward, Sunday 29 March 2026: 01:00 GMT becomes 02:00 BST
        (utc(2026, 3, 29, 0, 30), date(2026, 3, 29), 0),
        (utc(2026, 3, 29, 1, 30), date(2026, 3, 29), 2),
        (utc(2026, 3, 29, 23, 30), date(2026, 3, 30), 0),
        # fall back, Sunday 25 October 2026: 01:00-02:00 happens twice
        (utc(2026, 10, 25, 0, 30), date(2026, 10, 25), 1),
        (utc(2026, 10, 25, 1, 30), date(2026, 10, 25), 1),
        (utc(2026, 10, 24, 23, 30), date(2026, 10, 25), 0),
        (utc(2026, 10, 25, 23, 30), date(2026, 10, 25), 23),
    ],
)
def test_the_local_day_and_hour_follow_the_london_clock(
    tmp_path: Path, offered: object, day: date, hour: int
) -> None:
    store = open_store(tmp_path)
    import_cdrs(store, org_a(), [cdr("x", offered, wait=5)])  # type: ignore[arg-type]
    with store.read() as conn:
        row = conn.execute(select(cdrs.c.local_day, cdrs.c.local_hour)).one()
    assert (row.local_day, row.local_hour) == (day, hour)


def test_the_simulation_writes_cdrs_from_the_calls(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    t = utc(2026, 10, 3, 21, 0)
    with store.transaction() as conn:
        insert_call(
            conn,
            reference="A-7",
            option="repairs",
            received_at=t,
            answered_at=t + timedelta(seconds=17),
        )
        insert_call(
            conn,
            reference="A-8",
            option="noise",
            received_at=t,
            answered_at=None,
            access_number=NOISE_NUMBER,
        )
    with store.read() as conn:
        records = cdrs_from_calls(conn, "org-a", wrap_seconds=45)
    by_ref = {r.reference: r for r in records}
    assert by_ref["A-7"].wait_seconds == 17
    assert by_ref["A-7"].wrap_seconds == 45
    assert by_ref["A-8"].answered_at is None
    result = import_cdrs(store, org_a(), records)
    assert (result.inserted, result.linked) == (2, 2)
    assert REPAIRS_NUMBER in {r.queue for r in records}
