"""Rotas (issue 8): wall-clock layers and overrides, both 2026 clock changes, rota.yaml (old
and new formats, located errors), the store's rota changed while the engine runs (2.1.3,
2.3.3, 7.5, 13.3c, 14.4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine_support import FIXTURES, HEATING, LONDON, REPAIRS
from oohcore.audit.read import events_for_organisation
from oohcore.audit.verify import verify
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.errors import RulesetError
from oohcore.rota import (
    Layer,
    OnCallOfficer,
    Restriction,
    RoleSchedule,
    RotaData,
    RotaError,
    RotaStore,
    check_rota_file,
    read_rota,
)
from oohcore.store import Store
from oohcore.vocabulary import EventKind

OFFICERS = {
    i: OnCallOfficer(i, i.title(), phone=f"07700 90000{n}", email=f"{i}@a.example")
    for n, i in enumerate(("ann", "bob", "cat", "dan"))
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=LONDON, fold=fold)  # type: ignore[misc]


def rota(*layers: Layer, stages: int = 1) -> RotaData:
    return RotaData(OFFICERS, (RoleSchedule("duty", tuple((layers,) * stages)),))


def holder(data: RotaData, at: datetime, stage: int = 1) -> str:
    s = data.answer("duty", at, LONDON).stage(stage)
    assert s is not None
    return s.officers[0].id if s.officers else "-"


# -- both 2026 clock-change nights -------------------------------------------------------------

# a nightly turn handed off at 01:30: on 29 March 01:30 does not exist (the clocks go from 01:00
# GMT to 02:00 BST), on 25 October it happens twice (BST, then GMT)
HANDOFF_0130 = Layer("nights", ("ann", "bob"), timedelta(days=1), datetime(2026, 3, 1, 1, 30))


def test_spring_forward_night_who_is_on_call_at_0030_0130_0230() -> None:
    data = rota(HANDOFF_0130)
    # 2026-03-28 01:30 started turn 27 (bob); the next handoff is due at 01:30 on the 29th,
    # which does not exist: it happens when the clock jumps, 02:00 BST = 01:00 UTC
    assert holder(data, local(2026, 3, 29, 0, 30)) == "bob"
    # "01:30 GMT" as an instant is 02:30 BST: past the jump
    assert holder(data, utc(2026, 3, 29, 0, 59, 59)) == "bob"
    assert holder(data, utc(2026, 3, 29, 1, 0)) == "ann"
    assert holder(data, utc(2026, 3, 29, 1, 30)) == "ann"
    assert holder(data, local(2026, 3, 29, 2, 30)) == "ann"
    why = data.answer("duty", local(2026, 3, 29, 2, 30), LONDON).stages[0].because
    assert "nights" in why and "2026-03-29 01:30" in why


def test_fall_back_night_0130_happens_twice_and_has_one_answer() -> None:
    data = rota(HANDOFF_0130)
    assert holder(data, local(2026, 10, 25, 0, 30)) == "bob"  # turn of the 24th
    first = local(2026, 10, 25, 1, 30, fold=0)  # 01:30 BST = 00:30 UTC: the handoff
    second = local(2026, 10, 25, 1, 30, fold=1)  # 01:30 GMT = 01:30 UTC
    assert first.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert holder(data, first) == "ann"
    # the second pass through 01:00-01:30 does not flip back to bob
    assert holder(data, local(2026, 10, 25, 1, 15, fold=1)) == "ann"
    assert holder(data, second) == "ann"
    assert holder(data, local(2026, 10, 25, 2, 30)) == "ann"
    assert holder(data, local(2026, 10, 25, 1, 29, fold=0)) == "bob"


EVENINGS = Layer("evenings", ("ann", "bob", "cat"), timedelta(days=1), datetime(2026, 3, 1, 17, 0))


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2026, 3, 28), 23), ((2026, 10, 24), 25), ((2026, 11, 20), 24)],
)
def test_a_shift_across_a_clock_change_is_as_long_as_the_wall_clock_says(
    day: tuple[int, int, int], hours: int
) -> None:
    """17:00 to 17:00 the next day: 23 h over spring-forward, 25 h over fall-back (OnCall's
    #5247/#5455/#3261 were shifts gaining, losing or moving an hour)."""
    data = rota(EVENINGS)
    start = local(*day, 17, 0)
    segs = data.timeline("duty", start, start + timedelta(hours=30), LONDON)
    assert segs[0].start == start
    assert segs[0].end - segs[0].start == timedelta(hours=hours)
    assert segs[1].end.astimezone(LONDON).hour == 17 or segs[1].end == start + timedelta(hours=30)
    assert segs[0].end.astimezone(LONDON).time() == time(17, 0)


def test_twelve_hour_shifts_keep_their_wall_clock_handoffs_over_the_autumn_change() -> None:
    layer = Layer("halves", ("ann", "bob"), timedelta(hours=12), datetime(2026, 10, 1, 8, 0))
    segs = rota(layer).timeline("duty", local(2026, 10, 24, 20), local(2026, 10, 26, 8), LONDON)
    assert [s.start.astimezone(LONDON).strftime("%d %H:%M") for s in segs] == [
        "24 20:00",
        "25 08:00",
        "25 20:00",
    ]
    assert segs[0].end - segs[0].start == timedelta(hours=13)  # 20:00 BST to 08:00 GMT


# -- layers, restrictions, stages, overrides ---------------------------------------------------


def test_a_later_restricted_layer_lies_over_the_earlier_one_inside_its_windows() -> None:
    standing = Layer("days", ("dan",))
    weeknights = Layer(
        "weeknights",
        ("ann", "bob"),
        timedelta(weeks=1),
        datetime(2026, 11, 2, 17, 0),
        (Restriction((0, 1, 2, 3, 4), time(17), time(8)),),
    )
    data = rota(standing, weeknights)
    assert holder(data, local(2026, 11, 20, 12)) == "dan"  # Friday noon
    assert holder(data, local(2026, 11, 20, 18)) == "ann"  # Friday evening, the third week
    assert holder(data, local(2026, 11, 21, 7, 59)) == "ann"  # Friday's window, Saturday morning
    assert holder(data, local(2026, 11, 21, 8)) == "dan"
    assert holder(data, local(2026, 11, 21, 18)) == "dan"  # Saturday evening: no window
    assert holder(data, local(2026, 11, 23, 18)) == "bob"  # the next week's turn
    stage = data.answer("duty", local(2026, 11, 23, 18), LONDON).stages[0]
    assert [o.id for o in stage.officers] == ["bob", "ann"]  # the one in turn first


def test_stages_are_ordered_and_an_override_lies_over_all_layers_of_its_stage() -> None:
    first = Layer("first", ("ann", "bob"), timedelta(days=1), datetime(2026, 11, 1, 17))
    second = Layer("managers", ("cat",))
    data = RotaData(OFFICERS, (RoleSchedule("duty", ((first,), (second,))),))
    from oohcore.rota import Override

    data = data.with_override(
        Override(0, "duty", "dan", local(2026, 11, 20, 20), local(2026, 11, 21, 8), 2, "leave")
    )
    answer = data.answer("duty", local(2026, 11, 20, 22), LONDON)
    assert [s.number for s in answer.stages] == [1, 2]
    assert answer.stages[1].officers[0].id == "dan"
    assert answer.stages[1].because == "override #1: leave"
    assert answer.stages[0].because.startswith("layer 'first'")
    assert holder(data, local(2026, 11, 21, 9), stage=2) == "cat"


def test_a_role_for_a_sub_category_or_area_is_preferred_over_the_general_one() -> None:
    general = RoleSchedule("duty", ((Layer("all", ("ann",)),),))
    heating = RoleSchedule("duty", ((Layer("heat", ("bob",)),),), category="heating")
    north = RoleSchedule("duty", ((Layer("north", ("cat",)),),), area="north")
    data = RotaData(OFFICERS, (general, heating, north))
    at = local(2026, 11, 20, 22)
    assert data.answer("duty", at, LONDON).officer == OFFICERS["ann"]
    assert data.answer("duty", at, LONDON, category="heating").officer == OFFICERS["bob"]
    assert data.answer("duty", at, LONDON, area="north").officer == OFFICERS["cat"]
    assert data.answer("duty", at, LONDON, category="leak", area="south").officer == OFFICERS["ann"]


def test_nobody_on_a_stage_is_said_so() -> None:
    layer = Layer("nights", ("ann",), None, None, (Restriction((0,), time(17), time(8)),))
    answer = rota(layer).answer("duty", local(2026, 11, 20, 22), LONDON)  # a Friday
    assert answer.stages[0].officers == () and answer.stages[0].because == "nobody"
    assert answer.officer is None


def test_the_rota_round_trips_through_json() -> None:
    data = rota(
        EVENINGS, Layer("w", ("dan",), None, None, (Restriction((5, 6), time(9), time(17)),))
    )
    assert RotaData.from_json(data.to_json()) == data


# -- rota.yaml --------------------------------------------------------------------------------

NEW_FORMAT = """\
officers:
  - {id: ann, name: Ann, phone: "07700 900001", accepts: [sms, phone]}
  - {id: bob, name: Bob, email: bob@a.example}
roles:
  - role: duty
    stages:
      - layers:
          - name: weeknights
            officers: [ann, bob]
            turn: 7d
            handoff: "2026-11-02T17:00"
            restrictions:
              - {days: [weekdays], from: "17:00", to: "08:00"}
      - layers:
          - {name: manager, officers: [bob]}
overrides:
  - {role: duty, officer: bob, from: "2026-12-24T17:00", to: "2026-12-27T08:00", reason: Xmas}
"""


def test_the_new_format_loads_with_layers_stages_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "rota.yaml"
    path.write_text(NEW_FORMAT)
    data = read_rota(path, timezone="Europe/London", roles=["duty"])
    assert data.officers["ann"].accepts == ("sms", "phone")
    assert data.officers["ann"].accepts_channel("sms") and not data.officers["ann"].accepts_channel(
        "email"
    )
    answer = data.answer("duty", local(2026, 11, 16, 18), LONDON)
    assert [s.officers[0].id for s in answer.stages] == ["ann", "bob"]
    assert data.answer("duty", local(2026, 12, 25, 12), LONDON).stages[0].because == (
        "override #1: Xmas"
    )


def test_the_old_format_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "rota.yaml"
    path.write_text(
        "officers:\n  - {id: ann, name: Ann}\n  - {id: bob, name: Bob}\n"
        "assignments:\n  - {role: duty, officer: ann}\n"
        '  - {role: duty, officer: bob, from: "2026-12-24T17:00", to: "2026-12-27T08:00"}\n'
    )
    data = read_rota(path, timezone="Europe/London", roles=["duty"])
    assert data.answer("duty", local(2026, 12, 24, 16), LONDON).officer == OnCallOfficer(
        "ann", "Ann"
    )
    assert data.answer("duty", local(2026, 12, 24, 18), LONDON).officer == OnCallOfficer(
        "bob", "Bob"
    )


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        (
            "officers: [{id: ann, name: Ann}]\noverrides:\n  - {role: duty, officer: ann, "
            'from: "2026-03-29T01:30", to: "2026-03-29T09:00"}\n',
            ":3:",
            "does not exist in Europe/London: the clocks go forward",
        ),
        (
            "officers: [{id: ann, name: Ann}]\nassignments:\n  - {role: duty, officer: ann, "
            'from: "2026-03-28T20:00", to: "2026-03-29T01:15"}\n',
            ":3:",
            "spring-forward gap",
        ),
        (
            "officers: [{id: ann, name: Ann}]\nroles:\n  - role: duty\n    stages:\n"
            "      - layers:\n          - {name: n, officers: [ann, zed], turn: 1d, "
            'handoff: "2026-01-01T17:00"}\n',
            ":6:",
            "unknown officer 'zed'",
        ),
        (
            "officers: [{id: ann, name: Ann}]\nroles:\n  - role: duty\n    stages:\n"
            "      - layers:\n          - {name: n, officers: [ann], turn: weekly, "
            'handoff: "2026-01-01T17:00"}\n',
            ":6:",
            "write a length like 7d",
        ),
        (
            "officers: [{id: ann, name: Ann}]\nroles:\n  - role: duty\n    stages:\n"
            "      - layers:\n          - name: n\n            officers: [ann]\n"
            "            restrictions: [{days: [funday], from: '17:00', to: '08:00'}]\n",
            ":8:",
            "unknown day 'funday'",
        ),
        (
            "officers: [{id: ann, name: Ann}]\nassignments:\n  - {role: nope, officer: ann}\n",
            ":3:",
            "unknown rota role 'nope'",
        ),
        (
            "officers: [{id: ann, name: Ann}]\noverrides:\n  - {role: duty, officer: ann, "
            'from: "2026-03-29T09:00", to: "2026-03-29T08:00"}\n',
            ":3:",
            "'to' must be after 'from'",
        ),
    ],
)
def test_a_bad_rota_file_is_a_located_error(
    tmp_path: Path, text: str, where: str, says: str
) -> None:
    path = tmp_path / "rota.yaml"
    path.write_text(text)
    with pytest.raises(RulesetError) as err:
        check_rota_file(path, timezone="Europe/London", roles=["duty"])
    message = str(err.value)
    assert f"rota.yaml{where}" in message and says in message, message


