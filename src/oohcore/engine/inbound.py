"""Who an inbound text is answered, and how (5.3.2: acknowledgement by reply).

Anyone can text an organisation's number, and every answer is a text the organisation pays
for. So an inbound message is always recorded (``inbound.received``, with ``answered``), but
answered only this way:

* **A confirmation** of what the message did (acknowledged, declined, checked out, extended)
  goes to the officer or lone worker whose message did it: they are on the chain or hold the
  session, and must know it worked. It is always sent.
* **A number alerted for the referral** its message quotes (a ``referral.alert`` to that number
  for that call is in the outbox) gets the specific answer: the referral is with the on-call
  officer, or needs no reply now.
* **A number the organisation is working with now** (alerted for a referral still open, or the
  phone of a lone worker's open session) gets :data:`NEUTRAL_ANSWER` for anything else (an
  unknown or mistyped reference, another referral's, words the engine does not read): the same
  text whether or not the reference exists, so that an officer who mistyped learns the message
  did nothing, and the escalation goes on.
* **Anyone else** gets no answer at all: a stranger learns nothing (not even that a reference is
  real), and costs nothing. Their message is still recorded, and the escalation it might have
  touched goes on: failing safe.
* Answers other than confirmations are **rate-limited per number**: at most
  :data:`REPLY_LIMIT` to one number in any :data:`REPLY_WINDOW`, counted from the answers in the
  outbox (durable: a restart or a second runner does not reset it) at the engine's clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from oohcore.engine.result import EventOut, StepResult
from oohcore.phones import e164
from oohcore.vocabulary import EventKind, MessagePurpose

__all__ = [
    "CONFIRMED",
    "NEUTRAL_ANSWER",
    "REPLY_LIMIT",
    "REPLY_WINDOW",
    "is_working_with",
    "screen",
    "was_alerted",
]

REPLY_LIMIT = 3
REPLY_WINDOW = timedelta(hours=1)
CONFIRMED = frozenset({"ack", "decline", "ok", "extend"})  # outcomes that changed something

NEUTRAL_ANSWER = (
    "Sorry, we could not match your message to a referral you were alerted for; it is "
    "recorded. Reply ACK or NO with the reference in your alert, e.g. ACK K7M-3QX-F, or OK "
    "from the phone you checked in with."
)


def _same_number(recipient: str | None, sender: str) -> bool:
    """Whether an answer's recipient is ``sender``'s number however either is written (+44 or
    0, spaces): compared in E.164, or as text when either is no telephone number."""
    if recipient is None:
        return False
    number = e164(sender)
    return e164(recipient) == number if number is not None else recipient == sender


def answers_to(conn: Connection, organisation_id: str, sender: str, now: datetime) -> int:
    """How many answers went to ``sender``'s number in the window before ``now``.

    Counted from the answers' recipients, never from a key holding the number: the keys go on
    the audit chain, which a purge cannot change (7.14.3), while a purge clears a recipient.
    The answers sent in the window are read through the organisation's by-sending index and
    the unsent ones through the queue's, so an inbound text reads about an hour's messages."""
    from oohcore.durable.outbox import outbox

    t = outbox.c
    since = now - REPLY_WINDOW
    mine = (t.organisation_id == organisation_id, t.purpose == str(MessagePurpose.REPLY))
    sent = select(t.recipient).where(*mine, t.sent_at > since)
    queued = select(t.recipient).where(
        *mine, t.sent_at.is_(None), t.failed_at.is_(None), t.created_at > since
    )
    rows = [*conn.execute(sent), *conn.execute(queued)]
    return sum(1 for (recipient,) in rows if _same_number(recipient, sender))


def was_alerted(conn: Connection, organisation_id: str, call_id: str, sender: str) -> bool:
    """Whether a referral alert of call ``call_id`` went to ``sender``'s number."""
    from oohcore.durable.outbox import outbox

    t = outbox.c
    rows = conn.execute(
        select(t.recipient).where(
            t.organisation_id == organisation_id,
            t.call_id == call_id,
            t.purpose == str(MessagePurpose.REFERRAL_ALERT),
        )
    )
    number = e164(sender)
    return bool(number) and any(e164(r) == number for (r,) in rows)


def is_working_with(conn: Connection, organisation_id: str, sender: str) -> bool:
    """Whether ``sender``'s number was alerted for a referral of the organisation that is still
    open, or is the phone of a lone worker's open session."""
    import json

    from oohcore.durable.outbox import outbox
    from oohcore.referrals import OPEN_STATES, referrals

    number = e164(sender)
    if not number:
        return False
    r, o = referrals.c, outbox.c
    open_calls = select(r.call_id).where(
        r.organisation_id == organisation_id, r.state.in_(sorted(OPEN_STATES))
    )
    alerted = conn.execute(
        select(o.recipient).where(
            o.organisation_id == organisation_id,
            o.call_id.in_(open_calls.scalar_subquery()),
            o.purpose == str(MessagePurpose.REFERRAL_ALERT),
        )
    )
    if any(e164(recipient) == number for (recipient,) in alerted):
        return True
    watches = conn.execute(
        select(r.snapshot).where(
            r.organisation_id == organisation_id, r.kind == "lone_worker", r.state == "watching"
        )
    )
    for (snapshot,) in watches:
        phone = json.loads(snapshot).get("worker_phone")
        if isinstance(phone, str) and e164(phone) == number:
            return True
    return False


def screen(conn: Connection, result: StepResult, *, sender: str, now: datetime) -> None:
    """Apply the answer rules above to ``result``, a step that records one inbound message
    (its last ``inbound.received`` event) and may answer it."""
    index = max(
        (i for i, e in enumerate(result.events) if e.kind == EventKind.INBOUND_RECEIVED),
        default=None,
    )
    if index is None:
        return
    event = result.events[index]
    outcome = str(event.payload.get("outcome"))
    call_id = result.call_id or None
    kept = [m for m in result.messages if m.purpose != MessagePurpose.REPLY]
    answers = [m for m in result.messages if m.purpose == MessagePurpose.REPLY]
    answered = bool(answers)
    org = result.organisation_id
    if answers and outcome not in CONFIRMED:
        if call_id is not None and was_alerted(conn, org, call_id, sender):
            pass  # the specific answer
        elif is_working_with(conn, org, sender):
            answers = [replace(m, body=NEUTRAL_ANSWER) for m in answers]
        else:
            answers = []
        if answers and answers_to(conn, org, sender, now) >= REPLY_LIMIT:
            answers = []
        answered = bool(answers)
    kept.extend(answers)
    result.messages[:] = kept
    result.events[index] = EventOut(
        event.kind, {**event.payload, "answered": answered}, event.personal
    )
