"""Addresses: postcodes, normalisation, the gazetteer and its matcher (spec 7.11, 4.1.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oohcore.errors import OohcoreError
from oohcore.search.addresses import (
    InvalidPostcode,
    address_parts,
    address_similarity,
    edit_distance,
    is_postcode,
    normalise_address,
    normalise_postcode,
    postcode_sector,
    sound_key,
)
from oohcore.search.gazetteer import AddressRecord, Gazetteer, GazetteerError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example-borough" / "gazetteer.csv"

SMALL = """\
uprn,line1,line2,town,postcode,ward,owner
100000000001,12 High Street,,Eastbrook,EB1 1BL,Eastbrook Central,private
100000000002,12A High Street,,Eastbrook,EB1 1BL,Eastbrook Central,council
100000000003,14 High Street,,Eastbrook,EB1 1BL,Eastbrook Central,leasehold
100000000004,"Flat 3, Kestrel House",Heron Way,Eastbrook,EB2 3HG,Heron Park,council
100000000005,"Flat 4, Kestrel House",Heron Way,Eastbrook,EB2 3HG,Heron Park,council
100000000006,2 St Anne's Road,,Eastbrook,eb24af,St Anne's,housing association
100000000007,12 Hill Road,,Eastbrook,EB3 5AA,Kingsgate,private
"""


def write(tmp_path: Path, text: str, name: str = "gazetteer.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path: Path) -> Gazetteer:
    return Gazetteer.from_csv(write(tmp_path, SMALL))


# -- postcodes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sw1a1aa", "SW1A 1AA"),
        ("  SW1A   1AA ", "SW1A 1AA"),
        ("eb14qt", "EB1 4QT"),
        ("M1 1AE", "M1 1AE"),
        ("b338th", "B33 8TH"),
        ("cr26xh", "CR2 6XH"),
        ("dn551pt", "DN55 1PT"),
        ("w1a0ax", "W1A 0AX"),
        ("ec1a 1bb", "EC1A 1BB"),
        ("gir0aa", "GIR 0AA"),
    ],
)
def test_postcodes_are_normalised(text: str, expected: str) -> None:
    assert normalise_postcode(text) == expected
    assert is_postcode(text)


@pytest.mark.parametrize(
    "text",
    ["", "hello", "SW1A", "SW1A 1A", "SW1A 1AAA", "QA1 1AA", "EB1 4QC", "1AB 2CD", "SW1A-1AA!"],
)
def test_invalid_postcodes_are_refused_clearly(text: str) -> None:
    with pytest.raises(InvalidPostcode, match="is not a UK postcode") as info:
        normalise_postcode(text)
    assert isinstance(info.value, OohcoreError)
    assert "SW1A 1AA" in str(info.value)  # shows what a postcode looks like
    assert not is_postcode(text)


def test_postcode_sector() -> None:
    assert postcode_sector("eb14qt") == "EB1 4"


# -- address text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("12a High St.", "12A HIGH STREET"),
        ("12 a high street", "12A High Street"),
        ("Flat 3, Kestrel Hse, Heron Wy", "FLAT 3 KESTREL HOUSE HERON WAY"),
        ("Apt 3 Kestrel House Heron Way", "Flat 3, Kestrel House, Heron Way"),
        ("2 St. Anne's Rd", "2 Saint Annes Road"),
        ("No. 12 High St", "12 High Street"),
        ("12  HIGH   street,,", "12 high street"),
        ("Café Parade", "CAFE PDE"),
    ],
)
def test_spellings_of_one_address_normalise_alike(a: str, b: str) -> None:
    assert normalise_address(a) == normalise_address(b)


def test_st_is_street_after_a_name_and_saint_before_one() -> None:
    assert normalise_address("12a High St., St. John's") == "12A HIGH STREET SAINT JOHNS"
    assert normalise_address("Main St") == "MAIN STREET"
    assert normalise_address("St Marys Ct") == "SAINT MARYS COURT"


def test_address_parts_find_flat_number_and_words() -> None:
    p = address_parts("Flat 3, 12 High St, EB1 1BL")
    assert (p.flat, p.number, p.words, p.postcode) == ("3", "12", ("HIGH", "STREET"), "EB1 1BL")
    q = address_parts("3/12 High Street")
    assert (q.flat, q.number) == ("3", "12")
    r = address_parts("The Old Forge, Church Lane")
    assert (r.flat, r.number, r.words) == (None, None, ("OLD", "FORGE", "CHURCH", "LANE"))
    assert address_parts("12A High Street").number_digits == "12"


def test_sound_keys_and_edit_distance() -> None:
    assert sound_key("Smith") == sound_key("Smyth") == "S530"
    assert sound_key("Catherine") == sound_key("Kathryn")
    assert sound_key("Philip") == sound_key("Filip")
    assert sound_key("Jones") != sound_key("Smith")
    assert edit_distance("SMITH", "SMTIH") == 1  # an adjacent swap is one edit
    assert edit_distance("KITTEN", "SITTING") == 3
    assert edit_distance("", "ABC") == 3


def test_address_similarity_is_tolerant_but_tells_numbers_and_flats_apart() -> None:
    assert address_similarity("12a High St.", "12A HIGH STREET") == 1.0
    assert address_similarity("12 Hihg St", "12 High Street, Eastbrook") >= 0.9
    assert address_similarity("3 Kestrel House", "Flat 3, Kestrel House") >= 0.9
    # A different house number, flat or street scores clearly lower.
    assert address_similarity("14 High Street", "12 High Street") < 0.7
    assert address_similarity("Flat 4, Kestrel House", "Flat 3, Kestrel House") < 0.8
    assert address_similarity("12 Mill Road", "12 Hill Road") < 0.9
    assert address_similarity("12 High Street", "12A High Street") < 0.85
    assert address_similarity("", "12 High Street") == 0.0


# -- the gazetteer -------------------------------------------------------------------------------


def test_loads_the_example_borough() -> None:
    g = Gazetteer.from_csv(EXAMPLE)
    assert 250 <= len(g) <= 350
    assert len({r.uprn for r in g}) == len(g)
    assert {"Heron Park", "Millfield"} <= g.wards  # 4.1.5a sub-areas
    assert {r.owner for r in g} >= {"council", "private", "leasehold"}  # 7.11 ownership
    top = g.match("flat 3 kestrel hse")[0]
    assert top.record.line1 == "Flat 3, Kestrel House"
    assert top.record.line2 == "Heron Way"


def test_columns_are_read_and_normalised(small: Gazetteer) -> None:
    record = small.get(100000000006)
    assert record == AddressRecord(
        uprn=100000000006,
        line1="2 St Anne's Road",
        line2="",
        town="Eastbrook",
        postcode="EB2 4AF",
        ward="St Anne's",
        owner="housing association",
    )
    assert record.label == "2 St Anne's Road, Eastbrook, EB2 4AF"
    assert small.get(1) is None
    assert [r.uprn for r in small.addresses_at("eb2 3hg")] == [100000000004, 100000000005]


def test_optional_columns_may_be_left_out(tmp_path: Path) -> None:
    g = Gazetteer.from_csv(
        write(tmp_path, "postcode,town,line2,line1,UPRN\nEB1 1BL,Eastbrook,,1 High Street,7\n")
    )
    assert g.get(7) == AddressRecord(7, "1 High Street", "", "Eastbrook", "EB1 1BL")


def test_match_spacing_punctuation_and_abbreviations(small: Gazetteer) -> None:
    found = small.match("12a high st.")
    assert found[0].uprn == 100000000002
    assert found[0].score == 1.0
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert small.match("2 saint annes rd")[0].uprn == 100000000006
    assert small.match("flat 4 kestrel hse heron wy")[0].uprn == 100000000005
    assert small.match("12 Hihg Street")[0].uprn == 100000000001  # a typo


def test_match_uses_the_postcode(small: Gazetteer) -> None:
    # "12 ... Road" is ambiguous without the postcode; with it, Hill Road wins.
    with_pc = small.match("12 Hill Rd", postcode="eb35aa")
    assert with_pc[0].uprn == 100000000007
    assert with_pc[0].score == 1.0
    # A postcode written in the text is used too.
    assert small.match("12 Hill Road EB3 5AA")[0].score == 1.0
    # A misheard postcode still finds the address, with a lower score.
    wrong_pc = small.match("12 Hill Road", postcode="EB1 1BL")
    assert wrong_pc[0].uprn == 100000000007
    assert wrong_pc[0].score < 0.9
    with pytest.raises(InvalidPostcode):
        small.match("12 Hill Road", postcode="nonsense")


def test_match_finds_nothing_for_an_address_not_in_the_gazetteer(small: Gazetteer) -> None:
    assert small.match("99 Nowhere Lane") == []
    with pytest.raises(ValueError, match="addresses_at"):
        small.match("   ")


def test_in_area_flags_addresses_outside_the_organisation(small: Gazetteer) -> None:
    """4.1.5b: a means of validating whether an address falls within the boundaries."""
    assert small.in_area("eb1 1bl")
    assert small.in_area("EB2 4AF")
    assert not small.in_area("SW1A 1AA")
    assert not small.in_area("EB1 1BN")  # same sector, but no property of ours
    with pytest.raises(InvalidPostcode):
        small.in_area("not a postcode")


# -- bad files -----------------------------------------------------------------------------------

BROKEN = """\
uprn,line1,line2,town,postcode,ward,owner
100000000001,12 High Street,,Eastbrook,EB1 1BL,Central,private
12x,14 High Street,,Eastbrook,EB1 1BL,Central,private
100000000003,,,Eastbrook,EB1 1BL,Central,private
100000000004,16 High Street,,Eastbrook,EB1 1ZZ9,Central,private

