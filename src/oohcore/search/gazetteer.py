"""Each organisation's gazetteer: its address records (UPRN, ward, owner) read from
``gazetteer.csv``, matched against what was typed, and whether an address is in the area.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from oohcore.errors import OohcoreError, Problem
from oohcore.search.addresses import (
    MAX_QUERY_CHARS,
    MAX_UPRN_DIGITS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    AddressParts,
    InvalidPostcode,
    address_parts,
    address_similarity,
    normalise_address,
    normalise_postcode,
    sound_key,
    word_similarity,
)

__all__ = [
    "AddressMatch",
    "AddressRecord",
    "Gazetteer",
    "GazetteerError",
]


class GazetteerError(OohcoreError):
    """A gazetteer file could not be loaded. ``problems`` says where and what; nothing loaded."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.col, p.message))
        shown = self.problems[:25]
        lines = "\n".join(str(p) for p in shown)
        more = len(self.problems) - len(shown)
        tail = f"\n… and {more} more" if more else ""
        super().__init__(
            f"{len(self.problems)} problem(s) in the gazetteer; nothing was loaded:\n{lines}{tail}"
        )


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """One property of the gazetteer (7.11)."""

    uprn: int
    line1: str
    line2: str
    town: str
    postcode: str
    ward: str = ""
    owner: str = ""

    @property
    def label(self) -> str:
        """The address on one line, e.g. ``Flat 3, Kestrel House, Heron Way, Eastbrook, EB1 4QT``."""
        return ", ".join(p for p in (self.line1, self.line2, self.town, self.postcode) if p)


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """A gazetteer address that fits what the Caller said, with a score from 0 to 1."""

    uprn: int
    score: float
    record: AddressRecord


