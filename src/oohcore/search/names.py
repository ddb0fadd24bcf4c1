"""Names for the earlier-call search: a caller's name normalised, its keys (forename, surname,
slips of typing) and how alike two names are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from oohcore.search.addresses import (
    APOSTROPHES_RE,
    ascii_upper,
    sound_key,
    word_similarity,
)

__all__ = [
    "TYPO_LOOKUPS",
    "name_similarity",
    "normalise_name",
]


TYPO_LOOKUPS = 8


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
