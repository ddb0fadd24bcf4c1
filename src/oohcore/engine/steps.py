"""The steps of a call, decided without a database (DESIGN principle 8).

Each function takes a :class:`~oohcore.engine.context.CallContext` (what the façade read) and
the step's input, checks that the step is allowed, and returns a
:class:`~oohcore.engine.result.StepResult`: the call's new row and changed columns, the events,
messages, timers and referral records. Nothing is written here; a refused step raises one of
the documented exceptions and nothing is committed. The runner's timer firings and message
outcomes are steps too (:func:`timer_fired`, :func:`message_sent`, :func:`message_failed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from oohcore.answers import clean_answer
from oohcore.calls import next_state
from oohcore.channels import OutboundMessage
from oohcore.directory import placeholders
from oohcore.durable.timers import TimerRow
from oohcore.engine.actions import Description, handler
from oohcore.engine.actions.lone_worker import staff_of
from oohcore.engine.context import CallContext, hours_at
from oohcore.engine.errors import (
    AnswerProblem,
    DeclineRefused,
    InvalidAnswers,
    InvalidChoice,
    InvalidTransition,
    MissingEssentialFields,
    WrongStaffMember,
)
from oohcore.engine.escalation import Alerted, alert, change_referral, summary
from oohcore.engine.result import EventOut, SearchEntry, StepResult
from oohcore.engine.rows import CALLS, CallRow, ReferralRow
from oohcore.phones import e164
from oohcore.references import format_reference
from oohcore.referrals import OPEN_STATES, next_referral_state
from oohcore.rulesets.compiler import Organisation, Outcome, ServiceOption
from oohcore.rulesets.models import Action, RoleKind
from oohcore.vocabulary import EventKind, MessagePurpose, TimerKind, action_event

__all__ = [
    "PHONE_OUTCOMES",
    "Decision",
    "abandon",
    "acknowledge",
    "answer",
    "attendance",
    "capture",
    "chain_officers",
    "check_out",
    "choose",
    "close",
    "complete",
    "decide",
    "decline",
    "extend",
    "link_used",
    "message_failed",
    "message_sent",
    "offer",
    "phoned",
    "replied",
    "timer_fired",
    "transfer_failed",
    "unmatched_reply",
]

PHONE_OUTCOMES = ("answered", "no_answer", "voicemail")

AddressFacts = Callable[[Mapping[str, Any]], dict[str, Any]]


def _move(ctx: CallContext, trigger: str, step: str | None = None) -> str:
    dest = next_state(trigger, ctx.row.state)
    if dest is None:
        raise InvalidTransition(ctx.row.id, ctx.row.state, step or trigger.replace("_", " "))
    return dest


def _result(ctx: CallContext, dest: str, **changes: Any) -> StepResult:
    changes["state"] = dest
    return StepResult(
        call=CALLS.evolve(ctx.row, {**changes, "version": ctx.row.version + 1}),
        at=ctx.now,
        base=ctx.row,
        changes=changes,
    )


def _row(result: StepResult) -> CallRow:
    assert result.call is not None
    return result.call


def _transition(
    ctx: CallContext,
    trigger: str,
    kind: str,
    payload: Mapping[str, Any],
    *,
    step: str | None = None,
    personal: Mapping[str, Any] | None = None,
    **changes: Any,
) -> StepResult:
    """The call moves by ``trigger``; the event records it (from, to and ``payload``)."""
    dest = _move(ctx, trigger, step)
    result = _result(ctx, dest, **changes)
    result.event(kind, {"from": ctx.row.state, "to": dest, **payload}, personal)
    return result


# -- the call ---------------------------------------------------------------------------------


def offer(
    organisation: Organisation,
    *,
    call_id: str,
    seq: int,
    number: str,
    option: ServiceOption | None,
    ivr_menu: str | None,
    caller_number: str | None,
    now: datetime,
) -> StepResult:
    """A call arrives on an access number (7.1.2-7.1.4): recorded, with its hours (2.1.5) and
    variant (5.4.3); an IVR call waits for a key, and no key in time takes the menu's
    ``no_choice`` (2.1.2h)."""
    in_hours, variant = hours_at(organisation, option, now)
    reference = format_reference(seq)
    row = CallRow(
        id=call_id,
        organisation_id=organisation.id,
        seq=seq,
        reference=reference,
        access_number=number,
        caller_number=caller_number,
        ivr_menu=None if option else ivr_menu,
        service_option=option.id if option else None,
        option_version=option.version if option else None,
        organisation_version=organisation.version,
        state="offered" if option else "ivr",
        priority=organisation.priority(option.id) if option else len(organisation.priorities),
        in_hours=in_hours,
        variant=variant,
        handler=None,
        answers={},
        action_id=None,
        action_kind=None,
        rule=None,
        duplicate_of=None,
        received_at=now,
        answered_at=None,
        decided_at=None,
        actioned_at=None,
        closed_at=None,
        abandoned_at=None,
        version=1,
    )
    result = StepResult(call=row, at=now)
    result.event(
        EventKind.CALL_OFFERED,
        {
            "number": number,
            "service_option": row.service_option,
            "ivr": row.ivr_menu,
            "reference": reference,
            "in_hours": in_hours,
            "variant": variant,
            "option_version": row.option_version,
            "organisation_version": organisation.version,
        },
        personal={"caller_number": caller_number} if caller_number else None,
    )
    menu = organisation.ivr.get(row.ivr_menu) if row.ivr_menu is not None else None
    if menu is not None and menu.no_choice is not None:
        result.timer(
            TimerKind.IVR_NO_CHOICE,
            now + menu.no_choice_wait,
            f"{call_id}:ivr",
            {"menu": menu.id},
        )
    return result


def _route(
    ctx: CallContext, option: ServiceOption, kind: str, payload: Mapping[str, Any]
) -> StepResult:
    in_hours, variant = hours_at(ctx.organisation, option, ctx.row.received_at)
    result = _transition(
        ctx,
        "choose",
        kind,
        {**payload, "service_option": option.id, "option_version": option.version},
        service_option=option.id,
        option_version=option.version,
        priority=ctx.organisation.priority(option.id),
        in_hours=in_hours,
        variant=variant,
    )
    result.cancel_timers(TimerKind.IVR_NO_CHOICE)
    return result


def choose(ctx: CallContext, key: str) -> tuple[StepResult, str | None]:
    """The caller pressed ``key`` in the IVR menu (7.1.4); also what the IVR says for that
    choice (its ``say``, rendered), if anything."""
    _move(ctx, "choose")
    org = ctx.organisation
    menu = org.ivr[ctx.row.ivr_menu or ""]
    choice = menu.choices.get(key)
    if choice is None:
        keys = ", ".join(menu.choices)
        raise InvalidChoice(f"key {key!r} is not in IVR menu {menu.id} (keys: {keys})")
    option = org.service_options[choice.service_option]
    said = (
        choice.say.render({"organisation": org.name, "service_option": option.name})
        if choice.say is not None
        else None
    )
    return _route(ctx, option, EventKind.IVR_CHOSEN, {"key": key}), said


def answer(ctx: CallContext, handler_name: str) -> StepResult:
    return _transition(
        ctx,
        "answer",
        EventKind.CALL_ANSWERED,
        {"handler": handler_name},
        handler=handler_name,
        answered_at=ctx.now,
    )


def capture(ctx: CallContext, answers: Mapping[str, Any], facts: AddressFacts) -> StepResult:
    """Record answers (partial captures are fine, 5.3.3; ``None`` clears one). Every answer is
    checked against its question first; if any is unacceptable none is recorded."""
    dest = _move(ctx, "capture")
    option = ctx.require_option()
    questions = {q.field: q for q in option.questions}
    problems: list[AnswerProblem] = []
    cleaned: dict[str, Any] = {}
    for name, value in answers.items():
        q = questions.get(name)
        if q is None:
            problems.append(AnswerProblem(name, f"{option.id} asks no question with this field"))
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
    merged = {k: v for k, v in {**ctx.row.answers, **cleaned}.items() if v is not None}
    # the gazetteer's facts of the address (4.1.5b, 7.11); one it no longer supports is None
    merged.update(facts(merged))
    merged = {k: v for k, v in merged.items() if v is not None}
    result = _result(ctx, dest, answers=merged)
    # 7.14.3: the answers are personal data, kept beside the audit chain (which holds their
    # digest and which fields were captured)
    result.event(
        EventKind.CALL_CAPTURED,
        {"from": ctx.row.state, "to": dest, "fields": sorted(cleaned)},
        personal={"answers": cleaned},
    )
    caller, address, uprn = merged.get("caller_name"), merged.get("address"), merged.get("uprn")
    if caller is not None or address is not None or uprn is not None:
        result.index = SearchEntry(option.id, caller, address, uprn, merged.get("postcode"))
    return result


@dataclass(frozen=True, slots=True)
class Decision:
    """What :func:`decide` chose, with how to present it."""

    outcome: Outcome
    say: str | None
    description: Description


def decide(ctx: CallContext, duplicate: str | None) -> tuple[StepResult, Decision]:
    """The first rule that holds chooses the action (5.2.3); the essential fields asked must be
    answered first (5.3.3). ``duplicate`` is an earlier call on the same issue (5.2.7)."""
    dest = _move(ctx, "decide")
    option = ctx.require_option()
    values = ctx.values(duplicate=duplicate is not None)
    asked = {q.field for q in option.questions_to_ask(values)}
    missing = [f for f in sorted(option.essential_fields & asked) if f not in ctx.row.answers]
    if missing:
        raise MissingEssentialFields(ctx.row.id, missing)
    outcome = option.decide(values)
    result = _result(
        ctx,
        dest,
        action_id=outcome.action_id,
        action_kind=outcome.action.kind,
        rule=outcome.rule,
        duplicate_of=duplicate,
        decided_at=ctx.now,
    )
    result.event(
        EventKind.CALL_DECIDED,
        {
            "from": ctx.row.state,
            "to": dest,
            "action": outcome.action_id,
            "rule": outcome.rule,
            "duplicate_of": duplicate,
            "option_version": option.version,
        },
    )
    decided = replace(ctx, row=_row(result))
    say_tpl = option.template("actions", outcome.action_id, "say")
    contact = decided.contact_of(outcome.action)
    if contact is not None:
        values.update(placeholders(contact))
    say = say_tpl.render(values) if say_tpl else None
    described = handler(outcome.action.kind).describe(decided, outcome.action_id, outcome.action)
    return result, Decision(outcome, say, described)


def _carry_out(
    ctx: CallContext, action_id: str, action: Action, trigger: str, extra: Mapping[str, Any]
) -> StepResult:
    option = ctx.require_option()
    dest = _move(ctx, trigger, "complete")
    values = ctx.action_values(action)
    result = _result(ctx, dest, actioned_at=ctx.now, action_id=action_id, action_kind=action.kind)
    done = replace(ctx, row=_row(result))
    first = len(result.events)  # the action's own event comes before what it causes
    payload = handler(action.kind).carry_out(done, action_id, action, values, result)
    row = ctx.row
    if action.caller_sms and row.caller_number:
        tpl = option.template("actions", action_id, "caller_sms")
        if tpl is not None:
            body = tpl.render(values)
            if payload.get("untaken"):
                # issue 7 defect 1: the caller is told the truth, not "passed to the contractor"
                body = _untaken_caller_text(ctx, payload)
            result.message(
                OutboundMessage(
                    organisation_id=row.organisation_id,
                    call_id=row.id,
                    channel="sms",
                    recipient=row.caller_number,
                    body=body,
                    idempotency_key=f"{row.id}:caller-sms:{action_id}",
                    purpose=MessagePurpose.CALLER_SMS,
                    reference=row.reference,
                )
            )
    payload = {
        "from": row.state,
        "to": dest,
        "action": action_id,
        "kind": action.kind,
        **extra,
        **payload,
    }
    result.events.insert(first, EventOut(action_event(action.kind), payload))
    return result


def _untaken_caller_text(ctx: CallContext, payload: Mapping[str, Any]) -> str:
    """The caller's text when nobody on the rota could take the referral: who was alerted
    instead — the organisation's last resort, the service provider's duty contact, or nobody
    (5.2.6: what the caller can expect, and only what is true)."""
    ref = ctx.row.reference
    if payload.get("officer") is None:
        return (
            f"Ref {ref}: we have not yet been able to reach anyone to deal with this. Please "
            "call us again if you need to. If anyone is in danger, call 999."
        )
    if payload.get("holder") == "provider_duty":
        return (
            f"Ref {ref}: we could not reach the on-call officer yet. We have alerted our "
            "out-of-hours duty manager, who will contact you."
        )
    return (
        f"Ref {ref}: we could not reach the on-call officer yet. We have alerted "
        f"{ctx.organisation.name}'s out-of-hours manager, who will contact you."
    )


def complete(ctx: CallContext) -> StepResult:
    """Carry out the decided action (5.2.3.x): its handler's messages, records and timers, and
    the caller's follow-up SMS (5.2.6)."""
    row = ctx.row
    if row.action_id is None:
        raise InvalidTransition(row.id, row.state, "complete")
    action = ctx.require_option().actions[row.action_id]
    return _carry_out(ctx, row.action_id, action, f"do_{action.kind}", {})


