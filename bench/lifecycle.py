"""Complete persisted call lifecycles per second on SQLite, in one process.

Each lifecycle goes through the public façade exactly as a host would: offer → answer →
capture → decide (next_step) → complete (refer: outbox message + timers) → the runner
dispatches the message through a channel → close. Every step is its own committed
transaction on a SQLite file (WAL, synchronous=NORMAL: survives a process crash).

Target (issue "The call engine"): >= 3,400 lifecycles per second — ten times what a
SpiffWorkflow BPMN process persisted to SQLite reaches on these machines (~340/s).
Prints one JSON line: {"lifecycles_per_s": N, ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from oohcore.channels import DeliveryResult
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.outbox import OutboundMessage

FIXTURE = Path(__file__).parent / "fixtures" / "lifecycle"
NUMBER = "0300 000 0000"
FIRST = ["Ann", "Jas", "Olu", "Mei", "Tom", "Ife", "Sam", "Zara", "Piotr", "Rhys", "Nadia", "Kofi"]
LAST = ["Lee", "Patel", "Okafor", "Chen", "Brown", "Adeyemi", "Khan", "Nowak", "Evans", "Hussain"]
STREET_WORDS = ["Mill", "Heron", "Station", "Church", "Park", "Victoria", "Albert", "Queens",
                "Kings", "Manor", "Grove", "Orchard", "Meadow", "Bridge", "Castle", "Forest"]


class CountingChannel:
    """Accepts every message (the channel's own cost is not what is measured)."""

    name = "sms"

    def __init__(self) -> None:
        self.count = 0

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.count += 1
        return DeliveryResult.sent()


def run(n: int, workdir: Path) -> dict[str, float]:
    clock = ManualClock(datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo("Europe/London")))
    channel = CountingChannel()
    engine = Engine.open(FIXTURE, f"sqlite:///{workdir / 'lifecycle.sqlite'}", clock=clock, channels={"sms": channel})
    desk = engine.organisation("bench-borough")
    rng = random.Random(3400)
    streets = [f"{w} {k}" for w in STREET_WORDS for k in ("Road", "Street", "Lane", "Close", "Way")]

    def answers(i: int) -> dict[str, object]:
        # distinct callers and addresses, as on a real evening: the earlier-call search (run
        # before every referral, 5.2.7) looks at a realistic handful of candidates
        return {
            "caller_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "address": f"{rng.randint(1, 240)} {rng.choice(streets)}",
            "phone": f"07700 9{i % 100000:05d}",
            "repair": rng.choice(["no_heating", "leak", "no_power"]),
            "vulnerable": rng.random() < 0.3,
        }
    # the clock stands still: acknowledgement and deadline timers are set but none falls due,
    # so every dispatched message belongs to a measured lifecycle

    def lifecycle(i: int) -> None:
        call = engine.offer(NUMBER, caller_number="07700900123")
        desk.answer(call.id, handler="amy")
        desk.capture(call.id, answers(i))
        desk.next_step(call.id)
        desk.complete(call.id)
        engine.tick()
        desk.close(call.id)

    for i in range(200):  # warm-up
        lifecycle(i)
    sent_before = channel.count
    start = time.perf_counter()
    for i in range(n):
        lifecycle(i)
    elapsed = time.perf_counter() - start
    engine.close()
    if channel.count - sent_before != n:
        raise SystemExit(f"expected {n} messages dispatched, saw {channel.count - sent_before}")
    return {"lifecycles_per_s": round(n / elapsed), "lifecycles": n, "seconds": round(elapsed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="lifecycles to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.n, Path(tmp))))


if __name__ == "__main__":
    main()
