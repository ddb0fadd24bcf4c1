"""Benchmark: earlier-call search latency (spec 5.2.7, 7.4.2) over ten years of a consortium.

The store holds 3.5 million calls: ten years of a consortium handling 350,000 calls a year
(spec 2.1.9) for 11 Participating Organisations of different sizes. Everything is generated
from a fixed seed:

* each organisation has its own streets, house numbers, blocks of flats, UPRNs and postcodes;
  calls fall on properties unevenly (a few properties call often, as repairs do);
* service options follow a realistic mix (housing repairs about 40%, noise, social services,
  anti-social behaviour, highways, stray dogs …);
* caller names come from common UK forenames and surnames with a long tail (Zipf-like), 8% of
  callers give no name and 3% of names were typed with a mistake;
* 80% of calls carry the gazetteer address with its UPRN and postcode; the rest are free text
  (abbreviated, lower-case, a typo, no house number, "3 Kestrel House" for a flat);
* call times spread over ten years, weighted towards the evening and night.

The index rows are made with the same row builder :func:`oohcore.search.index_call` uses
(names and addresses are normalised once per distinct value, as the library's caches would), by
two worker processes in chunks of 100,000 calls, and bulk inserted with the driver's
``executemany`` (one call per chunk) inside one transaction (``journal_mode=WAL``;
``synchronous=OFF`` only for that load); the indexes are created after the load, and rows are
read back through SQLAlchemy to check their stored form. The built database is cached
(``$OOHCORE_BENCH_SEARCH_DB``, default ``/tmp/oohcore-bench/search-<schema-hash>.sqlite``) and
rebuilt when the table definition, the functions that derive the keys, the generator or the
size changes; ``ANALYZE`` is not run, so the query planner works without statistics, as in a
fresh deployment.

Then 2,000 searches, 500 of each kind, are timed one by one with ``time.perf_counter`` around
the public :func:`oohcore.search.search` (SQL and scoring), after 100 warm-up searches:

``followup``  a caller ringing back: their name with one typo, the address as they say it,
              the service option and the last 7 days;
``address``   an address as said, over all time;
``uprn``      a UPRN, over all time;
``name``      a full name (half of them with a typo) over all time.

Each search is for a real earlier call; ``found_*`` (measured afterwards, untimed, with
``limit=500``) says how often that call was among the hits: a typo that changes the sound key
of both the name and the street is missed by design, and a busy address or a very common name
over ten years is answered from its newest calls per key.

Prints one JSON line: ``{"p99_ms": …, "calls": …, "p50_ms": …, …}`` with, besides, the p99 of
each kind, ``p99_cpu_ms`` (the process's CPU time per search: what a search costs without the
waits for a core that other processes on the machine cause), the load average while the
searches ran, the ``found_*`` rates and, when the database was built, ``build_s``.
Run: ``.venv/bin/python bench/search.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import multiprocessing
import os
import random
import string
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.schema import CreateIndex, CreateTable

from oohcore.search import addresses
from oohcore.search import index as s_index
from oohcore.search import names as s_names
from oohcore.search import query as s_query
from oohcore.search.index import call_search

GENERATOR_VERSION = 3
SEED = 20_260_522
CALLS = 3_500_000
QUERIES = 2_000
WARM_UP = 100
START = datetime(2016, 1, 1, tzinfo=UTC)
YEARS = 10
CHUNK = 100_000  # calls generated per task, inserted with one executemany

# Relative sizes of the 11 organisations (boroughs and housing providers).
ORGANISATIONS = {
    "po-ashford-vale": 16,
    "po-brookmere": 14,
    "po-carlton-heath": 12,
    "po-dunmore": 11,
    "po-eastbrook": 10,
    "po-fairlow": 9,
    "po-greyhaven": 8,
    "po-hollins-homes": 7,
    "po-irwell-housing": 5,
    "po-kestrel-trust": 4.5,
    "po-lindum": 3.5,
}

OPTIONS = {
    "housing-repairs": 40,
    "noise": 13,
    "social-services": 8,
    "anti-social-behaviour": 5,
    "homeless-families": 4,
    "highways": 4,
    "rubbish-and-waste": 4,
    "stray-dogs": 3,
    "street-lighting": 3,
    "building-alarms": 3,
    "general-information": 3,
    "parks": 2,
    "trees": 2,
    "parking": 2,
    "dangerous-structures": 1,
    "street-cleansing": 1,
    "graffiti": 1,
    "lone-worker": 1,
}


def words(text: str) -> list[str]:
    return text.split()


FORENAMES = words(
    """James John Robert Michael David William Richard Thomas Christopher Daniel Paul
