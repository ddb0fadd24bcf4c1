"""One spelling for every kind of event, timer and message oohcore writes.

The audit log (events), the durable timers and the outbox all carry a *kind* or *purpose*
string. They are defined here, once, as string enums: the engine writes them, the runner and
the KPIs read them, and nothing else spells them out. A stored row keeps the plain string
(``EventKind.CALL_OFFERED == "call.offered"``), so the store and the documents that quote it
stay readable.

This module is a leaf: it imports nothing of oohcore, so any layer may use it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventKind", "MessagePurpose", "TimerKind", "action_event"]


class EventKind(StrEnum):
    """What an audit event records (the ``kind`` column of ``events``)."""

    # the call (5.1-5.2, 7.1)
    CALL_OFFERED = "call.offered"
    IVR_CHOSEN = "ivr.chosen"
    IVR_NO_CHOICE = "ivr.no_choice"  # 2.1.2h / 5.1.2: the caller made no choice in time
    CALL_ANSWERED = "call.answered"
    CALL_CAPTURED = "call.captured"
    CALL_DECIDED = "call.decided"
    CALL_CLOSED = "call.closed"
    CALL_ABANDONED = "call.abandoned"
    # the action carried out (5.2.3.x): "action.<kind>", see action_event()
    ACTION_SIGNPOST = "action.signpost"
    ACTION_TRANSFER = "action.transfer"
    ACTION_REFER = "action.refer"
    ACTION_RESOLVE = "action.resolve"
    ACTION_OUT_OF_SCOPE = "action.out_of_scope"
    ACTION_LONE_WORKER = "action.lone_worker"
    TRANSFER_FAILED = "transfer.failed"  # 5.2.3.2: the host reports the transfer failed
    # referrals and their escalation (5.2.3.3, 5.3.2, 6.4b, 6.4e); a referral starts with its
    # "action.refer" event, which says who was alerted, as "referral.escalated" does later
    REFERRAL_NO_OFFICER = "referral.no_officer"  # nobody to alert, not even the last resort
    # issue 7 defect 1: nobody on the rota for any stage; the last resort was alerted instead
    REFERRAL_UNTAKEN = "referral.untaken"
    REFERRAL_LINK_USED = "referral.link_used"  # a signed link was opened (its nonce: once)
    REFERRAL_ATTENDED = "referral.attended"  # the contractor attended (audit item 7)
    REFERRAL_COMPLETED = "referral.completed"  # the contractor completed the job
    REFERRAL_DECLINED = "referral.declined"  # the officer can't attend: the next stage at once
    REFERRAL_NO_ADDRESS = "referral.no_address"
    REFERRAL_PHONE_DUE = "referral.phone_due"  # the handler must phone the officer now
    REFERRAL_PHONED = "referral.phoned"  # the handler recorded the phone call's outcome
    REFERRAL_ESCALATED = "referral.escalated"
    REFERRAL_ACKNOWLEDGED = "referral.acknowledged"
    REFERRAL_DEADLINE_MET = "referral.deadline_met"
    REFERRAL_DEADLINE_MISSED = "referral.deadline_missed"
    # lone-worker watches (5.2.3.6)
    LONE_WORKER_CHECKED_IN = "lone_worker.checked_in"
    LONE_WORKER_CHECKED_OUT = "lone_worker.checked_out"
    LONE_WORKER_ALERT = "lone_worker.alert"  # red: the escalation starts
    LONE_WORKER_REMINDER = "lone_worker.reminder"  # the visit ends soon: reply OK or EXTEND
    LONE_WORKER_AMBER = "lone_worker.amber"  # overdue: the worker (and buddy) alerted
    LONE_WORKER_EXTENDED = "lone_worker.extended"
    # an inbound message from a channel (an SMS reply, issue 8 items 6 and 8), whatever it said
    INBOUND_RECEIVED = "inbound.received"
    # messages (8.14)
    MESSAGE_SENT = "message.sent"
    MESSAGE_FAILED = "message.failed"
    # the machinery
    TIMER_STALE = "timer.stale"  # a timer of an earlier run fired: recorded, no effect
    DIRECTORY_CHANGED = "directory.changed"  # 2.3.3: a contact number changed (who, when)
    ROTA_CHANGED = "rota.changed"  # 2.1.3, 2.3.3: a rota change (who, requested, applied)
    PERSONAL_DATA_PURGED = "personal_data.purged"  # 7.14.7


def action_event(kind: str) -> EventKind:
    """The event that records an action of ``kind`` being carried out."""
    return EventKind(f"action.{kind}")


class TimerKind(StrEnum):
    """What a durable timer is for (the ``kind`` column of ``timers``)."""

    IVR_NO_CHOICE = "ivr.no_choice"  # the IVR menu's wait for a key
    REFERRAL_DEADLINE = "referral.deadline"  # 6.4b: pass-on time limit
    ESCALATION_WAIT = "referral.escalation_wait"  # 5.3.2: the wait for an acknowledgement
    LONE_WORKER_EXPIRY = "lone_worker.expiry"  # 5.2.3.6: the visit's end plus grace
    LONE_WORKER_REMINDER = "lone_worker.reminder"  # before the visit's end
    LONE_WORKER_RED = "lone_worker.red"  # the amber alert's wait is over


class MessagePurpose(StrEnum):
    """Why a message is sent (``purpose`` of an outbound message, read by the KPIs)."""

    REFERRAL_ALERT = "referral.alert"  # to an on-call officer (5.2.3.3)
    LONE_WORKER_ALERT = "lone_worker.alert"  # a lone worker's escalation (5.2.3.6)
    CALLER_SMS = "caller.sms"  # follow-up text to the caller (5.2.6)
    DAYTIME_FORWARD = "daytime.forward"  # out of scope, forwarded to the daytime service
    FEED = "feed"  # service-request feed (7.8)
    CRM = "crm"  # a CRM case (7.9)
    REPORT = "report"  # a scheduled report (11.5)
    RECEIPT = "receipt"  # an e-mail auto-receipt (11.7.3i)
    REPLY = "reply"  # an answer to an inbound message
    OTHER = "other"
