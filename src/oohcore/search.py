"""Earlier-call search and the duplicate check (spec 5.2.7, 7.4.2).

Before a second referral goes out about the same issue, and whenever a Caller follows up an
earlier call, the Call Handler searches earlier calls by name of caller, address of incident,
Service Option and time of call (7.4.2 a–d). This module keeps its own index table,
``call_search``, written by the call engine inside the transaction that records the call
(:func:`index_call`), and answers searches from it (:func:`search`, :func:`likely_duplicate`).

Tenant scope (7.10, DESIGN.md principle 5)
    Every function takes ``organisation_id`` as a required keyword and every statement it runs
    is built from one scoped base (``organisation_id = :org``). There is no cross-organisation
    search here: a provider-wide view, if ever needed, is a separate, deliberate function.

How tolerance works: keys to find candidates, then scores
    Exact keys are indexed, so candidates are found with index lookups whatever the size of
    the table; candidates are then scored in Python.

    * Names are upper-cased, stripped of punctuation and titles (Mr, Mrs, Dr, Cllr …),
      particles are joined (``Mc Donald`` → ``MCDONALD``, ``De Souza`` → ``DESOUZA``), and
      the last word is taken as the surname and the first as the forename. ``name_key`` is
      ``<sound key of surname>:<sound key of forename>`` (an initial is kept as the letter),
      and ``surname_key`` the surname's sound key; the sound key is Soundex with English
      spelling variants folded first (:func:`oohcore.addresses.sound_key`). So ``Jon Smyth``
      and ``John Smith`` share ``S530:J500``. A search also looks under the surname with the
      initial, with no forename, and with the two words swapped.
    * Addresses are normalised (:func:`oohcore.addresses.normalise_address`: case,
      punctuation, spacing, ``Rd``/``Road``, ``Flat``/``Apt`` …). ``address_key`` is
      ``<first two letters of the first street or building word>:<house number digits>:
      <initial of the next word>`` (the flat number when there is no house number; the first
      letter as it sounds: ``C``/``K``, ``Ph``/``F``), so ``12a High St.``, ``12A HIGH
      STREET`` and ``12 Hihg Street`` share ``HI:12:S``, while ``12 High Road`` is
      ``HI:12:R``. Letters rather than the whole word keep a misspelt street name findable;
      the few other streets that share them are sorted out by the score. A search without the next word takes every
      street type, and one without a number every number (a prefix of the key, read as a
      range of the same index). The UPRN and the postcode, when known, are keys of their own.
    * Each candidate then gets a name score (surname 60%, forename 40%, each word compared
      with an edit distance and the sound key: :func:`oohcore.addresses.word_similarity`) and
      an address score (:func:`oohcore.addresses.address_similarity`; the same UPRN on both
      sides scores 1, different UPRNs at most 0.5; different postcodes × 0.8). A hit's score
      is the mean of the scores for what was searched for (a criterion the earlier call did
      not record counts 0.5). Hits below ``min_score`` (0.5) are dropped.
    * Each key lookup reads at most :data:`CANDIDATES_PER_KEY` (50) rows, newest first, so
      a very common name or a busy address over all time is answered from its most recent
      calls. Each statement is built once per combination of filters and cached.
    * When a search by name finds fewer than :data:`TYPO_FALLBACK_BELOW` (3) candidates, it
      also looks under the keys of the likeliest slips of the keyboard (a letter too many, two
      letters swapped: ``Wrad`` finds ``Ward``), at most :data:`TYPO_LOOKUPS` (8) more
      lookups.
    * What is not tolerated: a typo that changes a name's sound key in another way (a
      consonant missing or wrong: ``Tayor`` for ``Taylor``) is not found by the name alone,
      though the address, UPRN or postcode still find the call; nor is a wrong first or
      second letter of a street name.

The duplicate threshold (:func:`likely_duplicate`)
    An earlier call of the same organisation and Service Option within ``window`` (24 hours by
    default) is a likely duplicate when its address score is at least
    :data:`DUPLICATE_ADDRESS_THRESHOLD` (0.9: the same UPRN, or the same house number and
    street however spelt; a different house or flat number never reaches it), or when its name
    score is at least :data:`DUPLICATE_NAME_THRESHOLD` (0.85: ``Jon Smyth`` for ``John Smith``
    scores 0.9, a different forename or surname does not) and the addresses do not disagree
    (one of them is unknown, or they score at least 0.6). The best such call is returned.

Personal data
    The index holds normalised caller names and addresses. When calls are deleted under the
    retention schedule, :func:`remove_calls` must be called for them in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    text,
    union_all,
)

from oohcore.addresses import (
    APOSTROPHES_RE,
    AddressParts,
    InvalidPostcode,
    address_parts,
    address_similarity,
    ascii_upper,
    normalise_postcode,
    sound_key,
    word_similarity,
)
from oohcore.clock import as_utc
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared, insert_or_replace

__all__ = [
    "CANDIDATES_PER_KEY",
    "DEFAULT_DUPLICATE_WINDOW",
    "DUPLICATE_ADDRESS_THRESHOLD",
    "DUPLICATE_NAME_THRESHOLD",
    "CallToIndex",
    "SearchHit",
    "call_search",
    "index_call",
    "index_calls",
    "likely_duplicate",
    "name_similarity",
    "normalise_name",
    "remove_calls",
    "search",
]

DUPLICATE_ADDRESS_THRESHOLD = 0.9
DUPLICATE_NAME_THRESHOLD = 0.85
DUPLICATE_ADDRESSES_DISAGREE_BELOW = 0.6
DEFAULT_DUPLICATE_WINDOW = timedelta(hours=24)
CANDIDATES_PER_KEY = 50
MIN_SCORE = 0.5
TYPO_FALLBACK_BELOW = 3
TYPO_LOOKUPS = 8
MAX_LIMIT = 500
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


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

_TITLES = frozenset(
    [
        "MR",
        "MRS",
        "MS",
        "MISS",
        "MX",
        "DR",
        "PROF",
        "REV",
        "REVD",
        "FR",
        "SIR",
        "DAME",
        "LADY",
        "LORD",
        "CLLR",
        "COUNCILLOR",
        "SGT",
        "PC",
    ]
)
_PARTICLES = frozenset(
    [
        "O",
        "MC",
        "MAC",
        "DE",
        "DA",
        "DI",
        "DU",
        "DEL",
        "DELLA",
        "LE",
        "LA",
        "VAN",
        "VON",
        "DER",
        "DEN",
        "TER",
    ]
)
_DIGITS_RE = re.compile(r"\d+")
_NOT_LETTERS_RE = re.compile(r"[^A-Z]+")
_NO_NAME = frozenset(
    {"", "ANON", "ANONYMOUS", "UNKNOWN", "WITHHELD", "REFUSED", "NOT GIVEN", "NONE", "N A", "NA"}
)


@lru_cache(maxsize=65536)
def normalise_name(text: str) -> str:
    """A caller's name in one canonical spelling, or "" when no name was given.

    >>> normalise_name("Mrs. Mary O'Brien-Mc Donald")
    'MARY OBRIEN MCDONALD'
    """
    s = APOSTROPHES_RE.sub("", ascii_upper(text))
    raw = [t for t in _NOT_LETTERS_RE.sub(" ", s).split() if t not in _TITLES]
    if " ".join(raw) in _NO_NAME:
        return ""
    out: list[str] = []
    pending = ""
    for tok in raw:
        if tok in _PARTICLES:
            pending += tok  # joined to the next word: MC DONALD → MCDONALD
            continue
        out.append(pending + tok)
        pending = ""
    if pending:
        out.append(pending)
    return " ".join(out)


def _forename_key(forename: str) -> str:
    return forename if len(forename) == 1 else sound_key(forename)


@lru_cache(maxsize=65536)
def _name_keys(normalised: str) -> tuple[str | None, str | None]:
    """(name_key, surname_key) of a normalised name."""
    words = normalised.split()
    if not words:
        return None, None
    surname = sound_key(words[-1])
    forename = _forename_key(words[0]) if len(words) > 1 else ""
    return f"{surname}:{forename}", surname


def _query_name_keys(normalised: str) -> tuple[list[str], list[str]]:
    """Where to look for a searched name: (name keys to match exactly, name-key prefixes).

    ``John Smith`` looks under ``S530:J500`` (the same sound), ``S530:J`` (recorded with an
    initial), ``S530:`` (recorded with a surname only) and ``J500:S530`` (written surname
    first). ``J Smith`` looks under every forename starting with J (the prefix ``S530:J``). A
    single word is taken as a surname: every forename (the prefix ``S530:``).
    """
    words = normalised.split()
    if len(words) == 1:
        return [], [f"{sound_key(words[0])}:"]
    forename, surname = words[0], words[-1]
    s = sound_key(surname)
    if len(forename) == 1:
        return [f"{s}:"], [f"{s}:{forename}"]
    keys = [f"{s}:{_forename_key(forename)}", f"{s}:{forename[0]}", f"{s}:"]
    swapped = f"{sound_key(forename)}:{_forename_key(surname)}"
    if swapped not in keys:
        keys.append(swapped)
    return keys, []


def _typo_keys(normalised: str, tried: Iterable[str]) -> list[str]:
    """Name keys for the likeliest one-slip spellings of a searched name: one letter dropped
    (``Smiith``) or two neighbours swapped (``Wrad``), surname first, then forename; at most
    :data:`TYPO_LOOKUPS`. Used only when the name's own keys find (almost) nothing."""
    words = normalised.split()
    if len(words) < 2:
        return []
    forename, surname = words[0], words[-1]
    s, f = sound_key(surname), _forename_key(forename)
    seen = set(tried)
    out: list[str] = []
    for variant in _slips(surname):
        key = f"{sound_key(variant)}:{f}"
        if key not in seen:
            seen.add(key)
            out.append(key)
    if len(forename) > 1:
        for variant in _slips(forename):
            key = f"{s}:{sound_key(variant)}"
            if key not in seen:
                seen.add(key)
                out.append(key)
    return out[:TYPO_LOOKUPS]


