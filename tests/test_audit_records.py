"""``audit verify`` also checks the ``calls`` and ``outbox`` rows against the chain (issue 7,
defect 12).

Before, the hash chain covered only the events: an answer edited in ``calls.answers``, a call's
state changed by hand, or a message body rewritten in ``outbox`` went unnoticed. Each step now
seals the rows it writes into its last event (``oohcore.engine.records``): the non-personal
columns in the chain, the personal ones (7.14.3) beside it, so a purge still verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.engine.records import verify
from oohcore.retention import purge_personal_data
from pg_support import postgres_database

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "engine"
FRIDAY_EVENING = datetime(2026, 11, 20, 22, 0, tzinfo=ZoneInfo("Europe/London"))
REPAIRS = "0100 000 0002"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ooh.sqlite'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def referred(store_url: str) -> Iterator[tuple[Engine, str, str]]:
    """A repairs call referred to the on-call officer: a call row and outbox messages (on
    SQLite and on PostgreSQL, whose timestamps come back through another driver)."""
    url = store_url
    engine = Engine.open(FIXTURES, url, clock=ManualClock(FRIDAY_EVENING))
    call = engine.offer(REPAIRS, caller_number="07700 900123")
    desk = engine.organisation(call.organisation_id)
    desk.answer(call.id, handler="amy")
    desk.capture(
        call.id,
        {"caller_name": "Ann Lee", "address": "12 Heron Way", "repair": "leak"},
    )
    desk.next_step(call.id)
    desk.complete(call.id)
    assert desk.messages(call.id), "the referral queued messages"
    yield engine, call.id, url
    engine.close()


def _edit(engine: Engine, sql: str, **params: str) -> None:
    with engine.store.transaction() as conn:
        assert conn.execute(text(sql), params).rowcount == 1


def test_an_untouched_store_verifies(referred: tuple[Engine, str, str]) -> None:
    engine, _, _ = referred
    report = verify(engine.store)
    assert report.ok, report.problems


def test_an_edited_answer_is_detected(referred: tuple[Engine, str, str]) -> None:
    engine, call_id, url = referred
    _edit(
        engine,
        "UPDATE calls SET answers = replace(answers, 'leak', 'bins') WHERE id = :c",  # both SQLs
        c=call_id,
    )
    report = verify(engine.store)
    assert not report.ok
    assert any("answers" in p.message and call_id in p.message for p in report.problems)
    assert main(["audit", "verify", "--store", url]) == 1


def test_an_edited_state_is_detected(referred: tuple[Engine, str, str]) -> None:
    engine, call_id, _ = referred
    _edit(engine, "UPDATE calls SET state = 'closed' WHERE id = :c", c=call_id)
    problems = verify(engine.store).problems
    assert any(f"call {call_id}'s row" in p.message for p in problems)


def test_an_edited_message_body_is_detected(referred: tuple[Engine, str, str]) -> None:
    engine, call_id, url = referred
    key = engine.organisation("org-a").messages(call_id)[0].idempotency_key
    _edit(
        engine,
        "UPDATE outbox SET body = 'ignore this call' WHERE idempotency_key = :k",
        k=key,
    )
    problems = verify(engine.store).problems
    assert any(key in p.message and "body" in p.message for p in problems)
    assert main(["audit", "verify", "--store", url]) == 1


def test_a_redirected_message_is_detected(referred: tuple[Engine, str, str]) -> None:
    engine, call_id, _ = referred
    key = engine.organisation("org-a").messages(call_id)[0].idempotency_key
    _edit(
        engine,
        "UPDATE outbox SET recipient = '07000000000' WHERE idempotency_key = :k",
        k=key,
    )
    assert not verify(engine.store).ok


def test_after_a_purge_verify_still_passes_and_still_checks_the_chained_part(
    referred: tuple[Engine, str, str],
) -> None:
    engine, call_id, url = referred
    desk = engine.organisation("org-a")
    desk.close(call_id)
    engine.tick()
    desk.acknowledge(call_id, by="Rob")  # a running referral keeps its details (7.14.3)
    with engine.store.transaction() as conn:
        assert purge_personal_data(
            conn,
            organisation_id="org-a",
            call_id=call_id,
            at=FRIDAY_EVENING,
            by="dpo",
            reason="erasure request 17",
        )
    report = verify(engine.store)
    assert report.ok, report.problems
    assert main(["audit", "verify", "--store", url]) == 0
    _edit(engine, "UPDATE calls SET action_kind = 'resolve' WHERE id = :c", c=call_id)
    assert not verify(engine.store).ok


def test_steps_and_timers_keep_the_seal_current(referred: tuple[Engine, str, str]) -> None:
    """Later steps (a tick's escalation, an acknowledgement, the close) reseal what they
    change, so a store driven normally never reports a false problem."""
    engine, call_id, _ = referred
    desk = engine.organisation("org-a")
    engine.tick()
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(hours=1))
    engine.tick()
    desk.acknowledge(call_id, by="officer")
    desk.close(call_id)
    engine.tick()
    report = verify(engine.store)
    assert report.ok, report.problems


def test_a_step_that_leaves_the_personal_columns_writes_no_personal_record(
    referred: tuple[Engine, str, str],
) -> None:
    """Issue 12: only a step that changes the caller number or the answers seals them beside the
    chain (a personal record: one row and its index pages); the others seal the public columns
    only, marked ``"personal": False``, and an answer edited after them is still caught against
    the newest personal seal (the capture's)."""
    engine, call_id, _ = referred
    desk = engine.organisation("org-a")
    desk.close(call_id)
    events = desk.events(call_id)
    by_kind = {e.kind: e for e in events}
    closed = by_kind["call.closed"]
    assert closed.payload["sealed"]["personal"] is False
    assert closed.personal is None
    assert "personal" not in by_kind["call.captured"].payload["sealed"]
    captured = by_kind["call.captured"].personal
    assert captured is not None and "_sealed" in (captured.data or {})
    _edit(
        engine,
        "UPDATE calls SET answers = replace(answers, 'leak', 'bins') WHERE id = :c",
        c=call_id,
    )
    problems = verify(engine.store).problems
    assert any("answers" in p.message and call_id in p.message for p in problems)
