"""Every misuse of the façade gets one of oohcore's documented exceptions, and changes nothing
(issue 7, defects 6 and 11).

Each public method of ``Engine`` and ``OrganisationDesk`` is fed wrong types and wrong forms: a
naive or string ``at=``, ``None`` or a list for an id, text with a NUL or a lone surrogate, a
caller number or a name past the documented limit, answers that are not a mapping, numbers
written ``nan``, ``1_0`` or ``٣``. Before, these raised ``TypeError``, ``AttributeError``,
``ValueError`` or (on PostgreSQL only) SQLAlchemy's ``DataError``. Now each raises a class listed
in docs/integration.md's table "What can go wrong" (parsed from the doc here, so the doc
cannot fall behind), and the store is exactly as it was.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from oohcore.clock import ManualClock
from oohcore.engine import ConcurrentChange, Engine, EngineError, OrganisationDesk, inputs
from oohcore.errors import OohcoreError
from pg_support import postgres_database

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "engine"
LONDON = ZoneInfo("Europe/London")
FRIDAY_EVENING = datetime(2026, 11, 20, 22, 0, tzinfo=LONDON)
REPAIRS = "0100 000 0002"
IVR = "0100 000 0001"
TABLES = (
    "calls",
    "call_counters",
    "events",
    "audit_heads",
    "outbox",
    "timers",
    "referrals",
    "personal_data",
)


def documented_exceptions() -> set[str]:
    """The exception names in the first column of docs/integration.md's table of errors."""
    doc = (ROOT / "docs" / "integration.md").read_text()
    section = doc.split("## What can go wrong", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        m = re.match(r"^\|\s*`([A-Za-z_.]+)`", line)
        if m:
            names.add(m.group(1).rsplit(".", 1)[-1])
    assert names, "the table of exceptions was not found in docs/integration.md"
    return names


class World:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        call = engine.offer(REPAIRS, caller_number="07700 900123")
        self.desk: OrganisationDesk = engine.organisation(call.organisation_id)
        self.desk.answer(call.id, handler="amy")
        self.desk.capture(call.id, {"repair": "no_heating"})
        self.call_id = call.id
        self.reference = call.reference
        self.ivr_call = engine.offer(IVR).id

    def snapshot(self) -> dict[str, Any]:
        with self.engine.store.read() as conn:
            out: dict[str, Any] = {}
            for table in TABLES:
                out[table] = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()
            return out


def _open(url: str) -> Engine:
    return Engine.open(FIXTURES, url, clock=ManualClock(FRIDAY_EVENING))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One store for all the misuse cases (each must leave it unchanged, which is checked)."""
    engine = _open(f"sqlite:///{tmp_path_factory.mktemp('inputs') / 'ooh.sqlite'}")
    yield World(engine)
    engine.close()


NAIVE = datetime(2026, 11, 20, 22, 0)
LONG_NAME = "h" * (inputs.NAME_MAX + 1)
SURROGATE = "Ann \ud800 Lee"

Case = Callable[[World], object]
CASES: dict[str, Case] = {
    # Engine
    "offer(None)": lambda w: w.engine.offer(None),  # type: ignore[arg-type]
    "offer(123)": lambda w: w.engine.offer(123),  # type: ignore[arg-type]
    "offer(surrogate)": lambda w: w.engine.offer(SURROGATE),
    "offer caller_number=int": lambda w: w.engine.offer(REPAIRS, caller_number=7700),  # type: ignore[arg-type]
    "offer caller_number too long": lambda w: w.engine.offer(
        REPAIRS, caller_number="sip:" + "1" * inputs.CALLER_NUMBER_MAX
    ),
    "offer caller_number NUL": lambda w: w.engine.offer(REPAIRS, caller_number="0770\x00"),
    "offer caller_number surrogate": lambda w: w.engine.offer(REPAIRS, caller_number=SURROGATE),
    "offer at=naive": lambda w: w.engine.offer(REPAIRS, at=NAIVE),
    "offer at=str": lambda w: w.engine.offer(REPAIRS, at="2026-11-20T22:00"),  # type: ignore[arg-type]
    "offer at=float": lambda w: w.engine.offer(REPAIRS, at=1.5),  # type: ignore[arg-type]
    "offer unknown number": lambda w: w.engine.offer("0999 999 9999"),
    "tick(str)": lambda w: w.engine.tick("now"),  # type: ignore[arg-type]
    "tick(naive)": lambda w: w.engine.tick(NAIVE),
    "organisation(None)": lambda w: w.engine.organisation(None),  # type: ignore[arg-type]
    "organisation(list)": lambda w: w.engine.organisation(["org-a"]),  # type: ignore[arg-type]
    "organisation(typo)": lambda w: w.engine.organisation("org-typo"),
    # reading
    "get(None)": lambda w: w.desk.get(None),  # type: ignore[arg-type]
    "get(list)": lambda w: w.desk.get([w.call_id]),  # type: ignore[arg-type]
    "get(dict)": lambda w: w.desk.get({}),  # type: ignore[arg-type]
    "get(NUL)": lambda w: w.desk.get("\x00"),
    "get(surrogate)": lambda w: w.desk.get(SURROGATE),
    "get(huge)": lambda w: w.desk.get("x" * 10_000),
    "find(None)": lambda w: w.desk.find(None),  # type: ignore[arg-type]
    "find(int)": lambda w: w.desk.find(123),  # type: ignore[arg-type]
    "find(surrogate)": lambda w: w.desk.find(SURROGATE),
    "find(bad check)": lambda w: w.desk.find("ZZZZZZ"),
    "events(None)": lambda w: w.desk.events(None),  # type: ignore[arg-type]
    "messages(int)": lambda w: w.desk.messages(1),  # type: ignore[arg-type]
    "referrals(list)": lambda w: w.desk.referrals([]),  # type: ignore[arg-type]
    "script(None)": lambda w: w.desk.script(None),  # type: ignore[arg-type]
    "search since=str": lambda w: w.desk.search(since="yesterday"),  # type: ignore[arg-type]
    "search until=naive": lambda w: w.desk.search(until=NAIVE),
    "search limit=str": lambda w: w.desk.search(limit="10"),  # type: ignore[arg-type]
    "search limit=0": lambda w: w.desk.search(limit=0),
    "search limit=True": lambda w: w.desk.search(limit=True),
    "search uprn=list": lambda w: w.desk.search(uprn=[1]),  # type: ignore[arg-type]
    "search caller_name=int": lambda w: w.desk.search(caller_name=1),  # type: ignore[arg-type]
    "search address=surrogate": lambda w: w.desk.search(address=SURROGATE),
    # the steps
    "choose(int)": lambda w: w.desk.choose(w.ivr_call, 1),  # type: ignore[arg-type]
    "choose(None)": lambda w: w.desk.choose(w.ivr_call, None),  # type: ignore[arg-type]
    "choose(unknown key)": lambda w: w.desk.choose(w.ivr_call, "9"),
    "answer handler=None": lambda w: w.desk.answer(w.ivr_call, handler=None),  # type: ignore[arg-type]
    "answer handler too long": lambda w: w.desk.answer(w.call_id, handler=LONG_NAME),
    "answer handler surrogate": lambda w: w.desk.answer(w.call_id, handler=SURROGATE),
    "answer handler NUL": lambda w: w.desk.answer(w.call_id, handler="a\x00b"),
    "capture(None)": lambda w: w.desk.capture(w.call_id, None),  # type: ignore[arg-type]
    "capture(list)": lambda w: w.desk.capture(w.call_id, [("repair", "leak")]),  # type: ignore[arg-type]
    "capture(str)": lambda w: w.desk.capture(w.call_id, "repair=leak"),  # type: ignore[arg-type]
    "capture int key": lambda w: w.desk.capture(w.call_id, {1: "x"}),  # type: ignore[dict-item]
    "capture surrogate": lambda w: w.desk.capture(w.call_id, {"caller_name": SURROGATE}),
    "capture NUL": lambda w: w.desk.capture(w.call_id, {"caller_name": "Ann\x00"}),
    "capture object": lambda w: w.desk.capture(w.call_id, {"caller_name": object()}),
    "capture dict value": lambda w: w.desk.capture(w.call_id, {"caller_name": {"a": 1}}),
    "capture number nan": lambda w: w.desk.capture(w.call_id, {"outside_temp": "nan"}),
    "capture number inf": lambda w: w.desk.capture(w.call_id, {"outside_temp": "-inf"}),
    "capture number float nan": lambda w: w.desk.capture(w.call_id, {"outside_temp": float("nan")}),
    "capture number 1_0": lambda w: w.desk.capture(w.call_id, {"outside_temp": "1_0"}),
    "capture number arabic-indic": lambda w: w.desk.capture(w.call_id, {"outside_temp": "٣"}),
    "acknowledge by=None": lambda w: w.desk.acknowledge(w.call_id, by=None),  # type: ignore[arg-type]
    "acknowledge by too long": lambda w: w.desk.acknowledge(w.call_id, by=LONG_NAME),
    "phoned outcome=None": lambda w: w.desk.phoned(w.call_id, outcome=None, by="amy"),  # type: ignore[arg-type]
    "phoned by=int": lambda w: w.desk.phoned(w.call_id, outcome="answered", by=3),  # type: ignore[arg-type]
    "phoned unknown outcome": lambda w: w.desk.phoned(w.call_id, outcome="maybe", by="amy"),
    "check_out staff_id=int": lambda w: w.desk.check_out(w.call_id, staff_id=1),  # type: ignore[arg-type]
    "check_out manager=list": lambda w: w.desk.check_out(w.call_id, manager=["x"]),  # type: ignore[arg-type]
    "transfer_failed reason=None": lambda w: w.desk.transfer_failed(w.call_id, reason=None),  # type: ignore[arg-type]
    "close before actioned": lambda w: w.desk.close(w.call_id),
    # signed links (5.3.2): what a link signs, and whatever an opened URL carries
    "ack_link officer=None": lambda w: w.desk.ack_link(w.call_id, officer=None),  # type: ignore[arg-type]
    "ack_link officer=int": lambda w: w.desk.ack_link(w.call_id, officer=123),  # type: ignore[arg-type]
    "ack_link officer NUL": lambda w: w.desk.ack_link(w.call_id, officer="ri\x00ta"),
    "ack_link officer too long": lambda w: w.desk.ack_link(w.call_id, officer="r" * 5000),
    "ack_link action=delete": lambda w: w.desk.ack_link(w.call_id, officer="rita", action="x"),
    "follow_link(None)": lambda w: w.engine.follow_link(None),  # type: ignore[arg-type]
    "follow_link(non-ASCII)": lambda w: w.engine.follow_link("e30.é"),
    "follow_link(nested)": lambda w: w.engine.follow_link("W1tbW1tbW1tbW1tb.x"),
}

STEPS: dict[str, Callable[[OrganisationDesk, Any, Any], object]] = {
    "choose": lambda d, c, at: d.choose(c, "1", at=at),
    "answer": lambda d, c, at: d.answer(c, handler="amy", at=at),
    "capture": lambda d, c, at: d.capture(c, {"repair": "leak"}, at=at),
    "next_step": lambda d, c, at: d.next_step(c, at=at),
    "complete": lambda d, c, at: d.complete(c, at=at),
    "transfer_failed": lambda d, c, at: d.transfer_failed(c, at=at),
    "close": lambda d, c, at: d.close(c, at=at),
    "abandon": lambda d, c, at: d.abandon(c, at=at),
    "acknowledge": lambda d, c, at: d.acknowledge(c, by="jo", at=at),
    "phoned": lambda d, c, at: d.phoned(c, outcome="answered", by="jo", at=at),
    "check_out": lambda d, c, at: d.check_out(c, staff_id="s1", at=at),
}


def _step_case(step: Callable[[OrganisationDesk, Any, Any], object], call: str, at: Any) -> Case:
    def case(w: World) -> object:
        call_id: Any = {"list": [w.call_id], "none": None, "id": w.call_id}[call]
        return step(w.desk, call_id, at)

    return case


for _step, _call in STEPS.items():
    CASES[f"{_step} call_id=list"] = _step_case(_call, "list", None)
    CASES[f"{_step} call_id=None"] = _step_case(_call, "none", None)
    CASES[f"{_step} at=naive"] = _step_case(_call, "id", NAIVE)
    CASES[f"{_step} at=str"] = _step_case(_call, "id", "2026-11-20")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_misuse_raises_a_documented_exception_and_changes_nothing(
    world: World, case: str
) -> None:
    before = world.snapshot()
    with pytest.raises(OohcoreError) as raised:
        CASES[case](world)
    assert isinstance(raised.value, EngineError), type(raised.value)
    assert type(raised.value).__name__ in documented_exceptions(), (
        f"{case} raised {type(raised.value).__name__}, which docs/integration.md does not list"
    )
    assert world.snapshot() == before


def test_every_engine_error_class_is_in_the_table() -> None:
    import oohcore.engine.errors as errors

    classes = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, EngineError)
    }
    assert classes - documented_exceptions() == set()


def test_a_step_still_works_after_the_checks(world: World) -> None:
    """The checks refuse only what is wrong: aware datetimes, the limits themselves."""
    at = datetime(2026, 11, 20, 22, 5, tzinfo=LONDON)
    sip = "sip:" + "4" * (inputs.CALLER_NUMBER_MAX - 4)
    call = world.engine.offer(REPAIRS, caller_number=sip, at=at)
    assert call.id
    view = world.desk.answer(call.id, handler="h" * inputs.NAME_MAX, at=at)
    assert view.state == "answered"
    world.desk.capture(call.id, {"repair": "no_heating", "outside_temp": "-3.5"})
    assert world.desk.get(call.id).answers["outside_temp"] == -3.5


# -- PostgreSQL: the same input behaves the same as on SQLite (defect 6) ---------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def test_postgresql_records_a_sip_caller_and_a_long_handler(pg_url: str) -> None:
    engine = _open(pg_url)
    try:
        sip = "sip:+447700900123@trunk.example-borough.gov.uk;user=phone"  # 57 characters
        call = engine.offer(REPAIRS, caller_number=sip)
        desk = engine.organisation(call.organisation_id)
        handler = "Amelia " + "Longname-" * 20  # 187 characters
        assert desk.answer(call.id, handler=handler).state == "answered"
        with engine.store.read() as conn:
            stored = conn.execute(
                text("SELECT caller_number, handler FROM calls WHERE id = :i"), {"i": call.id}
            ).one()
        assert tuple(stored) == ("+447700900123", handler)  # the SIP caller's number, in E.164
    finally:
        engine.close()


@pytest.mark.parametrize(
    "case",
    [
        "offer caller_number too long",
        "answer handler too long",
        "capture NUL",
        "get(NUL)",
        "offer caller_number NUL",
    ],
)
def test_postgresql_refuses_what_sqlite_refuses(pg_url: str, case: str) -> None:
    engine = _open(pg_url)
    try:
        world = World(engine)
        before = world.snapshot()
        with pytest.raises(EngineError) as raised:
            CASES[case](world)
        assert type(raised.value).__name__ in documented_exceptions()
        assert world.snapshot() == before
    finally:
        engine.close()


def test_postgresql_concurrent_first_calls_raise_concurrent_change_or_succeed(
    pg_url: str,
) -> None:
    """Two desks offering the first calls of a new store at once race to create the call
    counter row; the loser used to get SQLAlchemy's IntegrityError, now ConcurrentChange (which
    a host retries), and a retry succeeds."""
    engines = [_open(pg_url) for _ in range(4)]
    outcomes: list[object] = []
    barrier = threading.Barrier(len(engines))

    def offer(e: Engine) -> None:
        barrier.wait()
        try:
            outcomes.append(e.offer(REPAIRS).id)
        except Exception as exc:
            outcomes.append(exc)

    try:
        threads = [threading.Thread(target=offer, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert len(outcomes) == len(engines)
        assert all(isinstance(e, ConcurrentChange) for e in errors), errors
        for _ in errors:
            assert engines[0].offer(REPAIRS).id  # the retry a host makes succeeds
    finally:
        for e in engines:
            e.close()


# -- inbound messages: bad input is an answer, never an error (docs/integration.md) -----------

INBOUND: dict[str, tuple[Any, Any, Any]] = {
    "channel=None": (None, "07700 900123", "ACK K7M-3QX-F"),
    "channel empty": ("", "07700 900123", "OK"),
    "channel=int": (5, "07700 900123", "OK"),
    "channel NUL": ("sms\x00", "07700 900123", "OK"),
    "channel surrogate": ("sms\ud800", "07700 900123", "OK"),
    "channel too long": ("s" * 5000, "07700 900123", "OK"),
    "sender=None": ("sms", None, "OK"),
    "sender empty": ("sms", "", "OK"),
    "sender=list": ("sms", ["07700"], "OK"),
    "sender too long": ("sms", "0" * 5000, "OK"),
    "sender surrogate": ("sms", "0770\ud800", "hello"),
    "text=None": ("sms", "07700 900123", None),
    "text=bytes": ("sms", "07700 900123", b"OK"),
    "text surrogate": ("sms", "07700 900123", "ACK \ud800"),
}


@pytest.mark.parametrize("case", sorted(INBOUND))
def test_receive_answers_bad_inbound_input_with_a_documented_outcome(
    world: World, case: str
) -> None:
    channel, sender, body = INBOUND[case]
    outcome = world.engine.receive("org-a", channel, sender, body)
    assert outcome == "unmatched"
    with world.engine.store.read() as conn:
        kinds = conn.execute(text("SELECT kind FROM events ORDER BY id DESC LIMIT 1")).scalar()
        channels = conn.execute(
            text("SELECT channel FROM outbox ORDER BY id DESC LIMIT 1")
        ).scalar()
    assert kinds == "inbound.received"  # recorded
    assert channels in (None, "sms")  # only ever answered on a channel it can name
