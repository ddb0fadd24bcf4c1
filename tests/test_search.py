"""Earlier-call search and the duplicate check (spec 5.2.7, 7.4.2, tenant scope 7.10)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Connection, create_engine, select

from oohcore.search import query as s_query
from oohcore.search.addresses import InvalidPostcode
from oohcore.search.index import CallToIndex, call_search, index_call, index_calls, remove_calls
from oohcore.search.names import name_similarity, normalise_name
from oohcore.search.query import likely_duplicate, search

T0 = datetime(2026, 1, 10, 18, 0, tzinfo=UTC)
ORG = "eastbrook"
OTHER = "westmarsh"


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    call_search.create(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def add(
    conn: Connection,
    call_id: str,
    *,
    org: str = ORG,
    option: str = "housing-repairs",
    at: datetime = T0,
    name: str | None = None,
    address: str | None = None,
    uprn: int | str | None = None,
    postcode: str | None = None,
) -> None:
    index_call(
        conn,
        organisation_id=org,
        call_id=call_id,
        service_option=option,
        received_at=at,
        caller_name=name,
        address=address,
        uprn=uprn,
        postcode=postcode,
    )


def ids(hits: list[s_query.SearchHit]) -> list[str]:
    return [h.call_id for h in hits]


# -- names ---------------------------------------------------------------------------------------


def test_names_normalise_titles_punctuation_and_particles() -> None:
    assert normalise_name("Mrs. Mary O'Brien") == "MARY OBRIEN"
    assert normalise_name("mary o brien") == "MARY OBRIEN"
    assert normalise_name("Cllr  Angus Mc Donald") == "ANGUS MCDONALD"
    assert normalise_name("Ana de Souza") == normalise_name("Ana DeSouza")
    assert normalise_name("José Núñez") == "JOSE NUNEZ"
    assert normalise_name("Anonymous") == ""
    assert normalise_name("  ") == ""


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ("Jon Smyth", "John Smith", 0.85, 0.95),
        ("J Smith", "John Smith", 0.85, 0.95),
        ("Smith", "John Smith", 0.85, 0.95),
        ("Smith John", "John Smith", 0.9, 1.0),
        ("Katherine Jones", "Catherine Jones", 0.85, 1.0),
        ("John Smith", "Jane Smith", 0.6, 0.85),
        ("John Smith", "John Smart", 0.4, 0.85),
        ("John Smith", "Ahmed Khan", 0.0, 0.1),
    ],
)
def test_name_similarity(a: str, b: str, low: float, high: float) -> None:
    assert low <= name_similarity(a, b) <= high


# -- searching -----------------------------------------------------------------------------------


def test_spelling_variants_of_a_name_are_found(conn: Connection) -> None:
    """7.4.2a: name of caller, tolerant of spelling ("Jon Smyth" for "John Smith")."""
    add(conn, "c1", name="John Smith", address="12 High Street")
    add(conn, "c2", name="Ahmed Khan", address="4 Mill Road")
    add(conn, "c3", name="Jane Smith", address="7 Heron Way")
    hits = search(conn, organisation_id=ORG, caller_name="Jon Smyth")
    assert ids(hits)[0] == "c1"
    assert hits[0].name_score is not None and hits[0].name_score >= 0.85
    assert "c2" not in ids(hits)
    # Spacing, case and an initial.
    assert ids(search(conn, organisation_id=ORG, caller_name="  JOHN   smith "))[0] == "c1"
    assert ids(search(conn, organisation_id=ORG, caller_name="J. Smith"))[0] == "c1"
    # Written surname first, or a surname alone.
    assert ids(search(conn, organisation_id=ORG, caller_name="Smith, John"))[0] == "c1"
    assert set(ids(search(conn, organisation_id=ORG, caller_name="Smyth"))) == {"c1", "c3"}


def test_slips_of_the_keyboard_in_a_name_are_found(conn: Connection) -> None:
    """Swapped or doubled letters change the sound key; the search tries those slips too."""
    add(conn, "ward", name="Jeffrey Ward")
    add(conn, "smith", name="John Smith")
    add(conn, "lowe", name="Robert Lowe")
    assert ids(search(conn, organisation_id=ORG, caller_name="Jeffrey Wrad")) == ["ward"]
    assert ids(search(conn, organisation_id=ORG, caller_name="John Smiith")) == ["smith"]
    assert ids(search(conn, organisation_id=ORG, caller_name="Robetr Lowe")) == ["lowe"]
    # A missing consonant is beyond it (the address or UPRN still find such a call).
    add(conn, "taylor", name="Robert Taylor", address="12 High Street")
    assert "taylor" not in ids(search(conn, organisation_id=ORG, caller_name="Robert Tayor"))
    both = search(conn, organisation_id=ORG, caller_name="Robert Tayor", address="12 High St")
    assert ids(both) == ["taylor"]


def test_spacing_punctuation_and_abbreviations_of_an_address(conn: Connection) -> None:
    """7.4.2b: address of incident, normalised ("12a High St." is "12A HIGH STREET")."""
    add(conn, "c1", address="12A HIGH STREET")
    add(conn, "c2", address="14 High Street")
    add(conn, "c3", address="12 Hill Road")
    hits = search(conn, organisation_id=ORG, address="12a High St.")
    assert ids(hits)[0] == "c1"
    assert hits[0].address_score == 1.0
    assert all(h.score < 0.9 for h in hits[1:])
    # A typo in the street name is still found.
    assert ids(search(conn, organisation_id=ORG, address="12A Hihg Street"))[0] == "c1"
    # No house number: every call on the street.
    assert set(ids(search(conn, organisation_id=ORG, address="High St"))) == {"c1", "c2"}


def test_flat_and_building_addresses(conn: Connection) -> None:
    add(conn, "f3", address="Flat 3, Kestrel House, Heron Way")
    add(conn, "f4", address="Flat 4, Kestrel House, Heron Way")
    hits = search(conn, organisation_id=ORG, address="3 kestrel hse")
    assert ids(hits)[0] == "f3"
    assert hits[0].score >= 0.9
    assert all(h.score < 0.9 for h in hits[1:])


def test_uprn_match(conn: Connection) -> None:
    """7.11: the UPRN decides when both calls have one."""
    add(conn, "c1", address="Flat 3, Kestrel House", uprn=100090012345)
    add(conn, "c2", address="Kestrel Hse flat three", uprn="100090012345")
    add(conn, "c3", address="Flat 3, Kestrel House", uprn=100090099999)
    hits = search(conn, organisation_id=ORG, uprn="100090012345")
    assert set(ids(hits)) == {"c1", "c2"}
    assert all(h.same_uprn and h.score == 1.0 for h in hits)
    # With text and UPRN, a different UPRN at the same text is held at 0.5.
    both = search(conn, organisation_id=ORG, address="Flat 3 Kestrel House", uprn=100090012345)
    scores = {h.call_id: h.address_score for h in both}
    assert scores["c1"] == scores["c2"] == 1.0
    assert scores.get("c3", 0.0) == 0.5


def test_postcode_search_and_postcode_in_the_address(conn: Connection) -> None:
    add(conn, "c1", address="12 High Street, EB1 1BL")
    add(conn, "c2", address="14 High Street", postcode="eb11bl")
    add(conn, "c3", address="4 Mill Road", postcode="EB1 2AD")
    assert set(ids(search(conn, organisation_id=ORG, postcode="EB1 1BL"))) == {"c1", "c2"}
    with pytest.raises(InvalidPostcode):
        search(conn, organisation_id=ORG, postcode="nonsense")
    stored = conn.execute(select(call_search.c.call_id, call_search.c.postcode)).all()
    assert dict(stored)["c1"] == "EB1 1BL"


def test_time_window_and_service_option_filters(conn: Connection) -> None:
    """7.4.2c-d: Service Option type and time of call."""
    add(conn, "old", name="John Smith", at=T0 - timedelta(days=30))
    add(conn, "noise", name="John Smith", at=T0, option="noise")
    add(conn, "new", name="John Smith", at=T0 + timedelta(hours=2))
    since, until = T0 - timedelta(days=7), T0 + timedelta(days=1)
    week = search(conn, organisation_id=ORG, caller_name="John Smith", since=since, until=until)
    assert ids(week) == ["new", "noise"]
    assert ids(
        search(conn, organisation_id=ORG, caller_name="John Smith", service_option="noise")
    ) == ["noise"]
    # All time, newest first among equals.
    assert ids(search(conn, organisation_id=ORG, caller_name="John Smith")) == [
        "new",
        "noise",
        "old",
    ]
    # The window's ends are inclusive; aware times in any zone are compared in UTC.
    plus_two = timezone(timedelta(hours=2))
    exact = search(
        conn,
        organisation_id=ORG,
        caller_name="John Smith",
        since=(T0 + timedelta(hours=2)).astimezone(plus_two),
    )
    assert ids(exact) == ["new"]
    # Only an option and a window: the newest calls that fit.
    assert ids(search(conn, organisation_id=ORG, service_option="housing-repairs")) == [
        "new",
        "old",
    ]
    with pytest.raises(ValueError, match="after until"):
        search(conn, organisation_id=ORG, since=T0, until=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="time zone"):
        search(conn, organisation_id=ORG, since=datetime(2026, 1, 1))  # naive


def test_received_at_round_trips_as_aware_utc(conn: Connection) -> None:
    local = datetime(2026, 7, 1, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    add(conn, "c1", name="John Smith", at=local)
    (hit,) = search(conn, organisation_id=ORG, caller_name="John Smith")
    assert hit.received_at == local
    assert hit.received_at.tzinfo == UTC
    assert hit.received_at.hour == 22


def test_an_organisation_never_sees_another_organisations_calls(conn: Connection) -> None:
    """7.10: access limited to the Participating Organisation's own data."""
    add(conn, "ours", org=ORG, name="John Smith", address="12 High Street", uprn=1)
    add(conn, "theirs", org=OTHER, name="John Smith", address="12 High Street", uprn=1)
    for query in (
        {"caller_name": "John Smith"},
        {"address": "12 High Street"},
        {"uprn": 1},
        {"service_option": "housing-repairs"},
        {},
    ):
        assert ids(search(conn, organisation_id=ORG, **query)) == ["ours"]
        assert ids(search(conn, organisation_id=OTHER, **query)) == ["theirs"]
    assert (
        likely_duplicate(
            conn,
            organisation_id="third",
            service_option="housing-repairs",
            at=T0,
            caller_name="John Smith",
            address="12 High Street",
            uprn=1,
        )
        is None
    )
    # The same call id in two organisations is two entries; re-indexing one leaves the other.
    add(conn, "ours", org=OTHER, name="Ahmed Khan")
    assert ids(search(conn, organisation_id=ORG, caller_name="John Smith")) == ["ours"]


