"""A purge clears every copy of a call's personal data (7.14.3, 7.14.7), on SQLite and
PostgreSQL: the call row, the earlier-call search index, message bodies and the caller's
address, the referral's frozen texts and fields, the telephone records. ``desk.get`` and
``desk.search`` no longer show the caller, a sweep of every table finds none of it, and
``oohcore audit verify`` still passes. A call whose escalation still runs keeps its details."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from engine_support import CHANNELS, FIXTURES, FRIDAY_EVENING, HEATING, REPAIRS
from oohcore.channels.local import MemoryChannel
from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.db import metadata
from oohcore.engine import Engine
from oohcore.engine.records import verify
from oohcore.retention import RetentionError, purge_expired, purge_personal_data
from pg_support import postgres_database

ANN = {**HEATING, "caller_name": "Zelda Quintrell", "address": "Flat 3 Kestrel House, Heron Way"}
ANN.pop("postcode")
ANN_NUMBER = "07700 900456"
# what no row may hold once Zelda's call is purged (her number in any of its spellings)
TRACES = ("ZELDA", "QUINTRELL", "KESTREL", "HERON", "7700900456", "7700 900456", "100000000002")
BO = {**HEATING, "caller_name": "Bo Day", "address": "7 Mill Lane", "postcode": "SE2 3AB"}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    channels = {name: MemoryChannel() for name in CHANNELS}
    clock = ManualClock(FRIDAY_EVENING)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
        with Engine.open(FIXTURES, url, clock=clock, channels=channels) as eng:
            yield eng
        return
    with (
        postgres_database() as url,
        Engine.open(FIXTURES, url, clock=clock, channels=channels) as eng,
    ):
        yield eng


def _referred(engine: Engine, answers: dict[str, object], number: str) -> str:
    call = engine.offer(REPAIRS, caller_number=number)
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, answers)
    assert desk.next_step(call.id).action_id == "refer-emergency"
    desk.complete(call.id)
    desk.close(call.id)
    engine.tick()  # the alert and the caller's text are sent
    return call.id


def _finished(engine: Engine, answers: dict[str, object], number: str) -> str:
    call_id = _referred(engine, answers, number)
    engine.organisation("org-a").acknowledge(call_id, by="Rob")
    return call_id


def _purge(engine: Engine, call_id: str) -> int:
    with engine.store.transaction() as conn:
        return purge_personal_data(
            conn,
            organisation_id="org-a",
            call_id=call_id,
            at=engine.clock.now(),
            by="data protection officer",
            reason="erasure request DP-2026-114",
        )


def _url(engine: Engine) -> str:
    return engine.store.engine.url.render_as_string(hide_password=False)


def _traces(conn: Connection) -> list[str]:
    """Every (table, row) of the store that still holds a trace of Zelda's call."""
    found = []
    for table in metadata.sorted_tables:
        for row in conn.execute(select(table)):
            text = " ".join(str(v) for v in row).upper()
            found += [f"{table.name}: {t}" for t in TRACES if t.upper() in text]
    return found


def test_a_purge_clears_every_copy_and_the_audit_still_verifies(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    zelda = _finished(engine, ANN, ANN_NUMBER)
    bo = _finished(engine, BO, "07700 900789")
    assert desk.get(zelda).answers["caller_name"] == "Zelda Quintrell"
    assert zelda in {h.call_id for h in desk.search(caller_name="Zelda Quintrell")}
    with engine.store.read() as conn:
        assert _traces(conn)  # the sweep sees her data before the purge
    assert _purge(engine, zelda) >= 3

    view = desk.get(zelda)
    assert dict(view.answers) == {} and view.caller_number is None
    assert view.reference and view.state == "closed"  # what proves the service stays
    assert not desk.search(caller_name="Zelda Quintrell")
    assert zelda not in {h.call_id for h in desk.search(address="Flat 3 Kestrel House")}
    messages = desk.messages(zelda)
    assert messages and all(m.message.body == "" and m.message.subject == "" for m in messages)
    caller_texts = [m for m in messages if m.message.purpose == "caller.sms"]
    assert caller_texts and all(m.message.recipient == "" for m in caller_texts)
    assert desk.referrals(zelda)[0].acknowledged_by == "Rob"
    with engine.store.read() as conn:
        assert _traces(conn) == []
    report = verify(engine.store)
    assert report.ok, report.problems
    assert main(["audit", "verify", "--store", _url(engine)]) == 0
    # the other caller's call is untouched
    assert desk.get(bo).answers["caller_name"] == "Bo Day"
    assert bo in {h.call_id for h in desk.search(caller_name="Bo Day")}
    assert _purge(engine, zelda) == 0  # again: nothing left, nothing appended


def test_a_call_whose_referral_still_runs_keeps_its_details(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    zelda = _referred(engine, ANN, ANN_NUMBER)  # alerting: nobody has acknowledged it
    with pytest.raises(RetentionError, match="still alerting"):
        _purge(engine, zelda)
    assert desk.get(zelda).answers["caller_name"] == "Zelda Quintrell"
    assert zelda in {h.call_id for h in desk.search(caller_name="Zelda Quintrell")}
    engine.clock.advance(timedelta(minutes=20))  # type: ignore[attr-defined]
    engine.tick()  # the escalation still has her address for the next stage
    stage_texts = [m.message.body for m in desk.messages(zelda) if "Kestrel" in m.message.body]
    assert len(stage_texts) >= 2


def test_a_retention_run_skips_a_running_referral_and_clears_the_others(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    running = _referred(engine, ANN, ANN_NUMBER)
    done = _finished(engine, BO, "07700 900789")
    engine.clock.advance(timedelta(days=400))  # type: ignore[attr-defined]
    with engine.store.transaction() as conn:
        purged = purge_expired(
            conn,
            organisation_id="org-a",
            older_than=engine.clock.now() - timedelta(days=365),
            at=engine.clock.now(),
            by="retention policy (1 year)",
        )
    assert purged == 1
    assert dict(desk.get(done).answers) == {}
    assert not desk.search(caller_name="Bo Day")
    assert desk.get(running).answers["caller_name"] == "Zelda Quintrell"