def transfer_failed(ctx: CallContext, reason: str) -> StepResult:
    """The host could not put the caller through (5.2.3.2): the transfer's ``fallback`` action
    is carried out at once; without one, the failure is recorded and the call stays with the
    handler (who must act on it)."""
    row = ctx.row
    option = ctx.require_option()
    action = option.actions.get(row.action_id or "")
    if row.state != "transferred" or action is None or action.kind != "transfer":
        raise InvalidTransition(row.id, row.state, "report a failed transfer")
    fallback = getattr(action, "fallback", None)
    if fallback is None:
        result = StepResult(call=row, at=ctx.now, base=row)
        result.event(EventKind.TRANSFER_FAILED, {"action": row.action_id, "reason": reason})
        return result
    fb = option.actions[fallback]
    result = _carry_out(
        ctx,
        fallback,
        fb,
        f"fallback_{fb.kind}",
        {"transfer": row.action_id, "reason": reason},
    )
    failed = EventOut(
        EventKind.TRANSFER_FAILED, {"action": row.action_id, "reason": reason, "fallback": fallback}
    )
    result.events.insert(0, failed)
    return result


def close(ctx: CallContext) -> StepResult:
    """The call ends; the caller has been given the reference (5.2.2). A referral's pass-on time
    limit runs from here, the conclusion of the call (6.4b): its deadline timer, set from when
    the action was carried out, finds the call's end and waits on until the true deadline."""
    result = _transition(
        ctx, "close", EventKind.CALL_CLOSED, {"reference": ctx.row.reference}, closed_at=ctx.now
    )
    if ctx.option is not None and ctx.option.id in ctx.organisation.feed_options:
        result.message(feed_entry(ctx))
    return result


