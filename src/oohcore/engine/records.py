"""Sealing a step's call row and messages into the audit chain, and checking them against it.

The hash chain (:mod:`oohcore.audit`) proves the events; the ``calls`` and ``outbox`` rows a step
writes beside them were outside it, so an edited answer or message body went unnoticed (issue 7,
defect 12). Now the last event of every step that writes a call row or a message also carries:

* in its chained payload, under ``"sealed"``: the SHA-256 of the call row's columns that are
  not personal data (state, times, action, version …) and the idempotency keys of the messages
  the step queued;
* in its personal data (beside the chain, 7.14.3), under ``"_sealed"``: the SHA-256 of the call
  row's personal columns (caller number, answers) and of each message's channel, recipient,
  subject and body.

:func:`verify_records` checks that each call's current row and each message agree with the
newest seal. A purge (:mod:`oohcore.retention`) empties the personal record, so after a purge
only the chained part is checked: verify keeps passing, and personal data stays erasable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, select

from oohcore import audit
from oohcore.audit import read as audit_read
from oohcore.audit.chain import canonical_json
from oohcore.audit.model import AuditProblem, AuditReport, ChainPin
from oohcore.audit.read import _reading, events_for_organisation
from oohcore.calls import calls
from oohcore.channels import OutboundMessage
from oohcore.durable.outbox import outbox
from oohcore.engine.rows import CALLS, CallRow, to_store
from oohcore.store import Store

__all__ = ["SEALED_KEY", "seal", "verify", "verify_records"]

SEALED_KEY = "sealed"  # in the chained payload
PERSONAL_SEALED_KEY = "_sealed"  # in the personal data beside the chain
PERSONAL_COLUMNS = ("caller_number", "answers")


def _sha(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


_PUBLIC_NAMES = tuple(n for n in CALLS.names if n not in PERSONAL_COLUMNS)
_public_values = attrgetter(*_PUBLIC_NAMES)


def _framed(values: Iterable[Any]) -> bytes:
    """Values as unambiguous text (each prefixed by its length): cheaper than JSON, and a
    value cannot be made to look like two."""
    parts = []
    for v in values:
        text = v.isoformat() if isinstance(v, datetime) else str(v)
        parts.append(f"{len(text)}:{text}")
    return "|".join(parts).encode("utf-8", "surrogatepass")


def _public_digest(row: CallRow) -> str:
    return hashlib.sha256(_framed(_public_values(row))).hexdigest()


def _personal_digest(row: CallRow) -> str:
    answers = to_store({"answers": row.answers})["answers"]
    return hashlib.sha256(_framed((row.caller_number, answers))).hexdigest()


def _message_digest(channel: str, recipient: str, subject: str, body: str) -> str:
    return _sha([channel, recipient, subject, body])


def seal(
    call: CallRow | None, messages: Iterable[OutboundMessage], *, personal_changed: bool = True
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The chained and the personal parts of the seal of a step that wrote ``call`` (or None)
    and queued ``messages``; None when it wrote neither.

    ``personal_changed`` False says the step left the call's personal columns as they were:
    the seal then carries only the public digest (marked ``"personal": False``), the newest
    personal digest on the chain still covers those columns, and a step that records no
    personal data writes no personal record (one row and two index pages fewer, issue 12)."""
    queued = list(messages)
    if call is None and not queued:
        return None
    public: dict[str, Any] = {}
    personal: dict[str, Any] = {}
    if call is not None:
        public["call"] = _public_digest(call)
        if personal_changed:
            personal["call"] = _personal_digest(call)
        else:
            public["personal"] = False
    if queued:
        public["messages"] = [m.idempotency_key for m in queued]
        personal["messages"] = {
            m.idempotency_key: _message_digest(m.channel, m.recipient, m.subject, m.body)
            for m in queued
        }
    return public, personal


