"""Referrals and lone-worker watches: records of their own, each with a small lifecycle.

A **referral** (5.2.3.3) starts when the handler carries out a refer action: the on-call officer
is alerted, and the escalation goes stage by stage until someone acknowledges (5.3.2). A
**lone-worker watch** (5.2.3.6) starts at check-in and alerts its escalation only if the worker
has not checked out by the visit's end plus its grace.

When one starts, its escalation is **snapshotted** (DESIGN principle 9, as Grafana OnCall and
PagerDuty do): the rendered chain (stages, roles, channels, waits, texts) and the option version
it came from are stored in ``snapshot``, with a ``run_id``. Its timers carry the run id; a timer
whose run id no longer matches the record is recorded and ignored. A ruleset change never alters
or strands a referral in flight: it carries its own procedure.

Lifecycle (one ``transitions.Machine`` definition, rows not objects, as in :mod:`oohcore.calls`)::

    watching ──alert──> alerting ──acknowledge──> acknowledged
       │                  │  ╰─alert (next stage, re-alert)─╯
       ╰──check_out──> checked_out <──check_out──╯   (and acknowledged ──check_out──>, for a
                                                      lone worker's watch: 5.2.3.6)

A referral starts in ``alerting``; a lone-worker watch in ``watching``.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from oohcore.calls import build_lifecycle
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata

__all__ = [
    "OPEN_STATES",
    "REFERRAL_STATES",
    "REFERRAL_TRANSITIONS",
    "next_referral_state",
    "referrals",
]

REFERRAL_STATES = ("watching", "alerting", "acknowledged", "checked_out")
OPEN_STATES = frozenset({"watching", "alerting"})

_TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "alert", "source": ["watching", "alerting"], "dest": "alerting"},
    {"trigger": "acknowledge", "source": "alerting", "dest": "acknowledged"},
    # 5.2.3.6: a lone worker's watch ends only at check-out, a manager's acknowledgement of
    # its alert included (the worker is accounted for when they, or a manager, check out)
    {
        "trigger": "check_out",
        "source": ["watching", "alerting", "acknowledged"],
        "dest": "checked_out",
    },
]


REFERRAL_LIFECYCLE, REFERRAL_TRANSITIONS = build_lifecycle(
    REFERRAL_STATES, _TRANSITIONS, "alerting"
)


def next_referral_state(trigger: str, state: str) -> str | None:
    """Where ``trigger`` leads a referral from ``state``, or None if not allowed."""
    return REFERRAL_TRANSITIONS.get((trigger, state))


referrals = Table(
    "referrals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("organisation_id", String(64), nullable=False),
    Column("call_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # "refer" or "lone_worker"
    Column("action_id", String(64), nullable=False),
    Column("option_version", String(80), nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("stage", Integer, nullable=False),  # the chain stage alerted last (-1: none yet)
    Column("alerts", Integer, nullable=False),  # how many times a stage was alerted
    Column("snapshot", Text, nullable=False),  # the frozen escalation (JSON)
    Column("started_at", UTCDateTime(), nullable=False),
    # 6.4b: the pass-on time limit runs from the conclusion of the call
    Column("call_ended_at", UTCDateTime()),
    Column("deadline_at", UTCDateTime()),
    Column("limit_seconds", Integer),
    Column("dispatched_at", UTCDateTime()),  # first alert delivered (or phone call answered)
    Column("acknowledged_at", UTCDateTime()),
    Column("acknowledged_by", String(320)),  # migration 0010
    Column("finished_at", UTCDateTime()),  # acknowledged or checked out
    Column("late_reason", Text),  # 11.7.3g-h: why the pass-on was late, when it was
    Column("version", Integer, nullable=False),
    # one index: a referral is found by its call (reports reach referrals through their calls,
    # so a referral's insert writes as few pages as it can)
    Index(None, "call_id"),
)