def feed_entry(ctx: CallContext) -> OutboundMessage:
    """The service request as the organisation's feed takes it (7.8): every field the call
    holds — the answers, the property's UPRN (always, 7.11), when it was received and what
    was done — for the feed channel to select from and write (``oohcore_feed``)."""
    row, option = ctx.row, ctx.require_option()
    values = ctx.values()
    fields: dict[str, Any] = {
        **row.answers,
        "uprn": values.get("uprn"),
        "reference": row.reference,
        "service_option": option.id,
        "service_option_name": option.name,
        "received_at": row.received_at.isoformat(),
        "closed_at": ctx.now.isoformat(),
        "access_number": row.access_number,
        "caller_number": row.caller_number,
        "handler": row.handler,
        "action": row.action_id,
        "action_kind": row.action_kind,
        "duplicate_of": row.duplicate_of,
    }
    return OutboundMessage(
        organisation_id=row.organisation_id,
        call_id=row.id,
        channel="feed",
        recipient=row.organisation_id,
        body=summary(values),
        idempotency_key=f"{row.id}:feed",
        subject=f"{option.name} {row.reference}",
        purpose=MessagePurpose.FEED,
        reference=row.reference,
        fields={k: v for k, v in fields.items() if v is not None},
        meta={"service_option": option.id, "uprn": values.get("uprn")},
    )