@pytest.mark.parametrize("org", ["", None, 0])
def test_there_is_no_unscoped_search(conn: Connection, org: object) -> None:
    with pytest.raises(ValueError, match="scoped to one organisation"):
        search(conn, organisation_id=org, caller_name="John Smith")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scoped to one organisation"):
        likely_duplicate(
            conn,
            organisation_id=org,  # type: ignore[arg-type]
            service_option="noise",
            at=T0,
            caller_name="John Smith",
        )
    with pytest.raises(TypeError):
        search(conn, caller_name="John Smith")  # type: ignore[call-arg]


def test_reindexing_a_call_replaces_its_entry(conn: Connection) -> None:
    add(conn, "c1", name="John Smith", address="12 High Street")
    add(conn, "c1", name="John Smith", address="4 Mill Road")
    assert conn.execute(select(call_search.c.address)).scalars().all() == ["4 MILL ROAD"]
    assert ids(search(conn, organisation_id=ORG, address="4 Mill Rd")) == ["c1"]
    assert search(conn, organisation_id=ORG, address="12 High Street", min_score=0.9) == []


def test_remove_calls_for_retention(conn: Connection) -> None:
    add(conn, "c1", name="John Smith")
    add(conn, "c2", name="John Smith")
    add(conn, "c1", org=OTHER, name="John Smith")
    assert remove_calls(conn, organisation_id=ORG, call_ids=["c1"]) == 1
    assert ids(search(conn, organisation_id=ORG, caller_name="John Smith")) == ["c2"]
    assert ids(search(conn, organisation_id=OTHER, caller_name="John Smith")) == ["c1"]


