"""Many desks and runners on one PostgreSQL (issue 12, part 1): nothing lost, nothing doubled.

Against the real PostgreSQL server ``make test`` starts (``OOHCORE_TEST_POSTGRES_URL``), in
real separate processes (``tests/many_processes_worker.py``):

* 8 desk workers drive 5,000 call lifecycles over three organisations — offer, answer, capture,
  decide, complete (a referral: an SMS alert, an acknowledgement wait with an escalation stage
  behind it, and the pass-on deadline of 6.4 b), close — and acknowledge every other referral
  (5.3.2), retrying a step that meets ``ConcurrentChange`` (a runner escalating it meanwhile);
* 4 runner processes fire the timers (escalations, deadlines) and send the messages to the
  receiving peer, a loopback HTTP server in this process that records every request and
  dedupes on the idempotency key, as a provider does;
* one runner is SIGKILLed mid-dispatch (its claimed messages are taken over by the others once
  its lease ends) and another is stopped and restarted.

Afterwards: every message was delivered exactly once per idempotency key by the peer (a resend
after the kill is recognised as a duplicate), every message row is sent, every timer fired or was
cancelled once (one escalation per stage, one deadline verdict per referral), no call lost a step
(each has its six step events, closed), and ``oohcore audit verify`` passes for every
organisation (one chain each however many processes appended: the head row is locked or moved
by a conditional update, and ``(organisation_id, seq)`` is unique, so no fork and no gap).

``OOHCORE_MANY_LIFECYCLES`` sets the number of lifecycles (default 5,000, as issue 12 asks: about
2.5 minutes on the quiet 2-core test machine, docs/benchmarks.md).
Waiting polls observable state with bounded deadlines; no outcome depends on timing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from oohcore import audit
from oohcore.audit import read as audit_read
from oohcore.cli import main as cli
from oohcore.clock import ManualClock
from oohcore.durable.health import read_lag
from oohcore.durable.outbox import outbox
from oohcore.durable.timers import timers
from oohcore.engine import Engine
from oohcore.store import Store
from pg_support import postgres_database

HELPER = Path(__file__).with_name("many_processes_worker.py")
sys.path.insert(0, str(HELPER.parent))
from many_processes_worker import NUMBERS, T_DRAIN, T_RUN  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "bench" / "fixtures" / "lifecycle"
LIFECYCLES = int(os.environ.get("OOHCORE_MANY_LIFECYCLES", "5000"))
DESKS = 8
RUNNERS = 4
LEASE_SECONDS = 4.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (dropped afterwards)."""
    with postgres_database() as url:
        yield url


class Peer:
    """The receiving provider: records every request, dedupes on the idempotency key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, int]] = []  # (key, sender pid)
        self.accepted: dict[str, int] = {}  # key -> its reference
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append((body["key"], body["pid"]))
                    duplicate = body["key"] in outer.accepted
                    if not duplicate:
                        outer.accepted[body["key"]] = len(outer.accepted) + 1
                    ref = outer.accepted[body["key"]]
                answer = json.dumps({"ref": f"P{ref}", "duplicate": duplicate}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def from_pid(self, pid: int) -> int:
        with self.lock:
            return sum(1 for _, p in self.requests if p == pid)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _organisations(root: Path) -> Path:
    for org, number in NUMBERS.items():
        folder = root / org
        shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("*.bpmn"))
        spec = (folder / "organisation.yaml").read_text(encoding="utf-8")
        spec = spec.replace("id: bench-borough", f"id: {org}").replace("0300 000 0000", number)
        (folder / "organisation.yaml").write_text(spec, encoding="utf-8")
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


LOGS: dict[int, Path] = {}  # pid -> the worker's output


def _spawn(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A worker process; its output goes to ``log`` (a pipe nobody reads could fill and stall
    it)."""
    with log.open("wb") as out:
        p = subprocess.Popen(
            [sys.executable, str(HELPER), *args], stdout=out, stderr=subprocess.STDOUT, env=_env()
        )
    LOGS[p.pid] = log
    return p


def _tail(p: subprocess.Popen[bytes]) -> str:
    return LOGS[p.pid].read_text(errors="replace")[-3000:]


def _stop(p: subprocess.Popen[bytes]) -> None:
    """SIGTERM: the runner finishes its tick and exits 0."""
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    assert p.returncode == 0, f"rc={p.returncode}: {_tail(p)}"


