"""``oohcore demo``: an evening of out-of-hours calls for the example borough.

1. Loads the example borough's rulesets (extending the catalogue) and shows its service options,
   hours and access numbers.
2. Runs a few sample callers' answers through the compiled decisions.
3. Simulates one evening, 17:00 to 08:00, on a virtual clock (seconds, not hours): a few hundred
   calls across the options, IVR choices, abandoned calls, repeat callers flagged as duplicates,
   referrals sent through the local channel (a JSON-lines file), acknowledgements and escalations
   fired by durable timers — all on an embedded SQLite store — and prints a summary.
4. The telephone network's call detail records for the evening (the simulation writes them as a
   CDR file, ``cdrs.csv``) are imported, the daily summary (11.5.1) is printed, and the evening's
   HTML and xlsx reports are written under ``reports/``.

Everything is seeded, so two runs tell the same story.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import select

from oohcore import audit, directory
from oohcore.audit import read as audit_read
from oohcore.calendar import ServiceCalendar
from oohcore.calls import calls
from oohcore.cdr_csv import write_cdr_csv
from oohcore.channels import Channel, OutboundMessage
from oohcore.channels.local import LocalChannel
from oohcore.clock import ManualClock
from oohcore.durable.runner import TickReport
from oohcore.engine import Engine, EngineError, OrganisationDesk
from oohcore.reports.daily import SEND_AT, EveningOutput, enqueue_daily_summary, evening_reports
from oohcore.rota import OnCallOfficer
from oohcore.rulesets.compiler import Organisation, ServiceOption
from oohcore.rulesets.loader import load_organisation
from oohcore.rulesets.models import Question, QuestionType
from oohcore.telephony import cdrs_from_calls
from oohcore.vocabulary import EventKind

LONDON = ZoneInfo("Europe/London")
CHANNELS = ("sms", "email", "pager", "phone", "feed", "crm")
FIRST = ["Ann", "Jas", "Olu", "Mei", "Tom", "Ife", "Sam", "Zara", "Piotr", "Rhys", "Nadia", "Kofi"]
PROVIDER_DUTY = OnCallOfficer(
    "provider-duty", "Provider duty manager", phone="07700 900100", email="duty@provider.example"
)
LAST = ["Lee", "Patel", "Okafor", "Chen", "Brown", "Adeyemi", "Khan", "Nowak", "Evans", "Hussain"]


def example_borough() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / "example-borough"
        if (candidate / "organisation.yaml").is_file():
            return candidate
    raise FileNotFoundError("the example borough (examples/example-borough) was not found")


class _Caller:
    """Makes up plausible answers to any script."""

    def __init__(self, rng: random.Random, addresses: list[tuple[str, str]]) -> None:
        self.rng = rng
        self.addresses = addresses or [("1 High Street", "EX1 1AA")]

    def person(self) -> dict[str, str]:
        address, postcode = self.rng.choice(self.addresses)
        return {
            "name": f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}",
            "address": address,
            "postcode": postcode,
            "phone": f"07700 900{self.rng.randint(0, 999):03d}",
        }

    def answer(self, q: Question, person: Mapping[str, str]) -> Any:
        rng = self.rng
        name = q.field
        t = q.type
        if t is QuestionType.choice and q.options:
            return rng.choice(list(q.options))
        if t is QuestionType.choices and q.options:
            return rng.sample(list(q.options), k=rng.randint(1, min(2, len(q.options))))
        if t is QuestionType.yes_no:
            return rng.random() < 0.3
        if t is QuestionType.number:
            lo = q.min if q.min is not None else 0
            hi = q.max if q.max is not None else 20
            return round(rng.uniform(lo, min(hi, lo + 30)), 1)
        if t is QuestionType.phone:
            return person["phone"]
        if t is QuestionType.postcode:
            return person["postcode"]
        if t is QuestionType.address or "address" in name or "location" in name:
            return person["address"]
        if t is QuestionType.date:
            return "2026-11-20"
        if t is QuestionType.time:
            return f"{rng.randint(17, 23)}:{rng.choice(['00', '15', '30', '45'])}"
        if "name" in name:
            return person["name"]
        return rng.choice(["since this evening", "getting worse", "first time it has happened"])


def _hours_text(cal: ServiceCalendar, start: datetime) -> str:
    """The service's open periods over the next week, in local time."""
    parts = []
    at = start
    open_now = cal.is_open(at)
    for _ in range(6):
        change = cal.next_change(at)
        if change is None:
            break
        if open_now:
            parts.append(
                f"{at.astimezone(LONDON):%a %H:%M} to {change.astimezone(LONDON):%a %H:%M}"
            )
        at, open_now = change, not open_now
    return "; ".join(parts) or "always open"