def test_bulk_indexing(conn: Connection) -> None:
    calls = [
        CallToIndex(ORG, f"c{i}", "noise", T0 + timedelta(minutes=i), f"Caller {i}", None)
        for i in range(250)
    ]
    assert index_calls(conn, calls, batch=100) == 250
    assert len(search(conn, organisation_id=ORG, service_option="noise", limit=500)) == 250
    with pytest.raises(ValueError, match="limit"):
        search(conn, organisation_id=ORG, limit=0)


def test_odd_details_do_not_stop_a_call_being_indexed(conn: Connection) -> None:
    add(conn, "c1", name="John Smith", postcode="not a postcode", uprn="")
    assert conn.execute(select(call_search.c.postcode, call_search.c.uprn)).one() == (None, None)
    long_address = "12 High Street " + "outside the shops by the bus stop " * 30
    add(conn, "c2", name="John Smith " * 40, address=long_address)
    stored = conn.execute(
        select(call_search.c.caller_name, call_search.c.address).where(
            call_search.c.call_id == "c2"
        )
    ).one()
    assert len(stored.caller_name) == 200
    assert len(stored.address) == 400
    assert ids(search(conn, organisation_id=ORG, address="12 High St"))[0] == "c2"
    add(conn, "c3", name="Jane Doe", uprn="UPRN-12")
    assert ids(search(conn, organisation_id=ORG, caller_name="Jane Doe")) == ["c3"]
    with pytest.raises(ValueError, match="not a UPRN"):
        search(conn, organisation_id=ORG, uprn="UPRN-12")  # a search is told