def abandon(ctx: CallContext) -> StepResult:
    """The caller hung up before the action was done (11.6.4)."""
    return _transition(
        ctx,
        "abandon",
        EventKind.CALL_ABANDONED,
        {"from_state": ctx.row.state},
        abandoned_at=ctx.now,
    )


# -- referrals and watches ----------------------------------------------------------------------


def _unchanged(ctx: CallContext) -> StepResult:
    return StepResult(call=ctx.row, at=ctx.now, base=ctx.row)


def _referral_move(
    ctx: CallContext, referral: ReferralRow | None, trigger: str, step: str
) -> tuple[ReferralRow, str]:
    dest = next_referral_state(trigger, referral.state) if referral is not None else None
    if referral is None or dest is None:
        state = referral.state if referral is not None else ctx.row.state
        raise InvalidTransition(ctx.row.id, state, step, allowed=[])
    return referral, dest


def acknowledge(ctx: CallContext, referral: ReferralRow | None, by: str) -> StepResult:
    """The on-call officer has the referral — or a manager has a lone worker's alert
    (5.2.3.6): escalation stops (5.3.2)."""
    ref, dest = _referral_move(ctx, referral, "acknowledge", "acknowledge")
    result = _unchanged(ctx)
    _finish_acknowledged(ctx, result, ref, dest, by, how="api")
    return result


def _finish_acknowledged(
    ctx: CallContext, result: StepResult, ref: ReferralRow, dest: str, by: str, *, how: str
) -> None:
    changes: dict[str, Any] = {
        "state": dest,
        "acknowledged_at": ctx.now,
        "acknowledged_by": by,
        "finished_at": ctx.now,
    }
    if how == "phone" and ref.dispatched_at is None and ref.call_ended_at is None:
        # the officer took the call: passed on (6.4b), unless the deadline's verdict is already
        # recorded (``call_ended_at`` is written with it): the verdict is what every report counts
        changes["dispatched_at"] = ctx.now
    change_referral(result, ref, **changes)
    result.cancel_timers(TimerKind.ESCALATION_WAIT)
    result.event(
        EventKind.REFERRAL_ACKNOWLEDGED,
        {"referral": ref.id, "run": ref.run_id, "by": by, "how": how, "stage": ref.stage},
    )


def phoned(ctx: CallContext, referral: ReferralRow | None, outcome: str, by: str) -> StepResult:
    """The handler rang the officer of the current stage (5.2.3.3) and records the outcome:
    ``answered`` is an acknowledgement by that officer; ``no_answer`` or ``voicemail`` moves to
    the next stage at once."""
    if outcome not in PHONE_OUTCOMES:
        from oohcore.engine.errors import EngineError

        raise EngineError(f"phone outcome {outcome!r} is not one of {', '.join(PHONE_OUTCOMES)}")
    ref, _dest = _referral_move(ctx, referral, "alert", "record a phone call")
    if ref.state != "alerting":
        raise InvalidTransition(ctx.row.id, ref.state, "record a phone call", allowed=[])
    result = _unchanged(ctx)
    result.event(
        EventKind.REFERRAL_PHONED,
        {"referral": ref.id, "stage": ref.stage, "outcome": outcome, "by": by},
    )
    if outcome == "answered":
        officer = ctx.on_call(_stage_role(ref), ctx.now)
        _finish_acknowledged(
            ctx, result, ref, "acknowledged", officer.id if officer else by, how="phone"
        )
    else:
        result.cancel_timers(TimerKind.ESCALATION_WAIT)
        _, info = alert(ctx, result, ref, stage=ref.stage + 1, reason=f"phone {outcome}")
        result.event(EventKind.REFERRAL_ESCALATED, info)
    return result


def decline(
    ctx: CallContext, referral: ReferralRow | None, by: str, *, how: str, alerted: Alerted
) -> StepResult:
    """The alerted officer can't attend (issue 8 item 6): recorded with who, and the next stage
    is alerted at once, not at the end of the wait (5.3.2). Only an officer the current alert
    reached, or a holder of a manager role, may decline, and each once a stage of the chain
    (:class:`DeclineRefused` otherwise): one person cannot walk a referral past everyone."""
    ref, _dest = _referral_move(ctx, referral, "alert", "decline")
    if ref.state != "alerting":
        raise InvalidTransition(ctx.row.id, ref.state, "decline", allowed=[])
    refused = _decline_refused(ctx, by, alerted)
    if refused is not None:
        raise DeclineRefused(f"call {ctx.row.id}: {refused}")
    result = _unchanged(ctx)
    _decline(ctx, result, ref, by, how, alerted)
    return result


def _managers(ctx: CallContext) -> set[str]:
    """Who holds a manager role of the organisation now (they may decline for an officer)."""
    people = (
        ctx.on_call(role.id, ctx.now)
        for role in ctx.organisation.rota_roles.values()
        if role.kind == RoleKind.manager
    )
    return {p.id for p in people if p is not None}


def _decline_refused(ctx: CallContext, by: str | None, alerted: Alerted) -> str | None:
    """Why ``by`` may not decline now, or None when they may (5.3.2: a decline moves the
    escalation on, so it counts once per person per stage, and a manager who was not alerted
    may decline for the alerted officer once in the referral)."""
    if by is None or (by not in alerted.officers and by not in _managers(ctx)):
        return (
            f"{by!r} was not alerted at the referral's current stage and holds no manager "
            "role: only the officer alerted now (or a manager) may decline it"
        )
    if (by, alerted.stage) in alerted.declined:
        return f"{by!r} has already declined at this stage of the escalation"
    if by not in alerted.officers and by in alerted.for_others:
        return f"{by!r} has already declined this referral for an alerted officer"
    return None