def _slips(word: str) -> Iterator[str]:
    for i in range(len(word) - 1):
        yield word[:i] + word[i + 1 :]  # a letter too many
        yield word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # two letters swapped
    yield word[:-1]


def name_similarity(query: str, candidate: str) -> float:
    """How well a recorded name fits a searched one, 0 to 1 (both normalised or not).

    Surname (last word) 60%, forename (first word) 40%; an initial meeting a forename with that
    initial counts 0.8; when either side has only a surname, the score is 0.9 × the surname's.
    Names written surname first are tried too, at 0.95 of their score.
    """
    q, c = normalise_name(query).split(), normalise_name(candidate).split()
    if not q or not c:
        return 0.0
    if q == c:
        return 1.0

    def pair(qf: str | None, qs: str, cf: str | None, cs: str) -> float:
        surname = word_similarity(qs, cs)
        if qf is None or cf is None:
            return 0.9 * surname
        if len(qf) == 1 or len(cf) == 1:
            forename = 0.8 if qf[0] == cf[0] else 0.0
        else:
            forename = word_similarity(qf, cf)
        return 0.6 * surname + 0.4 * forename

    qf, cf = (q[0] if len(q) > 1 else None), (c[0] if len(c) > 1 else None)
    best = pair(qf, q[-1], cf, c[-1])
    if len(q) > 1:
        best = max(best, 0.95 * pair(q[-1], q[0], cf, c[-1]))
    return round(best, 4)


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Writing the index
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Searching
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchHit:
    """An earlier call that fits a search, with how well it fits (0 to 1).

    ``name_score``/``address_score`` are None when that criterion was not searched for or the
    earlier call did not record it; ``same_uprn`` says the UPRNs are known and equal.
    """

    call_id: str
    organisation_id: str
    service_option: str
    received_at: datetime
    score: float
    name_score: float | None = None
    address_score: float | None = None
    same_uprn: bool = False