def _section(out: TextIO, title: str) -> None:
    out.write(f"\n== {title} ==\n")


def show_borough(org: Organisation, out: TextIO, start: datetime) -> None:
    _section(out, f"{org.name} ({org.id})")
    cal = ServiceCalendar(org.hours, timezone=org.timezone, nation=org.nation)
    out.write(
        f"Hours of service from {start.astimezone(LONDON):%a %d %b %H:%M}: {_hours_text(cal, start)}\n"
    )
    out.write("Access numbers:\n")
    for access in org.access_numbers.values():
        target = (
            f"IVR menu {access.ivr}" if access.ivr else f"service option {access.service_option}"
        )
        out.write(f"  {access.number:<16} -> {target}\n")
    out.write(f"Service options ({len(org.service_options)}):\n")
    for option in org.service_options.values():
        kinds = Counter(a.kind for a in option.actions.values())
        extends = option.definition.extends or ""
        out.write(
            f"  {option.id:<26} {option.standard.value:<8} {len(option.questions):>2} questions, "
            f"{len(option.definition.decision.rules):>2} rules, actions {dict(kinds)} "
            f"version {option.version[7:19]} {extends}\n"
        )


def sample_decisions(org: Organisation, out: TextIO, rng: random.Random, caller: _Caller) -> None:
    _section(out, "Sample callers through the decisions")
    for option_id in list(org.service_options)[:6]:
        option = org.service_options[option_id]
        person = caller.person()
        answers = {q.field: caller.answer(q, person) for q in option.questions}
        values: dict[str, Any] = {
            **option.settings,
            **answers,
            "hour": 22,
            "minute": 10,
            "weekday": "fri",
            "weekend": False,
            "bank_holiday": False,
            "variant": "standard",
            "duplicate": False,
        }
        outcome = option.decide(values)
        why = f"rule {outcome.rule + 1}" if outcome.rule is not None else "default"
        shown = ", ".join(f"{k}={v}" for k, v in list(answers.items())[:4])
        out.write(
            f"  {option.id}: {shown} … -> {outcome.action_id} ({outcome.action.kind}, {why})\n"
        )


def _drive(
    desk: OrganisationDesk,
    option: ServiceOption,
    call_id: str,
    person: Mapping[str, str],
    caller: _Caller,
    now: datetime,
    stats: Counter[str],
) -> None:
    rng = caller.rng
    desk.answer(call_id, handler=rng.choice(["amy", "ben", "cat", "dev"]), at=now)
    answers = {q.field: caller.answer(q, person) for q in option.questions}
    for q in option.questions:  # a realistic share of unanswered optional questions (5.3.3)
        if not q.essential and rng.random() < 0.15:
            answers.pop(q.field, None)
    desk.capture(call_id, answers, at=now + timedelta(seconds=40))
    step = desk.next_step(call_id, at=now + timedelta(seconds=90))
    stats[f"action:{step.kind}"] += 1
    if step.duplicate_of:
        stats["duplicates flagged"] += 1
    desk.complete(call_id, at=now + timedelta(seconds=120))
    if step.kind != "lone_worker":
        desk.close(call_id, at=now + timedelta(seconds=120))  # before any acknowledgement