def _decline(
    ctx: CallContext, result: StepResult, ref: ReferralRow, by: str, how: str, alerted: Alerted
) -> None:
    result.event(
        EventKind.REFERRAL_DECLINED,
        {
            "referral": ref.id,
            "run": ref.run_id,
            "stage": alerted.stage,
            "by": by,
            "how": how,
            "for_others": by not in alerted.officers,  # a manager for the alerted officer
        },
    )
    result.cancel_timers(TimerKind.ESCALATION_WAIT)
    _, info = alert(ctx, result, ref, stage=ref.stage + 1, reason=f"declined by {by}", skip=by)
    result.event(EventKind.REFERRAL_ESCALATED, info)


def attendance(ctx: CallContext, referral: ReferralRow | None, what: str, by: str) -> StepResult:
    """The contractor attended (``attended``) or completed (``completed``) the job of a
    referral (audit item 7): recorded against it, whatever state its escalation is in."""
    if referral is None or referral.kind != "refer" or what not in ("attended", "completed"):
        raise InvalidTransition(ctx.row.id, ctx.row.state, f"record {what}", allowed=[])
    result = _unchanged(ctx)
    kind = EventKind.REFERRAL_ATTENDED if what == "attended" else EventKind.REFERRAL_COMPLETED
    late = None
    target = referral.snapshot.get("attendance_target_s")
    if isinstance(target, int):
        late = ctx.now > referral.started_at + timedelta(seconds=target)
    result.event(kind, {"referral": referral.id, "by": by, "late": late})
    return result


def chain_officers(ctx: CallContext, ref: ReferralRow) -> dict[str, str]:
    """Who is on ``ref``'s chain now, by E.164 phone number: the holders of its stages'
    roles, the organisation's last resort and the provider's duty contact (an acknowledgement
    from anyone else does not stop the escalation)."""
    from oohcore.engine.escalation import Snapshot, holders, last_resort

    snap = Snapshot.from_json(ref.snapshot)
    people = [p for stage in snap.stages for p in holders(ctx, stage)]
    final = last_resort(ctx, snap)[1]
    if final is not None:
        people.append(final)
    if ctx.provider_duty is not None:  # alerted when nobody of the organisation can be
        people.append(ctx.provider_duty)
    out: dict[str, str] = {}
    for person in people:
        number = e164(person.phone) if person is not None else None
        if person is not None and number is not None:
            out.setdefault(number, person.id)
    return out


def replied(
    ctx: CallContext,
    referral: ReferralRow | None,
    *,
    intent: str,
    channel: str,
    sender: str,
    alerted: Alerted,
) -> StepResult:
    """A text reply quoting this call's reference (issue 8 item 6): from an officer on the
    chain it acknowledges or declines the open referral; from anyone else, or for a referral
    no longer open, it is recorded and answered, and the escalation goes on. A decline the
    officer may not make now (:func:`decline`) is ``refused``: recorded, answered neutrally,
    and the escalation does not move."""
    result = _unchanged(ctx)
    officer = chain_officers(ctx, referral).get(e164(sender) or "") if referral else None
    is_open = referral is not None and referral.state == "alerting"
    outcome = intent if officer and is_open else "off_chain" if is_open else "not_open"
    if outcome == "decline" and _decline_refused(ctx, officer, alerted) is not None:
        outcome = "refused"
    result.event(
        EventKind.INBOUND_RECEIVED,
        {
            "channel": channel,
            "intent": intent,
            "outcome": outcome,
            "referral": referral.id if referral else None,
            "officer": officer,
        },
        personal={"sender": sender},
    )
    if outcome == "ack" and referral is not None and officer is not None:
        _finish_acknowledged(ctx, result, referral, "acknowledged", officer, how=channel)
        answer = f"Thank you: {ctx.row.reference} is acknowledged."
    elif outcome == "decline" and referral is not None and officer is not None:
        _decline(ctx, result, referral, officer, channel, alerted)
        answer = f"Thank you: {ctx.row.reference} has gone to the next on-call stage."
    elif outcome == "refused":
        answer = f"Thank you. Your message about {ctx.row.reference} has been recorded."
    elif outcome == "off_chain":
        answer = (
            f"Thank you. {ctx.row.reference} is with the on-call officer; your message has been "
            "recorded."
        )
    else:
        answer = f"Thank you. {ctx.row.reference} needs no reply now; your message is recorded."
    result.message(
        reply_message(ctx.row.organisation_id, ctx.row.id, channel, sender, answer, ctx.now)
    )
    return result


def link_used(
    ctx: CallContext,
    referral: ReferralRow,
    officer: str,
    action: str,
    nonce: str,
    alerted: Alerted,
) -> StepResult:
    """A verified signed link was opened (issue 8 item 6; :mod:`oohcore.engine.links`): its
    use is recorded with its nonce (so it works once); for an officer on the chain of a
    referral still alerting it acknowledges or declines (a decline only as :func:`decline`
    allows, else ``refused``), otherwise it changes nothing."""
    result = _unchanged(ctx)
    on_chain = officer in chain_officers(ctx, referral).values()
    is_open = referral.state == "alerting"
    outcome = action if on_chain and is_open else "off_chain" if is_open else "not_open"
    if outcome == "decline" and _decline_refused(ctx, officer, alerted) is not None:
        outcome = "refused"
    result.event(
        EventKind.REFERRAL_LINK_USED,
        {
            "referral": referral.id,
            "officer": officer,
            "action": action,
            "nonce": nonce,
            "outcome": outcome,
        },
    )
    if outcome == "ack":
        _finish_acknowledged(ctx, result, referral, "acknowledged", officer, how="link")
    elif outcome == "decline":
        _decline(ctx, result, referral, officer, "link", alerted)
    return result