_COLUMNS = (
    call_search.c.call_id,
    call_search.c.service_option,
    call_search.c.received_at,
    call_search.c.caller_name,
    call_search.c.address,
    call_search.c.uprn,
    call_search.c.postcode,
)


class _Candidate(NamedTuple):
    """One row a lookup found (the columns of ``_COLUMNS``, in order)."""

    call_id: str
    service_option: str
    received_at: datetime
    caller_name: str | None
    address: str | None
    uprn: int | None
    postcode: str | None


_INSERT_ENTRY = Prepared(insert(call_search), keys=[c.name for c in call_search.columns])


@dataclass(frozen=True, slots=True)
class _Query:
    organisation_id: str
    name: str
    address: AddressParts | None
    uprn: int | None
    postcode: str | None
    service_option: str | None
    since: datetime | None
    until: datetime | None


# Lookups: how candidates are read. Each is a statement built once (per combination of
# filters) from the same scoped base and cached, executed with its parameters.
_EQUAL = ("uprn", "name_key", "surname_key", "address_key", "postcode")
_RANGE = ("name_key_range", "address_key_range")


def _select(lookup: str, option: bool, since: bool, until: bool, tag: str = "") -> Select[Any]:
    """One kind of lookup with its filters; its own parameters are named with ``tag`` (so that
    several can share one statement), the filters' are shared.

    Every statement starts from ``organisation_id = :org`` (tenant scope, 7.10).
    """
    c = call_search.c
    conditions = [c.organisation_id == bindparam("org")]
    if option:
        conditions.append(c.service_option == bindparam("option"))
    if since:
        conditions.append(c.received_at >= bindparam("since"))
    if until:
        conditions.append(c.received_at <= bindparam("until"))
    cap = CANDIDATES_PER_KEY
    if lookup in _EQUAL:
        conditions.append(c[lookup] == bindparam(f"key{tag}"))
    elif lookup in _RANGE:
        column = c[lookup.removesuffix("_range")]
        conditions += [column >= bindparam(f"low{tag}"), column < bindparam(f"high{tag}")]
    elif lookup == "recent":
        cap = MAX_LIMIT
    else:  # pragma: no cover - a programming error
        raise ValueError(f"unknown lookup {lookup!r}")
    return select(*_COLUMNS).where(and_(*conditions)).order_by(c.received_at.desc()).limit(cap)