class Gazetteer:
    """An organisation's property addresses (7.11), its postcodes (4.1.5b) and a matcher.

    Build one with :meth:`from_csv` (or from :class:`AddressRecord` objects). It is immutable:
    a new file gives a new ``Gazetteer``.
    """

    def __init__(self, records: Iterable[AddressRecord], *, source: str = "<records>") -> None:
        self.source = source
        self._records: tuple[AddressRecord, ...] = tuple(records)
        self._by_uprn: dict[int, AddressRecord] = {}
        duplicates = [r.uprn for r in self._records if self._by_uprn.setdefault(r.uprn, r) is not r]
        if duplicates:
            raise GazetteerError(
                [
                    Problem(source, 0, 0, f"UPRN {u} appears more than once", "gazetteer.duplicate")
                    for u in duplicates
                ]
            )
        # Towns are left out of matching: every address has one, so they tell nothing apart.
        self._parts = [address_parts(f"{r.line1}, {r.line2}") for r in self._records]
        self._town_words = frozenset(
            w for r in self._records for w in normalise_address(r.town).split()
        )
        self._by_postcode: dict[str, list[int]] = defaultdict(list)
        self._by_word: dict[str, set[int]] = defaultdict(set)
        self._by_sound: dict[str, set[str]] = defaultdict(set)
        for i, (r, parts) in enumerate(zip(self._records, self._parts, strict=True)):
            self._by_postcode[r.postcode].append(i)
            for w in parts.words:
                self._by_word[w].add(i)
        for w in self._by_word:
            self._by_sound[sound_key(w)].add(w)
        self._postcodes = frozenset(self._by_postcode)

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_csv(cls, path: str | Path) -> Gazetteer:
        """Load a gazetteer file (see the module documentation for its columns).

        Raises :class:`GazetteerError` listing every problem, each with file, line and column.
        """
        name = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise GazetteerError(
                [
                    Problem(
                        name,
                        0,
                        0,
                        f"cannot read the gazetteer file ({exc.strerror or exc}); check the path",
                        "gazetteer.unreadable",
                    )
                ]
            ) from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise GazetteerError(
                [
                    Problem(
                        name,
                        line,
                        col,
                        "the file is not UTF-8 text; save it as 'CSV UTF-8 (comma delimited)'",
                        "gazetteer.encoding",
                    )
                ]
            ) from None
        return cls(_parse_csv(text, name), source=name)

    # -- looking things up ---------------------------------------------------------------------

    @property
    def records(self) -> tuple[AddressRecord, ...]:
        return self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[AddressRecord]:
        return iter(self._records)

    @property
    def postcodes(self) -> frozenset[str]:
        return self._postcodes

    @property
    def wards(self) -> frozenset[str]:
        """The ward names used in the file (4.1.5a)."""
        return frozenset(r.ward for r in self._records if r.ward)

    def get(self, uprn: int) -> AddressRecord | None:
        return self._by_uprn.get(uprn)

    def addresses_at(self, postcode: str) -> list[AddressRecord]:
        """Every address at a postcode (raises :class:`InvalidPostcode` for a non-postcode)."""
        return [self._records[i] for i in self._by_postcode.get(normalise_postcode(postcode), [])]

    def in_area(self, postcode: str) -> bool:
        """Whether the postcode belongs to this organisation's area (4.1.5b).

        True when at least one property in the gazetteer has that postcode. False flags the
        address for the Call Handler to check: it may belong to a neighbouring borough (4.1.5c),
        or be a new property the gazetteer does not list yet. Raises :class:`InvalidPostcode`
        for text that is not a postcode.
        """
        return normalise_postcode(postcode) in self._postcodes

    def match(
        self,
        text: str,
        postcode: str | None = None,
        *,
        limit: int = 5,
        min_score: float = 0.5,
    ) -> list[AddressMatch]:
        """Gazetteer addresses that fit ``text``, best first (7.11).

        ``postcode`` (or a postcode written in ``text``) adds every address at that postcode to
        the candidates, and the score becomes 85% address and 15% postcode agreement (same
        unit 1, same sector 0.5), so a right address under a misheard postcode is still found.
        """
        if not text.strip():
            raise ValueError("give some address text; addresses_at(postcode) lists a postcode")
        # an address is a line or two: the work of matching is bounded whatever is typed
        query = address_parts(text[:MAX_QUERY_CHARS])
        pc = normalise_postcode(postcode) if postcode else query.postcode
        without_town = tuple(w for w in query.words if w not in self._town_words)
        if without_town and without_town != query.words:
            query = address_parts(
                " ".join(t for t in query.normalised.split() if t not in self._town_words)
            )
        candidates = set(self._candidates(query))
        if pc is not None:
            candidates.update(self._by_postcode.get(pc, ()))
        return self._score(query, pc, candidates, min_score)[:limit]

    def _candidates(self, query: AddressParts, cap: int = 400) -> list[int]:
        hits: dict[int, float] = defaultdict(float)
        total = len(self._records) or 1
        for w in query.words:
            similar = {w} if w in self._by_word else set()
            similar |= self._by_sound.get(sound_key(w), set())
            if not similar:
                similar = {v for v in self._by_word if word_similarity(w, v) >= 0.75}
            for v in similar:
                postings = self._by_word.get(v, set())
                idf = 1.0 + (total / (1 + len(postings))) ** 0.5
                for i in postings:
                    hits[i] += idf
        ranked = sorted(hits, key=lambda i: -hits[i])
        return ranked[:cap]

    def _score(
        self, query: AddressParts, pc: str | None, indexes: Iterable[int], min_score: float
    ) -> list[AddressMatch]:
        out = []
        for i in indexes:
            record = self._records[i]
            score = address_similarity(query, self._parts[i])
            if pc is not None:
                if record.postcode == pc:
                    agreement = 1.0
                elif record.postcode[:-2] == pc[:-2]:
                    agreement = 0.5
                else:
                    agreement = 0.0
                score = 0.85 * score + 0.15 * agreement
            if score >= min_score:
                out.append(AddressMatch(record.uprn, round(score, 4), record))
        out.sort(key=lambda m: (-m.score, m.record.postcode, m.uprn))
        return out


