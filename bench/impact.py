"""Benchmark: change impact — replay 350,000 stored calls under a changed option (issue 11).

The organisation is the example borough; the change is to its housing-repairs option (from the
catalogue): "no heating" joins the emergencies of rule 5 (a condition widened). The store is a
SQLite file. 2,000 calls are run through the public façade under the old version (offer →
answer → capture → next_step → close) with seeded answers at times over a winter fortnight;
their rows are then cloned (new ids and references, times spread out) to ``--calls`` stored
calls.

Measured, in the same run:

* ``seconds``: :func:`oohcore.procedure.impact.impact_between` over every stored call — the
  SQL read, the answers' JSON, and both versions' decisions (target <= 2 s for 350,000);
* ``facade_seconds``: the same replay done the slow way, through the engine: for a sample of
  the stored answers (``--sample``), a call is offered, answered and captured under the *new*
  version and its ``next_step`` (load the call, decide, commit) is timed; the figure is the
  sample's time extrapolated to ``calls`` (said so in the output: ``facade_extrapolated``).

Every sampled façade decision must equal the replay's new decision for the same call, or the
script exits non-zero. Prints one JSON line:
``{"calls": N, "seconds": X, "changed": K, "facade_seconds": Y, ...}``.

Run: ``.venv/bin/python bench/impact.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from oohcore.calendar import local_fields
from oohcore.calls import calls
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.procedure.impact import impact_between
from oohcore.rulesets.loader import default_catalogue, load_organisation

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "example-borough"
NUMBER = "020 7946 0100"  # the housing repairs line
REPAIRS = [
    "flooding",
    "water_leak",
    "no_water",
    "no_heating",
    "no_hot_water",
    "no_power",
    "electrical_fault",
    "blocked_toilet",
    "insecure",
    "roof_leak",
    "other",
]
TENURES = ["council_tenant", "council_tenant", "council_tenant", "leaseholder", "private"]
START = datetime(2026, 12, 14, 18, 0, tzinfo=UTC)


def changed_catalogue(workdir: Path) -> Path:
    """A copy of the catalogue with housing-repairs' rule 5 widened to "no heating"."""
    target = workdir / "catalogue"
    shutil.copytree(default_catalogue(), target)
    path = target / "options" / "housing-repairs.yaml"
    text = path.read_text(encoding="utf-8")
    old = '"electrical_fault", "insecure"]'
    if old not in text:
        sys.exit("bench/impact.py: the housing-repairs rule to change was not found")
    path.write_text(text.replace(old, '"electrical_fault", "insecure", "no_heating"]'), "utf-8")
    return target


_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "do", "fu", "ga", "hi", "jo"]


def _word(n: int) -> str:
    """A distinct made-up word for each ``n`` (callers and streets that never look alike)."""
    out = ""
    for _ in range(4):
        n, k = divmod(n, len(_SYLLABLES))
        out += _SYLLABLES[k]
    return out.capitalize()


def answers(rng: random.Random, i: int) -> dict[str, Any]:
    repair = rng.choice(REPAIRS)
    out: dict[str, Any] = {
        "caller_name": f"{_word(i * 7 + 1)} {_word(i * 13 + 5)}",
        "address": f"{i % 200 + 1} {_word(i * 11 + 3)} Street",
        "contact_phone": f"07700 9{i:05d}",
        "tenure": rng.choice(TENURES),
        "repair": repair,
        "vulnerable": rng.random() < 0.3,
        "details": "as reported",
    }
    if repair in ("flooding", "water_leak", "roof_leak"):
        out["near_electrics"] = rng.random() < 0.5
    if repair == "blocked_toilet":
        out["only_toilet"] = rng.random() < 0.6
    if repair in ("no_heating", "no_hot_water"):
        out["outside_temp"] = rng.randint(-5, 12)
    return out


def run_call(engine: Engine, ans: dict[str, Any], at: datetime) -> tuple[str, bool, float]:
    """Offer, answer and capture a call at ``at``; time its next_step: (action, whether it
    was found a duplicate (5.2.7), seconds)."""
    desk = engine.organisation("example-borough")
    call = engine.offer(NUMBER, caller_number=str(ans["contact_phone"]), at=at)
    desk.answer(call.id, handler="amy", at=at)
    desk.capture(call.id, ans, at=at)
    t0 = time.perf_counter()
    step = desk.next_step(call.id, at=at)
    took = time.perf_counter() - t0
    return step.action_id, step.duplicate_of is not None, took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=350_000)
    ap.add_argument("--seed-calls", type=int, default=2_000, help="calls run through the façade")
    ap.add_argument("--sample", type=int, default=1_000, help="façade next_step calls timed")
    args = ap.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        old = load_organisation(EXAMPLE)
        new = load_organisation(EXAMPLE, catalogue=changed_catalogue(workdir))
        assert old.service_options["housing-repairs"].version != (
            new.service_options["housing-repairs"].version
        )
        clock = ManualClock(START)
        engine = Engine.open([old], f"sqlite:///{workdir / 'old.sqlite'}", clock=clock)
        seeds: list[tuple[dict[str, Any], datetime]] = []
        for i in range(args.seed_calls):
            at = START + timedelta(minutes=7 * i)
            ans = answers(rng, i)
            run_call(engine, ans, at)
            seeds.append((ans, at))
        store = engine.store
        with store.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(calls))]
        # clone the façade's rows to --calls stored calls
        batch: list[dict[str, Any]] = []
        with store.transaction() as conn:
            for n in range(args.calls - len(rows)):
                row = dict(rows[n % len(rows)])
                row["id"] = f"c{n:031d}"
                row["reference"] = f"B{n:09d}"
                row["seq"] = 10_000_000 + n
                row["received_at"] = row["received_at"] + timedelta(seconds=(n % 997) * 61)
                batch.append(row)
                if len(batch) == 5_000:
                    conn.execute(insert(calls), batch)
                    batch = []
            if batch:
                conn.execute(insert(calls), batch)
        since = START - timedelta(days=1)
        best = float("inf")
        report = None
        for _ in range(3):
            t0 = time.perf_counter()
            with store.read() as conn:
                report = impact_between(conn, old, new, since)
            best = min(best, time.perf_counter() - t0)
        assert report is not None
        engine.close()

        # the façade: the same answers decided by next_step under the new version
        facade = Engine.open([new], f"sqlite:///{workdir / 'new.sqlite'}", clock=clock)
        new_option = new.service_options["housing-repairs"]
        sample = seeds[: args.sample]
        spent = 0.0
        mismatches = 0
        for ans, at in sample:
            action, duplicate, took = run_call(facade, ans, at)
            spent += took
            values = {**new_option.settings, **ans, "variant": "standard", "duplicate": duplicate}
            values.update(local_fields(at, timezone=new.timezone, nation=new.nation))
            if new_option.decide(values).action_id != action:
                mismatches += 1
        facade.close()
    per_call = spent / len(sample)
    out = {
        "calls": report.calls,
        "seconds": round(best, 3),
        "changed": len(report.differences),
        "facade_seconds": round(per_call * report.calls, 1),
        "facade_extrapolated": f"next_step timed on {len(sample)} calls, x{report.calls}",
        "ratio": round(per_call * report.calls / best, 1),
        "per_rule": {f"{o}: {a} -> {b}": n for (o, a, b), n in sorted(report.per_rule.items())},
        "target_seconds": 2.0,
    }
    print(json.dumps(out))
    if mismatches:
        print(f"{mismatches} façade decisions differ from the compiled ones", file=sys.stderr)
        return 1
    return 0 if best <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