def reply_message(
    organisation_id: str, call_id: str | None, channel: str, sender: str, body: str, at: datetime
) -> OutboundMessage:
    """The polite answer to an inbound message."""
    return OutboundMessage(
        organisation_id=organisation_id,
        call_id=call_id,
        channel=channel,
        recipient=sender,
        body=body,
        # a random part, not the sender's number: the key goes on the audit chain, which a
        # purge cannot change (7.14.3)
        idempotency_key=f"reply:{call_id or '-'}:{uuid.uuid4().hex[:16]}:{at.isoformat()}",
        purpose=MessagePurpose.REPLY,
    )


def unmatched_reply(
    organisation_id: str, channel: str | None, sender: str | None, intent: str, now: datetime
) -> StepResult:
    """A message that names no call of the organisation (unknown reference, or not understood):
    recorded and answered politely, never an error. Without a usable channel or sender there is
    nobody to answer: it is only recorded."""
    result = StepResult(call=None, at=now, organisation_id=organisation_id, call_id="")
    result.event(
        EventKind.INBOUND_RECEIVED,
        {"channel": channel, "intent": intent, "outcome": "unmatched", "referral": None},
        personal={"sender": sender},
    )
    if channel is None or sender is None:
        return result
    result.message(
        reply_message(
            organisation_id,
            None,
            channel,
            sender,
            "Sorry, we could not match your message to a referral. Reply ACK or NO with the "
            "reference, e.g. ACK K7M-3QX-F.",
            now,
        )
    )
    return result


def _stage_role(ref: ReferralRow) -> str:
    stages = ref.snapshot["stages"]
    role: str = stages[min(max(ref.stage, 0), len(stages) - 1)]["role"]
    return role


def check_out(
    ctx: CallContext, watch: ReferralRow | None, staff: str | None, *, manager: str | None
) -> StepResult:
    """The lone worker has left the site (5.2.3.6). The same staff member checks out (their
    staff id, or their name where the script asks no id); a manager may check them out instead,
    recorded as such.

    The watch has a lifecycle of its own: closing the call ends the phone call, not the watch,
    so check-out works whether the call is still open or already closed, and while the watch is
    watching, alerting or acknowledged by a manager (an acknowledgement means a manager is
    dealing with it; the worker is accounted for only at check-out). Check-out of an open call
    closes it too."""
    closable = ctx.row.state in ("lone_worker", "closed")
    if not closable or watch is None or watch.kind != "lone_worker":
        raise InvalidTransition(ctx.row.id, ctx.row.state, "check out")
    ref, dest = _referral_move(ctx, watch, "check_out", "check out")
    expected = ref.snapshot.get("staff")
    given = staff_of({"staff_id": staff}) if staff else None
    if manager is None and expected is not None and given != expected:
        raise WrongStaffMember(
            f"call {ctx.row.id}: the visit was checked in by another staff member; check out "
            "with their staff id, or as a manager (manager=...)"
        )
    payload = {"referral": ref.id, "by_manager": manager is not None}
    personal = {"manager": manager} if manager else None
    if ctx.row.state == "closed":  # the call was closed while the watch ran on
        result = _unchanged(ctx)
        result.event(EventKind.LONE_WORKER_CHECKED_OUT, payload, personal)
    else:
        result = _transition(
            ctx,
            "close",
            EventKind.LONE_WORKER_CHECKED_OUT,
            payload,
            personal=personal,
            closed_at=ctx.now,
        )
    changes = {"state": dest, "finished_at": ctx.now}
    change_referral(result, ref, **changes)
    result.cancel_timers(None)
    return result


# -- the runner's steps -------------------------------------------------------------------------


def _stale(ctx: CallContext, timer: TimerRow, why: str) -> StepResult:
    result = _unchanged(ctx)
    result.event(
        EventKind.TIMER_STALE,
        {"timer": timer.id, "kind": timer.kind, "key": timer.key, "why": why},
    )
    return result


def timer_fired(
    ctx: CallContext,
    timer: TimerRow,
    referral: ReferralRow | None,
    dispatched: datetime | None = None,
) -> StepResult:
    """A durable timer is due. A timer of another run than its referral's (a ruleset change, a
    restarted escalation, a duplicate firing) is recorded and has no effect. ``dispatched``:
    when the referral's first alert was delivered (for its deadline)."""
    if timer.kind == TimerKind.IVR_NO_CHOICE:
        return _ivr_no_choice(ctx, timer)
    if referral is None:
        return _stale(ctx, timer, "no such referral")
    if timer.payload.get("run") != referral.run_id:
        return _stale(ctx, timer, f"run {timer.payload.get('run')} is not the referral's")
    if timer.kind == TimerKind.REFERRAL_DEADLINE:
        return _deadline(ctx, referral, dispatched)
    if timer.kind == TimerKind.ESCALATION_WAIT:
        if referral.state != "alerting" or timer.payload.get("alert") != referral.alerts:
            return _stale(ctx, timer, f"the referral is {referral.state}, alert {referral.alerts}")
        result = _unchanged(ctx)
        _, info = alert(
            ctx,
            result,
            referral,
            stage=referral.stage + 1,
            reason="not acknowledged",
            due=timer.due_at,  # the next stage is timed from this one's due time (5.3.2)
        )
        result.event(EventKind.REFERRAL_ESCALATED, info)
        return result
    if timer.kind in _LONE_WORKER_TIMERS:
        if referral.state != "watching":
            return _stale(ctx, timer, f"the watch is {referral.state}")
        return _lone_worker_timer(ctx, timer, referral)
    return _stale(ctx, timer, f"unknown timer kind {timer.kind}")


