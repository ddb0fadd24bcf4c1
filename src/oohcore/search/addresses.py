"""Addresses: UK postcodes, address normalisation and each organisation's gazetteer.

Call Handlers must validate the addresses of Callers and incidents so that they are recorded
precisely, against a database of current property addresses kept for each Participating
Organisation, and UPRNs must go with every referral (spec 7.11). Each organisation also gives a
means of telling whether an address falls within its boundaries (4.1.5b).

The gazetteer file
------------------

A gazetteer is a UTF-8 CSV file (Excel's "CSV UTF-8" is fine) with a header row. Columns, in
any order, names case-insensitive:

``uprn`` (required)
    The Unique Property Reference Number: a whole number of up to 12 digits, once per file.
``line1`` (required, not empty)
    First line: ``12 High Street``, ``Flat 3, Kestrel House``, ``The Old Forge``.
``line2`` (required column, may be empty)
    Second line: the street for a flat or named building, or a locality.
``town`` (required, not empty)
``postcode`` (required)
    A valid UK postcode in any spacing or case; it is stored as ``SW1A 1AA``.
``ward`` (optional)
    The ward or sub-area name (4.1.5a), shown to the Call Handler.
``owner`` (optional)
    Property ownership where the organisation keeps it (7.11), e.g. ``council``,
    ``leasehold``, ``housing association``, ``private``: free text, used for instance to decide
    whether a repair order will be issued. The engine gives the matched property's owner to
    the decision as the built-in field ``property_owner`` (docs/rulesets.md).

Any other column is refused (a misspelt ``owner`` would otherwise be dropped in silence).
Blank lines are skipped. Every problem found is reported at once, each with the file, line and
column and what to do (:class:`GazetteerError`); a bad file loads nothing, so an organisation's
current gazetteer stays in use until a corrected file is given.

Matching
--------

:func:`normalise_address` upper-cases, removes punctuation (``St. John's`` → ``SAINT JOHNS``),
expands common abbreviations (``Rd`` → ``ROAD``; ``St`` → ``STREET`` after a street name and
``SAINT`` before one; ``Apt``/``Apartment`` → ``FLAT``) and joins split house numbers
(``12 a`` → ``12A``). :func:`address_parts` then finds the flat, the house number and the
words; :func:`address_similarity` compares two addresses: the house number counts for 35% and
the words for 65% (street-type words such as ROAD or HOUSE weigh less than names; words are
compared with an edit distance and a sound-alike key, so ``Hihg`` still meets ``High``); a
different flat number in the same building lowers the score.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from oohcore.errors import OohcoreError

__all__ = [
    "APOSTROPHES_RE",
    "MAX_QUERY_CHARS",
    "MAX_UPRN_DIGITS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "AddressParts",
    "InvalidPostcode",
    "address_parts",
    "address_similarity",
    "ascii_upper",
    "edit_distance",
    "is_postcode",
    "normalise_address",
    "normalise_postcode",
    "postcode_sector",
    "sound_key",
    "word_similarity",
]


# The published format rules (letters excluded in each position) for the six outward-code
# shapes A9, A99, AA9, AA99, A9A, AA9A, plus the inward code 9AA; GIR 0AA is the one exception.
_OUTWARD = (
    r"(?:[A-PR-UWYZ][0-9]{1,2}"
    r"|[A-PR-UWYZ][A-HK-Y][0-9]{1,2}"
    r"|[A-PR-UWYZ][0-9][A-HJKPSTUW]"
    r"|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY])"
)


_INWARD = r"[0-9][ABD-HJLNP-UW-Z]{2}"


_POSTCODE_RE = re.compile(rf"^(?:({_OUTWARD})({_INWARD})|(GIR)(0AA))$")


_POSTCODE_IN_TEXT_RE = re.compile(rf"\b({_OUTWARD}) ?({_INWARD})\b")


_SPACES_RE = re.compile(r"\s+")


class InvalidPostcode(OohcoreError, ValueError):
    """Text that is not a UK postcode."""


def normalise_postcode(text: str) -> str:
    """``"sw1a1aa"`` → ``"SW1A 1AA"``; raise :class:`InvalidPostcode` if it is not a postcode."""
    compact = _SPACES_RE.sub("", text).upper()
    m = _POSTCODE_RE.match(compact)
    if not m:
        raise InvalidPostcode(
            f"{text!r} is not a UK postcode: a postcode is an outward code, a space, then a "
            "digit and two letters, e.g. 'SW1A 1AA' or 'EB1 4QT'; check it with the caller"
        )
    outward, inward = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return f"{outward} {inward}"


def is_postcode(text: str) -> bool:
    try:
        normalise_postcode(text)
    except InvalidPostcode:
        return False
    return True


def postcode_sector(postcode: str) -> str:
    """``"EB1 4QT"`` → ``"EB1 4"``: the sector a postcode unit belongs to."""
    return normalise_postcode(postcode)[:-2]


_ABBREVIATIONS = {
    "RD": "ROAD",
    "STR": "STREET",
    "AVE": "AVENUE",
    "AV": "AVENUE",
    "AVN": "AVENUE",
    "CL": "CLOSE",
    "CT": "COURT",
    "CRT": "COURT",
    "CRES": "CRESCENT",
    "CRESC": "CRESCENT",
    "DR": "DRIVE",
    "DRV": "DRIVE",
    "GDNS": "GARDENS",
    "GDN": "GARDEN",
    "GRN": "GREEN",
    "GR": "GROVE",
    "GRO": "GROVE",
    "GRV": "GROVE",
    "LN": "LANE",
    "PL": "PLACE",
    "SQ": "SQUARE",
    "TER": "TERRACE",
    "TERR": "TERRACE",
    "TCE": "TERRACE",
    "PK": "PARK",
    "PDE": "PARADE",
    "WY": "WAY",
    "WLK": "WALK",
    "MWS": "MEWS",
    "YD": "YARD",
    "HTS": "HEIGHTS",
    "HSE": "HOUSE",
    "BLDG": "BUILDING",
    "BLDGS": "BUILDINGS",
    "EST": "ESTATE",
    "MT": "MOUNT",
    "HWY": "HIGHWAY",
    "BVD": "BOULEVARD",
    "BLVD": "BOULEVARD",
    "ESP": "ESPLANADE",
    "CTR": "CENTRE",
    "CENTER": "CENTRE",
    "COTTS": "COTTAGES",
    "UPR": "UPPER",
    "LWR": "LOWER",
    "GT": "GREAT",
    "LT": "LITTLE",
    "NTH": "NORTH",
    "STH": "SOUTH",
    "APT": "FLAT",
    "APTS": "FLAT",
    "APARTMENT": "FLAT",
    "FLT": "FLAT",
    "STE": "SAINTE",
}


# Words that say what kind of place a thing is rather than which one: they count for less.
_GENERIC_WORDS = frozenset(
    [
        "ROAD",
        "STREET",
        "AVENUE",
        "CLOSE",
        "COURT",
        "CRESCENT",
        "DRIVE",
        "GARDENS",
        "GARDEN",
        "GREEN",
        "GROVE",
        "LANE",
        "PLACE",
        "SQUARE",
        "TERRACE",
        "PARK",
        "PARADE",
        "WAY",
        "WALK",
        "MEWS",
        "YARD",
        "HEIGHTS",
        "HOUSE",
        "BUILDING",
        "BUILDINGS",
        "ESTATE",
        "MOUNT",
        "HIGHWAY",
        "BOULEVARD",
        "ESPLANADE",
        "CENTRE",
        "COTTAGES",
        "HILL",
        "ROW",
        "VIEW",
        "RISE",
        "END",
        "LODGE",
        "TOWER",
        "BLOCK",
        "NORTH",
        "SOUTH",
        "EAST",
        "WEST",
        "UPPER",
        "LOWER",
    ]
)


_STOP_WORDS = frozenset({"THE", "OF", "AND", "AT", "NO", "NUMBER"})


APOSTROPHES_RE = re.compile(r"['’`‘]")
"""Apostrophes of every kind, dropped when names and addresses are normalised (St John's → ST JOHNS)."""


_RANGE_RE = re.compile(r"(\d)\s*-\s*(\d)")


_SEGMENTS_RE = re.compile(r"[,;\n]+")


_PUNCTUATION_RE = re.compile(r"(?<!\d)-|-(?!\d)|[^A-Z0-9\-]+")


_NUMBER_RE = re.compile(r"^\d+[A-Z]?(?:-\d+[A-Z]?)?$")


_NUMERIC_RE = re.compile(r"^\d+")


def ascii_upper(text: str) -> str:
    """``text`` in upper case with accents removed (Zoë → ZOE): the first step of normalising
    an address or a caller's name (shared with :mod:`oohcore.search.names`)."""
    if text.isascii():
        return text.upper()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


@lru_cache(maxsize=65536)
def normalise_address(text: str) -> str:
    """One canonical spelling of an address: upper case, no punctuation, abbreviations expanded.

    >>> normalise_address("12a High St., St. John's")
    '12A HIGH STREET SAINT JOHNS'
    """
    s = ascii_upper(text)
    s = APOSTROPHES_RE.sub("", s)  # St John's → ST JOHNS
    s = s.replace("&", " AND ")
    s = _RANGE_RE.sub(r"\1-\2", s)  # a range of numbers: 12-14
    out: list[str] = []
    for segment in _SEGMENTS_RE.split(s):  # "St" opening a comma-separated part is Saint
        raw = _PUNCTUATION_RE.sub(" ", segment).split()
        for i, tok in enumerate(raw):
            nxt = raw[i + 1] if i + 1 < len(raw) else None
            if tok == "ST":
                # "St" ending a street name is Street; before a name it is Saint.
                prev = out[-1] if out and i > 0 else None
                starts_name = (
                    prev is None
                    or prev == "FLAT"
                    or prev in _GENERIC_WORDS
                    or bool(_NUMBER_RE.match(prev))
                )
                tok = "SAINT" if starts_name and nxt is not None else "STREET"
            elif tok in ("NO", "NUMBER") and nxt is not None and _NUMBER_RE.match(nxt):
                continue  # "No. 12" → 12
            else:
                tok = _ABBREVIATIONS.get(tok, tok)
            if len(tok) == 1 and tok.isalpha() and i > 0 and out and out[-1].isdigit():
                out[-1] += tok  # "12 a" → 12A
                continue
            out.append(tok)
    return " ".join(out)


@dataclass(frozen=True, slots=True)
class AddressParts:
    """The pieces of a normalised address that matching looks at."""

    normalised: str
    flat: str | None
    number: str | None
    words: tuple[str, ...]
    postcode: str | None

    @property
    def number_digits(self) -> str | None:
        """The digits of the house number (``12A`` → ``12``)."""
        if self.number is None:
            return None
        m = _NUMERIC_RE.match(self.number)
        return m.group(0) if m else None


@lru_cache(maxsize=65536)
def address_parts(text: str) -> AddressParts:
    """Split an address into flat, house number, words and (if written in it) postcode."""
    normalised = normalise_address(text)
    postcode: str | None = None
    m = _POSTCODE_IN_TEXT_RE.search(normalised)
    if m:
        postcode = f"{m.group(1)} {m.group(2)}"
        normalised = (normalised[: m.start()] + normalised[m.end() :]).strip()
        normalised = " ".join(normalised.split())
    tokens = normalised.split()
    flat: str | None = None
    numbers: list[str] = []
    words: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok == "FLAT" and nxt is not None and (_NUMBER_RE.match(nxt) or len(nxt) == 1):
            if flat is None:
                flat = nxt
            i += 2
            continue
        if _NUMBER_RE.match(tok):
            numbers.append(tok)
        elif tok not in _STOP_WORDS and tok != "FLAT":
            words.append(tok)
        i += 1
    number: str | None = None
    if numbers:
        if flat is None and len(numbers) >= 2:
            flat, number = numbers[0], numbers[-1]  # "3, 12 High Street": flat 3 at number 12
        else:
            number = numbers[0]
    return AddressParts(normalised, flat, number, tuple(words), postcode)


@lru_cache(maxsize=65536)
def sound_key(word: str) -> str:
    """A sound-alike key (Soundex with English spelling variants folded first).

    ``SMITH``/``SMYTH`` → ``S530``, ``JOHN``/``JON`` → ``J500``, ``CATHERINE``/``KATHRYN`` →
    ``K365``, ``PHILIP``/``FILIP`` → ``F410``. Words starting with a vowel share the initial A.
    """
    w = "".join(ch for ch in ascii_upper(word) if "A" <= ch <= "Z")
    if not w:
        return ""
    for old, new in (("KN", "N"), ("WR", "R"), ("PH", "F"), ("PS", "S"), ("GN", "N")):
        if w.startswith(old):
            w = new + w[len(old) :]
            break
    first = w[0]
    if first == "C":
        first = "S" if len(w) > 1 and w[1] in "EIY" else "K"
    elif first == "G" and len(w) > 1 and w[1] in "EIY":
        first = "J"
    elif first in "AEIOUY":
        first = "A"
    codes = []
    last = _SOUNDEX.get(w[0], "")
    for ch in w[1:]:
        code = _SOUNDEX.get(ch, "")
        if code and code != last:
            codes.append(code)
        if ch not in "HW":  # H and W do not separate equal codes; vowels do
            last = code
    return (first + "".join(codes) + "000")[:4]


_SOUNDEX = {
    **dict.fromkeys("BFPV", "1"),
    **dict.fromkeys("CGJKQSXZ", "2"),
    **dict.fromkeys("DT", "3"),
    "L": "4",
    **dict.fromkeys("MN", "5"),
    "R": "6",
}


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    if a == b:
        return 0
    if not a or not b:
        return max(len(a), len(b))
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        ai = a[i - 1]
        for j in range(1, len(b) + 1):
            cost = 0 if ai == b[j - 1] else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ai == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
        prev2, prev = prev, cur
    return prev[len(b)]


@lru_cache(maxsize=65536)
def word_similarity(a: str, b: str) -> float:
    """0..1: 1 for equal words, 0.9 for sound-alikes, else 1 − 1.5 × edits/length (0 below 0.5).

    The factor 1.5 keeps short different words apart (MILL/HILL: 0.625) while a sound-alike
    typo (HIHG/HIGH, SMYTH/SMITH) scores 0.9. Sound-alikes must also be within half their
    length in edits, because Soundex alone is coarse (HIHG and HOUSE share H200).
    """
    if a == b:
        return 1.0
    longer = max(len(a), len(b))
    if 2 * abs(len(a) - len(b)) > longer:
        # at least that many edits: more than half the length, so 0 either way; and the
        # edit distance of a 100,000-letter "word" is never worked out (issue 7, 5)
        return 0.0
    edits = edit_distance(a, b) / longer
    sim = 1.0 - 1.5 * edits
    if edits <= 0.5 and len(a) > 1 and len(b) > 1 and sound_key(a) == sound_key(b):
        sim = max(sim, 0.9)
    return sim if sim >= 0.5 else 0.0


def _weights(words: tuple[str, ...]) -> list[float]:
    """Names weigh 1 and street-type words 0.3; everything after the first complete street or
    building name (a name then a street-type word: locality, town) weighs 0.2."""
    out: list[float] = []
    seen_name = trailing = False
    for w in words:
        if trailing:
            out.append(0.2)
        elif w in _GENERIC_WORDS:
            out.append(0.3)
            trailing = seen_name
        else:
            out.append(1.0)
            seen_name = True
    return out


def _coverage(words: tuple[str, ...], others: tuple[str, ...]) -> float:
    """How much of ``words`` (by weight) is found in ``others``."""
    if not words:
        return 1.0
    if not others:
        return 0.0
    total = 0.0
    weights = _weights(words)
    for w, wt in zip(words, weights, strict=True):
        total += wt * max(word_similarity(w, o) for o in others)
    return total / sum(weights)


def address_similarity(query: str | AddressParts, candidate: str | AddressParts) -> float:
    """How well ``candidate`` fits what was said in ``query``, from 0 to 1.

    House number 35%, words 65%. For the words, each side's words are looked for in the other
    (names weigh 1, street-type words 0.3, words after the street or building name — locality,
    town — 0.2); the better of the two directions counts 60% and the worse 40%, so a town
    written on one side only costs little. Then × 0.75 when the two give different flats,
    × 0.9 when only one gives a flat.
    """
    q = query if isinstance(query, AddressParts) else address_parts(query)
    c = candidate if isinstance(candidate, AddressParts) else address_parts(candidate)
    if not q.normalised or not c.normalised:
        return 0.0
    if q.normalised == c.normalised:
        return 1.0
    q_flat, q_number, c_flat, c_number = q.flat, q.number, c.flat, c.number
    # "3 Kestrel House" against "Flat 3, Kestrel House": a lone number meets a lone flat.
    if q_flat is None and c_number is None and q_number is not None and c_flat is not None:
        q_flat, q_number = q_number, None
    elif c_flat is None and q_number is None and c_number is not None and q_flat is not None:
        c_flat, c_number = c_number, None
    if q_number is None and c_number is None:
        number = 1.0
    elif q_number is None or c_number is None:
        number = 0.5
    elif q_number == c_number:
        number = 1.0
    elif _NUMERIC_RE.match(q_number) and _digits(q_number) == _digits(c_number):
        number = 0.5  # 12 and 12A
    else:
        number = 0.0
    q_in_c, c_in_q = _coverage(q.words, c.words), _coverage(c.words, q.words)
    words = 0.6 * max(q_in_c, c_in_q) + 0.4 * min(q_in_c, c_in_q)
    score = 0.35 * number + 0.65 * words
    if q_flat is not None and c_flat is not None:
        if q_flat != c_flat:
            score *= 0.75
    elif q_flat is not None or c_flat is not None:
        score *= 0.9
    return round(score, 4)


def _digits(number: str) -> str:
    m = _NUMERIC_RE.match(number)
    return m.group(0) if m else number


REQUIRED_COLUMNS = ("uprn", "line1", "line2", "town", "postcode")


OPTIONAL_COLUMNS = ("ward", "owner")


MAX_UPRN_DIGITS = 12


MAX_QUERY_CHARS = 500  # of an address matched against the gazetteer; the rest is not read
