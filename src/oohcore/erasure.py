"""Erasing the copies of a call's personal data kept outside the audit log's records.

Specification 7.14.3 (hold no more personal data than needed) and 7.14.7 (each organisation's
retention policy): :func:`oohcore.retention.purge_personal_data` deletes the personal records
beside the audit chain, and with them, in the same transaction, every copy the engine keeps for
working the call (:func:`erase_call_copies`):

=========================  =====================================================================
``calls``                  the caller's number and the answers (name, address, phone, details …)
``call_search``            the call's earlier-call search keys (5.2.7): ``desk.search`` no longer
                           finds it
``outbox``                 every message's subject, body and case fields, the UPRN in its
                           channel options, and the recipient of messages to the caller or to a
                           number or address the caller gave (follow-up texts, auto-receipts, a
                           lone worker's reminders, a buddy's amber alert) with their delivery
                           errors
``referrals``              the frozen escalation's texts and case fields (a lone-worker watch's
                           too)
``cdrs``                   the caller's number on the call's telephone records
=========================  =====================================================================

What stays is what proves the service: states, times, references, actions, who was alerted and
when, the officers' numbers (staff contact data of the organisation, 5.3.2) and the chain with
its digests. Timers carry only ids (referral, run, stage), and an inbound reply is an event
whose sender is a personal record beside the chain, so neither holds a copy; nor do the
messages' keys, which the chain holds (a lone worker's texts are keyed by whom, not by number). ``oohcore audit verify`` keeps passing: the
call row's personal columns and the messages are sealed by digests in the personal records, which
the purge removes, while the columns the chain seals are left as they are.

A call with work still to do is refused (:func:`active_work` says why, and
:func:`oohcore.retention.purge_personal_data` raises ``RetentionError``): an open call, a
referral or lone-worker watch not yet acknowledged or checked out, a message not yet sent. Its
escalation still needs the caller's details (7.14.3 allows what is needed); acknowledge, check
out or close it first.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, exists, select, update

from oohcore.calls import calls
from oohcore.durable.outbox import outbox
from oohcore.durable.receipts import delivery_attempts
from oohcore.referrals import OPEN_STATES, referrals
from oohcore.search.index import remove_calls
from oohcore.store.columns import to_json
from oohcore.telephony import cdrs
from oohcore.vocabulary import MessagePurpose

__all__ = ["active_work", "erase_call_copies", "has_active_work"]

# messages whose recipient is the caller: their address is the caller's personal data
CALLER_PURPOSES = (MessagePurpose.CALLER_SMS.value, MessagePurpose.RECEIPT.value)
# a message's channel options that describe the property (7.11) rather than the delivery
PERSONAL_META = ("uprn", "outside_area", "postcode", "address")
# a lone-worker watch's session: the worker's and the buddy's numbers, the worker's staff id
PERSONAL_SNAPSHOT = ("worker_phone", "buddy_phone", "staff")


def _unsent(organisation_id: str, call_id: str) -> Any:
    return and_(
        outbox.c.organisation_id == organisation_id,
        outbox.c.call_id == call_id,
        outbox.c.sent_at.is_(None),
        outbox.c.failed_at.is_(None),
    )


def active_work(conn: Connection, organisation_id: str, call_id: str) -> str | None:
    """Why the call's personal data is still needed (None: it is not): the call is open, a
    referral or watch is still running, or a message is still to be sent."""
    row = conn.execute(
        select(calls.c.state, calls.c.closed_at, calls.c.abandoned_at).where(
            calls.c.id == call_id, calls.c.organisation_id == organisation_id
        )
    ).first()
    if row is not None and row.closed_at is None and row.abandoned_at is None:
        return f"call {call_id} is still open ({row.state}): close or abandon it first"
    running = conn.execute(
        select(referrals.c.id, referrals.c.kind, referrals.c.state).where(
            referrals.c.call_id == call_id,
            referrals.c.organisation_id == organisation_id,
            referrals.c.state.in_(sorted(OPEN_STATES)),
        )
    ).first()
    if running is not None:
        what = "lone-worker watch" if running.kind == "lone_worker" else "referral"
        return (
            f"call {call_id}'s {what} {running.id} is still {running.state}: it needs the "
            "caller's details until it is acknowledged or checked out"
        )
    if conn.execute(select(exists().where(_unsent(organisation_id, call_id)))).scalar():
        return f"call {call_id} has a message still to be sent: run the runner first"
    return None


def has_active_work(organisation_id: str) -> Any:
    """A condition on ``calls`` rows: the call has a referral running or a message unsent (for
    a retention run's selection, which skips them)."""
    running = exists().where(
        referrals.c.call_id == calls.c.id,
        referrals.c.organisation_id == organisation_id,
        referrals.c.state.in_(sorted(OPEN_STATES)),
    )
    unsent = exists().where(
        outbox.c.call_id == calls.c.id,
        outbox.c.organisation_id == organisation_id,
        outbox.c.sent_at.is_(None),
        outbox.c.failed_at.is_(None),
    )
    return running | unsent


def erase_call_copies(conn: Connection, organisation_id: str, call_id: str) -> None:
    """Clear every copy of the call's personal data outside the audit records (see the module
    documentation). Idempotent; run it in the purge's transaction."""
    where = and_(calls.c.id == call_id, calls.c.organisation_id == organisation_id)
    row = conn.execute(select(calls.c.caller_number, calls.c.answers).where(where)).first()
    given = _given(row.caller_number, _loads(row.answers)) if row is not None else set()
    _erase_messages(conn, organisation_id, call_id, given)
    conn.execute(update(calls).where(where).values(caller_number=None, answers="{}"))
    remove_calls(conn, organisation_id=organisation_id, call_ids=[call_id])
    _erase_snapshots(conn, organisation_id, call_id)
    conn.execute(
        update(cdrs)
        .where(cdrs.c.call_id == call_id, cdrs.c.organisation_id == organisation_id)
        .values(caller_number=None)
    )


def _key(value: str) -> str:
    """A number or address in a form two spellings share: ``+44 7700 900123`` and
    ``07700900123`` both give ``7700900123``; an e-mail address in lower case."""
    digits = "".join(c for c in value if c.isdigit())
    if "@" in value or len(digits) < 7:
        return value.strip().lower()
    for prefix in ("0044", "44", "0"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 9:
            return digits[len(prefix) :]
    return digits


def _given(caller_number: str | None, answers: dict[str, Any]) -> set[str]:
    """The caller's number and every text they gave, as recipients would be spelled."""
    texts = [caller_number, *answers.values()]
    return {_key(t) for t in texts if isinstance(t, str) and t.strip()}


def _erase_messages(conn: Connection, organisation_id: str, call_id: str, given: set[str]) -> None:
    rows = conn.execute(
        select(outbox.c.id, outbox.c.purpose, outbox.c.recipient, outbox.c.meta).where(
            outbox.c.organisation_id == organisation_id, outbox.c.call_id == call_id
        )
    ).all()
    for message_id, purpose, recipient, meta_json in rows:
        meta = _loads(meta_json)
        values: dict[str, Any] = {
            "subject": "",
            "body": "",
            "fields": "{}",
            "meta": to_json({k: v for k, v in meta.items() if k not in PERSONAL_META}),
        }
        if purpose in CALLER_PURPOSES or _key(recipient) in given:
            values.update(recipient="", last_error=None)
            conn.execute(
                update(delivery_attempts)
                .where(delivery_attempts.c.message_id == message_id)
                .values(error=None)
            )
        conn.execute(update(outbox).where(outbox.c.id == message_id).values(**values))


def _erase_snapshots(conn: Connection, organisation_id: str, call_id: str) -> None:
    rows = conn.execute(
        select(referrals.c.id, referrals.c.snapshot).where(
            referrals.c.organisation_id == organisation_id, referrals.c.call_id == call_id
        )
    ).all()
    for referral_id, snapshot_json in rows:
        snap = _loads(snapshot_json)
        snap.update(sms="", subject="", body="", fields={})
        for key in PERSONAL_SNAPSHOT:  # a lone-worker watch's session (5.2.3.6)
            if snap.get(key) is not None:
                snap[key] = None
        for stage in snap.get("stages") or ():
            if isinstance(stage, dict):
                stage["say"] = None
        conn.execute(
            update(referrals).where(referrals.c.id == referral_id).values(snapshot=to_json(snap))
        )


def _loads(text: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