Mark George Steven Andrew Kenneth Joshua Kevin Brian Edward Ronald Timothy Jason Jeffrey Ryan
Jacob Gary Nicholas Eric Jonathan Stephen Peter Harry Oliver Jack Charlie Alfie Noah Leo Oscar
Archie Muhammad Mohammed Ahmed Ali Hassan Omar Yusuf Ibrahim Adam Mary Patricia Jennifer Linda
Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Margaret Sandra Ashley Emily Donna
Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Sharon Laura Emma Olivia Amelia Isla Ava
Mia Sophie Grace Lily Chloe Ella Freya Poppy Charlotte Fatima Aisha Zainab Maryam Priya Anjali
Sunita Deepak Rajesh Sanjay Amit Ravi Chukwuemeka Oluwaseun Adebayo Ngozi Chiamaka Kwame Abena
Tomasz Piotr Katarzyna Agnieszka Andrzej Marta Ion Elena Andrei Siobhan Niamh Ciaran Sean Aoife
Declan Bridget Kathleen Catherine Katherine Kathryn Philip Phillip Stuart Stewart Jon Jonathon
Ann Anne Anna Joan Jean Jane Joanne Gillian Jill Lesley Leslie Tracey Tracy Dawn Hazel Brenda
Shirley Doreen Maureen Pauline Colin Keith Trevor Graham Derek Dennis Barry Terry Clive Nigel"""
)

SURNAMES = words(
    """Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts
Robinson Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson
Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James
Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter
Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson Simpson Ellis
Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain Campbell
Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins
Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews Stewart Elliott
Reynolds Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole Atkinson Bradley Spencer
Gill Dawson Ball Burton OBrien Watts Rose Booth Perry Ryan Grant Wells Armstrong Francis Rees
Hayes Hart Hudson Newman Barrett Webster Hunter Gregory Carr Lowe Page Marsh Riley Dunn Woods
Parsons Berry Stone Reid Holland Hawkins Harding Porter Robertson Newton Oconnor Kennedy Mcdonald
Okafor Adeyemi Mensah Owusu Nowak Kowalski Wisniewski Popescu Nguyen Chen Wang Li Zhang Yilmaz
Kaya Demir Hussein Mahmood Iqbal Rahman Chowdhury Miah Uddin Sharma Kumar Gupta Shah Mistry
Desouza Dacosta Fernandes Pereira Oliveira Santos Ferreira Smyth Thomson Philips Mcdonnell
Macdonald Obrien Oneill Byrne Doyle Quinn Brennan Gallagher Doherty Kavanagh"""
)

NAME_WORDS = words(
    """Mill Church Kings Queens Heron Kestrel Station Park Victoria Albert Oak Elm Ash
