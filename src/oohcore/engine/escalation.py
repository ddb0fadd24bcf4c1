"""Escalation: the frozen procedure of a referral, and each alert along it (5.3.2, 6.4e).

When a referral or lone-worker watch starts, :func:`snapshot` freezes its escalation (DESIGN
principle 9): the chain of stages (rota role, channels, wait, the stage's extra line), the
rendered texts (SMS, subject, body), the case fields for channels that compose their own text,
and the option version they came from. From then on :func:`alert` works from the snapshot only:
a ruleset change never alters or strands a referral in flight. Who holds each role is asked of
the rota *at the moment of each alert*, because the rota is living data (2.3.3).

The chain of a referral is its own rota role, then its escalation stages; a lone worker's is its
escalation stages (5.2.3.6). If nobody holds a stage's role, the first later stage whose role is
held is alerted instead. Past the last stage the final holder is alerted again after each
``realert`` wait, every alert recorded, until someone acknowledges (audit item 9: an exhausted
escalation ends at a named person).

A stage whose channels include ``phone`` is a call the handler makes (5.2.3.3): it is recorded as
due (``referral.phone_due``) with the number to ring, and the handler records the outcome
(:func:`~oohcore.engine.steps.phoned`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from oohcore.channels import OutboundMessage
from oohcore.engine.context import CallContext
from oohcore.engine.result import ReferralWrite, StepResult
from oohcore.engine.rows import REFERRALS, ReferralRow
from oohcore.rota import OnCallOfficer
from oohcore.rulesets.models import (
    EscalationPolicy,
    LoneWorker,
    PolicyNotify,
    PolicyRepeat,
    PolicyWait,
    Refer,
)
from oohcore.vocabulary import EventKind, MessagePurpose, TimerKind

__all__ = [
    "Alerted",
    "Snapshot",
    "Stage",
    "alert",
    "last_resort",
    "new_id",
    "snapshot",
    "summary",
]

PHONE = "phone"
PROVIDER_DUTY = "provider_duty"  # the holder when nobody of the organisation can be reached


def new_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Stage:
    role: str
    channels: tuple[str, ...]
    wait: timedelta  # to acknowledge before the next stage
    say: str | None  # this stage's extra line, rendered
    who: str = "in_turn"  # or "everyone" on the rota stage (a policy's notify step)
    number: int = 1  # which stage of the role's rota
    contact: str | None = None  # a directory contact instead of a rota role


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A referral's frozen escalation: everything :func:`alert` needs, as plain data."""

    option_version: str
    action_id: str
    kind: str  # "refer" or "lone_worker"
    option_name: str
    stages: tuple[Stage, ...]
    sms: str
    subject: str
    body: str
    fields: Mapping[str, Any]
    realert: timedelta  # after the last stage, the first wait between re-alerts of the holder
    limit: timedelta | None  # the pass-on time limit (6.4b); None for a lone-worker watch
    realert_factor: float = 1.0  # each later re-alert's wait is this times the one before
    realert_max: timedelta | None = None  # and never longer than this
    last_resort: str | None = None  # the organisation's last resort when the snapshot was taken

    def realert_wait(self, repeat: int) -> timedelta:
        """The wait after the ``repeat``-th re-alert (0 the first) of the holder: ``realert``
        times ``realert_factor`` for each earlier re-alert, at most ``realert_max``."""
        seconds = self.realert.total_seconds()
        cap = None if self.realert_max is None else self.realert_max.total_seconds()
        for _ in range(min(max(repeat, 0), 64)):
            if cap is not None and seconds >= cap:
                break
            seconds *= self.realert_factor
        return timedelta(seconds=seconds if cap is None else min(seconds, cap))

    def to_json(self) -> dict[str, Any]:
        return {
            "option_version": self.option_version,
            "action_id": self.action_id,
            "kind": self.kind,
            "option_name": self.option_name,
            "stages": [
                {
                    "role": s.role,
                    "channels": list(s.channels),
                    "wait_s": int(s.wait.total_seconds()),
                    "say": s.say,
                    "who": s.who,
                    "number": s.number,
                    "contact": s.contact,
                }
                for s in self.stages
            ],
            "sms": self.sms,
            "subject": self.subject,
            "body": self.body,
            "fields": dict(self.fields),
            "realert_s": int(self.realert.total_seconds()),
            "limit_s": None if self.limit is None else int(self.limit.total_seconds()),
            "realert_factor": self.realert_factor,
            "realert_max_s": None
            if self.realert_max is None
            else int(self.realert_max.total_seconds()),
            "last_resort": self.last_resort,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(
            option_version=data["option_version"],
            action_id=data["action_id"],
            kind=data["kind"],
            option_name=data["option_name"],
            stages=tuple(
                Stage(
                    s["role"],
                    tuple(s["channels"]),
                    timedelta(seconds=s["wait_s"]),
                    s["say"],
                    s.get("who", "in_turn"),
                    s.get("number", 1),
                    s.get("contact"),
                )
                for s in data["stages"]
            ),
            sms=data["sms"],
            subject=data["subject"],
            body=data["body"],
            fields=data["fields"],
            realert=timedelta(seconds=data["realert_s"]),
            limit=None if data["limit_s"] is None else timedelta(seconds=data["limit_s"]),
            # snapshots taken before the backoff re-alert at a constant wait
            realert_factor=float(data.get("realert_factor", 1.0)),
            realert_max=None
            if data.get("realert_max_s") is None
            else timedelta(seconds=data["realert_max_s"]),
            last_resort=data.get("last_resort"),
        )


MIN_REALERT = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Alerted:
    """Who a referral's current alert reached, as its events recorded it, and who has declined
    at which stage of its chain: what a decline is checked against (5.3.2)."""

    officers: tuple[str, ...] = ()  # the officer (or contact) ids the current alert went to
    stage: int = 0  # the stage of the chain that alert was for (its index)
    declined: frozenset[tuple[str, int]] = frozenset()  # (who, stage) of earlier declines
    for_others: frozenset[str] = frozenset()  # managers who declined for an alerted officer

    @classmethod
    def from_events(cls, referral: ReferralRow, payloads: list[dict[str, Any]]) -> Alerted:
        """From the payloads of the call's alert and decline events (``action.refer``,
        ``referral.escalated``, ``referral.declined``), oldest first."""
        officers: tuple[str, ...] = ()
        stage = 0
        declined: set[tuple[str, int]] = set()
        for_others: set[str] = set()
        for p in payloads:
            if p.get("referral") != referral.id or p.get("run") != referral.run_id:
                continue
            if "how" in p and isinstance(p.get("by"), str):  # a decline (an alert has no how)
                declined.add((p["by"], int(p.get("stage", 0))))
                if p.get("for_others"):
                    for_others.add(p["by"])
            elif p.get("alert") == referral.alerts:
                officers = tuple(str(o) for o in p.get("officers") or ())
                stage = int(p.get("stage", 0))
        return cls(officers, stage, frozenset(declined), frozenset(for_others))


def policy_stages(policy: EscalationPolicy) -> list[Stage]:
    """The chain of stages a policy's steps give (issue 8 item 5): each notify step is a stage
    whose wait is the sum of the wait steps after it; ``repeat: n`` goes through the stages
    before it n more times."""
    stages: list[Stage] = []
    for step in policy.steps:
        if isinstance(step, PolicyNotify):
            stages.append(
                Stage(
                    step.notify or step.contact or "",
                    tuple(c.value for c in step.channels),
                    timedelta(0),
                    None,
                    step.who,
                    step.stage,
                    step.contact,
                )
            )
        elif isinstance(step, PolicyWait) and stages:
            last = stages[-1]
            stages[-1] = replace(last, wait=last.wait + step.wait)
        elif isinstance(step, PolicyRepeat):
            stages = stages + stages * step.repeat
    return stages


def summary(values: Mapping[str, Any]) -> str:
    """The default referral text, in the priority order of 5.2.5 (short enough for SMS), with
    the property's UPRN where it is known (7.11)."""
    uprn = values.get("uprn")
    address = values.get("address")
    parts = [
        values.get("caller_name"),
        f"{address} (UPRN {uprn})" if uprn and address else address or (uprn and f"UPRN {uprn}"),
        values.get("phone") or values.get("contact_phone") or values.get("caller_number"),
        values.get("details") or values.get("description") or values.get("service_option"),
        f"Ref {values.get('reference')}",
    ]
    return " / ".join(str(p) for p in parts if p)


def case_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The case data a channel composes its own text from (5.2.5 order), by name."""
    out = {
        "caller_name": values.get("caller_name"),
        "address": values.get("address"),
        "phone": values.get("phone") or values.get("contact_phone") or values.get("caller_number"),
        "details": values.get("details") or values.get("description"),
        "uprn": values.get("uprn"),
        "postcode": values.get("postcode"),
        "outside_area": values.get("outside_area"),
        "service_option": values.get("service_option"),
        "reference": values.get("reference"),
    }
    return {k: v for k, v in out.items() if v is not None}


def snapshot(
    ctx: CallContext, action_id: str, action: Refer | LoneWorker, values: Mapping[str, Any]
) -> Snapshot:
    """Freeze the escalation of ``action`` for one referral of the call (texts rendered on
    ``values``; the pass-on limit is the action's, else the organisation's, 6.4b)."""
    option = ctx.require_option()
    default_limit = ctx.organisation.referral_time_limit
    reference = ctx.row.reference
    stages: list[Stage] = []
    backoff = action.realert
    policy = (
        ctx.organisation.escalation_policies.get(action.policy)
        if isinstance(action, Refer) and action.policy is not None
        else None
    )
    if policy is not None:
        stages.extend(policy_stages(policy))
        backoff = policy.realert if "realert" in policy.model_fields_set else action.realert
    elif isinstance(action, Refer):
        assert action.rota_role is not None
        channels = tuple(c.value for c in action.channels)
        stages.append(Stage(action.rota_role, channels, action.acknowledge_within, None))
    for i, stage in enumerate(action.escalation):
        say_tpl = option.template("actions", action_id, "escalation", i, "say")
        stages.append(
            Stage(
                stage.rota_role,
                tuple(c.value for c in stage.channels),
                stage.wait,
                say_tpl.render(values) if say_tpl is not None else None,
            )
        )
    text = summary(values)

    def render(*path: str) -> str | None:
        tpl = option.template("actions", action_id, "message", *path)
        return tpl.render(values) if tpl is not None else None

    limit = (action.time_limit or default_limit) if isinstance(action, Refer) else None
    return Snapshot(
        option_version=option.version,
        action_id=action_id,
        kind=action.kind,
        option_name=option.name,
        stages=tuple(stages),
        sms=render("sms") or text,
        subject=render("subject") or f"{option.name}: {reference}",
        body=render("body") or text,
        fields=case_fields(values),
        # never a zero wait: an exhausted chain must not re-alert within one tick
        realert=max(backoff.first or stages[-1].wait, MIN_REALERT),
        limit=limit,
        realert_factor=backoff.factor,
        realert_max=backoff.max,
        last_resort=ctx.organisation.last_resort or None,
    )


def holders(ctx: CallContext, stage: Stage) -> list[OnCallOfficer]:
    """Who a stage alerts now: a directory contact; or the officer in turn on the role's first
    rota stage; or (a policy's notify step) the officers of rota stage ``number``, the one in
    turn only or everyone on it."""
    if stage.contact is not None:
        contact = ctx.directory(stage.contact)
        if contact is None or (contact.number is None and contact.email is None):
            return []
        return [
            OnCallOfficer(stage.contact, contact.name, phone=contact.number, email=contact.email)
        ]
    if stage.number == 1 and stage.who == "in_turn":
        officer = ctx.on_call(stage.role, ctx.now)
        return [officer] if officer is not None else []
    officers = list(ctx.on_call_stage(stage.role, stage.number, ctx.now))
    return officers if stage.who == "everyone" else officers[:1]


def last_resort(ctx: CallContext, snap: Snapshot) -> tuple[str, OnCallOfficer | None]:
    """The organisation's last resort (issue 7 defect 1) as it stands now: the officer holding
    its rota role, or its directory contact (numbers are living data, 2.3.3). Its id, and who
    to alert (None when nobody can be reached)."""
    rid = snap.last_resort or ctx.organisation.last_resort
    return rid, reach_last_resort(ctx, rid)


def reach_last_resort(ctx: CallContext, rid: str) -> OnCallOfficer | None:
    """Who the last resort ``rid`` reaches now, by text or email (the channels a last-resort
    alert uses), or None when nobody can be reached."""
    if not rid:
        return None
    if rid in ctx.organisation.rota_roles:
        holder = ctx.on_call(rid, ctx.now)
        return holder if holder is not None and (holder.phone or holder.email) else None
    contact = ctx.directory(rid)
    if contact is None or (contact.number is None and contact.email is None):
        return None
    return OnCallOfficer(rid, contact.name, phone=contact.number, email=contact.email)


def alert(
    ctx: CallContext,
    result: StepResult,
    referral: ReferralRow,
    *,
    stage: int,
    reason: str,
    due: datetime | None = None,
    skip: str | None = None,
) -> tuple[ReferralRow, dict[str, Any]]:
    """Alert stage ``stage`` of ``referral``'s snapshot (or re-alert the final holder when the
    chain is exhausted) and set the wait for its acknowledgement; adds the messages, timer and
    any problem events to ``result``. Returns the referral as it will be, and what the alert
    was (for the event of the step that caused it: the action, an escalation, an alarm).

    When nobody holds this stage or any later one, the organisation's last resort is alerted
    instead and holds the call (issue 7 defect 1, audit item 9): re-alerted on the snapshot's
    backoff until someone acknowledges. A referral whose first alert finds nobody on the rota
    at all is recorded as ``referral.untaken`` (once; the KPIs count it).

    ``due``: when this alert was scheduled (a timer's due time). The wait for acknowledgement
    runs from then, so a runner that is late does not push the rest of the escalation back
    (5.3.2, 5.2.3.6); an alert caused by a step (a decline, a failed delivery) waits from now.
    ``skip``: who has just declined; this alert passes them over (a decline by the final
    holder reaches the last resort, not the same person again)."""
    snap = Snapshot.from_json(referral.snapshot)
    chain = snap.stages
    repeat = stage >= len(chain)
    index = min(stage, len(chain) - 1)
    people: list[OnCallOfficer] = []
    last = ""  # the organisation's last resort, when the provider's duty contact is alerted
    held = index
    for i in range(index, len(chain)):
        people = [p for p in holders(ctx, chain[i]) if p.id != skip]
        if people:
            held = i
            break
    officer = people[0] if people else None
    current = chain[held]
    channels = current.channels
    role, holder = current.role, "rota"
    if officer is None:
        role, officer = last_resort(ctx, snap)
        holder = "last_resort"
        if officer is not None and officer.id == skip:
            officer = None
        if officer is None and ctx.provider_duty is not None:
            # nobody of the organisation can be reached: the provider's duty contact (5.3.2)
            last, role, officer = role, PROVIDER_DUTY, ctx.provider_duty
            holder = PROVIDER_DUTY
        people = [officer] if officer is not None else []
        # by text and email, over the channels the procedure itself uses
        used = (c for st in chain for c in st.channels if c in ("sms", "email"))
        channels = tuple(dict.fromkeys(used)) or ("sms",)
        new_stage = max(stage, len(chain))
    else:
        new_stage = stage if repeat else held
    number = referral.alerts + 1
    purpose = (
        MessagePurpose.LONE_WORKER_ALERT
        if snap.kind == "lone_worker"
        else MessagePurpose.REFERRAL_ALERT
    )
    info: dict[str, Any] = {
        "referral": referral.id,
        "run": referral.run_id,
        "stage": held,
        "alert": number,
        "role": role,
        "officer": officer.id if officer else None,
        "officers": [p.id for p in people],
        "repeat": repeat,
        "reason": reason,
        "holder": holder,
    }
    if holder != "rota" and referral.alerts == 0:
        # nobody on the rota for any stage: a distinct outcome, reported (issue 7 defect 1)
        result.event(
            EventKind.REFERRAL_UNTAKEN,
            {
                **info,
                "roles": [s.role for s in chain],
                "last_resort": last if holder == PROVIDER_DUTY else role,
            },
        )
    if officer is None:
        result.event(EventKind.REFERRAL_NO_OFFICER, {**info, "stage": index})
    else:
        subject = f"UNACKNOWLEDGED {snap.subject}" if repeat else snap.subject
        for officer, channel in ((o, c) for o in people for c in channels):
            field = ctx.contact_field(channel)
            address = officer.contact(field) if field else None
            if channel == PHONE:
                # the handler rings the officer and records the outcome (5.2.3.3)
                result.event(
                    EventKind.REFERRAL_PHONE_DUE,
                    {**info, "officer_name": officer.name, "number": address},
                )
                continue
            if field is not None and address is None:
                if holder == "rota":
                    result.event(
                        EventKind.REFERRAL_NO_ADDRESS,
                        {**info, "channel": channel, "contact_field": field},
                    )
                continue
            body = snap.sms if channel == "sms" else snap.body
            # 5.2.5: the priority fields first, in every text; the escalation's own wording
            # after them, so the first SMS fragment carries the case
            roles = ", ".join(dict.fromkeys(s.role for s in chain))
            if holder == "last_resort":
                body = (
                    f"{body}\nNOBODY ON THE ROTA can take this ({roles}): you are "
                    f"{ctx.organisation.name}'s last resort."
                )
            elif holder == PROVIDER_DUTY:
                body = (
                    f"{body}\nNOBODY CAN BE REACHED at {ctx.organisation.name}: nobody on "
                    f"the rota ({roles}) and its last resort ({last or 'none'}) cannot be "
                    "reached. You are the service provider's duty contact."
                )
            elif current.say:
                body = f"{body}\n{current.say}"
            result.message(
                OutboundMessage(
                    organisation_id=referral.organisation_id,
                    call_id=referral.call_id,
                    channel=channel,
                    recipient=address or referral.organisation_id,
                    body=body,
                    idempotency_key=f"{referral.id}:{referral.run_id}:alert:{number}:{channel}"
                    + ("" if officer is people[0] else f":{officer.id}"),
                    subject=subject,
                    purpose=purpose,
                    reference=ctx.row.reference,
                    fields=snap.fields,
                    meta={
                        **info,
                        "reference": ctx.row.reference,
                        # 7.11: the property identifier goes with every referral
                        "uprn": snap.fields.get("uprn"),
                        "outside_area": snap.fields.get("outside_area"),
                    },
                )
            )
    # past the last stage (or with the last resort holding) the wait follows the backoff
    exhausted = new_stage >= len(chain)
    wait = snap.realert_wait(new_stage - len(chain)) if exhausted else current.wait
    start = ctx.now if due is None else min(due, ctx.now)
    if exhausted and start + wait < ctx.now:
        # the final holder's re-alerts missed while the runner was away are not sent as a
        # burst: the next waits from now
        start = ctx.now
    result.timer(
        TimerKind.ESCALATION_WAIT,
        start + wait,
        f"{referral.id}:{referral.run_id}:wait:{number}",
        {"referral": referral.id, "run": referral.run_id, "stage": new_stage, "alert": number},
    )
    # a stage skipped for want of anyone on call counts as passed
    after = change_referral(result, referral, state="alerting", stage=new_stage, alerts=number)
    return after, info


def _write(
    result: StepResult, before: ReferralRow, after: ReferralRow, changes: Mapping[str, Any]
) -> None:
    """Record the referral's change; several changes of one new or changed referral within a
    step become one write."""
    for i, w in enumerate(result.referrals):
        if w.after.id == before.id:
            merged = {**w.changes, **changes}
            result.referrals[i] = ReferralWrite(after, w.before, merged if w.before else {})
            return
    result.referral(ReferralWrite(after, before, changes))


def add_referral(result: StepResult, referral: ReferralRow) -> None:
    """Add a new referral's insert to ``result``."""
    result.referral(ReferralWrite(referral))


def change_referral(result: StepResult, before: ReferralRow, **changes: Any) -> ReferralRow:
    """Add a change of ``before`` to ``result``; the referral as it will be."""
    after = REFERRALS.evolve(before, changes)
    _write(result, before, after, changes)
    return after


def open_referral(
    ctx: CallContext,
    kind: str,
    action_id: str,
    snap: Snapshot,
    *,
    state: str,
    deadline: datetime | None,
) -> ReferralRow:
    """A new referral or watch record (not yet written)."""
    return ReferralRow(
        id=new_id(),
        organisation_id=ctx.row.organisation_id,
        call_id=ctx.row.id,
        kind=kind,
        action_id=action_id,
        option_version=snap.option_version,
        run_id=new_id(),
        state=state,
        stage=-1,
        alerts=0,
        snapshot=snap.to_json(),
        started_at=ctx.now,
        call_ended_at=None,
        deadline_at=deadline,
        limit_seconds=None if snap.limit is None else int(snap.limit.total_seconds()),
        dispatched_at=None,
        acknowledged_at=None,
        acknowledged_by=None,
        finished_at=None,
        late_reason=None,
        version=1,
    )
