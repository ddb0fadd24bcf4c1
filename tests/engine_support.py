"""What the engine tests share: the fixture organisations (tests/fixtures/engine: org-a with an
IVR, repairs with every action kind, noise, lone worker; org-b), their numbers, the evening the
tests start on, and a heating call that is referred."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from oohcore.channels.local import MemoryChannel
from oohcore.engine import Engine

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
LONDON = ZoneInfo("Europe/London")
FRIDAY_EVENING = datetime(2026, 11, 20, 22, 0, tzinfo=LONDON)
REPAIRS = "0100 000 0002"
CHANNELS = ("sms", "email", "pager", "feed", "crm")
HEATING = {
    "caller_name": "Ann Lee",
    "address": "12a High St.",
    "postcode": "se1 1aa",
    "repair": "no_heating",
    "vulnerable": True,
    "outside_temp": 3,
}
"""A no-heating call from a vulnerable household: org-a refers it (refer-emergency)."""


def refer_heating_call(engine: Engine) -> tuple[str, str]:
    """The heating call offered, answered, captured, decided and referred, and the runner's
    first tick (the alert sent): its id and reference."""
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, HEATING)
    desk.next_step(call.id)
    desk.complete(call.id)
    engine.tick()
    return call.id, desk.get(call.id).reference


def alert_recipients(channels: dict[str, MemoryChannel]) -> list[str]:
    """Whom the SMS channel has sent referral alerts to, in order."""
    return [m.recipient for m in channels["sms"].messages if m.purpose == "referral.alert"]
