"""The living directory of contacts, in the store (spec 2.3.3, 2.1.11; DESIGN principle 10).

A service option is signed off and hashed (5.3.1); the numbers its actions signpost, transfer
or forward to are not part of it. Actions name a contact by id (``contact: samaritans``), and
the contact's number, email, opening times and notes live here, per organisation, where they
change at run time without a new sign-off: "Updates to Regularly Variable Data … do not count
as Variations to Service Options and will be immediately actionable when requested" (2.3.3).

Every change records **who** made it, **when**, and **when it was requested**, both as a row
of ``directory_changes`` (the values, kept beside the proof) and as an audit event
``directory.changed`` appended in the same transaction, whose payload carries the changed
field names and a digest of the new values (DESIGN principle 11: the chain proves the change,
the values are stored apart).

Seeding (:func:`seed`) puts the files' entries (``Organisation.directory``: the organisation's
``directory.yaml`` over the catalogue's) into the store. Once the store holds an entry, **the
store wins**: seeding never overwrites it, and reports where the file now differs so the host
can tell someone the file is stale. A file entry the store lacks is added (a change by the
seeder, recorded like any other). An entry the store holds but the files no longer have is
kept (a running call may still name it) and reported. Seeding twice changes nothing.

Every function takes a SQLAlchemy ``Connection`` and an organisation id, and reads or writes
that organisation's entries only (7.10); run writes inside ``store.transaction()``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    insert,
    select,
    update,
)

from oohcore.audit.chain import append_event, canonical_json
from oohcore.clock import as_utc
from oohcore.errors import OohcoreError
from oohcore.rulesets.models import EMAIL_PATTERN, PHONE_PATTERN, DirectoryEntry
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata
from oohcore.vocabulary import EventKind

__all__ = [
    "FIELDS",
    "Change",
    "Contact",
    "DirectoryError",
    "SeedReport",
    "UnknownContact",
    "change",
    "directory_changes",
    "directory_entries",
    "entries",
    "get",
    "history",
    "placeholders",
    "seed",
]

FIELDS: Final = ("name", "number", "email", "opening_times", "notes")
"""The fields of an entry that can change."""

directory_entries = Table(
    "directory_entries",
    metadata,
    Column("organisation_id", String(64), primary_key=True),
    Column("contact_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("number", String(32), nullable=True),
    Column("email", String(254), nullable=True),
    Column("opening_times", Text, nullable=True),
    Column("notes", Text, nullable=True),
    Column("revision", Integer, nullable=False),  # 1 when added, +1 per change
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
)

directory_changes = Table(
    "directory_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organisation_id", String(64), nullable=False),
    Column("contact_id", String(64), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("fields", Text, nullable=False),  # the changed field names, comma-separated
    Column("name", Text, nullable=False),
    Column("number", String(32), nullable=True),
    Column("email", String(254), nullable=True),
    Column("opening_times", Text, nullable=True),
    Column("notes", Text, nullable=True),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("event_id", BigInteger, nullable=False),  # the audit event that proves it
    Index(None, "organisation_id", "contact_id", "revision", unique=True),
)

_PHONE_RE = re.compile(PHONE_PATTERN)
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_BY_LENGTH = 128


class DirectoryError(OohcoreError):
    """A directory change was refused; nothing was written."""


class UnknownContact(DirectoryError):
    """No entry with that id in the organisation's directory."""


@dataclass(frozen=True, slots=True)
class Contact:
    """A directory entry as the store holds it now."""

    id: str
    name: str
    number: str | None
    email: str | None
    opening_times: str | None
    notes: str | None
    revision: int
    changed_at: datetime
    changed_by: str
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change of an entry (its first revision is its addition)."""

    contact_id: str
    revision: int
    fields: tuple[str, ...]
    values: Mapping[str, str | None]  # every field's value after the change
    changed_at: datetime
    changed_by: str
    requested_at: datetime
    event_id: int


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What :func:`seed` did: ids added, ids the store holds with values the files no longer
    give (the store won), and ids only the store holds (kept)."""

    added: tuple[str, ...] = ()
    differs: tuple[str, ...] = ()
    only_in_store: tuple[str, ...] = ()


class _Unchanged:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
"""The default of :func:`change`'s fields: leave the field as it is."""

_ENTRY_COLUMNS = [directory_entries.c[name] for name in ("contact_id", *FIELDS)] + [
    directory_entries.c.revision,
    directory_entries.c.changed_at,
    directory_entries.c.changed_by,
    directory_entries.c.requested_at,
]


