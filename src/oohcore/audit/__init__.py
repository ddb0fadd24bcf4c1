"""The audit log: an append-only, hash-chained record of every event, per organisation.

"All transactions are auditable" (specification, Appendix 2): every step of a call (offered,
answered, decided, referred, acknowledged, escalated, closed …) is an event appended here **in
the same transaction** as the state change it records, so the log and the state cannot disagree.

Chain
-----

Each organisation (Participating Organisation) has its own chain. Events of one organisation are
numbered ``seq`` = 1, 2, 3 … without gaps, and each event stores

* ``prev_hash``: the ``hash`` of the event before it (64 zeros for seq 1), and
* ``hash``: SHA-256 of the canonical JSON array
  ``[organisation_id, seq, call_id, kind, at (ISO 8601 UTC, microseconds), payload, prev_hash]``
  where ``payload`` is the stored canonical JSON text (keys sorted, no spaces, UTF-8).

The table ``audit_heads`` holds, per organisation, the last ``seq`` and ``hash``; it is updated in
the same transaction as the append (on PostgreSQL the head row is locked ``FOR UPDATE``, which
serialises concurrent appenders of one organisation; on SQLite the write lock does it).

:func:`verify` recomputes every hash and detects an edited event (payload, kind, time, call,
sequence number or hash), a deleted event (a gap in ``seq`` or a broken ``prev_hash`` link), the
deletion of the newest events (the log ends before the head) and a missing head.

Personal data (DESIGN principle 11; 7.14.3, 7.14.7) is kept beside the chain, not in it:
``append_event(..., personal=...)`` stores it in ``personal_data`` and chains only its field names
and a salted HMAC-SHA256 (see :mod:`oohcore.audit.personal`); :mod:`oohcore.retention` purges it
with a ``personal_data.purged`` event, and :func:`verify` checks every record against its digest.

Threat model
------------

* Detected: an edited, inserted, reordered or deleted event; deleted newest events; an edited
  or missing head; a personal record that is altered, deleted, moved to another call, emptied
  without a purge on the chain after it, or attached to an event that has no digest.
* Not detected by the chain alone: someone with write access to the whole database rebuilding a
  consistent chain (every hash and the head), or deleting every event and head. Defence: publish
  the heads (``oohcore audit head`` / :func:`chain_heads`) where they cannot write (a daily
  report to the organisation, a countersigned mail, write-once storage) and verify against them
  (``oohcore audit verify --expect-head ORG:SEQ:HASH`` / ``verify(..., expect=[pin])``).
* A purge is only as legitimate as the code that calls it: anyone who can run oohcore against
  the store can purge, but the purge is on the chain (who, why, how many), so it is never silent.
* Once purged, data and salt are gone: a digest left on the chain cannot be confirmed by
  guessing a name (the 32-byte key is unknown). Backups keep what they held until they expire.
* Out of scope: reading the database (encrypt it at rest, restrict access), the time ``at``
  a host gives (the chain proves order, not wall-clock truth), and copies of personal data in
  other tables (call rows, search keys, outbox messages: clear them with ``purge_expired(also=)``).

Contract
--------

The package: ``audit.chain`` appends, ``audit.read`` reads back, ``audit.verify`` checks,
``audit.model`` holds the records and errors, ``audit.personal`` the personal data beside the
chain. Hosts use the names below.

* ``append_event(conn, organisation_id=..., call_id=..., kind=..., payload=..., at=...,
  personal=None)`` → the new event's id. Call it inside ``store.transaction()``. ``payload``
  must be JSON-representable (``datetime``/``date`` values are written as ISO 8601 strings;
  aware datetimes only) and must not hold personal data: pass that as ``personal``.
* ``verify(conn_or_engine_or_store, organisation_id=None, *, expect=())`` → :class:`AuditReport`.
* ``events_for_call(conn, call_id)`` and ``events_for_organisation(conn, organisation_id, ...)``
  read events back in order, each with its ``personal`` data (or why it is gone).
* ``chain_heads(conn)``, ``organisations(conn)``: the heads to publish, the organisations known.
"""

from __future__ import annotations

from oohcore.audit.model import (
    AuditError,
    AuditProblem,
    AuditReport,
    ChainHead,
    ChainPin,
)
from oohcore.audit.read import chain_heads
from oohcore.audit.verify import verify

__all__ = [
    "AuditError",
    "AuditProblem",
    "AuditReport",
    "ChainHead",
    "ChainPin",
    "chain_heads",
    "verify",
]