_LONE_WORKER_TIMERS = (
    TimerKind.LONE_WORKER_REMINDER,
    TimerKind.LONE_WORKER_EXPIRY,
    TimerKind.LONE_WORKER_RED,
)


def _to_worker(
    ctx: CallContext, result: StepResult, watch: ReferralRow, what: str, body: str
) -> list[str]:
    """A text to the lone worker (and, for the amber alert, their buddy)."""
    snap = watch.snapshot
    people = [("worker", snap.get("worker_phone"))]
    if what == "amber":
        people.append(("buddy", snap.get("buddy_phone")))
    sent = []
    for whom, number in people:
        if not isinstance(number, str) or not number:
            continue
        sent.append(number)
        result.message(
            OutboundMessage(
                organisation_id=watch.organisation_id,
                call_id=watch.call_id,
                channel="sms",
                recipient=number,
                body=body,
                # whom, not the number: the key goes on the audit chain, which a purge cannot
                # change (7.14.3)
                idempotency_key=f"{watch.id}:{watch.run_id}:{what}:{whom}:{ctx.now.isoformat()}",
                purpose=MessagePurpose.LONE_WORKER_ALERT,
                reference=ctx.row.reference,
                meta={"referral": watch.id, "run": watch.run_id, "level": what},
            )
        )
    return sent


def _lone_worker_timer(ctx: CallContext, timer: TimerRow, watch: ReferralRow) -> StepResult:
    """A lone-worker session's timers (5.2.3.6, issue 8 item 8): the reminder before the
    visit's end; at the end plus grace the amber alert to the worker (and buddy) when the
    option asks one, else at once the red alert; the red alert starts the escalation."""
    result = _unchanged(ctx)
    ref = ctx.row.reference
    ends = watch.deadline_at
    if timer.kind == TimerKind.LONE_WORKER_REMINDER:
        sent = _to_worker(
            ctx,
            result,
            watch,
            "reminder",
            f"Ref {ref}: your visit is due to end soon. Reply OK when you are safe, or "
            "EXTEND 30 for more time.",
        )
        result.event(
            EventKind.LONE_WORKER_REMINDER,
            {"referral": watch.id, "ends_at": ends.isoformat() if ends else None},
            personal={"to": sent},
        )
        return result
    amber = watch.snapshot.get("amber_s")
    if timer.kind == TimerKind.LONE_WORKER_EXPIRY and amber is not None:
        sent = _to_worker(
            ctx,
            result,
            watch,
            "amber",
            f"AMBER Ref {ref}: you have not checked out. Reply OK now if you are safe; the "
            "urgent escalation starts soon.",
        )
        # red is timed from when amber was due, not from a late runner's send (5.2.3.6)
        red_at = min(timer.due_at, ctx.now) + timedelta(seconds=amber)
        result.timer(
            TimerKind.LONE_WORKER_RED,
            red_at,
            f"{watch.id}:{watch.run_id}:red:{ctx.now.isoformat()}",
            {"referral": watch.id, "run": watch.run_id},
        )
        result.event(
            EventKind.LONE_WORKER_AMBER,
            {"referral": watch.id, "red_at": red_at.isoformat()},
            personal={"to": sent},
        )
        return result
    _, info = alert(ctx, result, watch, stage=0, reason="overdue", due=timer.due_at)
    result.event(EventKind.LONE_WORKER_ALERT, {**info, "level": "red"})
    return result


def extend(ctx: CallContext, watch: ReferralRow | None, minutes: int, by: str) -> StepResult:
    """The lone worker needs more time (issue 8 item 8): the visit's end moves ``minutes``
    on from now or from its end, whichever is later; its reminder and expiry are set again.
    A watch already alerting cannot be extended (a manager acknowledges or checks out)."""
    from oohcore.engine.actions.lone_worker import set_watch_timers
    from oohcore.engine.errors import EngineError

    if watch is None or watch.kind != "lone_worker" or watch.state != "watching":
        state = watch.state if watch is not None else ctx.row.state
        raise InvalidTransition(ctx.row.id, state, "extend", allowed=[])
    if not 0 < minutes <= 240:
        raise EngineError(f"extend by 1 to 240 minutes, not {minutes}")
    grace = timedelta(seconds=watch.snapshot.get("grace_s", 0))
    old_end = (watch.deadline_at or ctx.now) - grace
    ends = max(old_end, ctx.now) + timedelta(minutes=minutes)
    result = _unchanged(ctx)
    result.cancel_timers(None)
    after = change_referral(result, watch, deadline_at=ends + grace)
    set_watch_timers(result, after, ctx.now, ends)
    result.event(
        EventKind.LONE_WORKER_EXTENDED,
        {"referral": watch.id, "minutes": minutes, "ends_at": ends.isoformat(), "by": by},
    )
    return result


