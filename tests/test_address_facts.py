"""The gazetteer's facts of a captured address reach the handler and the decision (4.1.5b, 7.11).

The example borough's housing repairs option asks an ``address`` and no ``postcode``: the
address's own postcode, or no gazetteer match, says whether it is outside the area, and the
matched property's owner comes from the gazetteer's ``owner`` column."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine, NextStep
from oohcore.errors import RulesetError
from oohcore.rulesets.compiler import ADDRESS_FACTS, BUILTIN_FIELDS
from oohcore.rulesets.loader import load_organisation

ROOT = Path(__file__).resolve().parent.parent
BOROUGH = ROOT / "examples" / "example-borough"
REPAIRS_LINE = "020 7946 0100"
SATURDAY_NIGHT = datetime(2026, 12, 19, 23, 0, tzinfo=ZoneInfo("Europe/London"))
FLOOD = {
    "caller_name": "Ann Lee",
    "contact_phone": "07700 900123",
    "tenure": "council_tenant",
    "repair": "flooding",
    "details": "water through the kitchen ceiling",
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    channels = {n: MemoryChannel() for n in ("sms", "email", "pager", "feed", "crm")}
    url = f"sqlite:///{tmp_path / 'facts.sqlite'}"
    with Engine.open(BOROUGH, url, clock=ManualClock(SATURDAY_NIGHT), channels=channels) as eng:
        yield eng


def _decide(engine: Engine, address: str) -> NextStep:
    call = engine.offer(REPAIRS_LINE, caller_number="07700900123")
    desk = engine.organisation(call.organisation_id)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {**FLOOD, "address": address})
    return desk.next_step(call.id)


def test_an_address_whose_postcode_is_outside_the_area_is_flagged_and_signposted(
    engine: Engine,
) -> None:
    step = _decide(engine, "10 Downing Street, London SW1A 2AA")
    assert step.call.answers["outside_area"] is True
    assert step.outside_area  # the handler is told (4.1.5b)
    assert step.action_id == "signpost-out-of-area"  # never the borough's contractor
    assert step.kind == "signpost"


def test_an_address_with_no_postcode_that_matches_nothing_is_outside_the_area(
    engine: Engine,
) -> None:
    step = _decide(engine, "Flat 9, Nowhere Mansions, Elsewhere")
    assert step.call.answers["outside_area"] is True
    assert step.action_id == "signpost-out-of-area"


def test_a_council_home_in_the_area_gives_its_uprn_and_owner_and_is_referred(
    engine: Engine,
) -> None:
    step = _decide(engine, "2 High Street, Eastbrook")  # no postcode said
    answers = step.call.answers
    assert answers["uprn"] == 100090012032
    assert answers["outside_area"] is False
    assert answers["property_owner"] == "council"  # 7.11: the gazetteer's owner column
    assert not step.outside_area and step.property_owner == "council"
    assert step.action_id == "refer-emergency"


def test_a_corrected_address_clears_the_facts_of_the_first(engine: Engine) -> None:
    call = engine.offer(REPAIRS_LINE, caller_number="07700900123")
    desk = engine.organisation(call.organisation_id)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {**FLOOD, "address": "2 High Street, Eastbrook EB1 1AB"})
    assert desk.get(call.id).answers["property_owner"] == "council"
    moved = desk.capture(call.id, {"address": "10 Downing Street, London SW1A 2AA"})
    assert moved.answers["outside_area"] is True
    assert "uprn" not in moved.answers and "property_owner" not in moved.answers


def test_rules_can_read_the_property_owner_and_outside_area(tmp_path: Path) -> None:
    """The facts are built-in fields: ``oohcore validate`` accepts conditions on them and
    refuses a comparison of the wrong type, located."""
    org = tmp_path / "org"
    shutil.copytree(BOROUGH, org)
    repairs = org / "options" / "housing-repairs.yaml"
    repairs.write_text(
        repairs.read_text()
        + "\ndecision:\n  rules:\n"
        + "    - {when: 'property_owner == \"leasehold\" and not outside_area',"
        + " then: signpost-landlord}\n"
        + "  default: forward-daytime\n"
    )
    compiled = load_organisation(org)
    option = compiled.service_options["housing-repairs"]
    assert option.decide({"property_owner": "leasehold", "outside_area": False}).rule == 0
    assert option.decide({"property_owner": "council", "outside_area": False}).rule is None
    repairs.write_text(repairs.read_text().replace('"leasehold"', "3"))
    with pytest.raises(RulesetError) as err:
        load_organisation(org)
    assert "housing-repairs.yaml:27:" in str(err.value)
    assert "cannot compare text with number" in str(err.value)


def test_every_built_in_field_is_documented_in_the_guide_and_the_schema() -> None:
    """An author finds the facts where they look: docs/rulesets.md and the JSON Schema that
    editors show beside a ``when:``."""
    guide = (ROOT / "docs" / "rulesets.md").read_text()
    schema = ROOT / "src" / "oohcore" / "rulesets" / "schemas" / "service-option.schema.json"
    when = json.loads(schema.read_text())["$defs"]["Rule"]["properties"]["when"]["description"]
    for name in BUILTIN_FIELDS:
        assert f"`{name}`" in guide, name
        assert name in when, name
    assert set(BUILTIN_FIELDS) >= ADDRESS_FACTS
