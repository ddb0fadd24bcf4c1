"""The earlier-call search index: the ``call_search`` table and the keys of a call's name and address
written to it (``index_call``, ``index_calls``), removed by a purge (``remove_calls``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    String,
    Table,
    and_,
    delete,
    insert,
    text,
)

from oohcore.clock import as_utc
from oohcore.search.addresses import (
    AddressParts,
    InvalidPostcode,
    address_parts,
    normalise_postcode,
    sound_key,
)
from oohcore.search.names import _name_keys, normalise_name
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata
from oohcore.store.statements import insert_or_replace

__all__ = [
    "CallToIndex",
    "call_search",
    "index_call",
    "index_calls",
    "remove_calls",
]


_NAME_LENGTH = 200  # longer text is cut, not refused: the index never fails a call


_ADDRESS_LENGTH = 400


call_search = Table(
    "call_search",
    metadata,
    Column("organisation_id", String(64), primary_key=True),
    Column("call_id", String(64), primary_key=True),
    Column("service_option", String(64), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("caller_name", String(_NAME_LENGTH)),  # normalised: upper-case words
    Column("name_key", String(16)),  # S530:J500
    Column("surname_key", String(4)),  # S530
    Column("address", String(_ADDRESS_LENGTH)),  # normalised
    Column("address_key", String(24)),  # HI:12:S
    Column("uprn", BigInteger),
    Column("postcode", String(8)),  # SW1A 1AA
    # Each key's index holds only the calls that have that key (migration 0014): a call with no
    # UPRN or postcode writes no page of those indexes, and a lookup by a key (``=`` or a
    # range) implies it is not NULL, so SQLite and PostgreSQL use them as before.
    *(
        Index(
            None,
            "organisation_id",
            key,
            "received_at",
            sqlite_where=text(f"{key} IS NOT NULL"),
            postgresql_where=text(f"{key} IS NOT NULL"),
        )
        for key in ("name_key", "surname_key", "address_key", "uprn", "postcode")
    ),
    Index(None, "organisation_id", "service_option", "received_at"),
    Index(None, "organisation_id", "received_at"),
)
"""One row per indexed call. Columns ending in ``_key`` are derived for lookups only."""


_DIGITS_RE = re.compile(r"\d+")


# Words that open many street names and so say little on their own.
_KEY_SKIP = frozenset(
    [
        "SAINT",
        "UPPER",
        "LOWER",
        "GREAT",
        "LITTLE",
        "NORTH",
        "SOUTH",
        "EAST",
        "WEST",
        "OLD",
        "NEW",
        "OUTSIDE",
        "NEAR",
        "OPPOSITE",
    ]
)


_FOLDED_PREFIXES = ("KN", "WR", "PH", "PS", "GN")  # as in sound_key: Kn → N, Ph → F …


def _street_letters(word: str) -> str:
    """The first two letters of a street or building word, spelt as it sounds: the sound
    key's initial (``C``/``K``/``S``, ``Ph``/``F``, vowels as ``A``) and the next letter."""
    rest = word[2:] if word[:2] in _FOLDED_PREFIXES else word[1:]
    return sound_key(word)[:1] + rest[:1]


def _address_key_parts(parts: AddressParts) -> tuple[str, str, str] | None:
    """(first two letters of the first street or building word, house number, initial of the
    next word): ``12a High St.`` → ("HI", "12", "S"); ``Flat 3, Kestrel House`` → ("KE",
    "3", "H").

    Letters rather than whole words, so that a typo after the second letter of a street name
    still finds the call.
    """
    words = parts.words
    start = next((i for i, w in enumerate(words) if w not in _KEY_SKIP), 0)
    if not words:
        return None
    following = words[start + 1][0] if start + 1 < len(words) else ""
    number = parts.number_digits
    if number is None and parts.flat is not None:
        m = _DIGITS_RE.match(parts.flat)
        number = m.group(0) if m else parts.flat
    return _street_letters(words[start]), number or "", following


def _address_key(parts: AddressParts) -> str | None:
    key = _address_key_parts(parts)
    return ":".join(key) if key else None


def _indexable_uprn(value: int | str | None) -> int | None:
    """A UPRN to index, or None: an unreadable one is left out, never refused."""
    try:
        return _uprn(value)
    except (TypeError, ValueError):
        return None


