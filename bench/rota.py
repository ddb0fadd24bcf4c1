"""Benchmark: "who is on call" for a role with 3 layers and 200 overrides (issue 8), oohcore
beside ``recurring-ical-events`` answering the same question from the same schedule as a calendar.

The role: stage 1 is a weekly rotation of 5 officers handed off Monday 09:00; over it a
weeknight layer (4 officers, daily turns at 17:00, restricted to weekdays 17:00-08:00); over that
a weekend layer (3 officers, weekly turns, Saturday-Sunday all day). 200 overrides of 4-72 hours
are spread over the year (fixed seed). oohcore is measured end to end through the engine's rota,
:class:`oohcore.rota.StoreRota` on a SQLite store (each question reads the rota's version in its
own read transaction, as a referral does). The peer, ``recurring-ical-events``, is given the
same role as one iCalendar of that year (written by oohcore's exporter: the holder of each
period as a VEVENT) and asked ``at(moment)``: it is how calendar-based on-call tools (Grafana
OnCall) answer; its answers must agree with oohcore's or the script exits non-zero.

Moments are random over 2026 (both clock changes included). Timing: ``time.perf_counter`` per
question, after a warm-up, the garbage collector paused as timeit does; p50/p99 in milliseconds of wall time, and the p99 of the thread's CPU time
(``time.thread_time``: the wall figure includes being descheduled on a busy machine, so the
load average is printed too). Prints one JSON line.

Run: ``.venv/bin/python bench/rota.py`` (``--samples N``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time as clock
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from oohcore.clock import ManualClock
from oohcore.rota import (
    Layer,
    OnCallOfficer,
    Override,
    Restriction,
    RoleSchedule,
    RotaData,
    RotaStore,
    StoreRota,
)
from oohcore.rota.exchange import write_ical
from oohcore.store import Store

TZ = "Europe/London"
LONDON = ZoneInfo(TZ)
YEAR = (datetime(2026, 1, 1, tzinfo=LONDON), datetime(2027, 1, 1, tzinfo=LONDON))


def build(overrides: int, seed: int) -> RotaData:
    officers = {
        f"o{i}": OnCallOfficer(f"o{i}", f"Officer {i}", email=f"o{i}@x.example") for i in range(12)
    }
    layers = (
        Layer(
            "weekly", ("o0", "o1", "o2", "o3", "o4"), timedelta(weeks=1), datetime(2026, 1, 5, 9)
        ),
        Layer(
            "weeknights",
            ("o5", "o6", "o7", "o8"),
            timedelta(days=1),
            datetime(2026, 1, 5, 17),
            (Restriction((0, 1, 2, 3, 4), time(17), time(8)),),
        ),
        Layer(
            "weekends",
            ("o9", "o10", "o11"),
            timedelta(weeks=1),
            datetime(2026, 1, 3, 0),
            (Restriction((5, 6), time(0), time(0)),),
        ),
    )
    data = RotaData(officers, (RoleSchedule("duty", (layers,)),))
    rng = random.Random(seed)
    span = (YEAR[1] - YEAR[0]).total_seconds()
    for _ in range(overrides):
        start = YEAR[0] + timedelta(seconds=rng.uniform(0, span - 72 * 3600))
        start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=rng.randint(4, 72))
        data = data.with_override(
            Override(0, "duty", f"o{rng.randrange(12)}", start, end, 1, "swap")
        )
    return data


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--peer-samples", type=int, default=300)
    ap.add_argument("--overrides", type=int, default=200)
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args()
    data = build(args.overrides, args.seed)
    rng = random.Random(args.seed + 1)
    span = (YEAR[1] - YEAR[0]).total_seconds()
    moments = [YEAR[0] + timedelta(seconds=rng.uniform(0, span)) for _ in range(args.samples)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", clock=ManualClock(YEAR[0]))
        try:
            RotaStore(store, "org", timezone=TZ, roles=["duty"]).replace(data, by="bench")
            rota = StoreRota(store, {"org": TZ})
            for m in moments[:500]:
                rota.who_is_on_call("org", "duty", m)
            ours: list[float] = []
            cpu: list[float] = []
            answers: dict[datetime, str | None] = {}
            gc.collect()
            gc.disable()  # as timeit does
            for m in moments:
                c0 = clock.thread_time()
                t0 = clock.perf_counter()
                a = rota.who_is_on_call("org", "duty", m)
                ours.append((clock.perf_counter() - t0) * 1000)
                cpu.append((clock.thread_time() - c0) * 1000)
                answers[m] = a.officer.id if a.officer else None
            gc.enable()
        finally:
            store.close()
    cal = icalendar.Calendar.from_ical(write_ical(data, "duty", YEAR[0], YEAR[1], timezone=TZ))
    by_email = {o.email: o.id for o in data.officers.values()}
    query = recurring_ical_events.of(cal)
    peer: list[float] = []
    disagree = 0
    for m in moments[: args.peer_samples]:
        t0 = clock.perf_counter()
        events = list(query.at(m))
        peer.append((clock.perf_counter() - t0) * 1000)
        got = {by_email[str(e["ATTENDEE"]).removeprefix("mailto:")] for e in events}
        if got != {answers[m]}:
            disagree += 1
    if disagree:
        print(f"the peer disagreed on {disagree} moments", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "layers": 3,
                "overrides": args.overrides,
                "samples": len(ours),
                "p50_ms": round(statistics.median(ours), 4),
                "p99_ms": round(pct(ours, 0.99), 4),
                "cpu_p99_ms": round(pct(cpu, 0.99), 4),
                "load_1m": round(os.getloadavg()[0], 1),
                "peer": "recurring-ical-events at()",
                "peer_samples": len(peer),
                "peer_p50_ms": round(statistics.median(peer), 3),
                "peer_p99_ms": round(pct(peer, 0.99), 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
