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
    Stage,
    add_referral,
    alert,
    holders,
    open_referral,
    policy_stages,
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
    if contact is None:
        # issue 7 defect 1: nobody can take it; the organisation's last resort will be alerted
        rid = ctx.organisation.last_resort
        holder = None
        if rid in ctx.organisation.rota_roles:
            holder = ctx.on_call(rid, ctx.now)
        entry = ctx.directory(rid) if rid and holder is None else None
        if holder is not None:
            contact = Contact(holder.name, holder.phone, holder.email, role=LAST_RESORT)
        elif entry is not None:
            contact = Contact(entry.name, entry.number, entry.email, role=LAST_RESORT)
        else:
            contact = Contact(name="nobody on the rota", role=LAST_RESORT)
    channels = tuple(c.value for c in action.channels)
    return Description(
        contact=contact,
        channels=channels,
        time_limit=action.time_limit or ctx.organisation.referral_time_limit,
        phone=PHONE in channels,
        untaken=untaken,
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
        "untaken": alerted["holder"] == LAST_RESORT and alerted["repeat"] is False,
        "option_version": snap.option_version,
        "stages": [st.role for st in snap.stages],
        "limit_s": int(snap.limit.total_seconds()),
    }
