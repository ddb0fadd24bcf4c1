"""Lone-worker sessions at scale (issue 8 item 8, 5.2.3.6): 100,000 open sessions in the store
with deadlines spread over an evening; how late the runner's alerts fire, and peak memory.

Set-up, through the public façade as a host would: every session is a call to the lone-worker
line (offer → answer → capture → next_step → complete: the check-in, a 60-minute visit), all
checked in between 18:00 and 18:10, then extended (``desk.extend``) by 1 to 240 minutes, so
that 100,000 sessions are open at once with their deadlines (visit end + 5 minutes' grace)
spread over 19:05-23:05. The option has ``amber: 10m``: at each deadline an amber text goes to
the worker, and ten minutes later the red alert starts the escalation (one stage, whose wait
is past the evening). Store: a SQLite file (WAL), as ``bench/lifecycle.py``.

Clock (documented, because the evening would take hours on the wall clock): a manual clock
that *jumps* only when the runner is idle — to the next timer's due time (a runner sleeps
until then) — and otherwise moves on by exactly the real time each tick took. So simulated
time passes at least as fast as real time while work is done, and the lateness measured is the
real processing lateness: for each tick, ``(clock before the tick + the tick's real duration)
- the earliest due time among the timers it fired``. That is an upper bound for every timer
the tick fired (each was committed before the tick ended). ``max_late_s`` is its maximum over
the evening; the runner's own poll interval (a host's loop) comes on top and is not simulated.

Peak memory: the process's maximum resident set (``ru_maxrss``), everything included.

Target: max_late_s <= 1, peak_mb <= 300. Prints one JSON line:
{"sessions": N, "max_late_s": X, "peak_mb": M, ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from oohcore.channels import ChannelInfo, DeliveryResult, OutboundMessage
from oohcore.clock import ManualClock, as_utc
from oohcore.durable.timers import next_due_at, timers
from oohcore.engine import Engine

FIXTURE = Path(__file__).parent / "fixtures" / "lone_worker"
NUMBER = "0300 000 0004"
EVENING = datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo("Europe/London"))


class CountingChannel:
    """Accepts every message (the channel's own cost is not what is measured)."""

    name = "sms"
    info = ChannelInfo(carries=frozenset({"sms"}), contact_field="phone")

    def __init__(self) -> None:
        self.count = 0

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.count += 1
        return DeliveryResult.sent()

    def close(self) -> None:
        pass


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--sessions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--dir", default=None, help="where the SQLite file goes (default: TMPDIR)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    clock = ManualClock(EVENING)
    sms = CountingChannel()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        url = f"sqlite:///{Path(tmp) / 'lone.sqlite'}"
        engine = Engine.open(FIXTURE, url, clock=clock, channels={"sms": sms})
        desk = engine.organisation("bench-lone")
        started = time.perf_counter()
        step = timedelta(minutes=10) / args.sessions
        for i in range(args.sessions):
            clock.set(EVENING + step * i)
            call = engine.offer(NUMBER, caller_number=f"07{i:09d}")
            desk.answer(call.id, handler="amy")
            desk.capture(call.id, {"caller_name": f"Worker {i}", "address": f"{i} Mill Lane"})
            desk.next_step(call.id)
            desk.complete(call.id)
            desk.extend(call.id, minutes=rng.randint(1, 240))
        setup_s = time.perf_counter() - started
        t = timers.c
        open_ = (t.fired_at.is_(None), t.cancelled_at.is_(None))
        with engine.store.read() as conn:
            pending = conn.execute(select(func.count()).where(*open_)).scalar_one()
        # the evening: jump when idle, otherwise let simulated time pass as real time does
        max_late = 0.0
        fired = 0
        ticks = 0
        started = time.perf_counter()
        while True:
            with engine.store.read() as conn:
                due = next_due_at(conn)
            if due is None or due > EVENING + timedelta(hours=6):
                break
            if due > clock.now():
                clock.set(due)
            t0 = time.perf_counter()
            with engine.store.read() as conn:
                earliest = conn.execute(
                    select(func.min(t.due_at)).where(*open_, t.due_at <= clock.now())
                ).scalar_one()
            report = engine.tick()
            took = time.perf_counter() - t0
            ticks += 1
            if report.fired and earliest is not None:
                late = (clock.now() + timedelta(seconds=took) - as_utc(earliest)).total_seconds()
                max_late = max(max_late, late)
                fired += len(report.fired)
            clock.advance(timedelta(seconds=took))
        run_s = time.perf_counter() - started
        engine.close()
    print(
        json.dumps(
            {
                "sessions": args.sessions,
                "max_late_s": round(max_late, 3),
                "peak_mb": round(_peak_mb(), 1),
                "open_timers_at_start": pending,
                "timers_fired": fired,
                "messages_sent": sms.count,
                "ticks": ticks,
                "setup_s": round(setup_s, 1),
                "evening_s": round(run_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