def get(conn: Connection, organisation_id: str, contact_id: str) -> Contact | None:
    """The organisation's entry ``contact_id``, or None."""
    row = conn.execute(
        select(*_ENTRY_COLUMNS).where(
            and_(
                directory_entries.c.organisation_id == _org(organisation_id),
                directory_entries.c.contact_id == contact_id,
            )
        )
    ).first()
    return _contact(row) if row is not None else None


def entries(conn: Connection, organisation_id: str) -> list[Contact]:
    """Every entry of the organisation, by id."""
    rows = conn.execute(
        select(*_ENTRY_COLUMNS)
        .where(directory_entries.c.organisation_id == _org(organisation_id))
        .order_by(directory_entries.c.contact_id)
    )
    return [_contact(r) for r in rows]


def seed(
    conn: Connection,
    organisation_id: str,
    files: Mapping[str, DirectoryEntry],
    *,
    at: datetime,
    by: str = "directory.yaml",
) -> SeedReport:
    """Add the file entries the store lacks; the store's own entries win (module docstring)."""
    held = {c.id: c for c in entries(conn, organisation_id)}
    added: list[str] = []
    differs: list[str] = []
    for contact_id, entry in sorted(files.items()):
        values = {name: getattr(entry, name) for name in FIELDS}
        current = held.get(contact_id)
        if current is None:
            _write(conn, organisation_id, contact_id, values, FIELDS, 1, by, at, at, new=True)
            added.append(contact_id)
        elif _values(current) != values:
            differs.append(contact_id)
    only = tuple(sorted(set(held) - set(files)))
    return SeedReport(tuple(added), tuple(differs), only)


