"""Refer: pass the request to the on-call officer found from the rota (5.2.3.3, 7.5), within
the time limit (6.4b), escalating stage by stage until someone acknowledges (5.3.2).

Carrying it out starts a **referral** record with its escalation snapshotted
(:mod:`oohcore.engine.escalation`), alerts its first held stage, and sets the pass-on deadline.
The deadline runs from the conclusion of the call (6.4b): it is set provisionally from now and
set again when the call is closed (:func:`oohcore.engine.steps.close`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from oohcore.engine.actions.base import Description
from oohcore.engine.context import CallContext
from oohcore.engine.escalation import (
    PHONE,
    PROVIDER_DUTY,
    Stage,
    add_referral,
    alert,
    holders,
    open_referral,
    policy_stages,
    reach_last_resort,
    snapshot,
)
from oohcore.engine.result import StepResult
from oohcore.engine.views import Contact
from oohcore.rulesets.models import Refer
from oohcore.vocabulary import TimerKind

kind = "refer"
LAST_RESORT = "last_resort"  # the role of a Contact that is the organisation's last resort


def chain_of(ctx: CallContext, action: Refer) -> list[Stage]:
    """The stages the referral would alert (before it is snapshotted)."""
    if action.policy is not None:
        policy = ctx.organisation.escalation_policies.get(action.policy)
        return policy_stages(policy) if policy is not None else []
    assert action.rota_role is not None
    first = Stage(action.rota_role, (), action.acknowledge_within, None)
    return [first, *(Stage(s.rota_role, (), s.wait, None) for s in action.escalation)]


def describe(ctx: CallContext, action_id: str, action: Refer) -> Description:
    contact: Contact | None = None
    for stage in chain_of(ctx, action):
        people = holders(ctx, stage)
        if people:
            officer = people[0]
            contact = Contact(
                name=officer.name, number=officer.phone, email=officer.email, role=stage.role
            )
            break
    untaken = contact is None
    nobody = False
    if contact is None:
        # issue 7 defect 1: nobody can take it; the organisation's last resort will be alerted
        holder = reach_last_resort(ctx, ctx.organisation.last_resort)
        if holder is not None:
            contact = Contact(holder.name, holder.phone, holder.email, role=LAST_RESORT)
        else:
            # nor its last resort (5.3.2): the provider's duty contact, when there is one
            nobody = True
            duty = ctx.provider_duty
            contact = (
                Contact(duty.name, duty.phone, duty.email, role=PROVIDER_DUTY)
                if duty is not None
                else Contact(name="nobody can be alerted", role=PROVIDER_DUTY)
            )
    channels = tuple(c.value for c in action.channels)
    return Description(
        contact=contact,
        channels=channels,
        time_limit=action.time_limit or ctx.organisation.referral_time_limit,
        phone=PHONE in channels,
        untaken=untaken,
        nobody_reachable=nobody,
        information=_nobody_information(ctx, contact) if nobody else None,
    )


def _nobody_information(ctx: CallContext, contact: Contact) -> str:
    """What the handler is told before completing when no person of the organisation can be
    reached (5.3.2): who will be alerted instead, and not to promise attendance."""
    org = ctx.organisation
    if contact.number is None and contact.email is None:
        told = "nobody can be alerted: follow the fallback procedure now"
    else:
        told = f"the service provider's duty contact, {contact.name}, will be alerted"
    return (
        f"Nobody on {org.name}'s rota and not its last resort ({org.last_resort}) can be "
        f"reached; {told}. Do not promise the caller a visit."
    )


def carry_out(
    ctx: CallContext,
    action_id: str,
    action: Refer,
    values: Mapping[str, Any],
    result: StepResult,
) -> dict[str, Any]:
    snap = snapshot(ctx, action_id, action, values)
    assert snap.limit is not None
    deadline = ctx.now + snap.limit
    referral = open_referral(ctx, "refer", action_id, snap, state="alerting", deadline=deadline)
    if action.attendance_target is not None:
        target = int(action.attendance_target.total_seconds())
        referral = replace(referral, snapshot={**referral.snapshot, "attendance_target_s": target})
    add_referral(result, referral)
    _, alerted = alert(ctx, result, referral, stage=0, reason="referred")
    result.timer(
        TimerKind.REFERRAL_DEADLINE,
        deadline,
        f"{referral.id}:{referral.run_id}:deadline",
        {"referral": referral.id, "run": referral.run_id},
    )
    return {
        **alerted,
        "untaken": alerted["holder"] != "rota" and alerted["repeat"] is False,
        "option_version": snap.option_version,
        "stages": [st.role for st in snap.stages],
        "limit_s": int(snap.limit.total_seconds()),
    }
