"""The public façade: the few calls a host application makes to run out-of-hours calls.

::

    engine = Engine.open("examples/example-borough", "sqlite:///ooh.sqlite")
    call = engine.offer("020 7946 0000", caller_number="07700 900001")   # 7.1.2 routing
    desk = engine.organisation(call.organisation_id)                      # tenant scope (7.10)
    desk.choose(call.id, "1")                                             # IVR (7.1.4)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {"caller_name": "Ann Lee", "repair": "no_heating", ...})
    step = desk.next_step(call.id)        # the decision: action, what to say, whom to contact
    desk.complete(call.id)                # carries the action out: messages, timers
    desk.close(call.id)                   # reference number given (5.2.2)
    engine.tick()                         # fire due timers, send due messages

Every method that changes a call does it in **one transaction**: the new state, the audit event,
the messages it causes (outbox) and the timers it sets commit together or not at all, so an
invalid step (wrong state, another organisation's call, a missing essential field) raises a
specific exception and changes nothing. Everything about a call is reached through an
:class:`OrganisationDesk`, which is scoped to one organisation: a call of another organisation
is simply not found there (7.10), so the unscoped path cannot be taken by accident.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, bindparam, insert, select, text, update

from oohcore import audit, outbox, search, timers
from oohcore.addresses import Gazetteer
from oohcore.answers import clean_answer
from oohcore.calendar import ServiceCalendar, active_variant, local_fields
from oohcore.calls import WAITING_CONDITION, allowed_triggers, call_counters, calls, next_state
from oohcore.channels import Channel, OutboundMessage
from oohcore.clock import Clock, SystemClock, as_utc
from oohcore.errors import OohcoreError
from oohcore.outbox import OutboxRow
from oohcore.references import InvalidReference, format_reference, parse_reference
from oohcore.rota import ROTA_FILE, OnCallOfficer, Rota, RotaFile
from oohcore.rulesets.compiler import Organisation, ServiceOption, normalise_number
from oohcore.rulesets.loader import load_organisations
from oohcore.rulesets.models import (
    LoneWorker,
    OutOfScope,
    Question,
    Refer,
    Resolve,
    Signpost,
    Transfer,
    format_duration,
)
from oohcore.runner import Runner, TickReport
from oohcore.store import Prepared, Store, to_json
from oohcore.timers import TimerRow

GAZETTEER_FILE = "gazetteer.csv"

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class EngineError(OohcoreError):
    """Base class of the errors a host's request to the engine can raise."""


class UnknownNumber(EngineError):
    """No organisation has this access number (7.1.2)."""


class UnknownOrganisation(EngineError):
    """No organisation with this id is loaded."""


class CallNotFound(EngineError):
    """No such call in this organisation (a call of another organisation is not found either)."""


class InvalidTransition(EngineError):
    """The call's state does not allow this step; nothing was changed."""

    def __init__(self, call_id: str, state: str, step: str) -> None:
        allowed = ", ".join(allowed_triggers(state)) or "nothing (the call is finished)"
        super().__init__(f"call {call_id} is {state}: cannot {step} now (allowed: {allowed})")
        self.call_id = call_id
        self.state = state
        self.step = step


class NotSignedOff(EngineError):
    """Live service was asked for, but some service option versions are not signed off."""


class InvalidChoice(EngineError):
    """The IVR key is not one of the menu's choices (7.1.4)."""


