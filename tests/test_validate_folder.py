"""``oohcore validate`` checks every file an organisation folder holds (issue 7, defect 7).

Before: ``rota.yaml`` and ``gazetteer.csv`` were not read by ``validate`` at all, so a bad one
passed and ``Engine.open`` then failed — a UPRN written ``12²`` passes ``str.isdigit()`` and
crashed it with a raw ``ValueError``. Now ``validate`` gives the same located problem
``Engine.open`` raises (7.11 for the gazetteer, 2.3.3 for the rota).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from oohcore.cli import main
from oohcore.engine import Engine
from oohcore.errors import RulesetError
from oohcore.search.gazetteer import GazetteerError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "example-borough"
LOCATED = re.compile(r"^\S+:\d+:\d+: ", re.M)


@pytest.fixture
def borough(tmp_path: Path) -> Path:
    folder = tmp_path / "borough"
    shutil.copytree(EXAMPLE, folder)
    return folder


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["validate", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_example_borough_is_valid(borough: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _validate(capsys, str(borough))
    assert code == 0, text
    assert "warning" not in text


def test_a_superscript_digit_in_a_uprn_is_refused_by_validate_and_by_open(
    borough: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gaz = borough / "gazetteer.csv"
    lines = gaz.read_text().splitlines()
    lines.append("12²,99 Nowhere Road,,Eastbrook,EB1 1AB,Eastbrook Central,private")
    gaz.write_text("\n".join(lines) + "\n")
    code, text = _validate(capsys, str(borough))
    assert code == 1
    assert f"gazetteer.csv:{len(lines)}:1: uprn '12²' is not a UPRN" in text
    with pytest.raises(GazetteerError) as err:  # not a raw ValueError
        Engine.open(borough, f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert err.value.problems[0].line == len(lines)


def test_a_bad_rota_is_reported_at_its_line(
    borough: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rota = borough / "rota.yaml"
    rota.write_text(rota.read_text() + "surprise: 1\n")
    code, text = _validate(capsys, str(borough))
    assert code == 1
    assert "rota.yaml:" in text and "surprise" in text
    assert LOCATED.search(text)
    with pytest.raises(RulesetError):
        Engine.open(borough, f"sqlite:///{tmp_path / 'x.sqlite'}")


def test_a_rota_naming_an_undeclared_role_fails_validate(
    borough: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rota = borough / "rota.yaml"
    rota.write_text(re.sub(r"role: \S+", "role: no-such-role", rota.read_text(), count=1))
    code, text = _validate(capsys, str(borough))
    assert code == 1
    assert "rota.yaml:" in text and "no-such-role" in text


def test_bad_call_detail_records_in_the_folder_are_reported(
    borough: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (borough / "cdrs-2026-10.csv").write_text("not,a,cdr\n1,2,3\n")
    code, text = _validate(capsys, str(borough))
    assert code == 1
    assert "cdrs-2026-10.csv:" in text


def test_an_unknown_file_is_a_warning_not_an_error(
    borough: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (borough / "rota.yml").write_text("officers: []\n")  # a typo for rota.yaml
    (borough / "notes.txt").write_text("hello\n")
    code, text = _validate(capsys, str(borough))
    assert code == 0
    assert "rota.yml:0:0: warning:" in text
    assert "notes.txt:0:0: warning:" in text


def test_a_folder_of_organisations_checks_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "all"
    shutil.copytree(EXAMPLE, root / "a")
    gaz = root / "a" / "gazetteer.csv"
    gaz.write_text(gaz.read_text() + "١٢٣,1 X Road,,Eastbrook,EB1 1AB,Eastbrook Central,private\n")
    code, text = _validate(capsys, str(root))
    assert code == 1
    assert "uprn '١٢٣' is not a UPRN" in text


@pytest.mark.parametrize(
    ("written", "expect"),
    [
        ("Europe/Lundon", "did you mean 'Europe/London'?"),
        ('"../../etc/passwd"', "use an IANA name"),
        ('""', "unknown time zone ''"),
        ('"Europe/Lon\\0don"', "unknown time zone"),
        ("x" * 10_000, "unknown time zone 'xxxx"),
    ],
    ids=["typo", "a-path", "empty", "nul", "10000-characters"],
)
@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_a_bad_timezone_beside_a_rota_is_one_located_error(
    borough: Path,
    capsys: pytest.CaptureFixture[str],
    written: str,
    expect: str,
    json_output: bool,
) -> None:
    """The rota is read on the organisation's wall clock (2.1.3): with the time zone unusable,
    validate reports the time zone where it is written, not a traceback from reading rota.yaml
    against it."""
    org = borough / "organisation.yaml"
    text = org.read_text()
    org.write_text(text.replace("timezone: Europe/London", f"timezone: {written}"))
    line = text.splitlines().index("timezone: Europe/London") + 1
    code, out = _validate(capsys, *(["--json"] if json_output else []), str(borough))
    assert code == 1
    assert "Traceback" not in out
    if json_output:
        problems = json.loads(out)["problems"]
        assert [(p["line"], p["code"]) for p in problems] == [(line, "bad-timezone")]
        assert expect in problems[0]["message"]
    else:
        assert re.findall(r"^\S*organisation\.yaml:(\d+):(\d+): ", out, re.M) == [(str(line), "11")]
        assert out.splitlines()[-1].startswith(str(borough))  # nothing after it: no traceback
        assert expect in out
        assert max(len(x) for x in out.splitlines()) < 300  # never the whole value back


def test_a_file_outside_a_ruleset_folder_says_a_folder_is_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not ':0:0' with no place to look: the file's first line, and what validate expects."""
    lone = tmp_path / "lone.yaml"
    lone.write_text("id: lone\nname: Lone\n")
    (tmp_path / "rota.yaml").write_text("officers: []\n")
    code, out = _validate(capsys, str(lone), str(tmp_path / "rota.yaml"))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2, out  # one each (no 'a file oohcore does not read' warning besides)
    for line, name in zip(lines, ("lone.yaml", "rota.yaml"), strict=True):
        assert line.endswith(
            f"{name}:1:1: this file is not in a ruleset folder: neither {tmp_path.name}/ nor the "
            "folder above an 'options' folder holds organisation.yaml or catalogue.yaml; give "
            "validate an organisation or catalogue folder, or a file inside one"
        ), line