def _parse_csv(text: str, path: str) -> list[AddressRecord]:
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""))

    def problem(line: int, col: int, message: str, code: str) -> None:
        problems.append(Problem(path, line, col, message, f"gazetteer.{code}"))

    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise GazetteerError(
            [Problem(path, 1, 0, f"the header row is not valid CSV ({exc})", "gazetteer.csv")]
        ) from None
    if header is None or not any(h.strip() for h in header):
        raise GazetteerError(
            [
                Problem(
                    path,
                    1,
                    0,
                    "the file is empty; the first row must name the columns: "
                    + ",".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS),
                    "gazetteer.empty",
                )
            ]
        )
    columns: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = raw.strip().lower()
        if name in columns:
            problem(1, index + 1, f"column {name!r} appears twice; keep one", "header")
        elif name in REQUIRED_COLUMNS or name in OPTIONAL_COLUMNS:
            columns[name] = index
        else:
            problem(
                1,
                index + 1,
                f"unknown column {raw!r}: the columns are "
                + ", ".join(REQUIRED_COLUMNS)
                + " and optionally "
                + ", ".join(OPTIONAL_COLUMNS)
                + "; rename or remove it",
                "header",
            )
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            problem(1, 0, f"the required column {name!r} is missing from the header row", "header")
    if problems:
        raise GazetteerError(problems)

    records: list[AddressRecord] = []
    first_line: dict[int, int] = {}
    width = len(header)
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problem(reader.line_num, 0, f"this row is not valid CSV ({exc})", "csv")
            line = reader.line_num + 1
            continue
        this_line, line = line, reader.line_num + 1
        if not any(field.strip() for field in row):
            continue
        if len(row) != width:
            problem(
                this_line,
                min(len(row), width) + 1,
                f"this row has {len(row)} fields but the header has {width}; a comma inside a "
                'field needs the field in double quotes, e.g. "Flat 3, Kestrel House"',
                "fields",
            )
            continue

        def field(name: str, row: list[str] = row) -> str:
            i = columns.get(name)
            return " ".join(row[i].split()) if i is not None else ""

        uprn_text = field("uprn")
        uprn: int | None = None
        if (
            not (uprn_text.isascii() and uprn_text.isdigit())
            or len(uprn_text.lstrip("0") or "0") > MAX_UPRN_DIGITS
        ):
            problem(
                this_line,
                columns["uprn"] + 1,
                f"uprn {uprn_text!r} is not a UPRN: write the whole number of up to "
                f"{MAX_UPRN_DIGITS} digits, with no spaces or letters",
                "uprn",
            )
        else:
            uprn = int(uprn_text)
            if uprn in first_line:
                problem(
                    this_line,
                    columns["uprn"] + 1,
                    f"UPRN {uprn} is already on line {first_line[uprn]}; each property appears "
                    "once",
                    "duplicate",
                )
            else:
                first_line[uprn] = this_line
        line1 = field("line1")
        if not line1:
            problem(
                this_line,
                columns["line1"] + 1,
                "line1 is empty: give the first line of the address, e.g. '12 High Street'",
                "line1",
            )
        town = field("town")
        if not town:
            problem(this_line, columns["town"] + 1, "town is empty: give the post town", "town")
        postcode_text = field("postcode")
        postcode = ""
        try:
            postcode = normalise_postcode(postcode_text)
        except InvalidPostcode:
            problem(
                this_line,
                columns["postcode"] + 1,
                f"postcode {postcode_text!r} is not a valid UK postcode (e.g. 'SW1A 1AA'); "
                "correct it",
                "postcode",
            )
        if uprn is not None and line1 and town and postcode:
            records.append(
                AddressRecord(
                    uprn=uprn,
                    line1=line1,
                    line2=field("line2"),
                    town=town,
                    postcode=postcode,
                    ward=field("ward"),
                    owner=field("owner"),
                )
            )
    if problems:
        raise GazetteerError(problems)
    if not records:
        raise GazetteerError(
            [Problem(path, 2, 0, "the file has a header but no addresses", "gazetteer.empty")]
        )
    return records