def _ivr_no_choice(ctx: CallContext, timer: TimerRow) -> StepResult:
    """No key was pressed in time (2.1.2h, 5.1.2): the menu's ``no_choice`` option applies; a
    menu without one leaves the call waiting for a handler, recorded."""
    if ctx.row.state != "ivr":
        return _stale(ctx, timer, f"the call is {ctx.row.state}")
    menu = ctx.organisation.ivr.get(ctx.row.ivr_menu or "")
    if menu is None or menu.no_choice is None:
        result = _unchanged(ctx)
        result.event(EventKind.IVR_NO_CHOICE, {"menu": ctx.row.ivr_menu, "service_option": None})
        return result
    option = ctx.organisation.service_options[menu.no_choice]
    return _route(ctx, option, EventKind.IVR_NO_CHOICE, {"menu": menu.id})


def _deadline(ctx: CallContext, ref: ReferralRow, dispatched: datetime | None) -> StepResult:
    """The pass-on time limit (6.4b) runs from the conclusion of the call. The timer is set
    when the action is carried out; when it fires, the deadline is the call's end plus the
    limit: if that is still ahead it waits again (a call still open counts from the action). Then the referral met
    its limit when it was dispatched by the deadline, else it is an exception with its reason
    for the reports (11.7.3g-h). ``dispatched``: when its first alert was delivered."""
    result = _unchanged(ctx)
    limit = timedelta(seconds=ref.limit_seconds or 0)
    # a call still open when the limit from the action is up is judged from the action: a
    # host that never closes a call must not hold its referral's deadline off for ever
    ended = ctx.row.closed_at or ctx.row.abandoned_at or ref.started_at
    deadline = ended + limit
    if deadline > ctx.now:
        result.timer(
            TimerKind.REFERRAL_DEADLINE,
            deadline,
            f"{ref.id}:{ref.run_id}:deadline:{deadline.isoformat()}",
            {"referral": ref.id, "run": ref.run_id},
        )
        return result
    known = [t for t in (ref.dispatched_at, dispatched, ref.acknowledged_at) if t is not None]
    first = min(known) if known else None
    changes: dict[str, Any] = {"call_ended_at": ended, "deadline_at": deadline}
    if first is not None and first != ref.dispatched_at:
        changes["dispatched_at"] = first  # the verdict's pass-on is the one every report counts
    if first is not None and first <= deadline:
        seconds = max(0.0, (first - ended).total_seconds())
        change_referral(result, ref, **changes)
        result.event(
            EventKind.REFERRAL_DEADLINE_MET,
            {"referral": ref.id, "pass_on_s": round(seconds, 3), "limit_s": ref.limit_seconds},
        )
        return result
    if first is not None:
        reason = "the first alert was delivered after the time limit"
    elif ref.alerts == 0:
        reason = "nobody could be alerted"
    else:
        reason = "no alert was delivered and nobody acknowledged within the time limit"
    change_referral(result, ref, late_reason=reason, **changes)
    late_s = round(max(0.0, (first - ended).total_seconds()), 3) if first is not None else None
    result.event(
        EventKind.REFERRAL_DEADLINE_MISSED,
        {"referral": ref.id, "limit_s": ref.limit_seconds, "reason": reason, "pass_on_s": late_s},
    )
    return result


def _alert_number(message: OutboundMessage) -> int | None:
    n = message.meta.get("alert")
    return n if isinstance(n, int) else None


def message_sent(
    organisation_id: str,
    call_id: str,
    referral_id: str | None,
    message: OutboundMessage,
    key: str,
    now: datetime,
) -> StepResult:
    """A message was delivered to its channel: recorded (a referral's first delivered alert is
    its dispatch, 6.4b: read from the outbox when its deadline is checked). No call row is
    needed, so the runner's commit of a sent batch reads nothing."""
    result = StepResult(call=None, at=now, organisation_id=organisation_id, call_id=call_id)
    result.event(
        EventKind.MESSAGE_SENT,
        {
            "channel": message.channel,
            "key": key,
            "purpose": str(message.purpose),
            "referral": referral_id,
        },
        personal={"recipient": message.recipient},
    )
    return result


def message_failed(
    ctx: CallContext,
    referral: ReferralRow | None,
    message: OutboundMessage,
    key: str,
    error: str | None,
    siblings_pending_or_sent: bool,
) -> StepResult:
    """A message failed for good (8.14): recorded; when it was the current alert of a referral
    and every message of that alert has failed, the next stage is alerted at once (not at the
    end of the wait)."""
    result = _unchanged(ctx)
    result.event(
        EventKind.MESSAGE_FAILED,
        {
            "channel": message.channel,
            "key": key,
            "error": error,
            "referral": referral.id if referral else None,
        },
        personal={"recipient": message.recipient},
    )
    number = _alert_number(message)
    if (
        referral is not None
        and referral.state in OPEN_STATES
        and referral.state == "alerting"
        and number == referral.alerts
        and message.meta.get("run") == referral.run_id
        and not siblings_pending_or_sent
        # past the last stage the final holder is re-alerted on its wait, never at once: a
        # channel that fails every message must not spin the chain within one tick
        and referral.stage < len(referral.snapshot["stages"]) - 1
    ):
        result.cancel_timers(TimerKind.ESCALATION_WAIT)
        _, info = alert(ctx, result, referral, stage=referral.stage + 1, reason="delivery failed")
        result.event(EventKind.REFERRAL_ESCALATED, info)
    return result