@lru_cache(maxsize=256)
def _statements(lookups: tuple[str, ...], option: bool, since: bool, until: bool) -> Prepared:
    """The statement of one or several lookups (``UNION ALL``; issue 12: one statement instead
    of five before every referral), parameters bound at execution. Each row ends with the
    number of the lookup that found it."""
    members = []
    for i, lookup in enumerate(lookups):
        found = _select(lookup, option, since, until, f"_{i}").subquery(f"lookup_{i}")
        members.append(select(*found.c, literal_column(str(i)).label("lookup")))
    return Prepared(union_all(*members))


def _lookups(q: _Query) -> Iterator[tuple[str, dict[str, Any]]]:
    """(lookup, parameters) for every index lookup a search makes."""
    if q.uprn is not None:
        yield "uprn", {"key": q.uprn}
    if q.name:
        keys, prefixes = _query_name_keys(q.name)
        for key in keys:
            yield "name_key", {"key": key}
        for prefix in prefixes:
            if prefix.endswith(":"):  # a surname alone: its own index, read newest first
                yield "surname_key", {"key": prefix[:-1]}
            else:
                yield "name_key_range", {"low": prefix, "high": prefix + "~"}
    place = _address_key_parts(q.address) if q.address is not None else None
    if place is not None:
        street, number, following = place
        if number and following:
            yield "address_key", {"key": f"{street}:{number}:{following}"}
        else:
            # No street type: any; no number: every number in that street or building. A
            # key prefix, read as a range of the same index.
            prefix = f"{street}:{number}:" if number else f"{street}:"
            yield "address_key_range", {"low": prefix, "high": prefix + "~"}
    if q.postcode is not None:
        yield "postcode", {"key": q.postcode}


def _filters_of(q: _Query) -> dict[str, Any]:
    return {
        "org": q.organisation_id,
        "option": q.service_option,
        "since": q.since,
        "until": q.until,
    }