def simulate_evening(
    engine: Engine,
    org: Organisation,
    clock: ManualClock,
    out: TextIO,
    rng: random.Random,
    caller: _Caller,
    calls: int,
) -> Counter[str]:
    desk = engine.organisation(org.id)
    numbers = list(org.access_numbers.values())
    start = clock.now()
    end = start + timedelta(hours=15)
    step = (end - start) / calls
    stats: Counter[str] = Counter()
    recent: list[tuple[str, dict[str, str]]] = []
    referred: list[tuple[str, datetime]] = []
    visits: list[tuple[str, datetime]] = []
    for i in range(calls):
        now = start + step * i + timedelta(seconds=rng.randint(0, int(step.total_seconds() * 0.8)))
        # the host's runner ticks every minute in between calls
        while clock.now() + timedelta(minutes=1) < now:
            clock.advance(timedelta(minutes=1))
            _count(stats, engine.tick(clock.now()))
            _follow_up(desk, clock.now(), rng, referred, visits, stats)
        clock.set(max(now, clock.now()))
        now = clock.now()
        access = rng.choice(numbers)
        repeat = recent and rng.random() < 0.08
        option_id, person = rng.choice(recent) if repeat else ("", caller.person())
        call = engine.offer(access.number, caller_number=person["phone"], at=now)
        stats["offered"] += 1
        if call.state == "ivr":
            menu = org.ivr_menus[access.ivr or ""]
            keys = [c for c in menu.choices if not repeat or c.service_option == option_id] or list(
                menu.choices
            )
            call = desk.choose(call.id, rng.choice(keys).key, at=now + timedelta(seconds=15))
            stats["ivr choices"] += 1
        if rng.random() < 0.05:
            desk.abandon(call.id, at=now + timedelta(seconds=30))
            stats["abandoned"] += 1
            continue
        option = org.service_options[call.service_option or ""]
        if not call.in_hours:
            stats["outside the option's hours"] += 1
        try:
            _drive(desk, option, call.id, person, caller, now, stats)
        except EngineError as exc:  # the demo shows what a host would see
            stats[f"refused: {type(exc).__name__}"] += 1
            continue
        recent.append((option.id, dict(person)))
        recent = recent[-30:]
        final = desk.get(call.id)
        kind = option.actions[final.action_id].kind if final.action_id else None
        if kind == "refer":
            referred.append((call.id, now + timedelta(minutes=rng.randint(2, 25))))
        elif kind == "lone_worker":
            visits.append((call.id, now + timedelta(minutes=rng.randint(15, 70))))
        _count(stats, engine.tick(clock.now()))
    clock.set(end)
    _count(stats, engine.tick(end))
    return stats


def _follow_up(
    desk: OrganisationDesk,
    now: datetime,
    rng: random.Random,
    referred: list[tuple[str, datetime]],
    visits: list[tuple[str, datetime]],
    stats: Counter[str],
) -> None:
    """On-call officers acknowledge most referrals; most lone workers call out on time."""
    for call_id, at in list(referred):
        if now >= at:
            referred.remove((call_id, at))
            if rng.random() < 0.9:
                desk.acknowledge(call_id, by="on-call officer", at=now)
                stats["referrals acknowledged"] += 1
    for call_id, at in list(visits):
        if now >= at:
            visits.remove((call_id, at))
            call = desk.get(call_id)
            if call.state == "lone_worker":
                staff = call.answers.get("staff_id") or call.answers.get("caller_name")
                desk.check_out(call_id, staff_id=staff, at=now)
                stats["lone workers checked out"] += 1


def _count(stats: Counter[str], report: TickReport) -> None:
    stats["messages sent"] += len(report.sent)
    stats["timers fired"] += len(report.fired)
    stats["messages failed"] += len(report.failed)
    if report.errors:
        stats["runner errors"] += len(report.errors)


