"""A purge clears every copy of a call's personal data (7.14.3, 7.14.7), on SQLite and
PostgreSQL: the call row, the earlier-call search index, message bodies and the caller's
address, the referral's frozen texts and fields, the telephone records. ``desk.get`` and
``desk.search`` no longer show the caller, a sweep of every table finds none of it, and
``oohcore audit verify`` still passes. A call whose escalation still runs keeps its details."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from engine_support import CHANNELS, FIXTURES, FRIDAY_EVENING, HEATING, REPAIRS
from oohcore.channels.local import MemoryChannel
from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.engine.records import verify
from oohcore.retention import RetentionError, purge_expired, purge_personal_data
from oohcore.store.schema import metadata
from oohcore.telephony import cdrs_from_calls, import_cdrs
from pg_support import postgres_database

ANN = {**HEATING, "caller_name": "Zelda Quintrell", "address": "Flat 3 Kestrel House, Heron Way"}
ANN.pop("postcode")
ANN_NUMBER = "07700 900456"
# what no row may hold once Zelda's call is purged (her number in any of its spellings)
TRACES = ("ZELDA", "QUINTRELL", "KESTREL", "HERON", "7700900456", "7700 900456", "100000000002")
BO = {**HEATING, "caller_name": "Bo Day", "address": "7 Mill Lane", "postcode": "SE2 3AB"}


@pytest.fixture
def orgs(tmp_path: Path) -> Path:
    """The engine fixtures, the lone-worker option with a reminder, an amber stage and a
    buddy's number (a third party's personal data the caller gives)."""
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    option = tmp_path / "orgs" / "org-a" / "options" / "lone-worker.yaml"
    text = option.read_text()
    text = text.replace("    grace: 5m\n", "    grace: 5m\n    reminder: 10m\n    amber: 10m\n")
    site = '    - {field: address, ask: "Site address?", type: address, essential: true}\n'
    text = text.replace(site, site + '    - {field: buddy_phone, ask: "Buddy?", type: phone}\n')
    assert "amber: 10m" in text and "buddy_phone" in text
    option.write_text(text)
    return tmp_path / "orgs"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, orgs: Path) -> Iterator[Engine]:
    channels = {name: MemoryChannel() for name in CHANNELS}
    clock = ManualClock(FRIDAY_EVENING)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
        with Engine.open(orgs, url, clock=clock, channels=channels) as eng:
            yield eng
        return
    with (
        postgres_database() as url,
        Engine.open(orgs, url, clock=clock, channels=channels) as eng,
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


def _clock(engine: Engine) -> ManualClock:
    assert isinstance(engine.clock, ManualClock)
    return engine.clock


def _url(engine: Engine) -> str:
    return engine.store.engine.url.render_as_string(hide_password=False)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _traces(conn: Connection, extra: tuple[str, ...] = ()) -> list[str]:
    """Every (table, row) of the store that still holds a trace of Zelda's call."""
    found = []
    for table in metadata.sorted_tables:
        for row in conn.execute(select(table)):
            text = " ".join(str(v) for v in row).upper()
            found += [f"{table.name}: {t}" for t in (*TRACES, *extra) if t.upper() in text]
    return found


def test_a_purge_clears_every_copy_and_the_audit_still_verifies(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    zelda = _finished(engine, ANN, ANN_NUMBER)
    bo = _finished(engine, BO, "07700 900789")
    with engine.store.read() as conn:  # the network's records of the calls, linked to them
        records = cdrs_from_calls(conn, "org-a")
    assert import_cdrs(engine.store, engine.organisations["org-a"], records).linked == 2
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
    _clock(engine).advance(timedelta(minutes=20))
    engine.tick()  # the escalation still has her address for the next stage
    stage_texts = [m.message.body for m in desk.messages(zelda) if "Kestrel" in m.message.body]
    assert len(stage_texts) >= 2


def test_a_retention_run_skips_a_running_referral_and_clears_the_others(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    running = _referred(engine, ANN, ANN_NUMBER)
    done = _finished(engine, BO, "07700 900789")
    _clock(engine).advance(timedelta(days=400))
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


def test_a_lone_workers_watch_its_texts_and_replies_are_cleared(engine: Engine) -> None:
    """5.2.3.6: the worker's reminder and amber texts (to the worker's number and to the buddy's
    number the worker gave), the watch's snapshot and the worker's "OK" reply."""
    desk = engine.organisation("org-a")
    call = engine.offer("0100 000 0004", caller_number=ANN_NUMBER)
    desk.answer(call.id, handler="amy")
    buddy = "07700 900321"
    desk.capture(call.id, {"caller_name": "Zelda Quintrell", "address": ANN["address"]})
    desk.capture(call.id, {"buddy_phone": buddy})
    assert desk.next_step(call.id).kind == "lone_worker"
    desk.complete(call.id)
    engine.tick()
    _clock(engine).advance(timedelta(minutes=66))  # past the visit's end and its grace: amber
    engine.tick()
    sent = [_digits(m.message.recipient) for m in desk.messages(call.id) if m.sent_at]
    assert any(d.endswith("7700900456") for d in sent)  # the worker's reminder and amber
    assert any(d.endswith("7700900321") for d in sent)  # the buddy's amber
    assert engine.receive("org-a", "sms", ANN_NUMBER, "OK") == "ok"  # an inbound reply
    if desk.get(call.id).state != "closed":
        desk.close(call.id)
    engine.tick()
    assert _purge(engine, call.id) >= 3
    with engine.store.read() as conn:
        assert _traces(conn, extra=("7700900321", "7700 900321")) == []
    assert all(
        m.message.recipient == "" for m in desk.messages(call.id) if "lone" in m.message.purpose
    )
    assert verify(engine.store).ok