def _execute_all(
    conn: Connection, q: _Query, lookups: list[tuple[str, dict[str, Any]]]
) -> list[_Candidate]:
    """The rows of every lookup, lookup by lookup in order (each newest first): one
    statement however many lookups there are."""
    statement = _statements(
        tuple(lookup for lookup, _ in lookups),
        q.service_option is not None,
        q.since is not None,
        q.until is not None,
    )
    params = _filters_of(q)
    for i, (_, own) in enumerate(lookups):
        params.update({f"{name}_{i}": value for name, value in own.items()})
    rows = statement.execute(conn, params).rows
    # SQL does not promise the order of a UNION ALL's rows: put them back lookup by lookup
    # (the number each row ends with), each lookup's newest first, as its member ordered them
    rows.sort(key=lambda r: (r[-1], -r[2].timestamp()))
    return [_Candidate._make(r[:-1]) for r in rows]


def _address_score(q: _Query, row: _Candidate) -> tuple[float | None, bool]:
    if q.uprn is not None and row.uprn is not None:
        if q.uprn == row.uprn:
            return 1.0, True
        text = address_similarity(q.address, row.address) if q.address and row.address else 0.0
        return min(text, 0.5), False
    if q.address is not None and q.address.normalised and row.address:
        score = address_similarity(q.address, address_parts(row.address))
    elif q.postcode is not None and row.postcode is not None and q.address is None:
        return (1.0 if q.postcode == row.postcode else 0.0), False
    else:
        return None, False
    if q.postcode is not None and row.postcode is not None and q.postcode != row.postcode:
        score *= 0.8
    return round(score, 4), False


def _build_query(
    organisation_id: str,
    caller_name: str | None,
    address: str | None,
    uprn: int | str | None,
    postcode: str | None,
    service_option: str | None,
    since: datetime | None,
    until: datetime | None,
) -> _Query:
    since = as_utc(since) if since is not None else None
    until = as_utc(until) if until is not None else None
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since}) is after until ({until})")
    parts = address_parts(address) if address and address.strip() else None
    pc = normalise_postcode(postcode) if postcode else (parts.postcode if parts else None)
    return _Query(
        organisation_id=_require_org(organisation_id),
        name=normalise_name(caller_name) if caller_name else "",
        address=parts if parts and parts.normalised else None,
        uprn=_uprn(uprn),
        postcode=pc,
        service_option=service_option or None,
        since=since,
        until=until,
    )


_Scored = tuple[float, _Candidate, float | None, float | None, bool]


def _run(conn: Connection, q: _Query, *, typo_fallback: bool = True) -> list[_Scored]:
    """Candidates from every lookup, each scored once: (score, row, name, address, same UPRN).

    ``typo_fallback``: when a name finds hardly anything under its own keys, also try the keys
    of its one-slip spellings (a search by a call handler wants them; the duplicate check before
    every referral runs it for every call and relies on the address and UPRN as well)."""
    seen: dict[str, _Candidate] = {}
    lookups = list(_lookups(q))
    if not lookups:  # only an option and/or a time window: the newest calls that fit
        lookups = [("recent", {})]
    for row in _execute_all(conn, q, lookups):
        seen.setdefault(row.call_id, row)
    if typo_fallback and q.name and len(seen) < TYPO_FALLBACK_BELOW:
        # Hardly anything under the name's own keys: perhaps it was mistyped.
        tried = [p["key"] for lookup, p in lookups if lookup == "name_key"]
        typos = [("name_key", {"key": key}) for key in _typo_keys(q.name, tried)]
        for row in _execute_all(conn, q, typos) if typos else ():
            seen.setdefault(row.call_id, row)
    # Many candidates share a name or an address (repeat callers, busy properties): score
    # each distinct one once.
    names: dict[str | None, float | None] = {}
    addresses: dict[tuple[str | None, int | None, str | None], tuple[float | None, bool]] = {}
    by_name = bool(q.name)
    by_address = q.address is not None or q.uprn is not None or q.postcode is not None
    scored: list[_Scored] = []
    for row in seen.values():
        if row.caller_name in names:
            name_score = names[row.caller_name]
        else:
            name_score = names[row.caller_name] = (
                name_similarity(q.name, row.caller_name) if by_name and row.caller_name else None
            )
        place = (row.address, row.uprn, row.postcode)
        address = addresses.get(place)
        if address is None:
            address = addresses[place] = _address_score(q, row)
        address_score, same_uprn = address
        # The mean of the scores for what was searched for; unknown counts 0.5.
        if by_name and by_address:
            score = (
                (0.5 if name_score is None else name_score)
                + (0.5 if address_score is None else address_score)
            ) / 2
        elif by_name:
            score = 0.5 if name_score is None else name_score
        elif by_address:
            score = 0.5 if address_score is None else address_score
        else:
            score = 1.0
        scored.append((round(score, 4), row, name_score, address_score, same_uprn))
    return scored


