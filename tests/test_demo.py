"""The demo (issues 2 and 3): the example borough, sample decisions, and an evening simulated on
a virtual clock with an embedded SQLite store — checked by what it prints and what it stored."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from oohcore import audit
from oohcore.clock import SystemClock
from oohcore.demo import run_demo
from oohcore.store import Store


def test_the_demo_simulates_an_evening_and_everything_it_stored_checks_out(tmp_path: Path) -> None:
    out = io.StringIO()
    workdir = tmp_path / "demo-out"
    assert run_demo(out=out, calls=80, workdir=workdir) == 0
    text = out.getvalue()
    assert "Example Borough Council" in text
    assert "Sample callers through the decisions" in text
    counts = {
        k.strip(): int(v) for k, v in re.findall(r"^\s{2}([a-z:_ ']+?)\s{2,}(\d+)$", text, re.M)
    }
    assert counts["offered"] == 80
    assert counts["abandoned"] >= 1
    assert counts["action:refer"] >= 1
    assert counts["messages sent"] >= counts["action:refer"]
    assert "audit chain: verified" in text
    lines = (workdir / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    keys = [json.loads(line)["idempotency_key"] for line in lines]
    assert len(keys) == len(set(keys))  # each message once
    # the evening's, the morning's summary, then the next evening's scenes
    assert len(keys) > counts["messages sent"] + 1
    # the evening's telephony and reports (issue 10, item 5): CDRs from the simulation imported,
    # the daily summary printed and sent by email by 10am (11.5.1), HTML and xlsx written
    assert (workdir / "cdrs.csv").read_text(encoding="utf-8").count("\n") == 81  # header + 80
    assert "80 CDR(s) imported" in text
    assert re.search(r"Daily summary \(11\.5\.1\): Example Borough Council Fri 20 Nov 2026:", text)
    summaries = [json.loads(line) for line in lines if "report:daily:" in line]
    assert [m["recipient"] for m in summaries] == ["ooh-contract@example-borough.example"]
    assert (workdir / "reports" / "example-borough-2026-11-20.html").stat().st_size > 1000
    assert (workdir / "reports" / "example-borough-2026-11-20.xlsx").stat().st_size > 1000
    # the next evening's scenes (issue 8, item 9)
    scenes = text.split("The next evening:")[1].split("\n== ")[0]
    assert re.search(r"18:00 rota override .*housing-duty-officer was (.+), now (?!\1)", scenes)
    assert re.search(r"not acknowledged overnight: escalated to \S+", scenes)
    assert re.search(
        r"an SMS reply 'ACK [0-9A-Z-]+' from [0-9 +]+: ack \(referral acknowledged\)", scenes
    )
    assert re.search(
        r"never out: 18:00 checked_in, \d\d:\d\d reminder, \d\d:\d\d amber, \d\d:\d\d alert", scenes
    )
    # a lone worker whose call was closed checks out by text; nothing more follows (5.2.3.6)
    kim = re.search(
        r"lone worker Kim Shah, call closed at check-in, texted OK \((\w+)\): (.*)", scenes
    )
    assert kim is not None and kim[1] == "ok", scenes
    assert re.fullmatch(r"20:00 checked_in, 20:00 closed, 20:30 checked_out", kim[2]), kim[2]
    assert "coverage gaps in the next 7 days" in scenes
    # a decline counts once (5.3.2); nobody on the rota reaches the provider's duty contact
    assert re.search(r"texts 'NO [0-9A-Z-]+' twice: decline, refused", scenes)
    assert re.search(r"nobody on the rota, the last resort included: alerted 07700 900100", scenes)
    # the first alerts of referrals, as the local channel wrote them
    shown = text.split("as the local channel wrote them ==")[1]
    assert shown.count("\n  [") >= 1
    store = Store.open(f"sqlite:///{workdir / 'oohcore.sqlite'}", clock=SystemClock())
    try:
        assert audit.verify(store).ok
    finally:
        store.close()