# -- the duplicate check -------------------------------------------------------------------------


def dup(conn: Connection, **kwargs: object) -> s_query.SearchHit | None:
    args: dict[str, object] = {
        "organisation_id": ORG,
        "service_option": "housing-repairs",
        "at": T0 + timedelta(hours=3),
    }
    args.update(kwargs)
    return likely_duplicate(conn, **args)  # type: ignore[arg-type]


def test_a_second_call_about_the_same_address_is_a_likely_duplicate(conn: Connection) -> None:
    """5.2.7: avoid duplicate referrals to On-call Duty Staff."""
    add(conn, "first", name="John Smith", address="12A High Street")
    # A neighbour reports the same address, spelt differently.
    hit = dup(conn, caller_name="Ahmed Khan", address="12a High St.")
    assert hit is not None and hit.call_id == "first"
    assert (
        hit.address_score is not None and hit.address_score >= s_query.DUPLICATE_ADDRESS_THRESHOLD
    )
    # The next house along is not.
    assert dup(conn, caller_name="Ahmed Khan", address="14 High Street") is None
    assert dup(conn, caller_name="Ahmed Khan", address="12 High Street") is None  # 12 is not 12A


def test_the_same_caller_again_is_a_likely_duplicate(conn: Connection) -> None:
    add(conn, "first", name="John Smith", address="12 High Street")
    hit = dup(conn, caller_name="Jon Smyth")  # no address given yet
    assert hit is not None and hit.call_id == "first"
    # ... but not when they are reporting somewhere else.
    assert dup(conn, caller_name="Jon Smyth", address="4 Mill Road") is None