@dataclass(frozen=True, slots=True)
class AnswerProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidAnswers(EngineError):
    """One or more captured answers are not acceptable; none of them was recorded."""

    def __init__(self, problems: Sequence[AnswerProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class MissingEssentialFields(EngineError):
    """A decision needs the essential fields (5.3.3); these are still unanswered."""

    def __init__(self, call_id: str, fields: Sequence[str]) -> None:
        self.fields = list(fields)
        super().__init__(
            f"call {call_id}: essential field(s) not yet captured: {', '.join(fields)}"
        )


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallView:
    """A call as it stands."""

    id: str
    organisation_id: str
    reference: str
    state: str
    service_option: str | None
    option_version: str | None
    received_at: datetime
    caller_number: str | None
    in_hours: bool
    variant: str | None
    tell_caller: str | None
    answers: Mapping[str, Any]
    action_id: str | None
    handler: str | None
    duplicate_of: str | None
    ivr_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class ScriptView:
    """What the call handler works through now (5.3, 13.5.1b–d): the opening, the questions
    that apply to this call so far (``ask_if`` worked out on its answers), and which of the
    essential ones are still unanswered (5.3.3)."""

    call: CallView
    opening: str | None
    questions: tuple[Question, ...]
    unanswered_essential: tuple[str, ...]
    data_protection: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    """Whom the action reaches: an on-call officer, a signposted service or a transfer target."""

    name: str
    number: str | None = None
    email: str | None = None
    role: str | None = None
    opening_times: str | None = None


@dataclass(frozen=True, slots=True)
class NextStep:
    """What to do next with a call: the decided action and everything needed to carry it out."""

    call: CallView
    action_id: str
    kind: str
    say: str | None
    rule: int | None
    contact: Contact | None
    channels: tuple[str, ...] = ()
    time_limit: timedelta | None = None
    duplicate_of: str | None = None
    information: str | None = None


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    organisation_id: str
    seq: int
    reference: str
    state: str
    service_option: str | None
    option_version: str | None
    access_number: str
    caller_number: str | None
    variant: str | None
    in_hours: bool
    answers: dict[str, Any]
    action_id: str | None
    handler: str | None
    duplicate_of: str | None
    received_at: datetime
    actioned_at: datetime | None
    version: int
    ivr_menu: str | None


_COLUMNS = (
    calls.c.id,
    calls.c.organisation_id,
    calls.c.seq,
    calls.c.reference,
    calls.c.state,
    calls.c.service_option,
    calls.c.option_version,
    calls.c.access_number,
    calls.c.caller_number,
    calls.c.variant,
    calls.c.in_hours,
    calls.c.answers,
    calls.c.action_id,
    calls.c.handler,
    calls.c.duplicate_of,
    calls.c.received_at,
    calls.c.actioned_at,
    calls.c.version,
    calls.c.ivr_menu,
)
_SELECT_CALL = Prepared(
    select(*_COLUMNS).where(
        and_(calls.c.id == bindparam("call_id"), calls.c.organisation_id == bindparam("org"))
    )
)
_SELECT_BY_REFERENCE = Prepared(
    select(*_COLUMNS).where(
        and_(
            calls.c.reference == bindparam("reference"),
            calls.c.organisation_id == bindparam("org"),
        )
    )
)
# the condition is written as the partial index ix_calls_waiting's, so the index serves it
_SELECT_WAITING = Prepared(
    select(*_COLUMNS).where(
        and_(calls.c.organisation_id == bindparam("org"), text(WAITING_CONDITION))
    )
)
_INSERT_CALL = Prepared(
    insert(calls),
    keys=[
        "id",
        "organisation_id",
        "seq",
        "reference",
        "access_number",
        "caller_number",
        "ivr_menu",
        "service_option",
        "option_version",
        "organisation_version",
        "state",
        "priority",
        "in_hours",
        "variant",
        "answers",
        "received_at",
        "version",
    ],
)
_NEXT_SEQ = Prepared(
    update(call_counters)
    .where(call_counters.c.organisation_id == bindparam("org"))
    .values(last_seq=call_counters.c.last_seq + 1)
    .returning(call_counters.c.last_seq)
)
_FIRST_SEQ = Prepared(insert(call_counters), keys=["organisation_id", "last_seq"])
_UPDATES: dict[tuple[str, ...], Prepared] = {}


def _update_statement(columns: tuple[str, ...]) -> Prepared:
    """``UPDATE calls SET state, version, <columns> WHERE id AND version`` (optimistic), compiled
    once per set of columns."""
    stmt = _UPDATES.get(columns)
    if stmt is None:
        stmt = Prepared(
            update(calls)
            .where(and_(calls.c.id == bindparam("call_id"), calls.c.version == bindparam("old")))
            .values(
                state=bindparam("state"),
                version=bindparam("new"),
                **{c: bindparam(f"v_{c}") for c in columns},
            )
        )
        _UPDATES[columns] = stmt
    return stmt


_ROW_FIELDS = frozenset(f.name for f in fields(_Row))


def _row(r: Sequence[Any]) -> _Row:
    values = list(r)
    values[10] = bool(values[10])
    values[11] = json.loads(values[11])
    return _Row(*values)


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


class Engine:
    """Runs calls for a set of organisations on one store. See the module docstring."""

    def __init__(
        self,
        organisations: Sequence[Organisation],
        store: Store,
        *,
        rota: Rota | None = None,
        channels: Mapping[str, Channel] | None = None,
        gazetteers: Mapping[str, Gazetteer] | None = None,
    ) -> None:
        self.store = store
        self.clock: Clock = store.clock
        self.rota: Rota = rota or RotaFile()
        self._orgs: dict[str, Organisation] = {o.id: o for o in organisations}
        self._numbers: dict[str, Organisation] = {}
        for org in organisations:
            for number in org.access_numbers:
                other = self._numbers.get(number)
                if other is not None and other.id != org.id:
                    raise EngineError(
                        f"access number {number} belongs to both {other.id} and {org.id}"
                    )
                self._numbers[number] = org
        self._calendars: dict[tuple[str, str | None], ServiceCalendar] = {}
        self._gazetteers = dict(gazetteers or {})
        self._desks = {o.id: OrganisationDesk(self, o) for o in organisations}
        self.runner = Runner(
            store,
            dict(channels or {}),
            on_timer=self._on_timer,
            on_sent=self._on_sent,
            on_failed=self._on_failed,
        )

    @classmethod
    def open(
        cls,
        rulesets: str | Path | Sequence[Organisation],
        store_url: str = "sqlite:///oohcore.sqlite",
        *,
        clock: Clock | None = None,
        channels: Mapping[str, Channel] | None = None,
        rota: Rota | None = None,
        catalogue: str | Path | None = None,
        require_sign_off: bool = False,
    ) -> Engine:
        """Load the organisations (a folder of them, or already loaded ones) and open the store.

        Each organisation folder may hold a ``rota.yaml`` (:mod:`oohcore.rota`) and a
        ``gazetteer.csv`` (:mod:`oohcore.addresses`), which are loaded too.

        ``require_sign_off``: serve only service options whose exact version has been signed
        off by the organisation (5.3.1: scripts are not made operational until signed off).
        Set it for live service; it is off by default for development, tests and demos.
        """
        if isinstance(rulesets, (str, Path)):
            organisations = load_organisations(rulesets, catalogue=catalogue)
        else:
            organisations = list(rulesets)
        if require_sign_off:
            unsigned = [
                f"{org.id}/{option.id} ({option.version})"
                for org in organisations
                for option in org.service_options.values()
                if not option.signed_off
            ]
            if unsigned:
                raise NotSignedOff(
                    "these service options have no sign-off of their current version (5.3.1); "
                    "record it under sign_off: in each file (oohcore versions prints the "
                    "versions): " + ", ".join(unsigned)
                )
        gazetteers: dict[str, Gazetteer] = {}
        rota_file = RotaFile()
        for org in organisations:
            if org.path is None:
                continue
            if rota is None and (org.path / ROTA_FILE).is_file():
                rota_file.add(
                    org.id, org.path / ROTA_FILE, timezone=org.timezone, roles=org.rota_roles
                )
            if (org.path / GAZETTEER_FILE).is_file():
                gazetteers[org.id] = Gazetteer.from_csv(org.path / GAZETTEER_FILE)
        store = Store.open(store_url, clock=clock or SystemClock())
        return cls(
            organisations, store, rota=rota or rota_file, channels=channels, gazetteers=gazetteers
        )

    # -- scope -----------------------------------------------------------------------------

    @property
    def organisations(self) -> Mapping[str, Organisation]:
        return MappingProxyType(self._orgs)

    def organisation(self, organisation_id: str) -> OrganisationDesk:
        """The desk of one organisation: every call operation is scoped through it (7.10)."""
        desk = self._desks.get(organisation_id)
        if desk is None:
            raise UnknownOrganisation(f"no organisation {organisation_id!r} is loaded")
        return desk

    def _now(self, at: datetime | None) -> datetime:
        return as_utc(at) if at is not None else self.clock.now()

    # -- offering a call -------------------------------------------------------------------

    def offer(
        self, number: str, *, caller_number: str | None = None, at: datetime | None = None
    ) -> CallView:
        """A call arrives on an access number: recognise the organisation and service option
        (7.1.2, 7.1.3) or its IVR menu (7.1.4), check the hours (2.1.5, 5.4.3) and record it."""
        now = self._now(at)
        digits = normalise_number(number)
        org = self._numbers.get(digits)
        if org is None:
            raise UnknownNumber(f"no organisation has the access number {number!r}")
        access = org.access_numbers[digits]
        desk = self._desks[org.id]
        with self.store.transaction() as conn:
            row = desk._insert_call(
                conn, access.number, access.service_option, access.ivr, caller_number, now
            )
        return desk._view(row)

    # -- driving time ----------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickReport:
        """Fire every due timer and send every due message (deterministic driving)."""
        return self.runner.tick(self._now(now))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calendars ---------------------------------------------------------------------------

    def _calendar(self, org: Organisation, option: ServiceOption | None) -> ServiceCalendar:
        key = (org.id, option.id if option else None)
        cal = self._calendars.get(key)
        if cal is None:
            hours = option.hours if option else org.hours
            cal = ServiceCalendar(hours, timezone=org.timezone, nation=org.nation)
            self._calendars[key] = cal
        return cal

    # -- timers and sent messages (called by the runner inside its transaction) ---------------

    def _on_timer(self, conn: Connection, timer: TimerRow, now: datetime) -> None:
        if timer.organisation_id not in self._desks or timer.call_id is None:
            return
        self._desks[timer.organisation_id]._on_timer(conn, timer, now)

    def _on_sent(self, conn: Connection, row: OutboxRow, now: datetime) -> None:
        desk = self._desks.get(row.organisation_id)
        if desk is not None and row.call_id is not None:
            desk._on_sent(conn, row, now)

    def _on_failed(self, conn: Connection, row: OutboxRow, now: datetime) -> None:
        """A message failed for good (retries exhausted, or no such channel): it is recorded,
        and a referral's acknowledgement timer still escalates it (5.3.2)."""
        audit.append_event(
            conn,
            organisation_id=row.organisation_id,
            call_id=row.call_id,
            kind="message.failed",
            payload={
                "channel": row.channel,
                "key": row.idempotency_key,
                "recipient": row.message.recipient,
                "error": row.last_error,
            },
            at=now,
        )


class OrganisationDesk:
    """Call handling for one organisation. Obtain it with :meth:`Engine.organisation`."""

    def __init__(self, engine: Engine, organisation: Organisation) -> None:
        self.engine = engine
        self.organisation = organisation
        self.id = organisation.id

    # -- reading -----------------------------------------------------------------------------

    def get(self, call_id: str) -> CallView:
        with self.engine.store.read() as conn:
            return self._view(self._load(conn, call_id))

    def find(self, reference: str) -> CallView:
        """The call a caller quotes the reference of (5.2.2, 13.5.1l), in this organisation."""
        try:
            ref = parse_reference(reference)
        except InvalidReference as exc:
            raise CallNotFound(str(exc)) from None
        with self.engine.store.read() as conn:
            r = _SELECT_BY_REFERENCE.execute(conn, {"reference": ref.text, "org": self.id}).first()
            if r is None:
                raise CallNotFound(f"no call with reference {ref.text} in {self.id}")
            return self._view(_row(r))

    def events(self, call_id: str) -> list[audit.EventRow]:
        with self.engine.store.read() as conn:
            self._load(conn, call_id)
            return audit.events_for_call(conn, call_id)

    def messages(self, call_id: str) -> list[OutboxRow]:
        with self.engine.store.read() as conn:
            self._load(conn, call_id)
            return outbox.messages_for_call(conn, call_id)

    def script(self, call_id: str) -> ScriptView:
        """The script for this call as it stands: the questions to ask, given the answers so
        far, and the essential ones still missing."""
        with self.engine.store.read() as conn:
            row = self._load(conn, call_id)
        option = self._option(row)
        values = self._values(row, option, duplicate=row.duplicate_of is not None)
        questions = tuple(option.questions_to_ask(values))
        missing = tuple(q.field for q in questions if q.essential and q.field not in row.answers)
        script = option.definition.script
        return ScriptView(
            call=self._view(row),
            opening=script.opening,
            questions=questions,
            unanswered_essential=missing,
            data_protection=script.data_protection,
        )

    def waiting(self) -> list[CallView]:
        """Calls waiting to be answered, in the order to answer them: the organisation's
        option priorities under high load (7.1.5), then time of arrival."""
        with self.engine.store.read() as conn:
            rows = _SELECT_WAITING.execute(conn, {"org": self.id}).rows
        views = [self._view(_row(r)) for r in rows]
        return sorted(
            views, key=lambda v: (self.organisation.priority(v.service_option or ""), v.received_at)
        )

    def search(
        self,
        *,
        caller_name: str | None = None,
        address: str | None = None,
        uprn: int | str | None = None,
        service_option: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
    ) -> list[search.SearchHit]:
        """Earlier calls of this organisation (5.2.7, 7.4.2)."""
        with self.engine.store.read() as conn:
            return search.search(
                conn,
                organisation_id=self.id,
                caller_name=caller_name,
                address=address,
                uprn=uprn,
                service_option=service_option,
                since=since,
                until=until,
                limit=limit,
            )

    # -- the steps of a call -----------------------------------------------------------------

    def choose(self, call_id: str, key: str, *, at: datetime | None = None) -> CallView:
        """The caller pressed ``key`` in the IVR menu (7.1.4)."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            dest = self._step(row, "choose")
            menu = self.organisation.ivr_menus[row.ivr_menu or ""]
            choice = next((c for c in menu.choices if c.key == key), None)
            if choice is None:
                keys = ", ".join(c.key for c in menu.choices)
                raise InvalidChoice(f"key {key!r} is not in IVR menu {menu.id} (keys: {keys})")
            option = self.organisation.service_options[choice.service_option]
            in_hours, variant = self._hours(option, row.received_at)
            row = self._update(
                conn,
                row,
                dest,
                now,
                "ivr.chosen",
                {"key": key, "service_option": option.id},
                service_option=option.id,
                option_version=option.version,
                priority=self.organisation.priority(option.id),
                in_hours=in_hours,
                variant=variant,
            )
            return self._view(row)

    def answer(self, call_id: str, *, handler: str, at: datetime | None = None) -> CallView:
        """A call handler answers the call."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            dest = self._step(row, "answer")
            row = self._update(
                conn,
                row,
                dest,
                now,
                "call.answered",
                {"handler": handler},
                handler=handler,
                answered_at=now,
            )
            return self._view(row)

    def capture(
        self, call_id: str, answers: Mapping[str, Any], *, at: datetime | None = None
    ) -> CallView:
        """Record answers to the script's questions; partial captures are fine (5.3.3).

        ``None`` clears an answer. Every answer is checked against its question first; if any
        is unacceptable, :class:`InvalidAnswers` lists them all and nothing is recorded.
        """
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            dest = self._step(row, "capture")
            option = self._option(row)
            questions = {q.field: q for q in option.questions}
            problems: list[AnswerProblem] = []
            cleaned: dict[str, Any] = {}
            for name, value in answers.items():
                q = questions.get(name)
                if q is None:
                    problems.append(
                        AnswerProblem(name, f"{option.id} asks no question with this field")
                    )
                    continue
                if value is None:
                    cleaned[name] = None
                    continue
                try:
                    cleaned[name] = clean_answer(q, value)
                except ValueError as exc:
                    problems.append(AnswerProblem(name, str(exc)))
            if problems:
                raise InvalidAnswers(problems)
            merged = {k: v for k, v in {**row.answers, **cleaned}.items() if v is not None}
            merged.update(self._address_facts(option, merged))
            row = self._update(
                conn, row, dest, now, "call.captured", {"answers": cleaned}, answers=merged
            )
            self._index(conn, row, option, merged)
            return self._view(row)

    def next_step(self, call_id: str, *, at: datetime | None = None) -> NextStep:
        """Decide what to do (the first rule that holds, 5.2.3) and say how to do it."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            dest = self._step(row, "decide")
            option = self._option(row)
            duplicate = self._duplicate(conn, row, option)
            values = self._values(row, option, duplicate=duplicate is not None)
            # essential when asked: a question whose ask_if does not hold is not asked (5.3.3)
            asked = {q.field for q in option.questions_to_ask(values)}
            missing = [f for f in sorted(option.essential_fields & asked) if f not in row.answers]
            if missing:
                raise MissingEssentialFields(call_id, missing)
            outcome = option.decide(values)
            row = self._update(
                conn,
                row,
                dest,
                now,
                "call.decided",
                {
                    "action": outcome.action_id,
                    "rule": outcome.rule,
                    "duplicate_of": duplicate,
                    "option_version": option.version,
                },
                action_id=outcome.action_id,
                action_kind=outcome.action.kind,
                rule=outcome.rule,
                duplicate_of=duplicate,
                decided_at=now,
            )
            return self._next_step(row, option, outcome.action_id, outcome.rule, values, now)

    def complete(self, call_id: str, *, at: datetime | None = None) -> CallView:
        """Carry out the decided action: messages to the on-call officer and the caller,
        deadlines and escalation timers (5.2.3.3, 6.4b), or the lone-worker watch (5.2.3.6)."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            if row.action_id is None:
                raise InvalidTransition(call_id, row.state, "complete")
            option = self._option(row)
            action = option.actions[row.action_id]
            dest = self._step(row, f"do_{action.kind}")
            values = self._values(row, option, duplicate=row.duplicate_of is not None)
            payload: dict[str, Any] = {"action": row.action_id, "kind": action.kind}
            if isinstance(action, Refer):
                payload.update(self._start_referral(conn, row, option, action, values, now))
            elif isinstance(action, LoneWorker):
                due = now + action.visit_length + action.grace
                timers.set_timer(
                    conn,
                    organisation_id=self.id,
                    call_id=call_id,
                    kind="lone-worker.expiry",
                    due_at=due,
                    key=f"{call_id}:lone-worker:expiry",
                    payload={"action": row.action_id},
                )
                payload["expires_at"] = due.isoformat()
            elif isinstance(action, OutOfScope):
                payload.update({"category": action.category, "response": action.response.value})
                self._out_of_scope_message(conn, row, option, action, values, now)
            if action.caller_sms and row.caller_number:
                tpl = option.template("actions", row.action_id, "caller_sms")
                if tpl is not None:
                    self._enqueue(
                        conn,
                        row,
                        "sms",
                        row.caller_number,
                        tpl.render(values),
                        f"{call_id}:caller-sms",
                        now,
                    )
            row = self._update(
                conn, row, dest, now, f"action.{action.kind}", payload, actioned_at=now
            )
            return self._view(row)

    def close(self, call_id: str, *, at: datetime | None = None) -> CallView:
        """The call ends; the caller has been given the reference (5.2.2)."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            dest = self._step(row, "close")
            row = self._update(
                conn, row, dest, now, "call.closed", {"reference": row.reference}, closed_at=now
            )
            return self._view(row)

    def abandon(self, call_id: str, *, at: datetime | None = None) -> CallView:
        """The caller hung up before the action was done (11.6.4)."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            dest = self._step(row, "abandon")
            row = self._update(
                conn, row, dest, now, "call.abandoned", {"from_state": row.state}, abandoned_at=now
            )
            return self._view(row)

    def acknowledge(self, call_id: str, *, by: str, at: datetime | None = None) -> CallView:
        """The on-call officer has the referral — or a manager has a lone worker's alert
        (5.2.3.6): escalation stops (5.3.2)."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            action = (
                self._option(row).actions.get(row.action_id or "") if row.service_option else None
            )
            if not isinstance(action, (Refer, LoneWorker)) or row.state not in (
                "referred",
                "lone_worker",
                "closed",
            ):
                raise InvalidTransition(call_id, row.state, "acknowledge")
            cancelled = timers.cancel_timers(
                conn, call_id=call_id, kind="referral.acknowledge", at=now
            )
            audit.append_event(
                conn,
                organisation_id=self.id,
                call_id=call_id,
                kind="referral.acknowledged",
                payload={"by": by, "timers_cancelled": cancelled},
                at=now,
            )
            return self._view(row)

    def check_out(self, call_id: str, *, at: datetime | None = None) -> CallView:
        """The lone worker called to say they have left the site (5.2.3.6)."""
        now = self.engine._now(at)
        with self.engine.store.transaction() as conn:
            row = self._load(conn, call_id)
            dest = self._step(row, "close")
            if row.state != "lone_worker":
                raise InvalidTransition(call_id, row.state, "check out")
            timers.cancel_timers(conn, call_id=call_id, at=now)
            row = self._update(conn, row, dest, now, "lone_worker.checked_out", {}, closed_at=now)
            return self._view(row)

    # -- internals -----------------------------------------------------------------------------

    def _load(self, conn: Connection, call_id: str) -> _Row:
        r = _SELECT_CALL.execute(conn, {"call_id": call_id, "org": self.id}).first()
        if r is None:
            raise CallNotFound(f"no call {call_id!r} in {self.id}")
        return _row(r)

    def _step(self, row: _Row, trigger: str) -> str:
        dest = next_state(trigger, row.state)
        if dest is None:
            raise InvalidTransition(
                row.id, row.state, trigger.removeprefix("do_").replace("_", " ")
            )
        return dest

    def _option(self, row: _Row) -> ServiceOption:
        option = self.organisation.service_options.get(row.service_option or "")
        if option is None:
            raise EngineError(f"call {row.id} has no service option (IVR choice not made)")
        return option

    def _hours(self, option: ServiceOption, when: datetime) -> tuple[bool, str | None]:
        org = self.organisation
        in_hours = self.engine._calendar(org, option).is_open(when)
        variant = active_variant(
            option.definition.variants, when, timezone=org.timezone, nation=org.nation
        )
        return in_hours, variant.id if variant else None

    def _insert_call(
        self,
        conn: Connection,
        number: str,
        option_id: str | None,
        ivr: str | None,
        caller_number: str | None,
        now: datetime,
    ) -> _Row:
        seq = self._next_seq(conn)
        call_id = uuid.uuid4().hex
        reference = format_reference(seq)
        option = self.organisation.service_options.get(option_id or "")
        in_hours, variant = (
            self._hours(option, now)
            if option
            else (self.engine._calendar(self.organisation, None).is_open(now), None)
        )
        values: dict[str, Any] = {
            "id": call_id,
            "organisation_id": self.id,
            "seq": seq,
            "reference": reference,
            "access_number": normalise_number(number),
            "caller_number": caller_number,
            "ivr_menu": ivr if option is None else None,
            "service_option": option.id if option else None,
            "option_version": option.version if option else None,
            "organisation_version": self.organisation.version,
            "state": "offered" if option else "ivr",
            "priority": self.organisation.priority(option.id)
            if option
            else len(self.organisation.priorities),
            "in_hours": int(in_hours),
            "variant": variant,
            "answers": "{}",
            "received_at": now,
            "version": 1,
        }
        _INSERT_CALL.execute(conn, values)
        audit.append_event(
            conn,
            organisation_id=self.id,
            call_id=call_id,
            kind="call.offered",
            payload={
                "number": values["access_number"],
                "caller_number": caller_number,
                "service_option": values["service_option"],
                "ivr": values["ivr_menu"],
                "reference": reference,
                "in_hours": in_hours,
                "variant": variant,
                "option_version": values["option_version"],
                "organisation_version": self.organisation.version,
            },
            at=now,
        )
        return _Row(
            id=call_id,
            organisation_id=self.id,
            seq=seq,
            reference=reference,
            state=values["state"],
            service_option=values["service_option"],
            option_version=values["option_version"],
            access_number=values["access_number"],
            caller_number=caller_number,
            variant=variant,
            in_hours=bool(in_hours),
            answers={},
            action_id=None,
            handler=None,
            duplicate_of=None,
            received_at=now,
            actioned_at=None,
            version=1,
            ivr_menu=values["ivr_menu"],
        )

    def _next_seq(self, conn: Connection) -> int:
        updated = _NEXT_SEQ.execute(conn, {"org": self.id}).first()
        if updated is not None:
            return int(updated[0])
        _FIRST_SEQ.execute(conn, {"organisation_id": self.id, "last_seq": 1})
        return 1

    def _update(
        self,
        conn: Connection,
        row: _Row,
        dest: str,
        now: datetime,
        kind: str,
        payload: Mapping[str, Any],
        **columns: Any,
    ) -> _Row:
        """Move the call to ``dest`` (optimistically: if another desk changed it meanwhile,
        nothing is written and the step fails), record the event, return the new row.

        ``columns`` are the row's values as the engine holds them (``answers`` a dict,
        ``in_hours`` a bool); their stored forms are made here, in one place."""
        names = tuple(sorted(columns))
        stored: dict[str, Callable[[Any], Any]] = {"answers": to_json, "in_hours": int}
        params = {f"v_{c}": stored[c](columns[c]) if c in stored else columns[c] for c in names}
        params.update(call_id=row.id, old=row.version, new=row.version + 1, state=dest)
        result = _update_statement(names).execute(conn, params)
        if result.rowcount != 1:
            raise EngineError(f"call {row.id} was changed by someone else meanwhile; try again")
        audit.append_event(
            conn,
            organisation_id=self.id,
            call_id=row.id,
            kind=kind,
            payload={"from": row.state, "to": dest, **payload},
            at=now,
        )
        changes = {k: v for k, v in columns.items() if k in _ROW_FIELDS}
        return replace(row, state=dest, version=row.version + 1, **changes)

    def _values(self, row: _Row, option: ServiceOption, *, duplicate: bool) -> dict[str, Any]:
        """What conditions and templates see: answers, settings and built-ins."""
        org = self.organisation
        local = local_fields(row.received_at, timezone=org.timezone, nation=org.nation)
        when = row.received_at.astimezone(ZoneInfo(org.timezone))
        values: dict[str, Any] = {**option.settings, **local, **row.answers}
        values.update(
            variant=row.variant or "standard",
            caller_number=row.caller_number,
            duplicate=duplicate,
            reference=row.reference,
            organisation=org.name,
            service_option=option.name,
            received_at=when.strftime("%H:%M %a %d %b %Y"),
            time_limit=format_duration(option.time_limit),
            handler=row.handler,
        )
        return values

    def _address_facts(self, option: ServiceOption, answers: Mapping[str, Any]) -> dict[str, Any]:
        """Match a captured address to the gazetteer for its UPRN (7.11, 4.1.5b)."""
        gazetteer = self.engine._gazetteers.get(self.id)
        address = answers.get("address")
        if gazetteer is None or not isinstance(address, str):
            return {}
        postcode = answers.get("postcode")
        matches = gazetteer.match(address, postcode if isinstance(postcode, str) else None)
        facts: dict[str, Any] = {}
        if matches and matches[0].score >= 0.8:
            facts["uprn"] = matches[0].record.uprn
        if isinstance(postcode, str):
            facts["outside_area"] = not gazetteer.in_area(postcode)
        return facts

    def _index(
        self, conn: Connection, row: _Row, option: ServiceOption, answers: Mapping[str, Any]
    ) -> None:
        name, address = answers.get("caller_name"), answers.get("address")
        if name is None and address is None and answers.get("uprn") is None:
            return
        search.index_call(
            conn,
            organisation_id=self.id,
            call_id=row.id,
            service_option=option.id,
            received_at=row.received_at,
            caller_name=name,
            address=address,
            uprn=answers.get("uprn"),
            postcode=answers.get("postcode"),
        )

    def _duplicate(self, conn: Connection, row: _Row, option: ServiceOption) -> str | None:
        """An earlier call on the same issue (5.2.7), flagged before a second referral."""
        a = row.answers
        if not any(a.get(k) for k in ("caller_name", "address", "uprn", "postcode")):
            return None
        hit = search.likely_duplicate(
            conn,
            organisation_id=self.id,
            caller_name=a.get("caller_name"),
            address=a.get("address"),
            uprn=a.get("uprn"),
            postcode=a.get("postcode"),
            service_option=option.id,
            at=row.received_at,
            exclude_call_id=row.id,
        )
        return hit.call_id if hit else None

    def _next_step(
        self,
        row: _Row,
        option: ServiceOption,
        action_id: str,
        rule: int | None,
        values: Mapping[str, Any],
        now: datetime,
    ) -> NextStep:
        action = option.actions[action_id]
        say_tpl = option.template("actions", action_id, "say")
        say = say_tpl.render(values) if say_tpl else None
        contact: Contact | None = None
        channels: tuple[str, ...] = ()
        time_limit: timedelta | None = None
        info: str | None = None
        if isinstance(action, Refer):
            officer, index = self._held(_chain(action, action_id), 0, now)
            role = _chain(action, action_id)[index].role
            contact = (
                _officer_contact(officer, role)
                if officer
                else Contact(
                    name=f"nobody on the rota for {action.rota_role}", role=action.rota_role
                )
            )
            channels = tuple(c.value for c in action.channels)
            time_limit = action.time_limit or self.organisation.referral_time_limit
        elif isinstance(action, Signpost):
            contact = Contact(
                name=action.service, number=action.number, opening_times=action.opening_times
            )
        elif isinstance(action, Transfer):
            contact = Contact(name=action.to, number=action.number)
        elif isinstance(action, Resolve):
            info = action.information
        elif isinstance(action, OutOfScope):
            info = action.forward_to
        return NextStep(
            call=self._view(row),
            action_id=action_id,
            kind=action.kind,
            say=say,
            rule=rule,
            contact=contact,
            channels=channels,
            time_limit=time_limit,
            duplicate_of=row.duplicate_of,
            information=info,
        )

    def _start_referral(
        self,
        conn: Connection,
        row: _Row,
        option: ServiceOption,
        action: Refer,
        values: Mapping[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        """Alert the on-call officer (stage 0 of the chain) and set the referral deadline
        (6.4b); the alert sets the first acknowledgement timer (5.3.2)."""
        sent = self._alert(conn, row, option, action, values, now, stage=0)
        limit = action.time_limit or self.organisation.referral_time_limit
        timers.set_timer(
            conn,
            organisation_id=self.id,
            call_id=row.id,
            kind="referral.deadline",
            due_at=now + limit,
            key=f"{row.id}:referral:deadline",
            payload={"action": row.action_id, "limit": format_duration(limit)},
        )
        return {"deadline": (now + limit).isoformat(), **sent}

    def _alert(
        self,
        conn: Connection,
        row: _Row,
        option: ServiceOption,
        action: Refer | LoneWorker,
        values: Mapping[str, Any],
        now: datetime,
        *,
        stage: int,
    ) -> dict[str, Any]:
        """Alert stage ``stage`` of the action's escalation chain and set the timer that moves
        to the next stage if nobody acknowledges within this stage's wait (5.3.2, 6.4e).

        The chain of a referral is its own rota role, then its escalation stages; a lone
        worker's is its escalation stages (5.2.3.6). If nobody holds a stage's role, the first
        later stage whose role is held is alerted instead ("a required referral cannot be
        made"). Past the last stage the final officer is alerted again at every wait, until
        someone acknowledges (audit item 9: an exhausted escalation ends at a named person).
        """
        chain = _chain(action, row.action_id or "")
        index = min(stage, len(chain) - 1)
        repeat = stage >= len(chain)
        officer, index = self._held(chain, index, now)
        current = chain[index]
        if not repeat:
            stage = index  # a stage skipped for want of anyone on call counts as passed
        if officer is not None:
            sms_tpl = option.template("actions", row.action_id or "", "message", "sms")
            subject_tpl = option.template("actions", row.action_id or "", "message", "subject")
            body_tpl = option.template("actions", row.action_id or "", "message", "body")
            extra = option.template(*current.say) if current.say else None
            summary = _summary(values)
            subject = (
                subject_tpl.render(values) if subject_tpl else f"{option.name}: {row.reference}"
            )
            if repeat:
                subject = f"UNACKNOWLEDGED {subject}"
            for channel in current.channels:
                address = officer.address(channel)
                if address is None and channel not in ("feed", "crm"):
                    audit.append_event(
                        conn,
                        organisation_id=self.id,
                        call_id=row.id,
                        kind="referral.no_address",
                        payload={"officer": officer.id, "channel": channel},
                        at=now,
                    )
                    continue
                template = sms_tpl if channel == "sms" else body_tpl
                body = template.render(values) if template else summary
                if extra is not None:
                    body = f"{extra.render(values)}\n{body}"
                self._enqueue(
                    conn,
                    row,
                    channel,
                    address or self.id,
                    body,
                    f"{row.id}:alert:{stage}:{channel}",
                    now,
                    subject=subject,
                    meta={
                        "officer": officer.id,
                        "role": current.role,
                        "stage": stage,
                        "reference": row.reference,
                        # 7.11: the property identifier goes with every referral
                        "uprn": row.answers.get("uprn"),
                        "outside_area": row.answers.get("outside_area"),
                    },
                )
        else:
            audit.append_event(
                conn,
                organisation_id=self.id,
                call_id=row.id,
                kind="referral.no_officer",
                payload={"role": current.role, "stage": stage},
                at=now,
            )
        timers.set_timer(
            conn,
            organisation_id=self.id,
            call_id=row.id,
            kind="referral.acknowledge",
            due_at=now + current.wait,
            key=f"{row.id}:ack:{stage}",
            payload={"action": row.action_id, "stage": stage},
        )
        return {
            "stage": stage,
            "role": current.role,
            "officer": officer.id if officer else None,
            "repeat": repeat,
        }

    def _held(
        self, chain: Sequence[_Stage], index: int, now: datetime
    ) -> tuple[OnCallOfficer | None, int]:
        """The first stage from ``index`` on whose rota role someone holds now."""
        for i in range(index, len(chain)):
            officer = self.engine.rota.on_call(self.id, chain[i].role, now)
            if officer is not None:
                return officer, i
        return None, index

    def _out_of_scope_message(
        self,
        conn: Connection,
        row: _Row,
        option: ServiceOption,
        action: OutOfScope,
        values: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """5.2.3.5 (i): the caller's details are forwarded to the daytime service (feed, 5.2.4)."""
        if action.response.value != "forward_to_daytime":
            return
        body_tpl = option.template("actions", row.action_id or "", "message", "body")
        body = body_tpl.render(values) if body_tpl else _summary(values)
        self._enqueue(
            conn,
            row,
            "feed",
            action.forward_to or "daytime",
            body,
            f"{row.id}:daytime",
            now,
            subject=f"Out of hours: {action.category} {row.reference}",
            meta={"category": action.category, "reference": row.reference},
        )

    def _enqueue(
        self,
        conn: Connection,
        row: _Row,
        channel: str,
        recipient: str,
        body: str,
        key: str,
        now: datetime,
        *,
        subject: str = "",
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        outbox.enqueue(
            conn,
            OutboundMessage(
                organisation_id=self.id,
                call_id=row.id,
                channel=channel,
                recipient=recipient,
                body=body,
                idempotency_key=key,
                subject=subject,
                meta=dict(meta or {}),
            ),
            at=now,
        )

    def _on_timer(self, conn: Connection, timer: TimerRow, now: datetime) -> None:
        row = self._load(conn, timer.call_id or "")
        option = self._option(row)
        action = option.actions.get(row.action_id or "")
        if timer.kind == "referral.deadline":
            dispatched = any(
                m.sent_at is not None and m.sent_at <= now
                for m in outbox.messages_for_call(conn, row.id)
                if ":alert:" in m.idempotency_key
            )
            if not dispatched:
                audit.append_event(
                    conn,
                    organisation_id=self.id,
                    call_id=row.id,
                    kind="referral.deadline_missed",
                    payload={"limit": timer.payload.get("limit")},
                    at=now,
                )
            return
        # an acknowledgement cancels these timers; one that fires found nobody had it yet
        if (
            timer.kind == "referral.acknowledge"
            and isinstance(action, (Refer, LoneWorker))
            and row.state in ("referred", "lone_worker", "closed")
        ):
            stage = int(timer.payload.get("stage", 0)) + 1
            values = self._values(row, option, duplicate=row.duplicate_of is not None)
            sent = self._alert(conn, row, option, action, values, now, stage=stage)
            audit.append_event(
                conn,
                organisation_id=self.id,
                call_id=row.id,
                kind="referral.escalated",
                payload=sent,
                at=now,
            )
            return
        if (
            timer.kind == "lone-worker.expiry"
            and isinstance(action, LoneWorker)
            and row.state == "lone_worker"
        ):
            values = self._values(row, option, duplicate=False)
            sent = self._alert(conn, row, option, action, values, now, stage=0)
            audit.append_event(
                conn,
                organisation_id=self.id,
                call_id=row.id,
                kind="lone_worker.alert",
                payload=sent,
                at=now,
            )

    def _on_sent(self, conn: Connection, message: OutboxRow, now: datetime) -> None:
        audit.append_event(
            conn,
            organisation_id=self.id,
            call_id=message.call_id,
            kind="message.sent",
            payload={
                "channel": message.channel,
                "key": message.idempotency_key,
                "recipient": message.message.recipient,
            },
            at=now,
        )

    def _view(self, row: _Row) -> CallView:
        org = self.organisation
        option = org.service_options.get(row.service_option or "")
        tell: str | None = None
        prompt: str | None = None
        if option is not None:
            if row.variant:
                variant = next((v for v in option.definition.variants if v.id == row.variant), None)
                idx = option.definition.variants.index(variant) if variant else -1
                tpl = option.template("variants", idx, "tell_caller") if variant else None
                tell = (
                    tpl.render(
                        {
                            **row.answers,
                            "organisation": org.name,
                            "service_option": option.name,
                            "reference": row.reference,
                        }
                    )
                    if tpl
                    else None
                )
            elif not row.in_hours:
                tell = (
                    f"{option.name} is not provided by the out-of-hours service at this time; "
                    "please contact the daytime service."
                )
        elif row.ivr_menu:
            prompt = org.ivr_menus[row.ivr_menu].prompt
        return CallView(
            id=row.id,
            organisation_id=row.organisation_id,
            reference=row.reference,
            state=row.state,
            service_option=row.service_option,
            option_version=row.option_version,
            received_at=row.received_at,
            caller_number=row.caller_number,
            in_hours=row.in_hours,
            variant=row.variant,
            tell_caller=tell,
            answers=MappingProxyType(dict(row.answers)),
            action_id=row.action_id,
            handler=row.handler,
            duplicate_of=row.duplicate_of,
            ivr_prompt=prompt,
        )


@dataclass(frozen=True, slots=True)
class _Stage:
    role: str
    channels: tuple[str, ...]
    wait: timedelta  # to acknowledge before the next stage
    say: tuple[str | int, ...] | None  # the template of this stage's extra line, if any


def _chain(action: Refer | LoneWorker, action_id: str) -> list[_Stage]:
    """The escalation chain: a referral's own role first, then its escalation stages."""
    chain: list[_Stage] = []
    if isinstance(action, Refer):
        channels = tuple(c.value for c in action.channels)
        chain.append(_Stage(action.rota_role, channels, action.acknowledge_within, None))
    for i, stage in enumerate(action.escalation):
        say = ("actions", action_id, "escalation", i, "say") if stage.say else None
        chain.append(
            _Stage(stage.rota_role, tuple(c.value for c in stage.channels), stage.wait, say)
        )
    return chain


def _officer_contact(officer: OnCallOfficer, role: str) -> Contact:
    return Contact(name=officer.name, number=officer.phone, email=officer.email, role=role)


def _summary(values: Mapping[str, Any]) -> str:
    """The default referral text, in the priority order of 5.2.5 (short enough for SMS)."""
    uprn = values.get("uprn")
    parts = [
        values.get("caller_name"),
        f"{values.get('address')} (UPRN {uprn})"
        if uprn and values.get("address")
        else values.get("address"),
        values.get("phone") or values.get("contact_phone") or values.get("caller_number"),
        values.get("details") or values.get("description") or values.get("service_option"),
        f"Ref {values.get('reference')}",
    ]
    return " / ".join(str(p) for p in parts if p)