def change(
    conn: Connection,
    organisation_id: str,
    contact_id: str,
    *,
    by: str,
    at: datetime,
    requested_at: datetime | None = None,
    name: str | _Unchanged = UNCHANGED,
    number: str | _Unchanged | None = UNCHANGED,
    email: str | _Unchanged | None = UNCHANGED,
    opening_times: str | _Unchanged | None = UNCHANGED,
    notes: str | _Unchanged | None = UNCHANGED,
) -> Contact:
    """Change an entry (None clears an optional field) and record who, when, and when it was
    requested (``at`` when not given). A change to the values it already has records nothing
    and returns the entry as it is. Raises :class:`UnknownContact` or :class:`DirectoryError`
    (a bad number, email, name, person or time), writing nothing."""
    current = get(conn, organisation_id, contact_id)
    if current is None:
        known = [c.id for c in entries(conn, organisation_id)]
        close = difflib.get_close_matches(contact_id, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownContact(
            f"no contact {contact_id!r} in the directory of {organisation_id!r}{hint} "
            "(entries come from directory.yaml: add it there and seed)"
        )
    by = _person(by)
    at = _aware(at, "at")
    requested = _aware(requested_at, "requested_at") if requested_at is not None else at
    if requested > at:
        raise DirectoryError(
            f"requested_at ({requested.isoformat()}) is after the change ({at.isoformat()}); "
            "a change is requested before it is made"
        )
    given: dict[str, Any] = {
        "name": name,
        "number": number,
        "email": email,
        "opening_times": opening_times,
        "notes": notes,
    }
    values = _values(current)
    for field, value in given.items():
        if not isinstance(value, _Unchanged):
            values[field] = _checked(field, value)
    changed = tuple(f for f in FIELDS if values[f] != getattr(current, f))
    if not changed:
        return current
    _write(
        conn,
        organisation_id,
        contact_id,
        values,
        changed,
        current.revision + 1,
        by,
        at,
        requested,
        new=False,
    )
    result = get(conn, organisation_id, contact_id)
    assert result is not None
    return result


def history(conn: Connection, organisation_id: str, contact_id: str | None = None) -> list[Change]:
    """The recorded changes of the organisation's entries (of one, with ``contact_id``),
    oldest first."""
    c = directory_changes.c
    stmt = select(
        c.contact_id,
        c.revision,
        c.fields,
        *(c[name] for name in FIELDS),
        c.changed_at,
        c.changed_by,
        c.requested_at,
        c.event_id,
    ).where(c.organisation_id == _org(organisation_id))
    if contact_id is not None:
        stmt = stmt.where(c.contact_id == contact_id)
    out = []
    for row in conn.execute(stmt.order_by(c.id)):
        n = len(FIELDS)
        out.append(
            Change(
                contact_id=row[0],
                revision=int(row[1]),
                fields=tuple(row[2].split(",")),
                values=dict(zip(FIELDS, row[3 : 3 + n], strict=True)),
                changed_at=row[3 + n],
                changed_by=row[4 + n],
                requested_at=row[5 + n],
                event_id=int(row[6 + n]),
            )
        )
    return out


def placeholders(contact: Contact | DirectoryEntry | None) -> dict[str, str | None]:
    """The ``contact_*`` template values of an action that names ``contact``."""
    return {
        "contact_name": contact.name if contact else None,
        "contact_number": contact.number if contact else None,
        "contact_email": contact.email if contact else None,
        "contact_opening_times": contact.opening_times if contact else None,
    }


# ---------------------------------------------------------------------------------------------


def _write(
    conn: Connection,
    organisation_id: str,
    contact_id: str,
    values: Mapping[str, str | None],
    changed: tuple[str, ...],
    revision: int,
    by: str,
    at: datetime,
    requested_at: datetime,
    *,
    new: bool,
) -> None:
    """The entry, its change row and its audit event, in the caller's transaction."""
    stamp = {"changed_at": at, "changed_by": by, "requested_at": requested_at}
    event_id = append_event(
        conn,
        organisation_id=organisation_id,
        call_id=None,
        kind=EventKind.DIRECTORY_CHANGED,
        payload={
            "contact": contact_id,
            "revision": revision,
            "fields": list(changed),
            "by": by,
            "requested_at": requested_at,
            "values_sha256": hashlib.sha256(canonical_json(dict(values)).encode()).hexdigest(),
        },
        at=at,
    )
    if new:
        conn.execute(
            insert(directory_entries).values(
                organisation_id=organisation_id,
                contact_id=contact_id,
                revision=revision,
                **values,
                **stamp,
            )
        )
    else:
        done = conn.execute(
            update(directory_entries)
            .where(
                and_(
                    directory_entries.c.organisation_id == organisation_id,
                    directory_entries.c.contact_id == contact_id,
                    directory_entries.c.revision == revision - 1,
                )
            )
            .values(revision=revision, **values, **stamp)
        )
        if done.rowcount != 1:  # another change won the race: the caller's view is stale
            raise DirectoryError(
                f"contact {contact_id!r} was changed by someone else meanwhile; look again"
            )
    conn.execute(
        insert(directory_changes).values(
            organisation_id=organisation_id,
            contact_id=contact_id,
            revision=revision,
            fields=",".join(changed),
            event_id=event_id,
            **values,
            **stamp,
        )
    )


def _contact(row: Any) -> Contact:
    return Contact(
        id=row[0],
        name=row[1],
        number=row[2],
        email=row[3],
        opening_times=row[4],
        notes=row[5],
        revision=int(row[6]),
        changed_at=row[7],
        changed_by=row[8],
        requested_at=row[9],
    )


def _values(contact: Contact) -> dict[str, str | None]:
    return {name: getattr(contact, name) for name in FIELDS}


def _org(organisation_id: str) -> str:
    if not organisation_id:
        raise DirectoryError("an organisation id is needed: the directory is per organisation")
    return organisation_id


def _person(by: str) -> str:
    by = by.strip()
    if not by:
        raise DirectoryError("say who made the change (by=…): every change records who (2.3.3)")
    if len(by) > _BY_LENGTH:
        raise DirectoryError(f"'by' is longer than {_BY_LENGTH} characters")
    return by


def _aware(when: datetime, what: str) -> datetime:
    try:
        return as_utc(when)
    except ValueError as exc:
        raise DirectoryError(f"{what}: {exc}") from None


def _checked(field: str, value: str | None) -> str | None:
    if value is None:
        if field == "name":
            raise DirectoryError("a contact needs a name")
        return None
    value = value.strip()
    if field == "name" and not value:
        raise DirectoryError("a contact needs a name")
    if field == "number" and not _PHONE_RE.match(value):
        raise DirectoryError(
            f"{value!r} is not a telephone number; write digits and spaces, e.g. '020 7946 0000' "
            "or '116 123'"
        )
    if field == "email" and not _EMAIL_RE.match(value):
        raise DirectoryError(f"{value!r} is not an email address")
    return value or None
