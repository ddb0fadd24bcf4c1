"""Benchmark: the monthly report (every KPI, one organisation, all its options) over a year of
calls at the specification's volume (350,000 across 11 organisations) and at ten times it.

Beside it, the peer: the same telephony figures computed by pandas from the same CDR rows,
already loaded into a DataFrame (loading is timed apart and not counted), so the ratio shows
whether the SQL aggregation does its job. Prints one JSON line per size:
``{"calls": N, "seconds": X, "pandas_seconds": Y, ...}``.

    .venv/bin/python bench/report.py            # 350,000 and 3,500,000 calls
    .venv/bin/python bench/report.py 100000     # one size
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from oohcore.clock import ManualClock
from oohcore.reports import build_report
from oohcore.rulesets.loader import load_organisation
from oohcore.store import Store

HERE = Path(__file__).resolve().parent
ORG_FOLDER = HERE.parent / "tests" / "fixtures" / "engine" / "org-a"
ORGS = ["org-a", *[f"org-{n:02d}" for n in range(2, 12)]]
QUEUES = [
    ("0100 000 0002", "repairs", "gold"),
    ("0100 000 0003", "noise", "silver"),
    ("0100 000 0004", "lone-worker", "gold"),
    ("0100 000 0001", None, None),
]
LONDON = ZoneInfo("Europe/London")


def _ts(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def populate(path: Path, calls: int, seed: int = 7) -> None:
    """A year (2026) of CDRs and their call records, written straight into the tables."""
    Store.open(f"sqlite:///{path}", clock=ManualClock(datetime(2027, 1, 5, tzinfo=UTC))).close()
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    year = 365 * 86400
    cdr_rows, call_rows = [], []
    now = _ts(datetime(2027, 1, 5, tzinfo=UTC))

    def flush() -> None:
        db.executemany(
            "INSERT INTO cdrs (organisation_id, cdr_id, queue, access_number, reference, call_id,"
            " service_option, standard, offered_at, answered_at, abandoned_at, local_day,"
            " local_hour, wait_seconds, talk_seconds, wrap_seconds, outbound_calls,"
            " outbound_seconds, imported_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            cdr_rows,
        )
        db.executemany(
            "INSERT INTO calls (id, organisation_id, seq, reference, access_number, service_option,"
            " organisation_version, state, priority, in_hours, answers, received_at, answered_at,"
            " version) VALUES (?,?,?,?,?,?,'v','closed',0,?,'{}',?,?,1)",
            call_rows,
        )
        cdr_rows.clear()
        call_rows.clear()

    for n in range(calls):
        org = ORGS[n % len(ORGS)]
        queue, option, standard = QUEUES[rng.randrange(4)]
        offered = start + timedelta(seconds=rng.randrange(year))
        wait = rng.expovariate(1 / 15)
        answered = rng.random() > 0.06
        end = offered + timedelta(seconds=wait)
        local = offered.astimezone(LONDON)
        call_id = f"c{n:010d}"
        ref = f"R-{n}"
        talk = rng.uniform(60, 400) if answered else 0.0
        cdr_rows.append(
            (
                org,
                f"x{n}",
                queue,
                queue,
                ref,
                call_id,
                option,
                standard,
                _ts(offered),
                _ts(end) if answered else None,
                None if answered else _ts(end),
                local.date().isoformat(),
                local.hour,
                wait,
                talk,
                rng.uniform(0, 40) if answered else 0.0,
                n % 3 == 0,
                60.0 if n % 3 == 0 else 0.0,
                now,
            )
        )
        call_rows.append(
            (
                call_id,
                org,
                n,
                ref,
                queue,
                option,
                int(local.hour < 17),
                _ts(offered),
                _ts(end) if answered else None,
            )
        )
        if len(cdr_rows) >= 50_000:
            flush()
    flush()
    db.commit()
    db.execute("ANALYZE")
    db.close()


def pandas_monthly(df: object, organisation_id: str) -> dict[str, object]:
    """The monthly telephony figures from a DataFrame of every CDR (the peer)."""
    import pandas as pd

    frame: pd.DataFrame = df  # type: ignore[assignment]
    month = frame[
        (frame.organisation_id == organisation_id)
        & (frame.local_day >= "2026-10-01")
        & (frame.local_day < "2026-11-01")
    ]
    thresholds = month.standard.map({"gold": 20.0, "silver": 40.0}).fillna(40.0)
    upper = month.standard.map({"gold": 30.0, "silver": 60.0}).fillna(60.0)
    answered = month.answered_at.notna()
    abandoned = month.abandoned_at.notna()
    w = month.wait_seconds
    work = pd.DataFrame(
        {
            "service_option": month.service_option.fillna(""),
            "queue": month.queue,
            "standard": month.standard.fillna(""),
            "local_day": month.local_day,
            "local_hour": month.local_hour,
            "offered": 1,
            "answered": answered,
            "in_sla": answered & (w <= thresholds),
            "within_upper": answered & (w <= upper),
            "abandoned": abandoned,
            "aw20": answered & (w <= 20),
            "aw60": answered & (w > 20) & (w <= 60),
            "ao60": answered & (w > 60),
            "bw20": abandoned & (w <= 20),
            "bw60": abandoned & (w > 20) & (w <= 60),
            "bo60": abandoned & (w > 60),
            "wait": w,
            "talk": month.talk_seconds,
            "wrap": month.wrap_seconds,
            "out": month.outbound_seconds,
            "outn": month.outbound_calls,
        }
    )
    sums = [
        "offered",
        "answered",
        "in_sla",
        "within_upper",
        "abandoned",
        "aw20",
        "aw60",
        "ao60",
        "bw20",
        "bw60",
        "bo60",
        "wait",
        "talk",
        "wrap",
        "out",
        "outn",
    ]
    result = {}
    for name, keys in {
        "by_option": ["service_option", "standard"],
        "by_queue": ["queue", "service_option", "standard"],
        "by_standard": ["standard"],
        "by_hour": ["local_hour"],
        "by_day": ["local_day"],
        "handling": ["service_option"],
    }.items():
        g = work.groupby(keys)
        table = g[sums].sum()
        table["wait_max"] = g["wait"].max()
        result[name] = table
    return result


def run(calls: int) -> dict[str, object]:
    import pandas as pd

    org = load_organisation(ORG_FOLDER)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        t0 = time.perf_counter()
        populate(path, calls)
        populate_s = time.perf_counter() - t0
        store = Store.open(
            f"sqlite:///{path}", clock=ManualClock(datetime(2026, 11, 5, tzinfo=UTC))
        )
        build_report(store, org, "monthly", "2026-10")  # warm the caches once
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            report = build_report(store, org, "monthly", "2026-10")
            best = min(best, time.perf_counter() - t0)
        offered = report.table("sla_by_option").total["offered"]  # type: ignore[index]
        store.close()
        t0 = time.perf_counter()
        with sqlite3.connect(path) as db:
            df = pd.read_sql_query(
                "SELECT organisation_id, queue, service_option, standard, answered_at,"
                " abandoned_at, local_day, local_hour, wait_seconds, talk_seconds, wrap_seconds,"
                " outbound_calls, outbound_seconds FROM cdrs",
                db,
            )
        load_s = time.perf_counter() - t0
        pandas_best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            figures = pandas_monthly(df, "org-a")
            pandas_best = min(pandas_best, time.perf_counter() - t0)
        assert int(figures["by_standard"]["offered"].sum()) == offered, "the peers disagree"
    return {
        "calls": calls,
        "seconds": round(best, 3),
        "pandas_seconds": round(pandas_best, 3),
        "ratio": round(best / pandas_best, 2),
        "month_calls_of_org": offered,
        "pandas_load_seconds": round(load_s, 2),
        "populate_seconds": round(populate_s, 1),
    }


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [350_000, 3_500_000]
    for size in sizes:
        print(json.dumps(run(size)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
