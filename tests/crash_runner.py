"""Helper process for ``test_runner_crash.py``: dispatch an outbox to a LocalChannel file.

Usage: ``python crash_runner.py DB JSONL NOW_ISO [BATCH]``. Runs one ``Runner.tick(NOW)`` (which
sends everything due) and prints a JSON summary. The test kills it with SIGKILL part-way.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from sqlalchemy import Connection

from oohcore.audit.chain import append_event
from oohcore.channels.local import LocalChannel
from oohcore.clock import ManualClock
from oohcore.durable.outbox import OutboxRow
from oohcore.durable.runner import Runner
from oohcore.durable.timers import TimerRow
from oohcore.store import Store


def on_sent(conn: Connection, row: OutboxRow, now: datetime) -> None:
    append_event(
        conn,
        organisation_id=row.organisation_id,
        call_id=row.call_id,
        kind="message.sent",
        payload={"key": row.idempotency_key, "ref": row.provider_ref},
        at=now,
    )


def on_timer(conn: Connection, timer: TimerRow, now: datetime) -> None:  # pragma: no cover
    raise AssertionError("no timers in this test")


def main(argv: list[str]) -> int:
    db, jsonl, now_iso = argv[1:4]
    batch = int(argv[4]) if len(argv) > 4 else 50
    now = datetime.fromisoformat(now_iso)
    store = Store.open(f"sqlite:///{db}", clock=ManualClock(now))
    channel = LocalChannel(jsonl)
    try:
        runner = Runner(
            store, {"local": channel}, on_timer=on_timer, on_sent=on_sent, message_batch=batch
        )
        report = runner.tick(now)
    finally:
        channel.close()
        store.close()
    print(
        json.dumps(
            {
                "sent": len(report.sent),
                "duplicates": len(report.duplicates),
                "errors": [e.error for e in report.errors],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