def _best(q: _Query, scored: list[_Scored], min_score: float, limit: int) -> list[SearchHit]:
    """The ``limit`` best, as hits: higher score first, then the newer call."""
    kept = [c for c in scored if c[0] >= min_score]
    kept.sort(key=lambda c: (-c[0], -c[1].received_at.timestamp(), c[1].call_id))
    return [
        SearchHit(
            call_id=row.call_id,
            organisation_id=q.organisation_id,
            service_option=row.service_option,
            received_at=row.received_at,
            score=score,
            name_score=name_score,
            address_score=address_score,
            same_uprn=same_uprn,
        )
        for score, row, name_score, address_score, same_uprn in kept[:limit]
    ]


def _filters(q: _Query) -> tuple[str | None, datetime | None, datetime | None]:
    return q.service_option, q.since, q.until


def search(
    conn: Connection,
    *,
    organisation_id: str,
    caller_name: str | None = None,
    address: str | None = None,
    uprn: int | str | None = None,
    postcode: str | None = None,
    service_option: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    min_score: float = MIN_SCORE,
) -> list[SearchHit]:
    """Earlier calls of one organisation that fit, best first (5.2.7, 7.4.2).

    Search by any of ``caller_name``, ``address``, ``uprn`` and ``postcode`` (a postcode in the
    address text is used too), filtered by ``service_option`` and the time window
    ``since <= received_at <= until`` (aware datetimes; either may be left open). With none of
    the four, the newest calls in the option and window are listed (score 1). Ties are broken
    by the newer call first.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    q = _build_query(
        organisation_id, caller_name, address, uprn, postcode, service_option, since, until
    )
    return _best(q, _run(conn, q), min_score, limit)


def _is_duplicate(*, name: float | None, address: float | None) -> bool:
    if address is not None and address >= DUPLICATE_ADDRESS_THRESHOLD:
        return True
    return (
        name is not None
        and name >= DUPLICATE_NAME_THRESHOLD
        and (address is None or address >= DUPLICATE_ADDRESSES_DISAGREE_BELOW)
    )


def likely_duplicate(
    conn: Connection,
    *,
    organisation_id: str,
    service_option: str,
    at: datetime,
    caller_name: str | None = None,
    address: str | None = None,
    uprn: int | str | None = None,
    postcode: str | None = None,
    window: timedelta = DEFAULT_DUPLICATE_WINDOW,
    exclude_call_id: str | None = None,
) -> SearchHit | None:
    """The earlier call this one most likely repeats, or None (5.2.7: flagged before a second
    referral goes out to On-call Duty Staff).

    Looks at calls of the same organisation and Service Option received in ``[at - window,
    at]``; the rule and its thresholds are in the module documentation. ``exclude_call_id`` is
    the call being handled, if it is already indexed. It runs before every referral, so it looks
    a name up under its own keys only (not its one-slip spellings, as :func:`search` does): a
    repeat caller who spells their name differently is still found by the address or UPRN.
    """
    if window <= timedelta(0):
        raise ValueError("window must be longer than zero")
    at = as_utc(at)
    q = _build_query(
        organisation_id, caller_name, address, uprn, postcode, service_option, at - window, at
    )
    if q.address is None and q.uprn is None:
        # A postcode alone covers a dozen or more homes: it is no evidence of the same issue.
        q = _Query(q.organisation_id, q.name, None, None, None, *_filters(q))
    if not (q.name or q.address or q.uprn is not None):
        return None
    candidates = [
        c
        for c in _run(conn, q, typo_fallback=False)
        if c[1].call_id != exclude_call_id and _is_duplicate(name=c[2], address=c[3])
    ]
    best = _best(q, candidates, 0.0, 1)
    return best[0] if best else None