# -- the store ----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(
        f"sqlite:///{tmp_path / 'rota.sqlite'}", clock=ManualClock(local(2026, 11, 20, 9))
    )
    yield s
    s.close()


def test_a_pre_dated_override_takes_effect_on_its_date_and_every_change_is_recorded(
    store: Store,
) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    rs = RotaStore(store, "org", timezone="Europe/London", roles=["duty"])
    rs.replace(rota(EVENINGS), by="rota-admin")
    for officer in OFFICERS.values():
        rs.put_officer(officer, by="rota-admin")
    requested = local(2026, 11, 20, 8, 15)
    oid = rs.add_override(
        "duty",
        "dan",
        local(2026, 11, 27, 17),
        local(2026, 11, 28, 17),
        by="amy",
        reason="swap",
        requested_at=requested,
    )
    assert rs.who_is_on_call("duty", local(2026, 11, 20, 18)).officer != OFFICERS["dan"]
    during = rs.who_is_on_call("duty", local(2026, 11, 27, 20))
    assert (
        during.officer == OFFICERS["dan"] and during.stages[0].because == f"override #{oid}: swap"
    )
    assert rs.who_is_on_call("duty", local(2026, 11, 28, 17)).officer != OFFICERS["dan"]
    changes = rs.changes()
    assert [c.kind for c in changes] == ["replace", *["officer"] * 4, "override"]
    last = changes[-1]
    assert last.changed_by == "amy" and last.requested_at == requested
    assert last.applied_at == local(2026, 11, 20, 9) and last.delay == 45 * 60
    # the audit chain proves each change, without the rota's contact points (principle 11)
    with store.read() as conn:
        event = events_for_organisation(conn, "org")[-1]
        assert verify(conn, "org").ok
    assert event.id == last.event_id and event.kind == EventKind.ROTA_CHANGED
    assert event.payload["by"] == "amy" and event.payload["kind"] == "override"
    assert "07700" not in json.dumps(event.payload)
    clock.advance(timedelta(hours=1))
    rs.remove_override(oid, by="amy")
    assert rs.who_is_on_call("duty", local(2026, 11, 27, 20)).officer != OFFICERS["dan"]
    assert len(rs.changes(since=local(2026, 11, 20, 9, 30))) == 1


