"""The façade: the few calls a host makes. Each reads what its step needs, decides it with a
pure function of :mod:`.steps`, and commits the result in the same transaction
(:func:`.result.commit`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from oohcore import directory
from oohcore.audit import chain as audit_chain
from oohcore.audit import model as audit_model
from oohcore.audit import read as audit_read
from oohcore.channels import Channel, Receipt, ReceiptState
from oohcore.clock import Clock, SystemClock, as_utc
from oohcore.durable import outbox
from oohcore.durable.outbox import OutboxRow
from oohcore.durable.runner import Runner, TickReport
from oohcore.durable.timers import TimerRow
from oohcore.engine import inbound, inputs, links, replies, steps
from oohcore.engine.context import CallContext
from oohcore.engine.errors import (
    CallNotFound,
    EngineError,
    InvalidTransition,
    NotSignedOff,
    UnknownNumber,
    UnknownOrganisation,
)
from oohcore.engine.escalation import Alerted, Snapshot
from oohcore.engine.result import StepResult, commit
from oohcore.engine.rows import (
    CallRow,
    ReferralRow,
    call_by_reference,
    load_call,
    load_referral,
    next_seq,
    referrals_of_call,
    waiting_calls,
)
from oohcore.engine.versions import OptionVersions
from oohcore.engine.views import CallView, NextStep, ReferralView, ScriptView
from oohcore.phones import e164
from oohcore.references import InvalidReference, parse_reference
from oohcore.referrals import OPEN_STATES
from oohcore.rota import ROTA_FILE, OnCallOfficer, Rota, RotaData, RotaStore, StoreRota, read_rota
from oohcore.rulesets.compiler import Organisation, ServiceOption
from oohcore.rulesets.loader import load_organisations
from oohcore.search import query as search_query
from oohcore.search.addresses import MAX_QUERY_CHARS, InvalidPostcode, address_parts
from oohcore.search.gazetteer import Gazetteer
from oohcore.store import Store
from oohcore.vocabulary import EventKind, TimerKind

__all__ = ["Engine", "OrganisationDesk"]

GAZETTEER_FILE = "gazetteer.csv"
# a lone worker's watch runs until check-out, a manager's acknowledgement included (5.2.3.6)
WATCH_RUNNING = ("watching", "alerting", "acknowledged")


class Engine:
    """Runs calls for a set of organisations on one store (see :mod:`oohcore.engine`)."""

    def __init__(
        self,
        organisations: Sequence[Organisation],
        store: Store,
        *,
        rota: Rota | None = None,
        channels: Mapping[str, Channel] | None = None,
        gazetteers: Mapping[str, Gazetteer] | None = None,
        require_sign_off: bool = False,
        provider_duty: OnCallOfficer | None = None,
    ) -> None:
        self.store = store
        self.provider_duty = _provider_duty(provider_duty)
        self.clock: Clock = store.clock
        # the rota in the store, read afresh after every change (issue 8; oohcore.rota.store)
        self.rota: Rota = rota or StoreRota(store, {o.id: o.timezone for o in organisations})
        self.require_sign_off = require_sign_off
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
        self._gazetteers = dict(gazetteers or {})
        self.versions = OptionVersions(self._orgs)
        channel_map = dict(channels or {})
        # which officer contact point each logical channel sends to, as its channel declares
        self.contact_fields: Mapping[str, str | None] = MappingProxyType(
            {
                name: ch.info.contact_field
                for name, ch in channel_map.items()
                if getattr(getattr(ch, "info", None), "contact_field", None) is not None
            }
        )
        self._desks = {o.id: OrganisationDesk(self, o) for o in organisations}
        # the living directory (2.3.3): the files seed what the store lacks; the store wins
        with store.transaction() as conn:
            for org in organisations:
                if org.directory:
                    directory.seed(conn, org.id, org.directory, at=self.clock.now())
        self.runner = Runner(
            store,
            channel_map,
            on_timer=self._on_timer,
            on_sent=self._on_sent,
            on_failed=self._on_failed,
            on_receipt=self._on_receipt,
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
        provider_duty: OnCallOfficer | None = None,
    ) -> Engine:
        """Load the organisations (a folder of them, or already loaded ones) and open the store.

        Each organisation folder may hold a ``rota.yaml`` (:mod:`oohcore.rota`) and a
        ``gazetteer.csv`` (:mod:`oohcore.search.gazetteer`), which are loaded too.

        ``require_sign_off``: serve only service options whose exact version has been signed
        off by the organisation (5.3.1: scripts are not made operational until signed off). An
        option that is not signed off is not served (:class:`NotSignedOff` when a call for it
        is offered or chosen); every other option is. :attr:`unsigned` lists them.

        ``provider_duty``: the service provider's duty contact for the whole installation
        (an :class:`~oohcore.rota.OnCallOfficer` with a phone or an email), alerted when a
        referral finds nobody of the organisation to alert — nobody on the rota and its last
        resort unreachable (5.3.2: an escalation ends at a named person).
        """
        if isinstance(rulesets, (str, Path)):
            organisations = load_organisations(rulesets, catalogue=catalogue)
        else:
            organisations = list(rulesets)
        gazetteers: dict[str, Gazetteer] = {}
        seeds: dict[str, RotaData] = {}
        for org in organisations:
            if org.path is None:
                continue
            if rota is None and (org.path / ROTA_FILE).is_file():
                seeds[org.id] = read_rota(
                    org.path / ROTA_FILE, timezone=org.timezone, roles=org.rota_roles
                )
            if (org.path / GAZETTEER_FILE).is_file():
                gazetteers[org.id] = Gazetteer.from_csv(org.path / GAZETTEER_FILE)
        store = Store.open(store_url, clock=clock or SystemClock())
        engine = cls(
            organisations,
            store,
            rota=rota,
            channels=channels,
            gazetteers=gazetteers,
            require_sign_off=require_sign_off,
            provider_duty=provider_duty,
        )
        # rota.yaml seeds what the store lacks; the store's rota is the living one (2.3.3)
        for org_id, data in seeds.items():
            engine.rota_store(org_id).seed(data)
        return engine

    # -- scope -----------------------------------------------------------------------------

    def rota_store(self, organisation_id: str) -> RotaStore:
        """The organisation's rota in the store, to read and change while the engine runs
        (issue 8; oohcore.rota.store): the next referral uses a change."""
        org = self._orgs.get(organisation_id)
        if org is None:
            raise UnknownOrganisation(f"no organisation {organisation_id!r} is loaded")
        return RotaStore(self.store, org.id, timezone=org.timezone, roles=org.rota_roles)

    @property
    def organisations(self) -> Mapping[str, Organisation]:
        return MappingProxyType(self._orgs)

    @property
    def unsigned(self) -> list[str]:
        """``org/option (version)`` of every loaded option whose version is not signed off."""
        return [
            f"{org.id}/{option.id} ({option.version})"
            for org in self._orgs.values()
            for option in org.service_options.values()
            if not option.signed_off
        ]

    def organisation(self, organisation_id: str) -> OrganisationDesk:
        """The desk of one organisation: every call operation is scoped through it (7.10)."""
        desk = self._desks.get(inputs.organisation_id(organisation_id))
        if desk is None:
            raise UnknownOrganisation(f"no organisation {organisation_id!r} is loaded")
        return desk

    def _now(self, at: datetime | None) -> datetime:
        at = inputs.instant("at", at)
        return as_utc(at) if at is not None else self.clock.now()

    def check_served(self, option: ServiceOption) -> None:
        if self.require_sign_off and not option.signed_off:
            raise NotSignedOff(
                f"{option.organisation_id}/{option.id} version {option.version} has no sign-off "
                "(5.3.1), so live service does not run it: record the sign-off under sign_off: "
                "in its file (oohcore versions prints the versions), and handle this caller by "
                "the fallback procedure"
            )

    # -- offering a call -------------------------------------------------------------------

    def offer(
        self, number: str, *, caller_number: str | None = None, at: datetime | None = None
    ) -> CallView:
        """A call arrives on an access number: recognise the organisation and service option
        (7.1.2, 7.1.3) or its IVR menu (7.1.4), check the hours (2.1.5, 5.4.3) and record it."""
        number, caller_number = inputs.access_number(number), inputs.caller_number(caller_number)
        now = self._now(at)
        digits = e164(number)
        org = self._numbers.get(digits) if digits is not None else None
        if org is None or digits is None:
            raise UnknownNumber(f"no organisation has the access number {number!r}")
        access = org.access_numbers[digits]
        # the caller's number in E.164, as every number is stored; kept as the telephony gave
        # it when it is no number (``anonymous``, a SIP URI without one)
        caller_number = e164(caller_number) or caller_number
        option = org.service_options.get(access.service_option or "")
        if option is not None:
            self.check_served(option)
        desk = self._desks[org.id]
        with inputs.transaction(self.store) as conn:
            result = steps.offer(
                org,
                call_id=uuid.uuid4().hex,
                seq=next_seq(conn),
                number=digits,
                option=option,
                ivr_menu=access.ivr,
                caller_number=caller_number,
                now=now,
            )
            row, key = desk._commit(conn, result, option)
        self.versions.confirm(key)
        return desk._view(row)

    # -- driving time ----------------------------------------------------------------------

    def receive(
        self,
        organisation_id: str,
        channel: str,
        sender: str,
        text: str,
        *,
        at: datetime | None = None,
    ) -> str:
        """An inbound message on one of ``organisation_id``'s channels: see
        :meth:`OrganisationDesk.receive`."""
        return self.organisation(organisation_id).receive(channel, sender, text, at=at)

    def link_key(self, organisation_id: str) -> bytes:
        """The organisation's key for signed links, from the environment variable its
        ``ack_links.key_env`` names."""
        import os

        settings = self.organisation(organisation_id).organisation.ack_links
        value = os.environ.get(settings.key_env, "") if settings is not None else ""
        if len(value) < 16:
            raise EngineError(
                f"{organisation_id}: signed links need a key of 16 or more characters in the "
                "environment variable named by ack_links.key_env"
            )
        return value.encode()

    def follow_link(self, token: str, *, at: datetime | None = None) -> CallView:
        """A signed link was opened (issue 8 item 6): its officer acknowledges (or declines)
        the referral. Refused (:class:`~oohcore.engine.links.LinkRefused`) when the signature
        does not verify, it has expired, it was used before, or the referral has moved to
        another run."""
        now = self._now(at)
        org_id = links.organisation_of(token)
        if org_id not in self._desks:
            raise links.LinkRefused("not an oohcore acknowledgement link")
        parsed = links.verify(self.link_key(org_id), token, now)
        desk = self._desks[org_id]
        with inputs.transaction(self.store) as conn:
            referral = load_referral(conn, org_id, parsed.referral_id)
            if referral is None or referral.run_id != parsed.run_id:
                raise links.LinkRefused("the link is of an escalation that is no longer running")
            used = any(
                e.kind == EventKind.REFERRAL_LINK_USED and e.payload.get("nonce") == parsed.nonce
                for e in audit_read.events_for_call(conn, referral.call_id)
            )
            if used:
                raise links.LinkRefused("the link was used before: a link works once")
            ctx = desk._timed(conn, desk._context(conn, referral.call_id, now), at is not None)
            alerted = desk._alerted(conn, referral)
            result = steps.link_used(
                ctx, referral, parsed.officer, parsed.action, parsed.nonce, alerted
            )
            row, _ = desk._commit(conn, result, None)
        return desk._view(row)

    def tick(self, now: datetime | None = None) -> TickReport:
        """Fire every due timer and send every due message (deterministic driving). When the
        store cannot be used this raises :class:`~oohcore.store.StoreError`; nothing due is
        lost, and the next tick once the store is back carries on."""
        return self.runner.tick(self._now(now))

    def close(self) -> None:
        """Close the channels (through the runner) and the store."""
        try:
            self.runner.close()
        finally:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the runner's steps (inside its transaction) ----------------------------------------------

    def _on_timer(self, conn: Connection, timer: TimerRow, now: datetime) -> None:
        desk = self._desks.get(timer.organisation_id)
        if desk is None or timer.call_id is None:
            return
        ctx = desk._timed(conn, desk._context(conn, timer.call_id, now), False)
        referral = desk._referral_for(conn, timer.payload.get("referral"))
        dispatched = None
        if referral is not None and timer.kind == TimerKind.REFERRAL_DEADLINE:
            dispatched = _first_dispatch(conn, referral)
        desk._commit(conn, steps.timer_fired(ctx, timer, referral, dispatched), ctx.option)

    def _on_sent(self, conn: Connection, row: OutboxRow, now: datetime) -> None:
        desk = self._desks.get(row.organisation_id)
        if desk is None or row.call_id is None:
            return
        referral = row.message.meta.get("referral")
        result = steps.message_sent(
            desk.id,
            row.call_id,
            referral if isinstance(referral, str) else None,
            row.message,
            row.idempotency_key,
            now,
        )
        commit(conn, result)

    def _on_receipt(
        self, conn: Connection, row: OutboxRow, receipt: Receipt, now: datetime
    ) -> None:
        """A provider reported later that a message it accepted will not arrive (8.14): the
        same as a message that failed for good."""
        if receipt.state is ReceiptState.PERMANENT_FAILURE:
            self._on_failed(conn, replace(row, last_error=receipt.detail or "failure receipt"), now)

    def _on_failed(self, conn: Connection, row: OutboxRow, now: datetime) -> None:
        """A message failed for good (retries exhausted, or no such channel): it is recorded,
        and when every message of a referral's current alert has failed, the next stage is
        alerted at once (8.14)."""
        desk = self._desks.get(row.organisation_id)
        if desk is None or row.call_id is None:
            return
        ctx = desk._timed(conn, desk._context(conn, row.call_id, now, need_option=False), False)
        meta = row.message.meta
        referral = desk._referral_for(conn, meta.get("referral"))
        siblings = any(
            m.id != row.id
            and m.message.meta.get("referral") == meta.get("referral")
            and m.message.meta.get("alert") == meta.get("alert")
            and m.failed_at is None
            for m in outbox.messages_for_call(conn, row.call_id)
        )
        result = steps.message_failed(
            ctx, referral, row.message, row.idempotency_key, row.last_error, siblings
        )
        desk._commit(conn, result, None)


class OrganisationDesk:
    """Call handling for one organisation. Obtain it with :meth:`Engine.organisation`."""

    def __init__(self, engine: Engine, organisation: Organisation) -> None:
        self.engine = engine
        self.organisation = organisation
        self.id = organisation.id
        org_id = organisation.id
        rota = engine.rota

        def on_call(role: str, at: datetime) -> OnCallOfficer | None:
            return rota.on_call(org_id, role, at)

        self._on_call: Callable[[str, datetime], OnCallOfficer | None] = on_call

        def on_call_stage(role: str, number: int, at: datetime) -> tuple[OnCallOfficer, ...]:
            return _stage(rota, org_id, role, number, at)

        self._on_call_stage = on_call_stage

    @property
    def rota(self) -> RotaStore:
        """This organisation's rota in the store (read it, change it while calls run)."""
        return self.engine.rota_store(self.id)

    # -- reading -----------------------------------------------------------------------------

    def get(self, call_id: str) -> CallView:
        with self.engine.store.read() as conn:
            return self._view(self._load(conn, call_id))

    def find(self, reference: str) -> CallView:
        """The call a caller quotes the reference of (5.2.2, 13.5.1l), in this organisation."""
        try:
            ref = parse_reference(inputs.reference(reference))
        except InvalidReference as exc:
            raise CallNotFound(str(exc)) from None
        with self.engine.store.read() as conn:
            row = call_by_reference(conn, self.id, ref.text)
        if row is None:
            raise CallNotFound(f"no call with reference {ref.text} in {self.id}")
        return self._view(row)

    def events(self, call_id: str) -> list[audit_model.EventRow]:
        with self.engine.store.read() as conn:
            self._load(conn, call_id)
            return audit_read.events_for_call(conn, call_id)

    def messages(self, call_id: str) -> list[OutboxRow]:
        with self.engine.store.read() as conn:
            self._load(conn, call_id)
            return outbox.messages_for_call(conn, call_id)

    def referrals(self, call_id: str) -> list[ReferralView]:
        """The call's referrals and lone-worker watches, oldest first."""
        with self.engine.store.read() as conn:
            self._load(conn, call_id)
            return [_referral_view(r) for r in referrals_of_call(conn, self.id, call_id)]

    def script(self, call_id: str) -> ScriptView:
        """The script for this call as it stands: the questions to ask, given the answers so
        far, and the essential ones still missing."""
        with self.engine.store.read() as conn:
            ctx = self._context(conn, call_id, self.engine.clock.now())
        option = ctx.require_option()
        questions = tuple(option.questions_to_ask(ctx.values()))
        missing = tuple(
            q.field for q in questions if q.essential and q.field not in ctx.row.answers
        )
        script = option.definition.script
        return ScriptView(
            call=self._view(ctx.row),
            opening=script.opening,
            questions=questions,
            unanswered_essential=missing,
            data_protection=script.data_protection,
        )

    def waiting(self) -> list[CallView]:
        """Calls waiting to be answered, in the order to answer them: the organisation's
        option priorities when they apply (always, or in high call volume: 7.1.5), then time of
        arrival."""
        with self.engine.store.read() as conn:
            rows = waiting_calls(conn, self.id)
        views = [self._view(r) for r in rows]
        return self.organisation.order_waiting(
            views, option_of=lambda v: v.service_option, arrived_at=lambda v: v.received_at
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
    ) -> list[search_query.SearchHit]:
        """Earlier calls of this organisation (5.2.7, 7.4.2)."""
        inputs.search_arguments(caller_name, address, uprn, service_option, since, until, limit)
        with self.engine.store.read() as conn:
            return search_query.search(
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

    @contextmanager
    def _step(self, call_id: str, at: datetime | None) -> Iterator[tuple[Connection, CallContext]]:
        now = self.engine._now(at)
        with inputs.transaction(self.engine.store) as conn:
            yield conn, self._timed(conn, self._context(conn, call_id, now), at is not None)

    def _timed(self, conn: Connection, ctx: CallContext, given: bool) -> CallContext:
        """``ctx`` at a time not before the call's last recorded step: an ``at=`` the host
        ``given`` earlier is refused, the engine's clock reading earlier is moved up to it
        (:func:`oohcore.engine.inputs.not_before`; 6.4b durations are never negative)."""
        last = audit_chain.last_event_at(conn, self.id, ctx.row.id)
        now = inputs.not_before(ctx.now, last, given=given)
        return ctx if now == ctx.now else replace(ctx, now=now)

    def choose(self, call_id: str, key: str, *, at: datetime | None = None) -> CallView:
        """The caller pressed ``key`` in the IVR menu (7.1.4); the view's ``ivr_prompt`` is
        what the IVR says for that choice."""
        key = inputs.text("key", key, max_length=16) or ""
        with self._step(call_id, at) as (conn, ctx):
            result, said = steps.choose(ctx, key)
            row = result.call
            assert row is not None and row.service_option is not None
            option = self.organisation.service_options[row.service_option]
            self.engine.check_served(option)
            row, stored = self._commit(conn, result, option)
        self.engine.versions.confirm(stored)
        return self._view(row, prompt=said)

    def answer(self, call_id: str, *, handler: str, at: datetime | None = None) -> CallView:
        """A call handler answers the call."""
        handler = inputs.name("handler", handler) or ""
        with self._step(call_id, at) as (conn, ctx):
            row, _ = self._commit(conn, steps.answer(ctx, handler), None)
        return self._view(row)

    def capture(
        self, call_id: str, answers: Mapping[str, Any], *, at: datetime | None = None
    ) -> CallView:
        """Record answers to the script's questions; partial captures are fine (5.3.3).

        ``None`` clears an answer. Every answer is checked against its question first; if any
        is unacceptable, :class:`InvalidAnswers` lists them all and nothing is recorded.
        """
        answers = inputs.answers(answers)
        with self._step(call_id, at) as (conn, ctx):
            row, _ = self._commit(conn, steps.capture(ctx, answers, self._address_facts), None)
        return self._view(row)

    def next_step(self, call_id: str, *, at: datetime | None = None) -> NextStep:
        """Decide what to do (the first rule that holds, 5.2.3) and say how to do it."""
        with self._step(call_id, at) as (conn, ctx):
            duplicate = self._duplicate(conn, ctx.row)
            if duplicate is not None:
                overdue = self._attendance_overdue(conn, duplicate, ctx.now)
                ctx = replace(ctx, attendance_overdue=overdue)
            result, decision = steps.decide(ctx, duplicate)
            row, _ = self._commit(conn, result, None)
        d = decision.description
        return NextStep(
            call=self._view(row),
            action_id=decision.outcome.action_id,
            kind=decision.outcome.action.kind,
            say=decision.say,
            rule=decision.outcome.rule,
            contact=d.contact,
            channels=d.channels,
            time_limit=d.time_limit,
            duplicate_of=row.duplicate_of,
            information=d.information,
            fallback=d.fallback,
            phone=d.phone,
            untaken=d.untaken,
            outside_area=row.answers.get("outside_area") is True,
            property_owner=_text_or_none(row.answers.get("property_owner")),
            nobody_reachable=d.nobody_reachable,
        )

    def complete(self, call_id: str, *, at: datetime | None = None) -> CallView:
        """Carry out the decided action: messages to the on-call officer and the caller,
        deadlines and escalation (5.2.3.3, 6.4b), or the lone-worker watch (5.2.3.6)."""
        with self._step(call_id, at) as (conn, ctx):
            row, _ = self._commit(conn, steps.complete(ctx), None)
        return self._view(row)

    def transfer_failed(
        self, call_id: str, *, reason: str = "not answered", at: datetime | None = None
    ) -> CallView:
        """The transfer could not be made (5.2.3.2): its ``fallback`` action is carried out."""
        reason = inputs.text("reason", reason, max_length=inputs.REASON_MAX) or ""
        with self._step(call_id, at) as (conn, ctx):
            row, _ = self._commit(conn, steps.transfer_failed(ctx, reason), None)
        return self._view(row)

    def close(self, call_id: str, *, at: datetime | None = None) -> CallView:
        """The call ends; the caller has been given the reference (5.2.2)."""
        with self._step(call_id, at) as (conn, ctx):
            row, _ = self._commit(conn, steps.close(ctx), None)
        return self._view(row)

    def abandon(self, call_id: str, *, at: datetime | None = None) -> CallView:
        """The caller hung up before the action was done (11.6.4)."""
        with self._step(call_id, at) as (conn, ctx):
            row, _ = self._commit(conn, steps.abandon(ctx), None)
        return self._view(row)

    def acknowledge(self, call_id: str, *, by: str, at: datetime | None = None) -> CallView:
        """The on-call officer has the referral — or a manager has a lone worker's alert
        (5.2.3.6): escalation stops (5.3.2)."""
        by = inputs.name("by", by) or ""
        with self._step(call_id, at) as (conn, ctx):
            referral = self._current_referral(conn, ctx, "acknowledge")
            row, _ = self._commit(conn, steps.acknowledge(ctx, referral, by), None)
        return self._view(row)

    def attendance(
        self, call_id: str, *, what: str = "attended", by: str, at: datetime | None = None
    ) -> CallView:
        """The contractor ``attended`` (or ``completed``) the call's referral (audit item 7),
        recorded against it; a call back after its ``attendance_target`` with no attendance
        recorded reads ``attendance_overdue``."""
        with self._step(call_id, at) as (conn, ctx):
            refs = [r for r in referrals_of_call(conn, self.id, call_id) if r.kind == "refer"]
            referral = refs[-1] if refs else None
            row, _ = self._commit(conn, steps.attendance(ctx, referral, what, by), None)
        return self._view(row)

    def _attendance_overdue(self, conn: Connection, call_id: str, now: datetime) -> bool:
        """Whether the earlier call — or the call it in turn repeated, back to the one that was
        referred (a second call back finds the first call back, not the referral) — has a
        referral past its attendance target with no attendance recorded (audit item 7)."""
        seen: set[str] = set()
        current: str | None = call_id
        while current is not None and current not in seen and len(seen) < 20:
            seen.add(current)
            attended = {
                payload.get("referral")
                for payload in audit_read.payloads_for_call(
                    conn,
                    self.id,
                    current,
                    (EventKind.REFERRAL_ATTENDED, EventKind.REFERRAL_COMPLETED),
                )
            }
            for ref in referrals_of_call(conn, self.id, current):
                target = ref.snapshot.get("attendance_target_s")
                if not isinstance(target, int) or ref.id in attended:
                    continue
                if now > ref.started_at + timedelta(seconds=target):
                    return True
            earlier = load_call(conn, self.id, current)
            current = earlier.duplicate_of if earlier is not None else None
        return False

    def decline(self, call_id: str, *, by: str, at: datetime | None = None) -> CallView:
        """The alerted officer can't attend (issue 8 item 6): the next stage is alerted at
        once (5.3.2). ``by`` is the officer id of someone the current alert reached, or of a
        holder of a manager role; each may decline once a stage (:class:`DeclineRefused`)."""
        by = inputs.name("by", by) or ""
        with self._step(call_id, at) as (conn, ctx):
            referral = self._current_referral(conn, ctx, "decline", kind="refer")
            alerted = self._alerted(conn, referral)
            result = steps.decline(ctx, referral, by, how="api", alerted=alerted)
            row, _ = self._commit(conn, result, None)
        return self._view(row)

    def receive(self, channel: str, sender: str, text: str, *, at: datetime | None = None) -> str:
        """An inbound message from ``channel`` (an SMS reply, issue 8 item 6): parsed
        (:mod:`oohcore.engine.replies`), matched to the call by the reference it quotes, and
        recorded (``inbound.received``); the sender is answered. From an officer on the
        chain, ``ACK <ref>`` acknowledges and ``NO <ref>`` declines; anyone else's reply, or
        an unknown reference, is recorded, never an error, and answered only as
        :mod:`oohcore.engine.inbound` says (a stranger not at all); a channel or sender that is
        not usable text is recorded and not answered. ``OK`` and ``EXTEND n`` are a lone
        worker's (:meth:`_lone_worker_reply`). Returns the outcome: ``ack``, ``decline``,
        ``ok``, ``extend``, ``off_chain``, ``not_open``, ``refused`` (a decline the sender may
        not make now: nothing moves) or ``unmatched``."""
        reply = replies.parse(text)
        now = self.engine._now(at)
        # a channel or sender that is not usable text (None, a NUL, a lone surrogate …) comes
        # from a broken or hostile peer: recorded as unmatched, never answered, never raised
        usable = (
            inputs.inbound(channel, max_length=64),
            inputs.inbound(sender, max_length=inputs.CALLER_NUMBER_MAX),
        )
        if usable[0] is None or usable[1] is None:
            with self.engine.store.transaction() as conn:
                commit(conn, steps.unmatched_reply(self.id, *usable, reply.intent, now))
            return "unmatched"
        channel, sender = usable[0], usable[1]
        if reply.intent in ("ok", "extend"):
            done = self._lone_worker_reply(channel, sender, reply, now)
            if done is not None:
                return done
        with inputs.transaction(self.engine.store) as conn:
            row = call_by_reference(conn, self.id, reply.reference) if reply.reference else None
            if row is None or reply.intent not in ("ack", "decline"):
                unmatched = steps.unmatched_reply(self.id, channel, sender, reply.intent, now)
                inbound.screen(conn, unmatched, sender=sender, now=now)
                commit(conn, unmatched)
                return "unmatched"
            ctx = self._timed(conn, self._context(conn, row.id, now), False)
            refs = [r for r in referrals_of_call(conn, self.id, row.id) if r.kind == "refer"]
            open_refs = [r for r in refs if r.state in OPEN_STATES]
            referral = (open_refs or refs)[-1] if refs else None
            alerted = self._alerted(conn, referral) if referral is not None else Alerted()
            result = steps.replied(
                ctx, referral, intent=reply.intent, channel=channel, sender=sender, alerted=alerted
            )
            inbound.screen(conn, result, sender=sender, now=now)
            self._commit(conn, result, None)
        outcome: str = result.events[0].payload["outcome"]
        return outcome

    def _lone_worker_reply(
        self, channel: str, sender: str, reply: replies.Reply, now: datetime
    ) -> str | None:
        """``OK`` (check out) or ``EXTEND n`` from the phone a lone worker checked in with
        (issue 8 item 8); None when no session of that number is still to be checked out.

        A watch runs until check-out (5.2.3.6), whether or not its call was closed and after a
        manager acknowledged its alert: ``OK`` checks out at any of those points. ``EXTEND``
        applies only before the alert (a watch alerting or acknowledged answers ``not_open``:
        the managers have been told, so only a check-out ends it)."""
        from sqlalchemy import select

        from oohcore.engine.rows import REFERRALS
        from oohcore.referrals import referrals as referrals_table

        number = e164(sender)
        if number is None:
            return None
        t = referrals_table.c
        with inputs.transaction(self.engine.store) as conn:
            rows = conn.execute(
                select(referrals_table).where(
                    t.organisation_id == self.id,
                    t.kind == "lone_worker",
                    t.state.in_(WATCH_RUNNING),
                )
            )
            watches = [REFERRALS.row(r) for r in rows]
            mine = [w for w in watches if e164(w.snapshot.get("worker_phone")) == number]
            if not mine:
                return None
            # the newest watch still open, else the newest a manager acknowledged
            watch = max(mine, key=lambda w: (w.state in OPEN_STATES, w.started_at))
            ctx = self._timed(conn, self._context(conn, watch.call_id, now), False)
            outcome = reply.intent
            if reply.intent == "ok":
                result = steps.check_out(ctx, watch, watch.snapshot.get("staff"), manager=None)
                answer = f"Thank you: you are checked out of {ctx.row.reference}. Stay safe."
            elif watch.state != "watching":
                outcome = "not_open"
                result = StepResult(call=ctx.row, at=ctx.now, base=ctx.row)
                answer = (
                    f"Ref {ctx.row.reference}: your managers have been alerted, so the visit "
                    "cannot be extended. Reply OK when you are safe."
                )
            else:
                assert reply.minutes is not None
                result = steps.extend(ctx, watch, reply.minutes, by=channel)
                answer = f"Thank you: {ctx.row.reference} is extended by {reply.minutes} minutes."
            result.event(
                EventKind.INBOUND_RECEIVED,
                {
                    "channel": channel,
                    "intent": reply.intent,
                    "outcome": outcome,
                    "referral": watch.id,
                },
                personal={"sender": sender},
            )
            result.message(
                steps.reply_message(self.id, watch.call_id, channel, sender, answer, ctx.now)
            )
            inbound.screen(conn, result, sender=sender, now=now)
            self._commit(conn, result, None)
        return outcome

    def extend(
        self, call_id: str, *, minutes: int, by: str = "api", at: datetime | None = None
    ) -> CallView:
        """The lone worker needs ``minutes`` more (issue 8 item 8): the session's reminder and
        expiry move on."""
        with self._step(call_id, at) as (conn, ctx):
            watch = self._current_referral(conn, ctx, "extend", kind="lone_worker")
            row, _ = self._commit(conn, steps.extend(ctx, watch, minutes, by), None)
        return self._view(row)

    def ack_link(
        self, call_id: str, *, officer: str, action: str = "ack", at: datetime | None = None
    ) -> str:
        """A one-time signed token for ``officer`` to acknowledge (or ``decline``) the call's
        open referral (:mod:`oohcore.engine.links`); the host puts it in the URL it serves
        and passes it to :meth:`Engine.follow_link`. ``officer`` is text naming someone
        (at most ``NAME_MAX`` characters, no NUL) and ``action`` one of ``links.ACTIONS``,
        else :class:`InvalidArgument` naming it: a link signs only what it can carry back."""
        officer, action = links.checked_arguments(officer, action)
        now = self.engine._now(at)
        settings = self.organisation.ack_links
        if settings is None:
            raise EngineError(f"{self.id} has no ack_links in organisation.yaml")
        with self.engine.store.read() as conn:
            ctx = self._context(conn, call_id, now, need_option=False)
            referral = self._current_referral(conn, ctx, "link", kind="refer")
        token = links.LinkToken(
            organisation_id=self.id,
            referral_id=referral.id,
            run_id=referral.run_id,
            officer=officer,
            action=action,
            expires_at=now + settings.valid_for,
            nonce=links.new_nonce(),
        )
        return links.sign(self.engine.link_key(self.id), token)

    def phoned(
        self, call_id: str, *, outcome: str, by: str, at: datetime | None = None
    ) -> CallView:
        """The handler rang the current stage's officer (a phone referral, 5.2.3.3):
        ``outcome`` is ``answered`` (acknowledged), ``no_answer`` or ``voicemail`` (the next
        stage is alerted at once)."""
        outcome, by = (
            inputs.text("outcome", outcome, max_length=32) or "",
            inputs.name("by", by) or "",
        )
        with self._step(call_id, at) as (conn, ctx):
            referral = self._current_referral(conn, ctx, "record a phone call")
            row, _ = self._commit(conn, steps.phoned(ctx, referral, outcome, by), None)
        return self._view(row)

    def check_out(
        self,
        call_id: str,
        *,
        staff_id: str | None = None,
        manager: str | None = None,
        at: datetime | None = None,
    ) -> CallView:
        """The lone worker has left the site (5.2.3.6): ``staff_id`` must be who checked in
        (their staff id, or their name where the script asks none); a ``manager`` may check
        them out instead, recorded as such."""
        staff_id, manager = (
            inputs.name("staff_id", staff_id, optional=True),
            inputs.name("manager", manager, optional=True),
        )
        with self._step(call_id, at) as (conn, ctx):
            watch = self._current_referral(conn, ctx, "check out", kind="lone_worker")
            row, _ = self._commit(
                conn, steps.check_out(ctx, watch, staff_id, manager=manager), None
            )
        return self._view(row)

    # -- internals -----------------------------------------------------------------------------

    def _load(self, conn: Connection, call_id: str) -> CallRow:
        row = load_call(conn, self.id, inputs.call_id(call_id))
        if row is None:
            raise CallNotFound(f"no call {call_id!r} in {self.id}")
        return row

    def _context(
        self, conn: Connection, call_id: str, now: datetime, *, need_option: bool = True
    ) -> CallContext:
        row = self._load(conn, call_id)
        option: ServiceOption | None = None
        if need_option and row.service_option is not None and row.option_version is not None:
            option = self.engine.versions.get(conn, self.id, row.service_option, row.option_version)
        org_id = self.id

        def lookup(contact_id: str) -> directory.Contact | None:
            return directory.get(conn, org_id, contact_id)

        on_call, on_call_stage = self._on_call, self._on_call_stage
        rota = self.engine.rota
        if isinstance(rota, StoreRota):  # the store's rota, read in this step's transaction
            # the caller's locality, from the gazetteer's ward of the address (7.5): a role
            # with a schedule for that area answers from it, else from its general one
            ward = row.answers.get("ward")
            area = ward if isinstance(ward, str) and ward else None

            def on_call(role: str, at: datetime) -> OnCallOfficer | None:
                return rota.who_is_on_call(org_id, role, at, area=area, conn=conn).officer

            def on_call_stage(role: str, number: int, at: datetime) -> tuple[OnCallOfficer, ...]:
                answer = rota.who_is_on_call(org_id, role, at, area=area, conn=conn)
                stage = answer.stage(number)
                return tuple(stage.officers) if stage is not None else ()

        return CallContext(
            organisation=self.organisation,
            option=option,
            row=row,
            now=now,
            on_call=on_call,
            contact_fields=self.engine.contact_fields,
            directory=lookup,
            on_call_stage=on_call_stage,
            provider_duty=self.engine.provider_duty,
        )

    def _referral_for(self, conn: Connection, referral_id: object) -> ReferralRow | None:
        if not isinstance(referral_id, str):
            return None
        return load_referral(conn, self.id, referral_id)

    def _current_referral(
        self, conn: Connection, ctx: CallContext, step: str, *, kind: str | None = None
    ) -> ReferralRow:
        """The call's newest referral (or watch) still open."""
        refs = [
            r
            for r in referrals_of_call(conn, self.id, ctx.row.id)
            if kind is None or r.kind == kind
        ]
        open_refs = [r for r in refs if r.state in OPEN_STATES]
        candidates = open_refs or refs
        if not candidates:
            raise InvalidTransition(ctx.row.id, ctx.row.state, step, allowed=[])
        return candidates[-1]

    def _alerted(self, conn: Connection, referral: ReferralRow) -> Alerted:
        """Who the referral's current alert reached and who has declined (5.3.2), from the
        call's events."""
        kinds = (EventKind.ACTION_REFER, EventKind.REFERRAL_ESCALATED, EventKind.REFERRAL_DECLINED)
        payloads = audit_read.payloads_for_call(conn, self.id, referral.call_id, kinds)
        return Alerted.from_events(referral, payloads)

    def _commit(
        self, conn: Connection, result: StepResult, option: ServiceOption | None
    ) -> tuple[CallRow, tuple[str, str, str] | None]:
        stored = self.engine.versions.remember(conn, option, result.at) if option else None
        row = commit(conn, result)
        assert row is not None  # every step of a call's context returns its row
        return row, stored

    def _address_facts(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        """What the organisation's gazetteer says of the captured address (4.1.5b, 7.11).

        The postcode is the ``postcode`` answer when the option asks one, else the one written
        in the address itself. ``outside_area`` is true when that postcode is not in the
        gazetteer, or, with no postcode at all, when no gazetteer address matches: the handler
        is told and the decision can signpost (4.1.5c). The matched property's ``uprn``,
        ``ward`` and ``property_owner`` (7.11: whether a repair order will be issued) go with
        the call; a fact the new address no longer supports is cleared (``None``)."""
        gazetteer = self.engine._gazetteers.get(self.id)
        address = answers.get("address")
        if gazetteer is None or not isinstance(address, str) or not address.strip():
            return {}
        answered = answers.get("postcode")
        postcode = answered if isinstance(answered, str) else None
        if postcode is None:
            postcode = address_parts(address[:MAX_QUERY_CHARS]).postcode
        matches = gazetteer.match(address, postcode)
        best = matches[0].record if matches and matches[0].score >= 0.8 else None
        facts: dict[str, Any] = {"uprn": None, "property_owner": None}
        if best is not None:
            facts["uprn"] = best.uprn
            if best.ward:  # the locality a rota may be kept by (7.5, 4.1.5a)
                facts["ward"] = best.ward
            if best.owner:
                facts["property_owner"] = best.owner
        if postcode is not None:
            try:
                facts["outside_area"] = not gazetteer.in_area(postcode)
            except InvalidPostcode:  # the script validated it; unreadable: judge by the match
                facts["outside_area"] = best is None
        else:
            facts["outside_area"] = best is None
        return facts

    def _duplicate(self, conn: Connection, row: CallRow) -> str | None:
        """An earlier call on the same issue (5.2.7), flagged before a second referral."""
        a = row.answers
        if row.service_option is None or not any(
            a.get(k) for k in ("caller_name", "address", "uprn", "postcode")
        ):
            return None
        hit = search_query.likely_duplicate(
            conn,
            organisation_id=self.id,
            caller_name=a.get("caller_name"),
            address=a.get("address"),
            uprn=a.get("uprn"),
            postcode=a.get("postcode"),
            service_option=row.service_option,
            at=row.received_at,
            exclude_call_id=row.id,
        )
        return hit.call_id if hit else None

    def _view(self, row: CallRow, *, prompt: str | None = None) -> CallView:
        org = self.organisation
        option = org.service_options.get(row.service_option or "")
        if option is not None and option.version != row.option_version:
            option = (
                self.engine.versions.loaded(org.id, option.id, row.option_version or "") or option
            )
        tell: str | None = None
        if option is not None:
            if row.variant:
                variants = option.definition.variants
                idx = next((i for i, v in enumerate(variants) if v.id == row.variant), -1)
                tpl = option.template("variants", idx, "tell_caller") if idx >= 0 else None
                if tpl is not None:
                    tell = tpl.render(
                        {
                            **row.answers,
                            "organisation": org.name,
                            "service_option": option.name,
                            "reference": row.reference,
                        }
                    )
            elif not row.in_hours:
                tell = (
                    f"{option.name} is not provided by the out-of-hours service at this time; "
                    "please contact the daytime service."
                )
        elif row.ivr_menu and prompt is None:
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


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _provider_duty(contact: object) -> OnCallOfficer | None:
    """The installation's duty contact, checked once when the engine opens: it must be
    reachable by text or email, the channels a last-resort alert uses."""
    if contact is None:
        return None
    if not isinstance(contact, OnCallOfficer):
        raise EngineError("provider_duty must be an oohcore.rota.OnCallOfficer (or None)")
    if not (contact.phone or contact.email):
        raise EngineError(
            f"provider_duty {contact.id!r} has no phone or email: it could never be alerted"
        )
    return contact


def _first_dispatch(conn: Connection, referral: ReferralRow) -> datetime | None:
    """When the referral's first alert was delivered (its pass-on, 6.4b), from the outbox."""
    sent = [
        m.sent_at
        for m in outbox.messages_for_call(conn, referral.call_id)
        if m.sent_at is not None
        and m.message.meta.get("referral") == referral.id
        and m.message.meta.get("run") == referral.run_id
    ]
    return min(sent) if sent else None


def _referral_view(r: ReferralRow) -> ReferralView:
    snap = Snapshot.from_json(r.snapshot)
    return ReferralView(
        id=r.id,
        call_id=r.call_id,
        kind=r.kind,
        action_id=r.action_id,
        option_version=r.option_version,
        run_id=r.run_id,
        state=r.state,
        stage=r.stage,
        alerts=r.alerts,
        started_at=r.started_at,
        call_ended_at=r.call_ended_at,
        deadline_at=r.deadline_at,
        dispatched_at=r.dispatched_at,
        acknowledged_at=r.acknowledged_at,
        acknowledged_by=r.acknowledged_by,
        finished_at=r.finished_at,
        late_reason=r.late_reason,
        stages=tuple((s.role, s.channels, s.wait) for s in snap.stages),
    )


def _stage(
    rota: Rota, organisation_id: str, role: str, number: int, at: datetime
) -> tuple[OnCallOfficer, ...]:
    """The officers on stage ``number`` of ``role`` (the one in turn first)."""
    ask = getattr(rota, "who_is_on_call", None)
    if ask is None:  # a host's rota that answers only on_call
        officer = rota.on_call(organisation_id, role, at) if number == 1 else None
        return (officer,) if officer is not None else ()
    stage = ask(organisation_id, role, at).stage(number)
    return tuple(stage.officers) if stage is not None else ()
