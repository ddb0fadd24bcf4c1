"""A host's wrong arguments get one of the documented exceptions, the same on SQLite and on
PostgreSQL, and change nothing (issue 7: defects 6 and 11). The exceptions a host can see are
those of docs/integration.md's table: the test reads the table and checks each one is there."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))
from oohcore.audit import events
from oohcore.calls import calls
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import (
    CallNotFound,
    Engine,
    EngineError,
    InvalidAnswers,
    InvalidArgument,
    OrganisationDesk,
    UnknownNumber,
)
from oohcore.engine.inputs import CALLER_NUMBER_MAX
from pg_support import postgres_database

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
LONDON = ZoneInfo("Europe/London")
EVENING = datetime(2026, 11, 20, 22, 0, tzinfo=LONDON)
REPAIRS = "0100 000 0002"
DOCS = Path(__file__).parent.parent / "docs" / "integration.md"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    def open_engine(url: str) -> Engine:
        channel = MemoryChannel()
        chans = dict.fromkeys(("sms", "email", "pager", "phone", "feed", "crm"), channel)
        return Engine.open(FIXTURES, url, clock=ManualClock(EVENING), channels=chans)

    if request.param == "postgresql":
        with postgres_database("oohcore_inputs") as url:
            eng = open_engine(url)
            yield eng
            eng.close()
    else:
        eng = open_engine(f"sqlite:///{tmp_path / 'ooh.sqlite'}")
        yield eng
        eng.close()


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.store.read() as conn:
        n_calls = conn.execute(select(func.count()).select_from(calls)).scalar_one()
        n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
    return int(n_calls), int(n_events)


def _answered(engine: Engine) -> tuple[OrganisationDesk, str]:
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy")
    return desk, call.id


def test_a_sip_uri_caller_and_a_long_handler_behave_the_same_on_both_stores(
    engine: Engine,
) -> None:
    """Defect 6: on PostgreSQL these raised a raw DataError and the call was never recorded."""
    sip = "sip:+442079460000;cpc=ordinary@gateway.example-carrier.net;user=phone;" + "x" * 40
    call = engine.offer(REPAIRS, caller_number=sip)
    assert call.caller_number == sip  # 116 characters, kept whole
    desk = engine.organisation("org-a")
    handler = "Call handler " + "h" * 150  # 163 characters: over the old 128
    assert desk.answer(call.id, handler=handler).handler == handler
    huge = "sip:" + "9" * 5000  # not refused: the call is recorded, the number cut to fit
    long_call = engine.offer(REPAIRS, caller_number=huge)
    assert long_call.caller_number == huge[:CALLER_NUMBER_MAX]
    assert desk.get(long_call.id).caller_number == huge[:CALLER_NUMBER_MAX]
    before = _counts(engine)
    with pytest.raises(InvalidArgument, match="handler"):
        desk.answer(long_call.id, handler="h" * 5000)
    assert _counts(engine) == before


def _misuses(
    desk: OrganisationDesk, engine: Engine, call_id: str
) -> list[tuple[str, Callable[[], Any], type[EngineError]]]:
    return [
        (
            "naive at=",
            lambda: desk.capture(call_id, {}, at=datetime(2026, 11, 20, 22, 5)),
            InvalidArgument,
        ),
        ("string at=", lambda: desk.capture(call_id, {}, at="2026-11-20T22:05"), InvalidArgument),  # type: ignore[arg-type]
        ("offer(None)", lambda: engine.offer(None), InvalidArgument),  # type: ignore[arg-type]
        ("offer(number as int)", lambda: engine.offer(1000002), InvalidArgument),  # type: ignore[arg-type]
        ("unknown number", lambda: engine.offer("0100 999 9999"), UnknownNumber),
        ("find(None)", lambda: desk.find(None), InvalidArgument),  # type: ignore[arg-type]
        ("find(rubbish)", lambda: desk.find("not a reference"), CallNotFound),
        ("capture(id, None)", lambda: desk.capture(call_id, None), InvalidArgument),  # type: ignore[arg-type]
        ("capture with a non-string key", lambda: desk.capture(call_id, {1: "x"}), InvalidArgument),  # type: ignore[dict-item]
        ("a list as a call id", lambda: desk.get(["x"]), InvalidArgument),  # type: ignore[arg-type]
        ("a list as a call id (step)", lambda: desk.next_step(["x"]), InvalidArgument),  # type: ignore[arg-type]
        ("an over-long call id", lambda: desk.get("c" * 10_000), CallNotFound),
        (
            "a number answer 'nan'",
            lambda: desk.capture(call_id, {"outside_temp": "nan"}),
            InvalidAnswers,
        ),
        (
            "a number answer 'inf'",
            lambda: desk.capture(call_id, {"outside_temp": "inf"}),
            InvalidAnswers,
        ),
        (
            "a number answer '1_0'",
            lambda: desk.capture(call_id, {"outside_temp": "1_0"}),
            InvalidAnswers,
        ),
        (
            "a number answer in Arabic-Indic digits",
            lambda: desk.capture(call_id, {"outside_temp": "٣"}),
            InvalidAnswers,
        ),
        (
            "a lone surrogate in a text answer",
            lambda: desk.capture(call_id, {"caller_name": "Ann \ud800"}),
            InvalidAnswers,
        ),
        (
            "a lone surrogate in a handler",
            lambda: desk.answer(call_id, handler="amy\udfff"),
            InvalidArgument,
        ),
        ("acknowledge by None", lambda: desk.acknowledge(call_id, by=None), InvalidArgument),  # type: ignore[arg-type]
        ("an IVR key as a number", lambda: desk.choose(call_id, 1), InvalidArgument),  # type: ignore[arg-type]
    ]


def test_every_misuse_gets_a_documented_exception_and_changes_nothing(engine: Engine) -> None:
    desk, call_id = _answered(engine)
    documented = _documented_exceptions()
    for what, misuse, expected in _misuses(desk, engine, call_id):
        before = _counts(engine)
        with pytest.raises(EngineError) as caught:
            misuse()
        assert type(caught.value) is expected, f"{what}: {type(caught.value).__name__}"
        assert type(caught.value).__name__ in documented, f"{what}: not in the table"
        assert str(caught.value), what
        assert _counts(engine) == before, f"{what} changed the store"
    # and the call still goes on normally afterwards
    desk.capture(call_id, {"caller_name": "Ann Lee", "outside_temp": "3"})
    assert desk.get(call_id).answers["outside_temp"] == 3


def _documented_exceptions() -> set[str]:
    """The exception classes named in the first column of docs/integration.md's table."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## What can go wrong", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)`", section, re.M))


def test_the_table_names_every_exception_the_engine_exports() -> None:
    import oohcore.engine as engine_pkg

    exported = {
        name
        for name in engine_pkg.__all__
        if isinstance(getattr(engine_pkg, name), type)
        and issubclass(getattr(engine_pkg, name), Exception)
    }
    missing = exported - _documented_exceptions()
    assert not missing, f"docs/integration.md's table lacks {sorted(missing)}"
