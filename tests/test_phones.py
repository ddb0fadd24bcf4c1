"""One phone number, one way (``oohcore.phones``, on ``phonenumbers``): every spelling of a UK
number is one E.164 number wherever a number is stored or compared — a CDR's link to its call
(11.6.1), an officer's text reply (5.3.2), the access number a call arrives on (7.1.2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine_support import CHANNELS, FIXTURES, refer_heating_call
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine, steps
from oohcore.phones import e164, same_number
from oohcore.rulesets import compiler
from oohcore.telephony import cdrs, import_cdrs
from test_kpi_support import cdr, insert_call, open_store, org_a, utc

SPELLINGS = (
    "07700 900123",
    "07700900123",
    "+44 7700 900123",
    "+447700900123",
    "447700900123",
    "0044 7700 900123",
    "(07700) 900-123",
    "tel:+44-7700-900123",
    "sip:+447700900123@trunk.example.net;user=phone",
)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_uk_number_is_one_e164_number(spelling: str) -> None:
    assert e164(spelling) == "+447700900123"
    assert same_number(spelling, SPELLINGS[0])


@pytest.mark.parametrize(
    "text", [None, "", "anonymous", "withheld", "sip:anonymous@trunk", "1" * 100, 447700900123]
)
def test_what_is_no_telephone_number_is_none(text: object) -> None:
    assert e164(text) is None
    assert not same_number(text, text)


def test_the_old_normalisers_are_gone() -> None:
    assert not hasattr(compiler, "normalise_number")
    assert not hasattr(steps, "digits")


@pytest.mark.parametrize("caller", ["447700900123", "+447700900123", "07700 900123"])
@pytest.mark.parametrize("on_call", ["07700 900123", "+447700900123"])
def test_a_cdr_links_to_its_call_whatever_the_spelling(
    tmp_path: Path, caller: str, on_call: str
) -> None:
    store = open_store(tmp_path)
    t = utc(2026, 10, 3, 21, 0)
    with store.transaction() as conn:
        call = insert_call(
            conn, reference="A-7", option="repairs", received_at=t, caller_number=on_call
        )
    result = import_cdrs(
        store, org_a(), [cdr("n1", t + timedelta(seconds=20), wait=5, caller=caller)]
    )
    assert result.linked == 1
    with store.read() as conn:
        row = conn.execute(select(cdrs.c.call_id, cdrs.c.caller_number)).one()
    assert row.call_id == call
    assert row.caller_number == "+447700900123"  # E.164 in storage
    store.close()


@pytest.fixture
def engine(tmp_path: Path, clock: ManualClock) -> Iterator[Engine]:
    channels = {name: MemoryChannel() for name in CHANNELS}
    eng = Engine.open(
        FIXTURES, f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=clock, channels=channels
    )
    yield eng
    eng.close()


@pytest.mark.parametrize("sender", ["0044 7700 900001", "447700900001", "+44 (0)7700 900001"])
def test_an_officer_s_reply_is_matched_whatever_the_spelling(engine: Engine, sender: str) -> None:
    """Rita's number is "07700 900001" on the rota; the network gives it another way."""
    _, reference = refer_heating_call(engine)
    assert engine.receive("org-a", "sms", sender, f"ACK {reference}") == "ack"


def test_a_call_stores_its_numbers_in_e164(engine: Engine) -> None:
    call = engine.offer(
        "0044 100 000 0002", caller_number="sip:+447700900123@trunk.example.net;user=phone"
    )
    view = engine.organisation(call.organisation_id).get(call.id)
    assert view.caller_number == "+447700900123"
    assert view.service_option == "repairs"


def test_an_access_number_that_is_no_number_is_refused_at_its_line(tmp_path: Path) -> None:
    import shutil

    from oohcore.errors import RulesetError
    from oohcore.rulesets.loader import load_organisations

    shutil.copytree(FIXTURES, tmp_path / "orgs")
    path = tmp_path / "orgs" / "org-a" / "organisation.yaml"
    text = path.read_text()
    assert '"0100 000 0002"' in text
    path.write_text(text.replace('"0100 000 0002"', '"+0 000"', 1))
    with pytest.raises(RulesetError) as caught:
        load_organisations(tmp_path / "orgs")
    assert any("'+0 000' is not a telephone number" in p.message for p in caught.value.problems)


def test_a_rota_phone_that_is_no_number_is_refused_at_its_line(tmp_path: Path) -> None:
    """An officer whose phone can never match a reply (5.3.2) is a mistake to show at once."""
    from oohcore.errors import RulesetError
    from oohcore.rota import read_rota

    text = (FIXTURES / "org-a" / "rota.yaml").read_text()
    assert 'phone: "07700 900002"' in text
    path = tmp_path / "rota.yaml"
    path.write_text(text.replace('phone: "07700 900002"', 'phone: "ring the depot"', 1))
    roles = org_a().rota_roles
    read_rota(FIXTURES / "org-a" / "rota.yaml", timezone="Europe/London", roles=roles)
    with pytest.raises(RulesetError) as caught:
        read_rota(path, timezone="Europe/London", roles=roles)
    [problem] = [p for p in caught.value.problems if "ring the depot" in p.message]
    assert problem.line == 3 and "is not a telephone number" in problem.message
