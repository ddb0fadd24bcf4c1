"""Crash test: SIGKILL a runner part-way through dispatching, restart, and lose nothing.

A real separate process (``tests/crash_runner.py``) sends a pre-filled outbox through the
LocalChannel (one fsync-ed JSON line per message) and is killed with SIGKILL once the file has
some lines but not all. A new runner (in the test process, with a fresh LocalChannel that
re-reads the file) then completes the work. Every message must appear in the file exactly once,
every outbox row must be marked sent, and every "message.sent" audit event (written in the same
transaction as the sent mark) must exist exactly once. When the kill lands between a line being
written and its row being marked sent, the restart must recognise the line instead of writing it
again.

Waiting for the kill point polls the file for an observable state with a bounded deadline; no
test outcome depends on how long anything takes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Select, func, select

from oohcore.audit.chain import events
from oohcore.audit.verify import verify
from oohcore.channels import OutboundMessage
from oohcore.channels.local import LocalChannel
from oohcore.clock import ManualClock
from oohcore.durable.outbox import enqueue, outbox
from oohcore.durable.runner import Runner
from oohcore.store import Store

HELPER = Path(__file__).with_name("crash_runner.py")
sys.path.insert(0, str(HELPER.parent))
from crash_runner import on_sent, on_timer  # noqa: E402  (the same callbacks as the helper)

T0 = datetime(2025, 2, 1, 3, 0, tzinfo=UTC)
MESSAGES = 1000
KILL_AFTER_LINES = 100

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _run_helper(db: Path, jsonl: Path, now: datetime) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, str(HELPER), str(db), str(jsonl), now.isoformat(), "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_sigkill_during_dispatch_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite"
    jsonl = tmp_path / "messages.jsonl"
    keys = [f"CALL{i:05d}:referral:1" for i in range(MESSAGES)]
    store = Store.open(f"sqlite:///{db}", clock=ManualClock(T0))
    try:
        with store.transaction() as conn:
            for i, key in enumerate(keys):
                enqueue(
                    conn,
                    OutboundMessage(
                        organisation_id=("ealing", "hounslow", "brent")[i % 3],
                        call_id=key.split(":")[0],
                        channel="local",
                        recipient=f"+4477009{i:05d}",
                        subject="Referral",
                        body=f"Call {i}: no heating, elderly resident",
                        idempotency_key=key,
                    ),
                    at=T0,
                )
        _crash_and_recover(store, db, jsonl, keys)
    finally:
        store.close()


def _count(store: Store, stmt: Select[tuple[int]]) -> int:
    with store.read() as conn:
        return int(conn.execute(stmt).scalar_one())


def _crash_and_recover(store: Store, db: Path, jsonl: Path, keys: list[str]) -> None:
    # 1. A runner in its own process, killed part-way.
    proc = _run_helper(db, jsonl, T0)
    deadline = time.monotonic() + 60
    try:
        while _lines(jsonl) < KILL_AFTER_LINES:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(
                    f"the runner ended (rc={proc.returncode}) before it could be killed:\n"
                    f"{out.decode()}\n{err.decode()}"
                )
            if time.monotonic() > deadline:
                pytest.fail("the runner wrote no messages within 60 s")
            time.sleep(0.002)  # polling for an observable state, not timing the test
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    written_at_kill = _lines(jsonl)
    sent = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_not(None))
    sent_at_kill = _count(store, sent)
    events_at_kill = _count(store, select(func.count()).select_from(events))
    assert 0 < written_at_kill < MESSAGES, "the kill must land part-way through"
    # Every message marked sent has its line (the line is fsync-ed before the mark) and its
    # event (written in the same transaction as the mark).
    assert sent_at_kill <= written_at_kill
    assert events_at_kill == sent_at_kill

    # 2. Restart (a fresh channel re-reads the file) once the dead runner's claim leases have
    #    ended, and run to completion.
    channel = LocalChannel(jsonl)
    try:
        runner = Runner(
            store,
            {"local": channel},
            on_timer=on_timer,
            on_sent=on_sent,
            lease_clock=ManualClock(T0 + timedelta(hours=1)),  # the real time, leases ended
        )
        report = runner.tick(T0 + timedelta(hours=1))
    finally:
        channel.close()
    assert report.errors == []
    assert len(report.sent) == MESSAGES - sent_at_kill
    # Messages written but not marked sent at the kill were recognised, not written again.
    assert len(report.duplicates) == written_at_kill - sent_at_kill

    # 3. Nothing lost, nothing twice.
    written = Counter(
        json.loads(line)["idempotency_key"] for line in jsonl.read_text().splitlines()
    )
    assert set(written) == set(keys)
    assert max(written.values()) == 1
    assert _count(store, select(func.count()).select_from(outbox)) == MESSAGES
    assert _count(store, sent) == MESSAGES
    with store.read() as conn:
        sent_events = Counter(
            json.loads(p)["key"]
            for (p,) in conn.execute(
                select(events.c.payload).where(events.c.kind == "message.sent")
            )
        )
    assert set(sent_events) == set(keys)
    assert max(sent_events.values()) == 1
    report_audit = verify(store)
    assert report_audit.ok, str(report_audit)
    assert report_audit.events == MESSAGES
