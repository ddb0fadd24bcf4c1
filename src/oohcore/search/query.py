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
      spelling variants folded first (:func:`oohcore.search.addresses.sound_key`). So ``Jon Smyth``
      and ``John Smith`` share ``S530:J500``. A search also looks under the surname with the
      initial, with no forename, and with the two words swapped.
    * Addresses are normalised (:func:`oohcore.search.addresses.normalise_address`: case,
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
      with an edit distance and the sound key: :func:`oohcore.search.addresses.word_similarity`) and
      an address score (:func:`oohcore.search.addresses.address_similarity`; the same UPRN on both
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

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    insert,
    literal_column,
    select,
    union_all,
)

from oohcore.clock import as_utc
from oohcore.search.addresses import (
    AddressParts,
    address_parts,
    address_similarity,
    normalise_postcode,
)
from oohcore.search.index import _address_key_parts, _require_org, _uprn, call_search
from oohcore.search.names import _query_name_keys, _typo_keys, name_similarity, normalise_name
from oohcore.store.statements import Prepared

__all__ = [
    "CANDIDATES_PER_KEY",
    "DEFAULT_DUPLICATE_WINDOW",
    "DUPLICATE_ADDRESSES_DISAGREE_BELOW",
    "DUPLICATE_ADDRESS_THRESHOLD",
    "DUPLICATE_NAME_THRESHOLD",
    "MAX_LIMIT",
    "MIN_SCORE",
    "TYPO_FALLBACK_BELOW",
    "SearchHit",
    "likely_duplicate",
    "search",
]


DUPLICATE_ADDRESS_THRESHOLD = 0.9


DUPLICATE_NAME_THRESHOLD = 0.85


DUPLICATE_ADDRESSES_DISAGREE_BELOW = 0.6


DEFAULT_DUPLICATE_WINDOW = timedelta(hours=24)


CANDIDATES_PER_KEY = 50


MIN_SCORE = 0.5


TYPO_FALLBACK_BELOW = 3


MAX_LIMIT = 500


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
