"""Retention: purging the personal data of calls, with the purge itself on the audit chain.

Specification 7.14.7: each Participating Organisation (and each of its service options) may have
its own retention policy, and ICO standards are the minimum. 7.14.3: hold no more personal data
than needed. The audit chain (:mod:`oohcore.audit`) keeps the proof of every call for ever; the
personal data it covers lives beside it (:mod:`oohcore.audit.personal`) and is what a policy
deletes:

* :func:`purge_personal_data` deletes one call's personal data (data and salt, so its digests
  can no longer be confirmed by guessing) and appends a ``personal_data.purged`` event that says
  who purged it, why and how many records, and holds no personal data itself. ``oohcore audit
  verify`` keeps passing: a purged record is accepted because its purge is on the chain, later
  than the events it covers. Use it for an erasure request, or from a retention job.
* :func:`purge_expired` does it for the calls of one organisation (optionally one service
  option) that ended (closed, or abandoned) before a date, a batch at a time::

      cutoff = clock.now() - timedelta(days=policy_days)
      while True:
          with store.transaction() as conn:
              if not purge_expired(conn, organisation_id="ealing", older_than=cutoff,
                                   at=clock.now(), by="retention policy (7 years)"):
                  break

  Each batch is one short transaction, so a long purge never holds the write lock for long and
  an interrupted run loses nothing: run it again.

A purge also clears, in the same transaction, every copy of the call's personal data the
engine keeps outside the audit records (:mod:`oohcore.erasure`: the call row's caller number and
answers, the earlier-call search keys, message bodies and fields, the referral's frozen texts,
the telephone records' caller number), so ``desk.get`` and ``desk.search`` no longer show it. A
call whose work is not finished (still open, a referral or watch running, a message unsent) is
refused, and skipped by :func:`purge_expired`: its escalation still needs the details. Pass
``also=`` to clear the host's own copies in the same transaction; backups age out by the host's
backup policy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, and_, func, select, update

from oohcore import audit
from oohcore.audit import chain as audit_chain
from oohcore.audit.chain import events
from oohcore.audit.personal import personal_data
from oohcore.calls import calls
from oohcore.clock import as_utc
from oohcore.erasure import active_work, erase_call_copies, has_active_work
from oohcore.vocabulary import EventKind

__all__ = ["RetentionError", "purge_expired", "purge_personal_data"]

_UPDATE_CHUNK = 500  # event ids per UPDATE … WHERE event_id IN (…)


class RetentionError(audit.AuditError):
    """A purge was asked for with missing or unusable arguments; nothing was purged."""


def purge_personal_data(
    conn: Connection,
    *,
    organisation_id: str,
    call_id: str,
    at: datetime,
    by: str,
    reason: str,
) -> int:
    """Delete the personal data of one call and record the purge; the number of records purged.

    ``by`` names who or what purged it (an operator, "retention policy …"), ``reason`` why (an
    erasure request's reference, the policy): both go on the chain, so keep personal data out of
    them. Nothing to purge (none recorded, or already purged) appends nothing and returns 0.
    Every copy outside the audit records is cleared too (:mod:`oohcore.erasure`), even then.
    Raises :class:`RetentionError` for a call whose work is not finished (7.14.3: the details
    are still needed). Run it inside ``store.transaction()``; all of it commits together.
    """
    at = _aware(at, "at")
    by, reason = _said(by, "by"), _said(reason, "reason")
    if not organisation_id or not call_id:
        raise RetentionError("a purge needs an organisation_id and a call_id")
    if conn.dialect.name == "postgresql":
        # a step of the call waits for the purge (and the purge for a step under way)
        conn.execute(
            select(calls.c.id)
            .where(calls.c.id == call_id, calls.c.organisation_id == organisation_id)
            .with_for_update()
        )
    busy = active_work(conn, organisation_id, call_id)
    if busy is not None:
        raise RetentionError(f"nothing was purged: {busy}")
    erase_call_copies(conn, organisation_id, call_id)
    # the call's events (by their call index), then their records still holding data by the
    # event id; no condition on the records' own organisation column, which would lead SQLite
    # to walk the organisation's whole index of records instead
    present = (
        select(personal_data.c.event_id)
        .select_from(events)
        .join(personal_data, personal_data.c.event_id == events.c.id)
        .where(events.c.call_id == call_id, events.c.organisation_id == organisation_id)
        .where(personal_data.c.data.is_not(None))
        .order_by(events.c.id)
    )
    if conn.dialect.name == "postgresql":
        # a concurrent purge of the call waits for this one
        present = present.with_for_update(of=personal_data)
    ids = [int(r[0]) for r in conn.execute(present)]
    if not ids:
        return 0
    purge_event = audit_chain.append_event(
        conn,
        organisation_id=organisation_id,
        call_id=call_id,
        kind=EventKind.PERSONAL_DATA_PURGED.value,
        payload={"by": by, "reason": reason, "records": len(ids)},
        at=at,
    )
    for start in range(0, len(ids), _UPDATE_CHUNK):
        conn.execute(
            update(personal_data)
            .where(personal_data.c.event_id.in_(ids[start : start + _UPDATE_CHUNK]))
            .values(data=None, salt=None, purge_event_id=purge_event)
        )
    return len(ids)


def purge_expired(
    conn: Connection,
    *,
    organisation_id: str,
    older_than: datetime,
    at: datetime,
    by: str,
    reason: str | None = None,
    service_option: str | None = None,
    batch_size: int = 200,
    also: Callable[[Connection, str], object] | None = None,
) -> int:
    """Purge the personal data of up to ``batch_size`` calls that ended before ``older_than``.

    A call has ended when it was closed or abandoned (its ``closed_at`` or ``abandoned_at``);
    calls still open are never purged here. ``service_option`` limits the purge to one option
    (7.14.7: a policy per service option). Oldest calls go first. ``also(conn, call_id)`` is
    called for each purged call in the same transaction, to clear the call's other copies.
    Returns the number of calls purged in this batch: call it again, each time in a new
    transaction, until it returns 0 (see the module documentation).
    """
    older_than = _aware(older_than, "older_than")
    at = _aware(at, "at")
    by = _said(by, "by")
    if batch_size < 1:
        raise RetentionError(f"batch_size must be at least 1, not {batch_size}")
    ended = func.coalesce(calls.c.closed_at, calls.c.abandoned_at)
    stmt = (
        select(personal_data.c.call_id)
        .select_from(
            personal_data.join(
                calls,
                and_(
                    calls.c.id == personal_data.c.call_id,
                    calls.c.organisation_id == personal_data.c.organisation_id,
                ),
            )
        )
        .where(personal_data.c.organisation_id == organisation_id)
        .where(personal_data.c.data.is_not(None))
        .where(ended < older_than)
        .where(~has_active_work(organisation_id))  # its escalation still needs the details
        .order_by(personal_data.c.event_id)
        .limit(batch_size * 20)  # a call has a few records; duplicates are dropped below
    )
    if service_option is not None:
        stmt = stmt.where(calls.c.service_option == service_option)
    due: dict[str, None] = {}
    for (call_id,) in conn.execute(stmt):
        due.setdefault(str(call_id))
        if len(due) == batch_size:
            break
    why = reason or (f"retention: the call ended before {older_than.isoformat(timespec='seconds')}")
    for call_id in due:
        purge_personal_data(
            conn, organisation_id=organisation_id, call_id=call_id, at=at, by=by, reason=why
        )
        if also is not None:
            also(conn, call_id)
    return len(due)


def _aware(when: datetime, name: str) -> datetime:
    try:
        return as_utc(when)
    except ValueError as exc:
        raise RetentionError(f"{name}: {exc}") from exc


def _said(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RetentionError(
            f"a purge needs {name}= (who or what purged, and why: both are recorded)"
        )
    return value.strip()