def test_a_change_naming_an_unknown_officer_or_role_is_refused_and_nothing_is_written(
    store: Store,
) -> None:
    rs = RotaStore(store, "org", timezone="Europe/London", roles=["duty"])
    rs.replace(rota(EVENINGS), by="x")
    with pytest.raises(RotaError, match="unknown officer"):
        rs.add_override("duty", "zed", local(2026, 11, 20), local(2026, 11, 21), by="x")
    with pytest.raises(RotaError, match="unknown rota role"):
        rs.add_override("nope", "ann", local(2026, 11, 20), local(2026, 11, 21), by="x")
    assert len(rs.changes()) == 1 and rs.data().overrides == ()


# -- the engine uses a change at the next referral ---------------------------------------------


def test_a_rota_change_while_the_engine_runs_is_used_by_the_next_referral(tmp_path: Path) -> None:
    clock = ManualClock(local(2026, 11, 20, 22))
    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    with Engine.open(FIXTURES, url, clock=clock) as engine:
        desk = engine.organisation("org-a")

        def next_contact() -> str | None:
            call = engine.offer(REPAIRS, caller_number="07700900123")
            desk.answer(call.id, handler="amy")
            desk.capture(call.id, HEATING)
            step = desk.next_step(call.id)
            return step.contact.name if step.contact else None

        assert next_contact() == "Rita Duty"  # seeded from rota.yaml
        # a second process (the CLI) changes the rota in the same store
        other = Store.open(url, clock=clock)
        try:
            RotaStore(
                other, "org-a", timezone="Europe/London", roles=["repairs-duty"]
            ).add_override(
                "repairs-duty", "max", local(2026, 11, 20, 21), local(2026, 11, 21, 8), by="sam"
            )
        finally:
            other.close()
        assert next_contact() == "Max Manager"
        desk.rota.add_override(
            "repairs-duty", "tess", local(2026, 11, 20, 21), local(2026, 11, 21, 8), by="sam"
        )
        assert next_contact() == "Tess Team"
        answer = engine.rota.who_is_on_call("org-a", "repairs-duty", clock.now())
        assert answer.stages[0].because == "override #3"
    # reopened with the same store, the store's rota stays (rota.yaml only seeds)
    with Engine.open(FIXTURES, url, clock=clock) as engine:
        assert (
            engine.rota.on_call("org-a", "repairs-duty", clock.now())
            == engine.organisation("org-a").rota.data().officers["tess"]
        )