def test_same_uprn_is_a_likely_duplicate(conn: Connection) -> None:
    add(conn, "first", address="Flat 3, Kestrel House", uprn=100090012345)
    hit = dup(conn, uprn=100090012345)
    assert hit is not None and hit.same_uprn
    assert dup(conn, uprn=100090012346, address="Flat 3, Kestrel House") is None


def test_duplicate_window_option_and_exclusion(conn: Connection) -> None:
    add(conn, "yesterday", name="John Smith", address="12 High Street", at=T0 - timedelta(days=1))
    add(conn, "noise", name="John Smith", address="12 High Street", option="noise")
    # Outside the 24-hour window (27 hours before "at") and another option: not duplicates.
    assert dup(conn, caller_name="John Smith", address="12 High Street") is None
    wider = dup(conn, caller_name="John Smith", address="12 High Street", window=timedelta(days=2))
    assert wider is not None and wider.call_id == "yesterday"
    noisy = dup(conn, service_option="noise", caller_name="John Smith")
    assert noisy is not None and noisy.call_id == "noise"
    # The call being handled is not its own duplicate; later calls are not earlier calls.
    assert (
        dup(conn, service_option="noise", caller_name="John Smith", exclude_call_id="noise") is None
    )
    assert (
        dup(conn, service_option="noise", caller_name="John Smith", at=T0 - timedelta(minutes=1))
        is None
    )


def test_a_postcode_alone_is_no_evidence_of_a_duplicate(conn: Connection) -> None:
    add(conn, "first", address="12 High Street", postcode="EB1 1BL")
    assert dup(conn, postcode="EB1 1BL") is None
    assert dup(conn) is None
    with pytest.raises(ValueError, match="window"):
        dup(conn, caller_name="John Smith", window=timedelta(0))


def test_the_best_and_most_recent_duplicate_is_returned(conn: Connection) -> None:
    add(conn, "a", name="John Smith", address="12 High Street", at=T0)
    add(conn, "b", name="John Smith", address="12 High Street", at=T0 + timedelta(hours=1))
    add(conn, "c", name="Jon Smyth", address="12 High Street", at=T0 + timedelta(hours=2))
    hit = dup(conn, caller_name="John Smith", address="12 High St")
    assert hit is not None and hit.call_id == "b"  # exact name beats newer spelling variant


def test_the_lookups_read_in_one_statement_find_what_each_finds_alone(conn: Connection) -> None:
    """Issue 12: a search's lookups (name keys, surname, address key or range, UPRN, postcode)
    run as one ``UNION ALL`` statement; each member has its own parameters, and the rows come
    back lookup by lookup, each newest first — exactly what the lookups find one by one."""
    for i in range(30):
        add(
            conn,
            f"c{i}",
            at=T0 + timedelta(minutes=i),
            name=("John Smith", "Jon Smyth", "Mary Jones")[i % 3],
            address=("12 High Street", "4 Mill Road", "12 High St")[i % 4 % 3],
            uprn=100 + i % 5,
            postcode=("SW1A 1AA", "N1 9GU")[i % 2],
        )
    q = s_query._build_query(
        ORG, "John Smith", "12 High Street", 101, "SW1A 1AA", "housing-repairs", None, None
    )
    lookups = list(s_query._lookups(q))
    assert {lookup for lookup, _ in lookups} >= {"uprn", "name_key", "address_key", "postcode"}
    one_by_one = [row for lookup in lookups for row in s_query._execute_all(conn, q, [lookup])]
    assert len(one_by_one) > len(lookups)
    assert s_query._execute_all(conn, q, lookups) == one_by_one