def _wait(what: str, done: Any, seconds: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        for p in procs:
            if p.poll() is not None and p.returncode not in (0, -signal.SIGKILL):
                pytest.fail(f"a worker failed (rc={p.returncode}):\n{_tail(p)}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling for an observable state, not timing the test


def test_many_desks_and_runners_on_one_postgresql(pg_url: str, tmp_path: Path) -> None:
    rulesets = str(_organisations(tmp_path / "rulesets"))
    store = Store.open(pg_url, clock=ManualClock(T_RUN))  # migrates once, before the workers
    # ... and the living directory is seeded once (engines started together race on the seed's
    # inserts: see docs/deployment.md, "Starting many processes")
    Engine.open(rulesets, pg_url, clock=ManualClock(T_RUN)).close()
    peer = Peer()
    procs: list[subprocess.Popen[bytes]] = []
    drain = tmp_path / "drain"  # the runners move on to T_DRAIN once it exists
    try:

        def runner() -> subprocess.Popen[bytes]:
            log = tmp_path / f"runner{len(procs)}.log"
            p = _spawn(log, "runner", pg_url, rulesets, peer.url, str(drain), str(LEASE_SECONDS))
            procs.append(p)
            return p

        runners = [runner() for _ in range(RUNNERS)]
        orgs = list(NUMBERS)
        per_desk, extra = divmod(LIFECYCLES, DESKS)
        outs: list[Path] = []
        first = 0
        for d in range(DESKS):
            count = per_desk + (1 if d < extra else 0)
            out = tmp_path / f"desk{d}.json"
            outs.append(out)
            procs.append(
                _spawn(
                    tmp_path / f"desk{d}.log",
                    "desk",
                    pg_url,
                    rulesets,
                    orgs[d % 3],
                    str(first),
                    str(count),
                    str(out),
                )
            )
            first += count
        desks = procs[RUNNERS:]
        # 1. SIGKILL one runner mid-dispatch: once the peer has had some of its sends.
        began = time.monotonic()
        victim = runners[0]
        _wait("the first runner to send", lambda: peer.from_pid(victim.pid) >= 10, 300, procs)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert any(p.poll() is None for p in desks), "the kill must land while desks work"
        assert victim.returncode == -signal.SIGKILL
        # 2. Stop another runner (SIGTERM: it finishes its tick) and start a fresh one.
        _stop(runners[1])
        runners.append(runner())
        killed_at = time.monotonic() - began

        # 3. The desks finish; the runners drain every timer and message due.
        _wait("the desks", lambda: all(p.poll() is not None for p in desks), 900, procs)
        for p in desks:
            assert p.wait() == 0, _tail(p)

        drain.touch()

        def drained() -> bool:
            seen = read_lag(store, T_DRAIN)
            with store.read() as conn:
                pending = conn.execute(
                    select(func.count())
                    .select_from(outbox)
                    .where(outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))
                ).scalar_one()
            return seen.timers_due == 0 and pending == 0

        desks_done = time.monotonic() - began
        _wait("the runners to drain", drained, 900, procs)
        drained_at = time.monotonic() - began
        for p in runners[2:]:
            _stop(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        peer.close()

    results = [json.loads(o.read_text()) for o in outs]
    calls = [c for r in results for c in r["calls"]]
    assert len(calls) == len(set(calls)) == LIFECYCLES

    with store.read() as conn:
        rows = conn.execute(
            select(outbox.c.idempotency_key, outbox.c.sent_at, outbox.c.failed_at)
        ).all()
        timer_rows = conn.execute(
            select(
                timers.c.key,
                timers.c.due_at,
                timers.c.fired_at,
                timers.c.cancelled_at,
                timers.c.last_error,
            )
        ).all()
        states = Counter(s for (s,) in conn.execute(text("SELECT state FROM calls")).all())
        per_call = conn.execute(
            text(
                "SELECT call_id, kind, payload FROM events WHERE call_id IS NOT NULL"
                " ORDER BY organisation_id, seq"
            )
        ).all()

    # Every message delivered exactly once per idempotency key by the peer.
    keys = {k for k, _, _ in rows}
    assert all(sent is not None and failed is None for _, sent, failed in rows)
    assert set(peer.accepted) == keys
    sends = Counter(k for k, _ in peer.requests)
    resent = {k: n for k, n in sends.items() if n > 1}
    # only messages in flight when a runner died (or whose marking met a conflict) are resent,
    # and the peer recognised each resend as a duplicate
    assert len(resent) <= len(keys) // 10, resent

    # Every timer due fired or was cancelled, once (the next stage's waits that the runners set
    # at T_DRAIN are due after it, so pending); none is both.
    assert all(fired is None or cancelled is None for _, _, fired, cancelled, _ in timer_rows)
    due = [(fired, cancelled) for _, due_at, fired, cancelled, _ in timer_rows if due_at <= T_DRAIN]
    assert all((fired is None) != (cancelled is None) for fired, cancelled in due)
    assert sum(1 for fired, _ in due if fired is not None) > 0
    errors = {e for *_, e in timer_rows if e is not None}
    assert all("ConcurrentChange" in e for e in errors), errors

    # No call lost a step, and no step happened twice.
    assert states == Counter({"closed": LIFECYCLES})
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    escalations: Counter[tuple[str, Any]] = Counter()
    verdicts: Counter[str] = Counter()
    for call_id, kind, payload in per_call:
        kinds[call_id][kind] += 1
        if kind == "referral.escalated":  # each alert once (a re-alert of the final stage
            # carries that stage again, with its own alert number)
            escalations[(call_id, json.loads(payload).get("alert"))] += 1
        if kind in ("referral.deadline_met", "referral.deadline_missed"):
            verdicts[call_id] += 1
    steps = ("call.offered", "call.answered", "call.captured", "call.decided", "call.closed")
    for call_id in calls:
        for step in steps:
            assert kinds[call_id][step] == 1, (call_id, step, kinds[call_id])
        assert kinds[call_id]["action.refer"] == 1, kinds[call_id]
        assert kinds[call_id]["referral.acknowledged"] <= 1
    assert max(escalations.values()) == 1, "an escalation alert ran twice"
    assert len(escalations) > 0, "no referral escalated: the test did not exercise escalations"
    assert set(verdicts) == set(calls) and max(verdicts.values()) == 1
    acknowledged = {c for r in results for c in r["acknowledged"]}
    assert all(kinds[c]["referral.acknowledged"] == 1 for c in acknowledged)
    conflicts = sum(r["conflicts"] for r in results)

    # One chain per organisation, intact: `oohcore audit verify` for each.
    report = audit.verify(store)
    assert report.ok, str(report)
    with store.read() as conn:
        assert sorted(audit_read.organisations(conn)) == sorted(NUMBERS)
    for org in NUMBERS:
        assert cli(["audit", "verify", "--store", pg_url, "--organisation", org]) == 0
    store.close()
    print(
        f"\n{LIFECYCLES} lifecycles, {len(keys)} messages ({len(resent)} resent, recognised), "
        f"{len(timer_rows)} timers, {len(escalations)} escalations, {conflicts} desk conflicts; kill and restart after {killed_at:.0f} s, desks done after "
        f"{desks_done:.0f} s, drained after {drained_at:.0f} s"
    )


def test_two_desks_changing_one_call_at_once_one_wins_one_conflicts(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two desk processes' engines (own stores, own connections) answer the same call at the
    same moment: both have read the call at the same version when they write (a barrier holds
    each at its write), PostgreSQL makes the second wait for the first's row lock, and the
    second's optimistic update then matches no row: one success, one ``ConcurrentChange``
    (documented in ``oohcore.engine.errors``), and the call has one ``call.answered``."""
    from oohcore.engine import result as result_module
    from oohcore.engine.errors import ConcurrentChange

    rulesets = str(_organisations(tmp_path / "rulesets"))
    engines = [Engine.open(rulesets, pg_url, clock=ManualClock(T_RUN)) for _ in range(2)]
    try:
        call = engines[0].offer(NUMBERS["org-a"])
        barrier = threading.Barrier(2, timeout=60)
        real_update = result_module.CALLS.update

        def update_together(conn: Any, old: Any, changes: Any) -> bool:
            barrier.wait()  # both desks have read the call and decided: now both write
            return real_update(conn, old, changes)

        monkeypatch.setattr(result_module.CALLS, "update", update_together)
        outcomes: dict[str, str] = {}

        def answer(name: str, engine: Engine) -> None:
            try:
                engine.organisation("org-a").answer(call.id, handler=name)
                outcomes[name] = "answered"
            except ConcurrentChange as exc:
                outcomes[name] = f"conflict: {exc}"

        threads = [
            threading.Thread(target=answer, args=(f"desk{i}", e)) for i, e in enumerate(engines)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        monkeypatch.undo()
        assert sorted(v.split(":")[0] for v in outcomes.values()) == ["answered", "conflict"]
        winner = next(k for k, v in outcomes.items() if v == "answered")
        desk = engines[1].organisation("org-a")
        view = desk.get(call.id)
        assert view.handler == winner
        kinds = [e.kind for e in desk.events(call.id)]
        assert kinds.count("call.answered") == 1
        assert audit.verify(engines[1].store).ok
    finally:
        for e in engines:
            e.close()