def test_the_engines_rota_answers_inside_a_steps_open_transaction(store: Store) -> None:
    """A step asks the rota while its own transaction is open (the one SQLite connection): the
    answer is read in that transaction, not refused as a nested one."""
    from oohcore.rota import StoreRota

    RotaStore(store, "org", timezone="Europe/London", roles=["duty"]).replace(
        rota(EVENINGS), by="x"
    )
    rota_ = StoreRota(store, {"org": "Europe/London"})
    with store.transaction() as conn:
        inside = rota_.who_is_on_call("org", "duty", local(2026, 11, 20, 18))
        on_conn = rota_.who_is_on_call("org", "duty", local(2026, 11, 20, 18), conn=conn)
    assert inside == on_conn == rota(EVENINGS).answer("duty", local(2026, 11, 20, 18), LONDON)
    assert inside.officer is not None
    assert rota_.who_is_on_call("elsewhere", "duty", local(2026, 11, 20, 18)).stages == ()


def test_a_referral_asks_the_rota_for_the_callers_area(tmp_path: Path) -> None:
    """7.5: a role kept by area answers a referral from the schedule of the caller's locality,
    the gazetteer's ward of the address; a caller elsewhere gets the role's general holder."""
    from oohcore.channels.local import MemoryChannel
    from oohcore.rota.schedule import Layer, RoleSchedule

    borough = Path(__file__).parents[1] / "examples" / "example-borough"
    clock = ManualClock(datetime(2026, 11, 20, 22, 0, tzinfo=ZoneInfo("Europe/London")))
    channels = {n: MemoryChannel() for n in ("sms", "email", "pager", "phone", "feed", "crm")}
    leak = {
        "caller_name": "Ann Lee",
        "contact_phone": "07700 900123",
        "tenure": "council_tenant",
        "repair": "water_leak",
        "near_electrics": False,
        "details": "water through the ceiling",
    }
    with Engine.open(
        borough, f"sqlite:///{tmp_path / 'area.sqlite'}", clock=clock, channels=channels
    ) as engine:
        desk = engine.organisation("example-borough")
        now = clock.now()
        general = engine.rota.who_is_on_call(desk.id, "repairs-contractor", now).officer
        assert general is not None
        local = next(o for o in sorted(desk.rota.data().officers) if o != general.id)
        # Eastbrook Central keeps its own contractor rota (one standing layer)
        desk.rota.set_role(
            RoleSchedule(
                "repairs-contractor",
                ((Layer("eastbrook", officers=(local,)),),),
                area="Eastbrook Central",
            ),
            by="duty manager",
        )

        def alerted(address: str) -> str:
            call = engine.offer("020 7946 0100", caller_number="07700900123")
            desk.answer(call.id, handler="amy")
            desk.capture(call.id, {**leak, "address": address})
            assert desk.next_step(call.id).action_id == "refer-emergency"
            desk.complete(call.id)
            [refer] = [e for e in desk.events(call.id) if e.kind == "action.refer"]
            return str(refer.payload["officer"])

        assert alerted("2 High Street") == local  # ward Eastbrook Central in the gazetteer
        assert alerted("1 Vicarage Crescent") == general.id  # another ward