def verify_records(conn: Connection, organisation_id: str) -> list[AuditProblem]:
    """Each call row and message of ``organisation_id`` that a seal covers, checked against the
    newest seal of it on the chain (run it after :func:`oohcore.audit.verify`)."""
    call_seal: dict[str, tuple[int, int, dict[str, Any], dict[str, Any] | None]] = {}
    message_seal: dict[str, tuple[int, int, str | None]] = {}
    personal_of: dict[str, dict[str, Any] | None] = {}
    problems: list[AuditProblem] = []
    restore = "restore it from a backup; the store was changed outside oohcore"
    for ev in events_for_organisation(conn, organisation_id):
        try:
            payload = ev.payload
        except ValueError:  # json.JSONDecodeError: oohcore only ever writes JSON here
            payload = None
        if not isinstance(payload, dict):
            problems.append(
                AuditProblem(
                    organisation_id,
                    ev.id,
                    ev.seq,
                    f"the payload of this {ev.kind} event is not valid JSON (not an object): it "
                    f"was tampered with; {restore}",
                )
            )
            continue
        sealed = payload.get(SEALED_KEY)
        if not isinstance(sealed, dict):
            continue
        personal = None
        if ev.personal is not None and ev.personal.status == "present":
            data = (ev.personal.data or {}).get(PERSONAL_SEALED_KEY)
            personal = data if isinstance(data, dict) else None
        if ev.call_id is not None and "call" in sealed:
            if sealed.get("personal", True):
                # this seal has the personal digest (purged: None); a seal marked
                # ``"personal": False`` keeps the newest one before it
                personal_of[ev.call_id] = personal
            call_seal[ev.call_id] = (ev.id, ev.seq, sealed, personal_of.get(ev.call_id))
        for key in sealed.get("messages", ()):
            digests = (personal or {}).get("messages") or {}
            message_seal.setdefault(str(key), (ev.id, ev.seq, digests.get(key)))
    rows = conn.execute(select(*CALLS.columns).where(calls.c.organisation_id == organisation_id))
    for raw in rows:
        row = CALLS.row(raw)
        found = call_seal.get(row.id)
        if found is None:
            continue
        event_id, seq, sealed, personal = found
        if _public_digest(row) != sealed["call"]:
            problems.append(
                AuditProblem(
                    organisation_id,
                    event_id,
                    seq,
                    f"call {row.id}'s row (state, times, action …) is not what the chain "
                    f"recorded at seq {seq}: {restore}",
                )
            )
        elif personal is not None and personal.get("call") not in (None, _personal_digest(row)):
            problems.append(
                AuditProblem(
                    organisation_id,
                    event_id,
                    seq,
                    f"call {row.id}'s caller number or answers are not what the chain recorded "
                    f"at seq {seq} (an answer was edited): {restore}",
                )
            )
    stmt = select(
        outbox.c.idempotency_key,
        outbox.c.channel,
        outbox.c.recipient,
        outbox.c.subject,
        outbox.c.body,
        outbox.c.call_id,
    ).where(outbox.c.organisation_id == organisation_id)
    for key, channel, recipient, subject, body, call_id in conn.execute(stmt):
        found_message = message_seal.get(str(key))
        if found_message is None:
            continue
        event_id, seq, digest = found_message
        if digest is not None and digest != _message_digest(channel, recipient, subject, body):
            problems.append(
                AuditProblem(
                    organisation_id,
                    event_id,
                    seq,
                    f"message {key} (call {call_id}) has a recipient, subject or body other "
                    f"than the chain recorded at seq {seq}: {restore}",
                )
            )
    return problems


def verify(
    source: Connection | Store,
    organisation_id: str | None = None,
    *,
    expect: Iterable[ChainPin] = (),
) -> AuditReport:
    """:func:`oohcore.audit.verify` (the chains, personal records, pins) and then
    :func:`verify_records` for each organisation: what ``oohcore audit verify`` runs."""
    with _reading(source) as conn:
        report = audit.verify(conn, organisation_id, expect=expect)
        orgs = [organisation_id] if organisation_id is not None else audit_read.organisations(conn)
        extra = [p for org in orgs for p in verify_records(conn, org)]
    return replace(report, problems=report.problems + tuple(extra)) if extra else report