def _scenes(engine: Engine, org: Organisation, clock: ManualClock, out: TextIO) -> None:
    """The next evening, in five scenes (issue 8): a rota override, a referral nobody
    acknowledged, acknowledged by an SMS reply, a lone worker who does not check out, and the
    coverage gaps of the week ahead."""
    desk = engine.organisation(org.id)
    with engine.store.read() as conn:
        referred = list(
            conn.execute(
                select(calls.c.id)
                .where(calls.c.organisation_id == org.id, calls.c.action_kind == "refer")
                .order_by(calls.c.received_at)
            ).scalars()
        )
    clock.set(datetime.combine(clock.now().astimezone(LONDON).date(), time(18, 0), LONDON))
    now = clock.now()
    role = "housing-duty-officer"
    before = engine.rota.who_is_on_call(org.id, role, now).officer
    data = desk.rota.data()
    standby = next(o for o in data.officers.values() if before is None or o.id != before.id)
    desk.rota.add_override(
        role,
        standby.id,
        now,
        now + timedelta(hours=14),
        by="duty manager",
        reason="the rostered officer is unwell",
    )
    after = engine.rota.who_is_on_call(org.id, role, now).officer
    out.write(
        f"  18:00 rota override (2.3.3, 14.4): {role} was "
        f"{before.name if before else 'nobody'}, now {after.name if after else 'nobody'}\n"
    )
    # a referral from last night that nobody acknowledged: its escalation, stage by stage,
    # and its holder's SMS reply "ACK <reference>" (issue 8 item 6)
    for call_id in referred:
        trail = [e for e in desk.events(call_id) if e.kind.startswith("referral.")]
        kinds = [e.kind for e in trail]
        alerts = [m for m in desk.messages(call_id) if m.message.channel == "sms" and m.sent_at]
        if EventKind.REFERRAL_ACKNOWLEDGED in kinds or not alerts:
            continue
        if kinds.count(EventKind.REFERRAL_ESCALATED) < 2:
            continue
        call = desk.get(call_id)
        roles = [
            str(e.payload.get("role", "")) for e in trail if e.kind == EventKind.REFERRAL_ESCALATED
        ]
        out.write(
            f"  referral {call.reference}, not acknowledged overnight: escalated to "
            f"{' then '.join(dict.fromkeys(r for r in roles if r))}\n"
        )
        holder = alerts[-1].message.recipient
        outcome = engine.receive(org.id, "sms", holder, f"ACK {call.reference}", at=now)
        out.write(
            f"  18:05 an SMS reply 'ACK {call.reference}' from {holder}: {outcome} "
            f"(referral {desk.referrals(call_id)[-1].state})\n"
        )
        break
    # a lone worker who does not check out: reminder, amber, red, the escalation (5.2.3.6)
    visit = engine.offer(org.access_numbers[_lone_worker_number(org)].number, at=now)
    desk.answer(visit.id, handler="amy", at=now)
    desk.capture(
        visit.id,
        {
            "call_type": "check_in",
            "caller_name": "Sam Evans",
            "staff_id": "EB10234",
            "team": "housing",
            "contact_phone": "07700 900777",
            "address": "14 Mill Lane",
            "visit_length": "short",
            "known_risk": False,
            "vehicle": "EB21 XYZ",
        },
        at=now,
    )
    desk.next_step(visit.id, at=now)
    desk.complete(visit.id, at=now)
    for _ in range(120):  # two hours, the runner ticking every minute
        clock.advance(timedelta(minutes=1))
        engine.tick(clock.now())
    steps = [
        f"{e.at.astimezone(LONDON):%H:%M} {e.kind.removeprefix('lone_worker.')}"
        for e in desk.events(visit.id)
        if e.kind.startswith("lone_worker.")
    ]
    out.write(f"  lone worker Sam Evans checked in at 18:00 and never out: {', '.join(steps)}\n")
    # a lone worker whose call the handler closed: the watch runs on, and her OK checks her
    # out (5.2.3.6: the watch ends at check-out, not when the call is closed)
    now = clock.now()
    visit = engine.offer(org.access_numbers[_lone_worker_number(org)].number, at=now)
    desk.answer(visit.id, handler="ben", at=now)
    answers = {"call_type": "check_in", "caller_name": "Kim Shah", "staff_id": "EB10777"}
    answers |= {"team": "housing", "contact_phone": "07700 900778", "address": "3 Kiln Row"}
    desk.capture(visit.id, {**answers, "visit_length": "standard", "known_risk": False}, at=now)
    desk.next_step(visit.id, at=now)
    desk.complete(visit.id, at=now)
    desk.close(visit.id, at=now)
    clock.advance(timedelta(minutes=30))
    engine.tick(clock.now())
    outcome = engine.receive(org.id, "sms", "07700 900778", "OK", at=clock.now())
    for _ in range(60):
        clock.advance(timedelta(minutes=1))
        engine.tick(clock.now())
    steps = [
        f"{e.at.astimezone(LONDON):%H:%M} {e.kind.split('.')[-1]}"
        for e in desk.events(visit.id)
        if e.kind.startswith("lone_worker.") or e.kind == EventKind.CALL_CLOSED
    ]
    out.write(f"  lone worker Kim Shah, call closed at check-in, texted OK ({outcome}): ")
    out.write(f"{', '.join(steps)}\n")
    from oohcore.rota.gaps import coverage_gaps

    _decline_and_nobody(engine, org, referred, clock, out)
    gaps = coverage_gaps(org, desk.rota.data(), clock.now(), clock.now() + timedelta(days=7))
    out.write(f"  coverage gaps in the next 7 days (oohcore rota gaps): {len(gaps)}\n")
    for gap in gaps[:5]:
        out.write(
            f"    {gap.role} stage {gap.stage}: {gap.start.astimezone(LONDON):%a %d %b %H:%M}"
            f" to {gap.end.astimezone(LONDON):%a %d %b %H:%M} ({', '.join(gap.options)})\n"
        )


