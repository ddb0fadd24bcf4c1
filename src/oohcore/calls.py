"""The call lifecycle: one state machine definition shared by every call, and the calls table.

The lifecycle is defined once as a :class:`transitions.Machine` (``LIFECYCLE``): states, the
triggers a host can fire and where each leads. Calls are plain rows; the engine never builds a
machine or a model object per call. Each trigger is resolved through ``TRANSITIONS``, a table
compiled once from the machine's own events — measured at ~19 µs, ``Event.trigger`` on a bound
model would alone use half the time budget of a complete persisted lifecycle (bench/lifecycle.py),
while the table lookup is a dict access and still cannot disagree with the machine.

States (spec 5.1–5.2, 7.1)::

    ivr ──choose──> offered ──answer──> answered ──capture──> capturing ──decide──> decided
     │                 │                    │ ╰──────decide──────────────────────────╯  │
     ╰──abandon──> abandoned <──abandon─────┴─────────(before the action is done)───────┤
                                                                                         │
    decided ──signpost/transfer/resolve/out_of_scope/refer/lone_worker──> <action state>
    transferred ──fallback_<kind> (the transfer failed, 5.2.3.2)──> <the fallback's state>
    <action state> ──close──> closed          (referred and lone_worker stay open until then)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint, text

from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata

ACTION_STATES: Mapping[str, str] = MappingProxyType(
    {
        "signpost": "signposted",  # 5.2.3.1
        "transfer": "transferred",  # 5.2.3.2
        "refer": "referred",  # 5.2.3.3
        "resolve": "resolved",  # 5.2.3.4
        "out_of_scope": "out_of_scope",  # 5.2.3.5
        "lone_worker": "lone_worker",  # 5.2.3.6
    }
)
BEFORE_ACTION = ("ivr", "offered", "answered", "capturing", "decided")
STATES = (*BEFORE_ACTION, *ACTION_STATES.values(), "closed", "abandoned")
WAITING_CONDITION = "state IN ('offered', 'ivr')"  # calls waiting to be answered (7.1.5)

_TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "choose", "source": "ivr", "dest": "offered"},
    {"trigger": "answer", "source": "offered", "dest": "answered"},
    {"trigger": "capture", "source": ["answered", "capturing", "decided"], "dest": "capturing"},
    {"trigger": "decide", "source": ["answered", "capturing", "decided"], "dest": "decided"},
    *[
        dict[str, object](trigger=f"do_{kind}", source="decided", dest=state)
        for kind, state in ACTION_STATES.items()
    ],
    # 5.2.3.2: a failed transfer falls back to another action (a referral to the duty team …)
    *[
        dict[str, object](trigger=f"fallback_{kind}", source="transferred", dest=state)
        for kind, state in ACTION_STATES.items()
        if kind != "transfer"
    ],
    {"trigger": "close", "source": list(ACTION_STATES.values()), "dest": "closed"},
    {"trigger": "abandon", "source": list(BEFORE_ACTION), "dest": "abandoned"},
]


def build_lifecycle(
    states: Sequence[str], transitions: list[dict[str, object]], initial: str
) -> tuple[object, Mapping[tuple[str, str], str]]:
    """One ``transitions.Machine`` definition and the (trigger, source) → dest table compiled
    from its own events (the engine looks triggers up there: it cannot disagree with it)."""
    from transitions import Machine

    machine = Machine(
        model=None,
        states=list(states),
        transitions=transitions,
        initial=initial,
        auto_transitions=False,
    )
    table: dict[tuple[str, str], str] = {}
    for trigger, event in machine.events.items():
        for source, found in event.transitions.items():
            table[(trigger, source)] = str(found[0].dest)
    return machine, MappingProxyType(table)


LIFECYCLE, TRANSITIONS = build_lifecycle(STATES, _TRANSITIONS, "offered")


def next_state(trigger: str, state: str) -> str | None:
    """Where ``trigger`` leads from ``state``, or None if the lifecycle does not allow it."""
    return TRANSITIONS.get((trigger, state))


def allowed_triggers(state: str) -> list[str]:
    return sorted(t for (t, s) in TRANSITIONS if s == state)


calls = Table(
    "calls",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("organisation_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("reference", String(32), nullable=False),
    Column("access_number", String(32), nullable=False),
    Column("caller_number", String(320)),  # a SIP URI fits (migration 0010)
    Column("ivr_menu", String(64)),
    Column("service_option", String(64)),
    Column("option_version", String(80)),
    Column("organisation_version", String(80), nullable=False),
    Column("state", String(24), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("in_hours", Integer, nullable=False),
    Column("variant", String(64)),
    Column("handler", String(320)),
    Column("answers", Text, nullable=False),
    Column("action_id", String(64)),
    Column("action_kind", String(24)),
    Column("rule", Integer),
    Column("duplicate_of", String(32)),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("answered_at", UTCDateTime()),
    Column("decided_at", UTCDateTime()),
    Column("actioned_at", UTCDateTime()),
    Column("closed_at", UTCDateTime()),
    Column("abandoned_at", UTCDateTime()),
    Column("version", Integer, nullable=False),
    # 5.2.2: a reference is unique on the whole store, across every organisation
    UniqueConstraint("reference"),
    # Only calls still waiting to be answered are in this index (a partial index, on SQLite and
    # PostgreSQL alike): a state change of an answered call writes no index page.
    Index(
        "ix_calls_waiting",
        "organisation_id",
        "received_at",
        sqlite_where=text(WAITING_CONDITION),
        postgresql_where=text(WAITING_CONDITION),
    ),
)

call_counters = Table(
    "call_counters",
    metadata,
    Column("organisation_id", String(64), primary_key=True),
    Column("last_seq", Integer, nullable=False),
)

# Every option version a call started under (oohcore.engine.versions): its definition, so that a
# call finishes on the version it began with across a ruleset change and a restart.
option_versions = Table(
    "option_versions",
    metadata,
    Column("organisation_id", String(64), primary_key=True),
    Column("option_id", String(64), primary_key=True),
    Column("version", String(80), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("first_used_at", UTCDateTime(), nullable=False),
)
