"""Personal data kept beside the audit chain, referenced from it by a keyed digest.

DESIGN principle 11 and specification 7.14.3 / 7.14.7: the audit chain (``oohcore.audit``)
proves what happened and must never change; the personal data an event covers (a caller's name,
address, phone number, the answers they gave) must be deletable when the Participating
Organisation's retention policy says so. The two are therefore stored apart:

* the event's chained payload carries, under the reserved key ``personal_data``, only the names
  of the fields and a digest: ``{"fields": ["address", "caller_name"], "hmac_sha256": "…"}``;
* the personal data itself is one row of the ``personal_data`` table beside the event
  (organisation, call, event id, the data as canonical JSON, and a random 256-bit salt).

The digest is HMAC-SHA256 keyed with the row's salt over the canonical JSON text. While the row
exists, anyone can recompute it and see that the data is what the event recorded; once the row is
purged (its data *and* its salt are deleted) the digest stays on the chain, the chain still
verifies, and the digest can no longer be confirmed by guessing a name or an address: without
the 32-byte key a guess cannot be tested.

A purged row stays as a tombstone (``data`` and ``salt`` NULL) that names the audit event which
recorded the purge (``purge_event_id``), so reading an event can say when, by whom and why its
personal data was removed, and :func:`oohcore.audit.verify` can tell a purge (recorded on the
chain) from a deletion behind the library's back (not recorded: reported as missing).

This module is the storage of those rows; :mod:`oohcore.audit` writes and verifies them with
the events, and :mod:`oohcore.retention` purges them. It imports nothing of either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, insert, text

from oohcore.store.columns import to_json
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared

__all__ = [
    "PAYLOAD_KEY",
    "PersonalData",
    "PersonalStatus",
    "digest",
    "personal_data",
    "sealed",
]

# The reserved key of a chained payload that holds the digest of the event's personal data.
PAYLOAD_KEY = "personal_data"

_ID = BigInteger().with_variant(Integer(), "sqlite")
_PRESENT = "data IS NOT NULL"

personal_data = Table(
    "personal_data",
    metadata,
    # the event (``events.id``) whose chained payload carries this row's digest
    Column("event_id", _ID, primary_key=True, autoincrement=False),
    Column("organisation_id", String(100), nullable=False),
    Column("call_id", String(100), nullable=True),
    # canonical JSON of the personal data; NULL once purged
    Column("data", Text(), nullable=True),
    # hex of the 32-byte HMAC key; NULL once purged (so the digest cannot be confirmed)
    Column("salt", String(64), nullable=True),
    # the ``personal_data.purged`` event that recorded the purge (NULL while the data is here)
    Column("purge_event_id", _ID, nullable=True),
    # (no index by call: a purge finds a call's records through the events' call index,
    # migration 0014; one index page fewer for every record written)
    # Only rows still holding data are in this index: a retention run walks the oldest of them
    # and purged rows drop out, so each batch starts where the previous one ended.
    Index(
        "ix_personal_data_present",
        "organisation_id",
        "event_id",
        sqlite_where=text(_PRESENT),
        postgresql_where=text(_PRESENT),
    ),
)

insert_record = Prepared(
    insert(personal_data),
    keys=["event_id", "organisation_id", "call_id", "data", "salt"],
)


def digest(salt_hex: str, data_json: str) -> str:
    """HMAC-SHA256 (hex) of the canonical JSON ``data_json``, keyed with the salt."""
    return hmac.new(bytes.fromhex(salt_hex), data_json.encode("utf-8"), hashlib.sha256).hexdigest()


def sealed(personal: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """``(data_json, salt_hex, reference)`` for personal data about to be stored.

    ``reference`` is what the chained payload carries under :data:`PAYLOAD_KEY`: the sorted
    field names and the digest. Raises :class:`oohcore.store.columns.JSONValueError` for data that is
    not JSON.
    """
    data_json = to_json(dict(personal))
    salt_hex = secrets.token_hex(32)
    reference = {"fields": sorted(personal), "hmac_sha256": digest(salt_hex, data_json)}
    return data_json, salt_hex, reference


PersonalStatus = Literal["present", "altered", "purged", "missing"]


@dataclass(frozen=True, slots=True)
class PersonalData:
    """The personal data of one event, as read back beside the chain.

    ``status`` is ``"present"`` (``data`` is what the event recorded), ``"purged"`` (deleted by
    :func:`oohcore.retention.purge_personal_data`; ``purged_at``, ``purged_by`` and
    ``purge_reason`` say when, by whom and why), ``"missing"`` (deleted without a recorded purge)
    or ``"altered"`` (the stored data no longer matches the digest on the chain; ``data`` is what
    is stored now). The data never appears in the ``repr``, so logging an event leaks none.
    """

    fields: tuple[str, ...]
    status: PersonalStatus
    data: Mapping[str, Any] | None = field(default=None, repr=False)
    purged_at: datetime | None = None
    purged_by: str | None = None
    purge_reason: str | None = None

    @property
    def purged(self) -> bool:
        return self.status == "purged"


def read(
    reference: Any,
    data_json: str | None,
    salt_hex: str | None,
    *,
    exists: bool,
    purged_at: datetime | None = None,
    purge_payload: Mapping[str, Any] | None = None,
) -> PersonalData:
    """The :class:`PersonalData` of an event whose payload carries ``reference``.

    ``exists`` says whether the event has a row; ``purged_at`` and ``purge_payload`` are the
    time and payload of the purge event a tombstone names (None when it names none).
    """
    fields = (
        tuple(str(f) for f in reference.get("fields", ())) if isinstance(reference, dict) else ()
    )
    if not exists:
        return PersonalData(fields, "missing")
    if data_json is None:
        if purged_at is None or purge_payload is None:
            return PersonalData(fields, "missing")
        return PersonalData(
            fields,
            "purged",
            purged_at=purged_at,
            purged_by=_text(purge_payload.get("by")),
            purge_reason=_text(purge_payload.get("reason")),
        )
    try:
        data = json.loads(data_json)
    except ValueError:
        return PersonalData(fields, "altered")
    intact = matches(reference, data_json, salt_hex)
    view = MappingProxyType(data) if isinstance(data, dict) else None
    return PersonalData(fields, "present" if intact else "altered", data=view)


def matches(reference: Any, data_json: str | None, salt_hex: str | None) -> bool:
    """Whether a stored row still holds the data whose digest the chained ``reference`` has."""
    if data_json is None or salt_hex is None or not isinstance(reference, dict):
        return False
    expected = reference.get("hmac_sha256")
    if not isinstance(expected, str) or not _valid_salt(salt_hex):
        return False
    return hmac.compare_digest(digest(salt_hex, data_json), expected)


def _valid_salt(salt_hex: str) -> bool:
    try:
        return len(bytes.fromhex(salt_hex)) == 32
    except ValueError:
        return False


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