def _decline_and_nobody(
    engine: Engine, org: Organisation, referred: list[str], clock: ManualClock, out: TextIO
) -> None:
    """Two more referrals like one of last night's: the alerted officer texts NO twice (one
    decline counts, 5.3.2); and one while nobody is on the rota, the last resort included (the
    provider's duty contact is alerted, and the caller is told the truth)."""
    desk = engine.organisation(org.id)
    texted = [c for c in referred if any(_alert_sms(m.message) for m in desk.messages(c))]
    if not texted:
        return
    first = desk.get(texted[0])
    option = org.service_options[first.service_option or ""]
    number = next(n for n, a in org.access_numbers.items() if a.service_option == option.id)
    asked = {q.field for q in option.questions}
    answers = {k: v for k, v in first.answers.items() if k in asked}

    def refer(name: str, address: str) -> tuple[str, str]:
        call = engine.offer(org.access_numbers[number].number, caller_number="07700 900555")
        desk.answer(call.id, handler="amy")
        # another caller at another address: not a repeat of last night's call (5.2.7)
        desk.capture(call.id, {**answers, "caller_name": name, "address": address})
        step = desk.next_step(call.id)
        told = f" ({step.information})" if step.nobody_reachable else ""
        out.write(f"  {call.reference} ({option.id}): {step.kind}{told}\n")
        desk.complete(call.id)
        engine.tick(clock.now())
        return call.id, call.reference

    call_id, ref = refer("Kit Marsh", "3 Quarry Road")
    alerts = [m.message for m in desk.messages(call_id) if _alert_sms(m.message)]
    if alerts:
        sender = alerts[-1].recipient
        said = [engine.receive(org.id, "sms", sender, f"NO {ref}") for _ in range(2)]
        engine.tick(clock.now())
        out.write(
            f"  {sender} texts 'NO {ref}' twice: {', '.join(said)} (one decline counts: "
            f"stage {desk.referrals(call_id)[-1].stage})\n"
        )
    saved = desk.rota.data()
    desk.rota.replace(type(saved)(officers=saved.officers), by="demo: a rota import gone wrong")
    try:
        call_id, ref = refer("Lee Rowe", "9 Ferry Lane")
    finally:
        desk.rota.replace(saved, by="demo: the rota restored")
    sent = [m.message for m in desk.messages(call_id)]
    alerted = [m.recipient for m in sent if _alert_sms(m)]
    caller = [m.body for m in sent if m.purpose == "caller.sms"]
    out.write(
        f"  nobody on the rota, the last resort included: alerted {', '.join(alerted)} (the "
        f"provider's duty contact); the caller's text: {caller[0] if caller else '(none)'}\n"
    )


def _alert_sms(message: OutboundMessage) -> bool:
    return message.channel == "sms" and message.purpose == "referral.alert"


def _lone_worker_number(org: Organisation) -> str:
    return next(n for n, a in org.access_numbers.items() if a.service_option == "lone-worker")


