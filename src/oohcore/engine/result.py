"""A step's result, and the one function that commits it (DESIGN principle 8: decide, then commit).

A step — a host's call or a timer firing — is decided by a pure function (:mod:`.steps`) that
returns a :class:`StepResult`: the call's new row and which of its columns changed, the events to
append, the messages to send, the timers to set and to cancel, the referral records to write, the
search-index entry. :func:`commit` writes all of it in the caller's transaction, in a fixed order,
and is the only place the engine writes to the store: every side effect has one way out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from oohcore.audit import chain as audit_chain
from oohcore.channels import OutboundMessage
from oohcore.durable import outbox, timers
from oohcore.engine import records
from oohcore.engine.errors import ConcurrentChange
from oohcore.engine.rows import CALLS, REFERRALS, CallRow, ReferralRow
from oohcore.search import index as search_index

__all__ = ["EventOut", "ReferralWrite", "SearchEntry", "StepResult", "TimerOut", "commit"]


@dataclass(frozen=True, slots=True)
class EventOut:
    """An audit event to append. ``personal`` is the part that is personal data (7.14.3): it is
    kept beside the chain, which covers only its digest."""

    kind: str
    payload: Mapping[str, Any]
    personal: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TimerOut:
    kind: str
    due_at: datetime
    key: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReferralWrite:
    """A referral record to insert (``before`` None) or to move on from ``before``."""

    after: ReferralRow
    before: ReferralRow | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchEntry:
    """The call's entry in the earlier-call search index (5.2.7)."""

    service_option: str
    caller_name: str | None
    address: str | None
    uprn: Any
    postcode: str | None


@dataclass(slots=True)
class StepResult:
    """Everything one step does. Build it with the helper methods, then :func:`commit` it."""

    call: CallRow | None  # the call after the step (None: a step that reads no call row)
    at: datetime
    base: CallRow | None = None  # the row the step started from (None: a new call)
    changes: dict[str, Any] = field(default_factory=dict)  # columns of ``call`` that changed
    events: list[EventOut] = field(default_factory=list)
    messages: list[OutboundMessage] = field(default_factory=list)
    timers: list[TimerOut] = field(default_factory=list)
    cancel: list[str | None] = field(default_factory=list)  # timer kinds (None: all) to cancel
    referrals: list[ReferralWrite] = field(default_factory=list)
    index: SearchEntry | None = None
    organisation_id: str = ""  # the call's scope (taken from ``call`` when it is given)
    call_id: str = ""

    def __post_init__(self) -> None:
        if self.call is not None:
            self.organisation_id = self.call.organisation_id
            self.call_id = self.call.id

    def event(
        self, kind: str, payload: Mapping[str, Any], personal: Mapping[str, Any] | None = None
    ) -> None:
        self.events.append(EventOut(kind, payload, personal))

    def message(self, message: OutboundMessage) -> None:
        self.messages.append(message)

    def timer(self, kind: str, due_at: datetime, key: str, payload: Mapping[str, Any]) -> None:
        self.timers.append(TimerOut(kind, due_at, key, payload))

    def cancel_timers(self, kind: str | None = None) -> None:
        self.cancel.append(kind)

    def referral(self, write: ReferralWrite) -> None:
        self.referrals.append(write)


def _sealed(result: StepResult) -> list[EventOut]:
    """The step's events, the last one carrying the seal of the call row and the messages the
    step writes (:mod:`.records`: so that ``audit verify`` also checks those rows)."""
    written = result.call if result.base is None or result.changes else None
    personal_changed = result.base is None or any(
        column in result.changes for column in records.PERSONAL_COLUMNS
    )
    sealed = records.seal(written, result.messages, personal_changed=personal_changed)
    if sealed is None or not result.events:
        return result.events
    last = result.events[-1]
    public, personal = sealed
    private: Mapping[str, Any] | None = last.personal
    if personal:
        private = {**(last.personal or {}), records.PERSONAL_SEALED_KEY: personal}
    return [
        *result.events[:-1],
        EventOut(last.kind, {**last.payload, records.SEALED_KEY: public}, private),
    ]


def commit(conn: Connection, result: StepResult) -> CallRow | None:
    """Write ``result`` in ``conn``'s transaction; the call's row as committed.

    Optimistic: if the call or a referral was changed by someone else since the step read it,
    :class:`ConcurrentChange` is raised and the caller's transaction rolls back whole.
    """
    call, call_id, org = result.call, result.call_id, result.organisation_id
    # The order is the lock order every step takes on PostgreSQL, so that steps of desks and
    # runners touching the same call wait for each other instead of deadlocking: the timers
    # first (a runner firing a timer holds that row already), then the call row, its
    # referrals, the new rows, and the organisation's audit chain head last, so that the
    # busiest lock is held only for the end of the transaction.
    for kind in result.cancel:
        timers.cancel_timers(conn, call_id=call_id, kind=kind, at=result.at)
    if call is not None and result.base is None:
        CALLS.insert(conn, call)
    elif (
        result.changes
        and result.base is not None
        and not CALLS.update(conn, result.base, result.changes)
    ):
        raise ConcurrentChange(
            f"call {call_id} was changed by someone else meanwhile; read it again and retry"
        )
    for write in result.referrals:
        if write.before is None:
            REFERRALS.insert(conn, write.after)
        elif not REFERRALS.update(conn, write.before, write.changes):
            raise ConcurrentChange(
                f"referral {write.after.id} was changed by someone else meanwhile; retry"
            )
    for message in result.messages:
        outbox.enqueue(conn, message, at=result.at)
    for t in result.timers:
        timers.set_timer(
            conn,
            organisation_id=org,
            call_id=call_id,
            kind=t.kind,
            due_at=t.due_at,
            key=t.key,
            payload=dict(t.payload),
        )
    if result.index is not None:
        e = result.index
        search_index.index_call(
            conn,
            organisation_id=org,
            call_id=call_id,
            service_option=e.service_option,
            received_at=result.base.received_at if result.base else result.at,
            caller_name=e.caller_name,
            address=e.address,
            uprn=e.uprn,
            postcode=e.postcode,
        )
    for ev in _sealed(result):
        audit_chain.append_event(
            conn,
            organisation_id=org,
            call_id=call_id,
            kind=ev.kind,
            payload=ev.payload,
            personal=ev.personal,
            at=result.at,
        )
    return call