100000000001,18 High Street,,Eastbrook,EB1 1BL,Central,private
100000000006,Flat 3, Kestrel House,Heron Way,Eastbrook,EB2 3HG,Heron Park,council
100000000007,20 High Street,,,EB1 1BL,Central,private
"""


def test_a_broken_csv_reports_every_problem_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(GazetteerError) as info:
        Gazetteer.from_csv(path)
    err = info.value
    assert isinstance(err, OohcoreError)
    where = {(p.line, p.col, p.code) for p in err.problems}
    assert where == {
        (3, 1, "gazetteer.uprn"),
        (4, 2, "gazetteer.line1"),
        (5, 5, "gazetteer.postcode"),
        (7, 1, "gazetteer.duplicate"),
        (8, 8, "gazetteer.fields"),
        (9, 4, "gazetteer.town"),
    }
    assert all(p.path == str(path) for p in err.problems)
    text = str(err)
    assert "nothing was loaded" in text
    assert f"{path}:7:1: UPRN 100000000001 is already on line 2" in text
    assert "double quotes" in text  # says what to do about the unquoted comma
    assert "up to 12 digits" in text


@pytest.mark.parametrize(
    ("content", "needle", "line", "col"),
    [
        ("", "the file is empty", 1, 0),
        ("uprn,line1,line2,town\n1,a,,b\n", "'postcode' is missing", 1, 0),
        ("uprn,line1,line2,town,postcode,ownr\n", "unknown column 'ownr'", 1, 6),
        ("uprn,line1,line2,town,postcode,uprn\n", "appears twice", 1, 6),
        ("uprn,line1,line2,town,postcode\n", "no addresses", 2, 0),
        ("uprn,line1,line2,town,postcode\n1234567890123,a,,b,EB1 1BL\n", "12 digits", 2, 1),
    ],
)
def test_bad_headers_and_values(
    tmp_path: Path, content: str, needle: str, line: int, col: int
) -> None:
    with pytest.raises(GazetteerError, match=needle) as info:
        Gazetteer.from_csv(write(tmp_path, content))
    assert (info.value.problems[0].line, info.value.problems[0].col) == (line, col)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(GazetteerError, match="cannot read the gazetteer file"):
        Gazetteer.from_csv(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"uprn,line1,line2,town,postcode\n1,1 Caf\xe9 Parade,,Eastbrook,EB1 1BL\n")
    with pytest.raises(GazetteerError, match="CSV UTF-8") as info:
        Gazetteer.from_csv(path)
    assert (info.value.problems[0].line, info.value.problems[0].col) == (2, 8)


def test_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    """Nothing half-loaded (DESIGN.md principle 6): the current gazetteer stays as it was."""
    path = write(tmp_path, SMALL)
    current = Gazetteer.from_csv(path)
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(GazetteerError):
        current = Gazetteer.from_csv(path)
    assert len(current) == 7
    assert current.in_area("EB3 5AA")


def test_an_excel_bom_and_multiline_quoted_fields_are_read(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffuprn,line1,line2,town,postcode\r\n"
        '1,"Flat 1,\r\nKestrel House",Heron Way,Eastbrook,EB2 3HG\r\n'
        "2,2 High Street,,Eastbrook,bad\r\n".encode()
    )
    with pytest.raises(GazetteerError) as info:
        Gazetteer.from_csv(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (4, 5)  # the record after a two-line record


def test_duplicate_records_given_directly_are_refused() -> None:
    record = AddressRecord(1, "1 High Street", "", "Eastbrook", "EB1 1BL")
    with pytest.raises(GazetteerError, match="more than once"):
        Gazetteer([record, AddressRecord(1, "2 High Street", "", "Eastbrook", "EB1 1BL")])


def test_names_and_addresses_share_one_text_folding() -> None:
    """One helper folds case and accents for both addresses and callers' names (search)."""
    from oohcore.search import addresses
    from oohcore.search import names as search_names

    assert addresses.ascii_upper("Zoë Ångström, rue d’Été") == "ZOE ANGSTROM, RUE D’ETE"
    assert search_names.ascii_upper is addresses.ascii_upper
    assert search_names.normalise_name("Zoë O’Brien") == "ZOE OBRIEN"
    assert addresses.normalise_address("1 Rue d’Été") == "1 RUE DETE"