def _uprn(value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("a UPRN is a whole number, not a bool")
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.isdigit():
        raise ValueError(f"{value!r} is not a UPRN (a whole number of up to 12 digits)")
    return int(text)


@dataclass(frozen=True, slots=True)
class CallToIndex:
    """What :func:`index_calls` needs to know about one call."""

    organisation_id: str
    call_id: str
    service_option: str
    received_at: datetime
    caller_name: str | None = None
    address: str | None = None
    uprn: int | str | None = None
    postcode: str | None = None


def _require_org(organisation_id: str) -> str:
    if not isinstance(organisation_id, str) or not organisation_id:
        raise ValueError(
            "organisation_id is required: earlier-call search is always scoped to one "
            "organisation (spec 7.10)"
        )
    return organisation_id


def _name_fields(caller_name: str | None) -> dict[str, Any]:
    name = normalise_name(caller_name) if isinstance(caller_name, str) else ""
    name_key, surname_key = _name_keys(name)
    return {
        "caller_name": name[:_NAME_LENGTH] or None,
        "name_key": name_key,
        "surname_key": surname_key,
    }


def _address_fields(
    address: str | None, uprn: int | str | None, postcode: str | None
) -> dict[str, Any]:
    text = address.strip() if isinstance(address, str) else ""
    parts = address_parts(text) if text else None
    normalised_postcode: str | None = None
    raw_postcode = postcode or (parts.postcode if parts else None)
    if raw_postcode:
        # An unreadable postcode is left out: the index never refuses a call (the script
        # validates postcodes before they get here).
        with suppress(InvalidPostcode):
            normalised_postcode = normalise_postcode(raw_postcode)
    return {
        "address": parts.normalised[:_ADDRESS_LENGTH] if parts and parts.normalised else None,
        "address_key": _address_key(parts) if parts else None,
        "uprn": _indexable_uprn(uprn),
        "postcode": normalised_postcode,
    }


def _row(call: CallToIndex) -> dict[str, Any]:
    return {
        "organisation_id": _require_org(call.organisation_id),
        "call_id": call.call_id,
        "service_option": call.service_option,
        "received_at": as_utc(call.received_at),
        **_name_fields(call.caller_name),
        **_address_fields(call.address, call.uprn, call.postcode),
    }


def index_call(
    conn: Connection,
    *,
    organisation_id: str,
    call_id: str,
    service_option: str,
    received_at: datetime,
    caller_name: str | None = None,
    address: str | None = None,
    uprn: int | str | None = None,
    postcode: str | None = None,
) -> None:
    """Add a call to the search index, or replace its entry (5.2.7).

    Called by the engine inside the transaction that records the call, so the index never
    disagrees with the calls. Calling it again for the same call (new details from the Caller)
    replaces the entry. An unreadable postcode or UPRN is left out rather than refused, and
    very long names and addresses are cut to the column sizes: indexing never fails a call.
    """
    row = _row(
        CallToIndex(
            organisation_id,
            call_id,
            service_option,
            received_at,
            caller_name,
            address,
            uprn,
            postcode,
        )
    )
    insert_or_replace(conn, call_search, ("organisation_id", "call_id"), row)


def index_calls(conn: Connection, calls: Iterable[CallToIndex], *, batch: int = 20_000) -> int:
    """Add many calls not yet in the index (a backfill or a rebuild); returns how many.

    Rows are inserted in batches of ``batch`` with ``executemany``. A call already in the index
    makes the insert fail (use :func:`index_call` to replace one).
    """
    count = 0
    rows: list[dict[str, Any]] = []
    for call in calls:
        rows.append(_row(call))
        if len(rows) >= batch:
            conn.execute(insert(call_search), rows)
            count += len(rows)
            rows = []
    if rows:
        conn.execute(insert(call_search), rows)
        count += len(rows)
    return count


def remove_calls(conn: Connection, *, organisation_id: str, call_ids: Iterable[str]) -> int:
    """Delete calls from the index (retention, 7.14.7); returns how many rows went."""
    org = _require_org(organisation_id)
    ids = list(call_ids)
    removed = 0
    for start in range(0, len(ids), 500):
        result = conn.execute(
            delete(call_search).where(
                and_(
                    call_search.c.organisation_id == org,
                    call_search.c.call_id.in_(ids[start : start + 500]),
                )
            )
        )
        removed += result.rowcount
    return removed
