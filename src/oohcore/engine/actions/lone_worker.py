"""Lone worker: watch over a site visit (5.2.3.6). Carrying it out is the check-in: a watch
record with its escalation snapshotted, and the expiry timer (the visit's length plus grace).
If the worker has not checked out by then, the escalation starts (see
:func:`oohcore.engine.steps.timer_fired`); the same staff member checks out, or a manager, who
is recorded as such (:func:`oohcore.engine.steps.check_out`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from oohcore.engine.actions.base import Description
from oohcore.engine.context import CallContext
from oohcore.engine.escalation import add_referral, open_referral, snapshot
from oohcore.engine.result import StepResult
from oohcore.engine.rows import ReferralRow
from oohcore.rulesets.models import LoneWorker
from oohcore.vocabulary import EventKind, TimerKind

kind = "lone_worker"


def describe(ctx: CallContext, action_id: str, action: LoneWorker) -> Description:
    return Description(time_limit=action.visit_length)


def staff_of(values: Mapping[str, Any]) -> str | None:
    """Who the lone worker is: their staff id where the script asks it, else their name."""
    staff = values.get("staff_id") or values.get("caller_name")
    return str(staff).strip().casefold() if staff else None


def set_watch_timers(result: StepResult, watch: ReferralRow, now: datetime, ends: datetime) -> None:
    """The session's timers for a visit ending at ``ends``: the reminder before it (when the
    option asks one and it is still ahead) and the expiry at the end plus grace."""
    snap = watch.snapshot
    tag = ends.isoformat()
    reminder = snap.get("reminder_s")
    if reminder is not None and ends - timedelta(seconds=reminder) > now:
        result.timer(
            TimerKind.LONE_WORKER_REMINDER,
            ends - timedelta(seconds=reminder),
            f"{watch.id}:{watch.run_id}:reminder:{tag}",
            {"referral": watch.id, "run": watch.run_id},
        )
    result.timer(
        TimerKind.LONE_WORKER_EXPIRY,
        ends + timedelta(seconds=snap.get("grace_s", 0)),
        f"{watch.id}:{watch.run_id}:expiry:{tag}",
        {"referral": watch.id, "run": watch.run_id},
    )


def carry_out(
    ctx: CallContext,
    action_id: str,
    action: LoneWorker,
    values: Mapping[str, Any],
    result: StepResult,
) -> dict[str, Any]:
    snap = snapshot(ctx, action_id, action, values)
    due = ctx.now + action.visit_length + action.grace
    watch = open_referral(ctx, "lone_worker", action_id, snap, state="watching", deadline=due)
    staff = staff_of(values)
    session = {
        "staff": staff,
        # the session (issue 8 item 8): the worker's contact, an optional buddy, its timings
        "worker_phone": values.get("contact_phone") or values.get("phone") or ctx.row.caller_number,
        "buddy_phone": values.get("buddy_phone"),
        "grace_s": int(action.grace.total_seconds()),
        "reminder_s": None if action.reminder is None else int(action.reminder.total_seconds()),
        "amber_s": None if action.amber is None else int(action.amber.total_seconds()),
    }
    watch = replace(watch, snapshot={**watch.snapshot, **session})
    add_referral(result, watch)
    set_watch_timers(result, watch, ctx.now, ctx.now + action.visit_length)
    result.event(
        EventKind.LONE_WORKER_CHECKED_IN,
        {"referral": watch.id, "run": watch.run_id, "expires_at": due.isoformat()},
        personal={"staff": staff} if staff else None,
    )
    return {"referral": watch.id, "expires_at": due.isoformat()}