def _evening_reports(
    engine: Engine, org: Organisation, workdir: Path, start: datetime, out: TextIO
) -> EveningOutput:
    """The telephone network's records for the evening, as a CDR file, imported and reported."""
    with engine.store.read() as conn:
        records = cdrs_from_calls(conn, org.id, since=start)
    cdr_file = write_cdr_csv(records, workdir / "cdrs.csv")
    evening = evening_reports(
        engine.store, org, workdir / "reports", day=start.date(), cdr_file=cdr_file, out=out
    )
    # the summary goes to the council by 10am the next morning, through the channels (11.5.1)
    with engine.store.read() as conn:
        officer = directory.get(conn, org.id, "performance-reports")
    if officer is not None and officer.email:
        enqueue_daily_summary(
            engine.store, org, start.date(), channel="email", recipient=officer.email
        )
        due = datetime.combine(start.date() + timedelta(days=1), SEND_AT, tzinfo=LONDON)
        sent = engine.tick(due).sent
        print(f"Sent by email to {officer.email} at {due:%H:%M}: {len(sent)} message(s)", file=out)
    return evening


def run_demo(
    borough: Path | None = None, *, out: TextIO, calls: int = 300, workdir: Path | None = None
) -> int:
    borough = borough or example_borough()
    org = load_organisation(borough)
    rng = random.Random(20261120)
    start = datetime(2026, 11, 20, 17, 0, tzinfo=LONDON)  # a Friday evening
    workdir = workdir or Path("demo-out")
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    addresses: list[tuple[str, str]] = []
    engine_clock = ManualClock(start)
    local = LocalChannel(workdir / "messages.jsonl")
    channels: dict[str, Channel] = dict.fromkeys(CHANNELS, local)
    engine = Engine.open(
        borough,
        f"sqlite:///{workdir / 'oohcore.sqlite'}",
        clock=engine_clock,
        channels=channels,
        provider_duty=PROVIDER_DUTY,  # when nobody of the borough can be reached (5.3.2)
    )
    try:
        gazetteer = engine._gazetteers.get(org.id)
        if gazetteer is not None:
            addresses = [
                (f"{r.line1}, {r.line2}".strip(", "), r.postcode) for r in gazetteer.records
            ][:200]
        caller = _Caller(rng, addresses)
        show_borough(org, out, start)
        sample_decisions(org, out, rng, caller)
        _section(
            out, f"An evening: {start:%a %d %b %Y} 17:00 to 08:00 ({calls} calls, virtual clock)"
        )
        stats = simulate_evening(engine, org, engine_clock, out, rng, caller, calls)
        reports = io.StringIO()
        evening = _evening_reports(engine, org, workdir, start, reports)
        scenes = io.StringIO()
        _scenes(engine, org, engine_clock, scenes)
        with engine.store.read() as conn:
            report = audit.verify(conn, org.id)
            events = Counter(e.kind for e in audit_read.events_for_organisation(conn, org.id))
    finally:
        engine.close()
        local.close()
    width = max(len(k) for k in stats)
    for key in sorted(stats):
        out.write(f"  {key:<{width}}  {stats[key]:>5}\n")
    out.write(
        "  events by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(events.items())) + "\n"
    )
    out.write(
        "  (a referral nobody acknowledges in time moves to its next escalation stage; after the\n"
        "   last, the final on-call officer is alerted again at every wait until someone has it,\n"
        "   so the few referrals the simulation leaves unacknowledged are re-alerted all night)\n"
    )
    out.write(f"  audit chain: {'verified' if report.ok else report}\n")
    out.write(
        f"  messages written to {workdir / 'messages.jsonl'}; store {workdir / 'oohcore.sqlite'}\n"
    )
    _section(out, "The evening's telephony and reports (11.5.1, 11.6)")
    out.write(reports.getvalue())
    out.write(f"  ({evening.imported} call detail records imported from {workdir / 'cdrs.csv'})\n")
    _section(out, "The next evening: a rota override, escalation, replies, a lone worker, gaps")
    out.write(scenes.getvalue())
    _section(out, "The first referral messages, as the local channel wrote them")
    with (workdir / "messages.jsonl").open(encoding="utf-8") as fh:
        shown = 0
        for line in fh:
            record = json.loads(line)
            if (record.get("meta") or {}).get("alert") == 1 and shown < 3:  # first alerts
                body = record["body"].replace("\n", " / ")
                out.write(f"  [{record['channel']}] to {record['recipient']}: {body[:160]}\n")
                shown += 1
    return 0 if report.ok else 1