Beech Willow Cedar Chestnut Maple Holly Hawthorn Rowan Birch Sycamore Poplar Laurel Meadow Field
Brook River Bridge Wharf Canal Lock Dock Market High Manor Grange Abbey Priory Chapel Vicarage
Rectory School College Hospital Castle Tower Windmill Forge Foundry Granary Orchard Garden
Spring Well Fountain Hill Vale Dene Combe Ridge Heath Common Green Moor Marsh Fen Lea Croft
Cross Gate Bar North South East West Upper Lower Nelson Wellington Trafalgar Waterloo Marlborough
Stanley Gladstone Disraeli Palmerston Cromwell Milton Chaucer Shakespeare Byron Keats Shelley
Tennyson Dickens Austen Bronte Hardy Kipling Darwin Newton Faraday Brunel Telford Stephenson
Elizabeth Alexandra Mary Edward George Charles William Henry Richard John Anne Catherine Margaret
Ashburton Blenheim Balmoral Windsor Sandringham Osborne Hampton Kensington Richmond Greenwich
Eltham Lewisham Dulwich Camberwell Peckham Brixton Clapham Balham Tooting Streatham Norwood
Sydenham Penge Beckenham Bromley Hayes Keston Downe Cudham Farnborough Orpington Chelsfield
Swanley Sidcup Bexley Welling Erith Belvedere Abbey Thamesmead Plumstead Woolwich Charlton
Kidbrooke Blackheath Deptford Rotherhithe Bermondsey Southwark Walworth Kennington Vauxhall
Stockwell Lambeth Waterloo Borough Bankside Falcon Swan Raven Robin Wren Lark Finch Linnet
Plover Curlew Osprey Merlin Harrier Peregrine Buzzard Kite Owl Magpie Jay Rook Starling"""
)

STREET_TYPES = {
    "Road": 30,
    "Street": 20,
    "Avenue": 8,
    "Close": 8,
    "Lane": 7,
    "Gardens": 5,
    "Way": 5,
    "Crescent": 4,
    "Drive": 4,
    "Grove": 3,
    "Place": 3,
    "Terrace": 3,
}
SHORT = {"Road": "Rd", "Street": "St", "Avenue": "Ave", "Close": "Cl", "Lane": "Ln",
         "Gardens": "Gdns", "Crescent": "Cres", "Drive": "Dr", "Grove": "Gr", "Place": "Pl",
         "Terrace": "Ter", "House": "Hse", "Court": "Ct"}  # fmt: skip
BLOCK_TYPES = ("House", "Court", "Point", "Tower", "Lodge")
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
AREAS = ("AV", "BM", "CH", "DM", "EB", "FW", "GH", "HH", "IW", "KT", "LN")


@dataclass(slots=True)
class Property:
    uprn: int
    flat: int | None
    number: int | None
    block: str | None
    street: str  # "Mill Road"
    town: str
    postcode: str

    def label(self) -> str:
        if self.flat is not None:
            return f"Flat {self.flat}, {self.block}, {self.street}, {self.town}"
        return f"{self.number} {self.street}, {self.town}"


@dataclass
class Organisation:
    id: str
    properties: list[Property]
    cum_weights: list[float]
    calls: int


@dataclass
class Target:
    """A generated call that a search will look for."""

    organisation_id: str
    call_id: str
    option: str
    received_at: datetime
    name: str | None
    prop: Property
    address_said: str
    uprn: int | None


@dataclass
class Samples:
    """The calls one kind of search looks for: a uniform random sample of qualifying calls.

    Random positions are chosen in advance and ranked; every qualifying call met at one of
    them is kept with its rank, and the ``size`` best-ranked are used.
    """

    size: int
    needs_uprn: bool = False
    kept: list[tuple[int, Target]] = field(default_factory=list)
    items: list[Target] = field(default_factory=list)

    def finish(self) -> None:
        self.items = [t for _, t in sorted(self.kept, key=lambda rt: rt[0])[: self.size]]
        self.kept = []


def zipf_weights(n: int, exponent: float, offset: float = 2.0) -> list[float]:
    return [1.0 / (rank + offset) ** exponent for rank in range(n)]


def cumulative(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def make_surnames(rng: random.Random) -> list[str]:
    """The common surnames, then a long tail of made-up ones."""
    starts = words(
        "Ash Bar Bel Bram Cal Car Dal Dun El Fair Gar Hal Har Kil Lang Mar Mel Nor Pen Red"
    )
    ends = words("ford ton ley wood field worth by ham well stone bury more croft dale son")
    tail = sorted({a + b for a in starts for b in ends})
    rng.shuffle(tail)
    return SURNAMES + tail


def make_organisation(rng: random.Random, index: int, org_id: str, calls: int) -> Organisation:
    town = org_id.removeprefix("po-").replace("-", " ").title()
    area = AREAS[index]
    properties: list[Property] = []
    uprn = 100_000_000_000 + index * 10_000_000
    n_streets = max(150, calls // 400)
    words = NAME_WORDS[:]
    types, type_weights = list(STREET_TYPES), list(STREET_TYPES.values())
    used: set[str] = set()
    unit = 0
    while len(used) < n_streets:
        street = f"{rng.choice(words)} {rng.choices(types, type_weights)[0]}"
        if street in used:
            continue
        used.add(street)
        district = 1 + len(used) % 20
        houses = rng.randint(8, 120)
        for number in range(1, houses + 1):
            if number % 14 == 1:
                unit += 1
            postcode = (
                f"{area}{district} {unit % 10}{INWARD_LETTERS[unit % 20]}"
                f"{INWARD_LETTERS[(unit // 20) % 20]}"
            )
            uprn += rng.randint(1, 30)
            properties.append(Property(uprn, None, number, None, street, town, postcode))
        if rng.random() < 0.15:
            for _ in range(rng.randint(1, 3)):
                block = f"{rng.choice(words)} {rng.choice(BLOCK_TYPES)}"
                unit += 1
                postcode = f"{area}{district} {unit % 10}{INWARD_LETTERS[unit % 20]}A"
                for flat in range(1, rng.randint(10, 60) + 1):
                    uprn += rng.randint(1, 5)
                    properties.append(Property(uprn, flat, None, block, street, town, postcode))
    # Some properties call far more often than others (repairs, repeat noise complaints).
    weights = [rng.lognormvariate(0.0, 1.0) for _ in properties]
    return Organisation(org_id, properties, cumulative(weights), calls)


def typo(rng: random.Random, word: str) -> str:
    """One keyboard or listening mistake: substitute, swap, drop or double a letter."""
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.3:
        return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1 :]
    if kind < 0.6:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind < 0.8:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def name_with_typo(rng: random.Random, name: str) -> str:
    words = name.split()
    j = rng.randrange(len(words))
    words[j] = typo(rng, words[j])
    return " ".join(words)


def address_as_said(rng: random.Random, p: Property) -> str:
    """Free text for an address, as a caller or a hurried Call Handler might give it."""
    first, kind = p.street.rsplit(" ", 1)
    roll = rng.random()
    if p.flat is not None:
        block_first, block_kind = p.block.rsplit(" ", 1) if p.block else ("", "")
        block_short = f"{block_first} {SHORT.get(block_kind, block_kind)}"
        if roll < 0.4:
            return f"{p.flat} {block_short}".lower()
        if roll < 0.7:
            return f"flat {p.flat} {p.block}, {first} {SHORT.get(kind, kind)}"
        return f"Flat {p.flat} {p.block}"
    if roll < 0.4:
        return f"{p.number} {first} {SHORT.get(kind, kind)}".lower()
    if roll < 0.7:
        return f"{p.number}, {p.street.upper()}"
    if roll < 0.9:
        return f"{p.number} {typo(rng, first)} {kind}"
    return f"{p.number} {p.street} {p.town}"


@dataclass(frozen=True)
class Chunk:
    """A share of the calls of one organisation, generated on its own (in a worker process)."""

    base_seed: int
    seed: int
    total: int
    org_index: int
    start: int  # the global position of its first call
    count: int
    wanted: dict[int, list[tuple[str, int]]]  # global position → (kind of search, rank)
    needs_uprn: frozenset[str]


def organisation_sizes(total: int) -> list[int]:
    weight = sum(ORGANISATIONS.values())
    sizes = [round(total * w / weight) for w in ORGANISATIONS.values()]
    sizes[0] += total - sum(sizes)  # rounding
    return sizes


def plan(seed: int, total: int, samples: dict[str, Samples]) -> list[Chunk]:
    """Split the work into chunks, and choose in advance where the search targets may be."""
    rng = random.Random(seed)
    wanted: dict[int, list[tuple[str, int]]] = {}
    for kind, sample in samples.items():
        positions = rng.sample(range(total), min(total, 3 * sample.size))
        for rank, position in enumerate(positions):
            wanted.setdefault(position, []).append((kind, rank))
    needs_uprn = frozenset(k for k, v in samples.items() if v.needs_uprn)
    chunks: list[Chunk] = []
    start = 0
    for index, size in enumerate(organisation_sizes(total)):
        for offset in range(0, size, CHUNK):
            count = min(CHUNK, size - offset)
            mine = {p: w for p, w in wanted.items() if start <= p < start + count}
            chunks.append(
                Chunk(seed, rng.getrandbits(64), total, index, start, count, mine, needs_uprn)
            )
            start += count
    return chunks


@cache
def surname_list(seed: int) -> tuple[list[str], list[float]]:
    surnames = make_surnames(random.Random(seed))
    return surnames, cumulative(zipf_weights(len(surnames), 1.05))


@cache
def organisation(seed: int, total: int, index: int) -> Organisation:
    org_id = list(ORGANISATIONS)[index]
    calls = organisation_sizes(total)[index]
    return make_organisation(random.Random(seed * 31 + index), index, org_id, calls)


_DAYS = [(START + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(YEARS * 365)]
_OPTION_NAMES, _OPTION_CUM = list(OPTIONS), cumulative(list(OPTIONS.values()))
_FORENAME_CUM = cumulative(zipf_weights(len(FORENAMES), 0.9, offset=8))
_HOUR_CUM = cumulative(
    [3, 2, 1.5, 1, 1, 1, 1.5, 2, 3, 3, 3, 3, 3, 3, 3, 4, 6, 12, 12, 10, 8, 7, 6, 4]
)
COLUMNS = [c.name for c in call_search.columns]
# Per worker process: the index fields of names and addresses already seen.
_NAME_FIELDS: dict[str, dict[str, Any]] = {}
_ADDRESS_FIELDS: dict[int, dict[tuple[str, int | None, str | None], dict[str, Any]]] = {}


def make_chunk(chunk: Chunk) -> tuple[list[tuple[Any, ...]], list[tuple[str, int, Target]]]:
    """The index rows of a chunk, in table column order, and the search targets met in it.

    Names and addresses go through the row builder of :func:`oohcore.search.index_call`,
    once per distinct value. ``received_at`` is written in the SQLite storage form of
    :class:`oohcore.store.columns.UTCDateTime` (naive UTC text); the build reads a row back to check.
    """
    rng = random.Random(chunk.seed)
    org = organisation(chunk.base_seed, chunk.total, chunk.org_index)
    surnames, surname_cum = surname_list(chunk.base_seed)
    n = chunk.count
    props = rng.choices(org.properties, cum_weights=org.cum_weights, k=n)
    options = rng.choices(_OPTION_NAMES, cum_weights=_OPTION_CUM, k=n)
    hours = rng.choices(range(24), cum_weights=_HOUR_CUM, k=n)
    forenames = rng.choices(FORENAMES, cum_weights=_FORENAME_CUM, k=n)
    family = rng.choices(surnames, cum_weights=surname_cum, k=n)
    name_cache = _NAME_FIELDS
    if len(name_cache) > 400_000:
        name_cache.clear()
    address_cache = _ADDRESS_FIELDS.setdefault(chunk.org_index, {})
    for other in [k for k in _ADDRESS_FIELDS if k != chunk.org_index]:
        del _ADDRESS_FIELDS[other]  # one organisation's addresses at a time
    rows: list[tuple[Any, ...]] = []
    kept: list[tuple[str, int, Target]] = []
    days = len(_DAYS)
    for i in range(n):
        prop, option = props[i], options[i]
        day = int(rng.random() * days)
        micros = int(rng.random() * 3_600_000_000)
        minute, micro = divmod(micros, 60_000_000)
        received = f"{_DAYS[day]} {hours[i]:02d}:{minute:02d}:{micro // 1_000_000:02d}.{micro % 1_000_000:06d}"
        name: str | None = None
        if rng.random() >= 0.08:  # 8% give no name
            name = f"{forenames[i]} {family[i]}"
            if rng.random() < 0.03:
                name = name_with_typo(rng, name)
        uprn: int | None
        postcode: str | None
        if rng.random() < 0.8:  # validated against the gazetteer (7.11)
            address, uprn, postcode = prop.label(), prop.uprn, prop.postcode
        else:
            address = address_as_said(rng, prop)
            uprn = None
            postcode = prop.postcode if rng.random() < 0.5 else None
        call_id = f"{rng.getrandbits(128):032x}"
        name_fields = name_cache.get(name or "")
        if name_fields is None:
            name_fields = name_cache[name or ""] = s_index._name_fields(name)
        akey = (address, uprn, postcode)
        address_fields = address_cache.get(akey)
        if address_fields is None:
            address_fields = address_cache[akey] = s_index._address_fields(address, uprn, postcode)
        row = {
            "organisation_id": org.id,
            "call_id": call_id,
            "service_option": option,
            "received_at": received,
            **name_fields,
            **address_fields,
        }
        rows.append(tuple(row[c] for c in COLUMNS))
        for kind, rank in chunk.wanted.get(chunk.start + i, ()):
            if name is not None and (uprn is not None or kind not in chunk.needs_uprn):
                at = datetime.fromisoformat(received).replace(tzinfo=UTC)
                said = address_as_said(rng, prop)
                kept.append(
                    (kind, rank, Target(org.id, call_id, option, at, name, prop, said, uprn))
                )
    rows.sort(key=lambda r: (r[0], r[1]))  # primary-key order: a faster bulk insert
    return rows, kept


def schema_fingerprint(total: int, seed: int) -> str:
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    ddl = [str(CreateTable(call_search).compile(dialect=dialect))]
    ddl += sorted(str(CreateIndex(ix).compile(dialect=dialect)) for ix in call_search.indexes)
    # The keys are part of the schema: the functions that derive them are too.
    for function in (
        s_index._name_fields,
        s_index._address_fields,
        s_names._name_keys,
        s_index._address_key_parts,
        s_index._street_letters,
        s_names.normalise_name,
        addresses.normalise_address,
        addresses.address_parts,
        addresses.sound_key,
    ):
        ddl.append(inspect.getsource(function))
    ddl.append(f"generator={GENERATOR_VERSION} calls={total} seed={seed}")
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:12]


def build(path: Path, total: int, seed: int, samples: dict[str, Samples]) -> float:
    """Create the database at ``path`` (through a temporary file); returns seconds taken."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    chunks = plan(seed, total, samples)
    insert_sql = (
        f"INSERT INTO call_search ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    engine = create_engine(f"sqlite:///{tmp}")
    workers = max(1, min(2, os.cpu_count() or 1))
    with (
        multiprocessing.get_context("fork").Pool(workers) as pool,
        engine.begin() as conn,
    ):
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql("PRAGMA synchronous=OFF")  # bulk load only; the file is rebuilt
        conn.exec_driver_sql("PRAGMA cache_size=-1000000")
        conn.exec_driver_sql("PRAGMA temp_store=MEMORY")  # index sorts
        conn.execute(CreateTable(call_search))
        done = 0
        inserting = 0.0
        for rows, kept in pool.imap(make_chunk, chunks):
            t0 = time.perf_counter()
            conn.exec_driver_sql(insert_sql, rows)
            inserting += time.perf_counter() - t0
            for kind, rank, target in kept:
                samples[kind].kept.append((rank, target))
            done += len(rows)
            log(
                f"  {done:,} calls loaded ({time.perf_counter() - started:.0f} s, "
                f"{inserting:.0f} s of it inserting)"
            )
        t0 = time.perf_counter()
        for ix in sorted(call_search.indexes, key=lambda i: str(i.name)):
            conn.execute(CreateIndex(ix))
        log(f"  {len(call_search.indexes)} indexes created in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    log(f"  committed and checkpointed in {time.perf_counter() - t0:.0f} s")
    for sample in samples.values():
        sample.finish()
    check_storage_form(tmp, samples)
    tmp.replace(path)
    return time.perf_counter() - started


def check_storage_form(path: Path, samples: dict[str, Samples]) -> None:
    """The rows were written as text: read some back through SQLAlchemy to check they match."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        for sample in samples.values():
            for t in sample.items[:20]:
                hits = s_query.search(
                    conn, organisation_id=t.organisation_id, since=t.received_at,
                    until=t.received_at, service_option=t.option,
                )  # fmt: skip
                if t.call_id not in {h.call_id for h in hits}:
                    raise SystemExit(f"bench: stored call {t.call_id} does not read back")
    engine.dispose()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def queries(
    rng: random.Random, samples: dict[str, Samples]
) -> dict[str, list[tuple[dict[str, Any], str]]]:
    """Per kind: (search arguments, the call id that should be found)."""
    out: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for kind, sample in samples.items():
        out[kind] = []
        for t in sample.items:
            assert t.name is not None
            args: dict[str, Any] = {"organisation_id": t.organisation_id}
            if kind == "followup":
                now = t.received_at + timedelta(hours=rng.uniform(0.5, 72))
                args |= {
                    "caller_name": name_with_typo(rng, t.name),
                    "address": t.address_said,
                    "service_option": t.option,
                    "since": now - timedelta(days=7),
                    "until": now,
                }
            elif kind == "address":
                args["address"] = t.address_said
            elif kind == "uprn":
                args["uprn"] = t.prop.uprn
            else:
                args["caller_name"] = name_with_typo(rng, t.name) if rng.random() < 0.5 else t.name
            out[kind].append((args, t.call_id))
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def explain(conn: Connection, args: dict[str, Any]) -> None:
    """Log SQLite's plan for each lookup a search makes (to check the indexes are used)."""
    q = s_query._build_query(
        args["organisation_id"],
        args.get("caller_name"),
        args.get("address"),
        args.get("uprn"),
        None,
        args.get("service_option"),
        args.get("since"),
        args.get("until"),
    )
    values: dict[str, Any] = {
        "org": q.organisation_id,
        "option": q.service_option,
        "since": q.since,
        "until": q.until,
    }
    for lookup, params in s_query._lookups(q):
        statement = s_query._statement(
            lookup, q.service_option is not None, q.since is not None, q.until is not None
        )
        compiled = statement.compile(dialect=conn.dialect)
        bound = compiled.construct_params({**values, **params})
        positional = [
            v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
            for v in (bound[name] for name in compiled.positiontup or ())
        ]
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(positional)).all()
        log(f"  {lookup}: " + " | ".join(str(row[-1]) for row in plan))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--queries", type=int, default=QUERIES, help="total, split over 4 kinds")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--db", help="database file (default: $OOHCORE_BENCH_SEARCH_DB or /tmp)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    parser.add_argument("--explain", action="store_true", help="print one query plan per kind")
    opts = parser.parse_args()

    fingerprint = schema_fingerprint(opts.calls, opts.seed)
    default = Path("/tmp/oohcore-bench") / f"search-{fingerprint}.sqlite"
    path = Path(opts.db or os.environ.get("OOHCORE_BENCH_SEARCH_DB") or default)
    kinds = ("followup", "address", "uprn", "name")
    per_kind = opts.queries // len(kinds)
    warm_per_kind = WARM_UP // len(kinds)
    samples = {kind: Samples(per_kind + warm_per_kind, kind == "uprn") for kind in kinds}
    # The targets are kept next to the database, so a cached database needs no regeneration.
    sidecar = path.with_suffix(".targets.json")
    build_s: float | None = None
    cached = (
        not opts.rebuild
        and path.exists()
        and sidecar.exists()
        and json.loads(sidecar.read_text()).get("fingerprint") == fingerprint
    )
    if cached:
        saved = json.loads(sidecar.read_text())["targets"]
        for kind in kinds:
            samples[kind].items = [target_from_json(d) for d in saved[kind]]
        log(f"using the cached database {path}")
    else:
        log(f"building {opts.calls:,} calls into {path} …")
        build_s = build(path, opts.calls, opts.seed, samples)
        targets = {k: [target_to_json(t) for t in v.items] for k, v in samples.items()}
        sidecar.write_text(json.dumps({"fingerprint": fingerprint, "targets": targets}))
        log(f"built in {build_s:.0f} s")

    by_kind = queries(random.Random(opts.seed + 99), samples)
    warm = [q for kind in kinds for q in by_kind[kind][:warm_per_kind]]
    timed = [(kind, q) for kind in kinds for q in by_kind[kind][warm_per_kind:]]
    random.Random(opts.seed + 7).shuffle(timed)
    engine: Engine = create_engine(f"sqlite:///{path}")
    latencies: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: list[float] = []
    found: dict[str, int] = dict.fromkeys(kinds, 0)
    with engine.connect() as conn:
        calls = conn.exec_driver_sql("SELECT count(*) FROM call_search").scalar_one()
        if opts.explain:
            for kind in kinds:
                log(f"{kind}:")
                explain(conn, by_kind[kind][0][0])
        for args, _ in warm:
            s_query.search(conn, **args)
        load_before = os.getloadavg()[0]
        for kind, (args, _) in timed:
            c0 = time.process_time()
            t0 = time.perf_counter()
            s_query.search(conn, **args)
            latencies[kind].append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        load_after = os.getloadavg()[0]
        # Recall, untimed: is the call looked for among all the hits (not only the first 20,
        # which for a busy address or a common name are rightly other, newer calls)?
        for kind, (args, wanted) in timed:
            hits = s_query.search(conn, **args, limit=s_query.MAX_LIMIT)
            found[kind] += any(h.call_id == wanted for h in hits)
    engine.dispose()
    everything = [v for values in latencies.values() for v in values]
    result: dict[str, Any] = {
        "p99_ms": round(percentile(everything, 99), 2),
        "calls": calls,
        "p50_ms": round(percentile(everything, 50), 2),
        "max_ms": round(max(everything), 2),
        "queries": len(everything),
    }
    for kind in kinds:
        result[f"p99_ms_{kind}"] = round(percentile(latencies[kind], 99), 2)
    # CPU time of this process per search: what the search costs, without the waits for a
    # core that other processes on the machine cause (compare with the load average).
    result["p99_cpu_ms"] = round(percentile(cpu, 99), 2)
    result["load_average"] = round((load_before + load_after) / 2, 2)
    for kind in kinds:
        result[f"found_{kind}"] = round(found[kind] / max(1, len(latencies[kind])), 3)
    if build_s is not None:
        result["build_s"] = round(build_s, 1)
    print(json.dumps(result))
    return 0


def target_to_json(t: Target) -> dict[str, Any]:
    p = t.prop
    return {
        "org": t.organisation_id,
        "call": t.call_id,
        "option": t.option,
        "at": t.received_at.isoformat(),
        "name": t.name,
        "prop": [p.uprn, p.flat, p.number, p.block, p.street, p.town, p.postcode],
        "said": t.address_said,
        "uprn": t.uprn,
    }


def target_from_json(d: dict[str, Any]) -> Target:
    return Target(
        d["org"],
        d["call"],
        d["option"],
        datetime.fromisoformat(d["at"]),
        d["name"],
        Property(*d["prop"]),
        d["said"],
        d["uprn"],
    )


if __name__ == "__main__":
    sys.exit(main())
