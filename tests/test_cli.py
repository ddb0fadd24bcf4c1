"""The ``oohcore`` command line, and the broken-ruleset corpus it must report on.

DESIGN.md principle 6, "errors are for people": every mistake in a ruleset is reported as
``path:line:col: message`` — never a traceback — and ``oohcore validate`` exits 1 (0 when the
rulesets are valid). Each file or folder of ``tests/rulesets/broken/`` holds exactly one known
mistake; ``CASES`` lists where each must be reported and a key phrase of the message. Issue
"Foundation and the ruleset language": spec 5.3 (scripts), 7.4.1 (fields), audit items 8–9.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from oohcore.cli import main
from oohcore.rulesets.loader import load_organisation, validate
from oohcore.rulesets.schema import KINDS, published

RULESETS = Path(__file__).parent / "rulesets"
BROKEN = RULESETS / "broken"
CATALOGUE = RULESETS / "catalogue"
BOROUGH = RULESETS / "borough"
LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.*)$")


@dataclass(frozen=True)
class Case:
    """``target`` (a file or folder under broken/) gives errors at ``where``: (file, line, col,
    phrase) each, files relative to broken/."""

    target: str
    where: tuple[tuple[str, int, int, str], ...]

    @property
    def id(self) -> str:
        return self.target.removeprefix("borough/options/")


def one(target: str, line: int, col: int, phrase: str, file: str | None = None) -> Case:
    return Case(target, ((file or target, line, col, phrase),))


def opt(name: str, line: int, col: int, phrase: str) -> Case:
    return one(f"borough/options/{name}.yaml", line, col, phrase)


CASES = [
    # --- YAML itself ---------------------------------------------------------------------------
    opt("yaml-syntax", 28, 15, "YAML syntax error: did not find expected ',' or ']'"),
    opt("tab-indent", 14, 1, "YAML syntax error: found a tab character"),
    opt("duplicate-key", 4, 1, "duplicate key 'name' (first given at line 3)"),
    opt("yaml-tag", 3, 7, "is not allowed in a ruleset; write a plain value"),
    opt("yaml-merge-key", 32, 5, "merge keys ('<<') are not supported; use 'extends:'"),
    opt("yaml-alias-loop", 28, 17, "a YAML alias (*name) inside this list or mapping refers back"),
    opt("yaml-too-deep", 4, 63, "nested more than 50 levels deep"),
    opt("empty", 1, 1, "the file is empty"),
    opt("not-utf8", 3, 10, "the file is not UTF-8 text (byte 0xe9"),
    opt("not-a-mapping", 2, 1, "expected a mapping of keys to values, found a list"),
    one("borough/options/no-such-file.yaml", 0, 0, "no such file or folder"),
    # --- the file format (the published schema and the models) --------------------------------
    opt("unknown-key", 15, 7, "unknown key 'essentail'; did you mean 'essential'?"),
    opt("missing-key", 18, 1, "missing 'default' in 'decision'"),
    # one mistake, one message: not also "missing 'decision'"
    opt("misspelt-required-key", 18, 1, "unknown key 'decison'; did you mean 'decision'?"),
    opt("unquoted-time", 7, 13, "found the number 1020; put the value in quotes"),
    opt("bad-enum", 4, 11, "'platnum' is not allowed here; use one of: platinum, gold"),
    opt("bad-id", 2, 5, "'Bad_Id' is not valid: an id is lower-case letters"),
    opt("bad-action-id", 31, 3, "the key 'Call_Back' is not valid: an id is lower-case"),
    opt("wrong-type", 27, 15, "expected a list, found the text 'phone'"),
    opt("bad-duration", 31, 15, "'10 minutes' is not valid: write a duration such as 10m"),
    opt("zero-duration", 31, 15, "a duration must be longer than zero"),
    opt("bad-time", 7, 13, "'25:00' is not valid: write a time of day in quotes"),
    opt("id-mismatch", 2, 5, "does not match the file name 'id-mismatch.yaml'"),
    # --- conditions (docs/rulesets.md "Checked when loaded") ------------------------------------
    opt("cond-unclosed-paren", 20, 13, "this '(' is never closed"),
    opt("cond-single-equals", 20, 20, "unexpected character '='; to compare, write =="),
    opt("cond-double-ampersand", 20, 30, "unexpected character '&'; write 'and' / 'or'"),
    opt("cond-chained", 20, 30, "comparisons cannot be chained"),
    opt("cond-unknown-field", 20, 34, "unknown field 'vulnerabel'; did you mean 'vulnerable'?"),
    opt("cond-escaped-quotes", 20, 37, "unknown field 'vulnerabel'"),
    opt("cond-folded", 22, 10, "unknown field 'vulnerabel'"),  # the second line of a >- block
    opt("cond-type-error", 20, 26, "cannot compare number with text using =="),
    # 5.3.3 / 7.4.1: a choice value the question does not have
    opt("cond-bad-choice", 20, 24, "'lek' is not one of the possible values (leak, no_heating)"),
    opt("cond-unknown-function", 20, 13, "unknown function startswith(); the functions are"),
    opt("ask-if-type-error", 15, 15, "must be yes or no, but this gives number"),
    # --- cross-references: rota roles, escalation (5.3.2; audit items 8-9), actions, templates
    opt("unknown-role", 29, 20, "unknown rota role 'duty-oficer' (did you mean 'duty-officer'?)"),
    opt("refer-no-escalation", 24, 3, "this referral has no escalation procedure"),
    opt("escalation-not-officer", 29, 20, "it must end at an on-call officer"),
    opt(
        "unknown-action-then", 21, 13, "no action named 'refr' in 'actions'; did you mean 'refer'?"
    ),
    opt(
        "unknown-action-default",
        22,
        12,
        "no action named 'advice' in 'actions'; did you mean 'advise'?",
    ),
    opt("template-unknown-placeholder", 34, 29, "unknown placeholder {repiar}; did you mean"),
    opt("template-attribute", 34, 29, "{reference.upper} is not allowed"),
    opt("template-folded", 36, 29, "unknown placeholder {repiar}; did you mean {repair}?"),
    opt("bad-setting", 8, 12, "'refer_always' is not one of the allowed values"),
    # --- extends (5.3.4: start from the catalogue) --------------------------------------------
    opt("extends-unresolved", 2, 10, "did you mean 'catalogue:repairs'?"),
    opt("extends-missing-file", 2, 10, "'extends' names '../nowhere/base.yaml', but there is no"),
    Case(
        "extends-cycle",
        (
            ("extends-cycle/options/first.yaml", 2, 10, "'extends' goes round in a circle"),
            ("extends-cycle/options/second.yaml", 2, 10, "'extends' goes round in a circle"),
        ),
    ),
    one(
        "duplicate-ids",
        1,
        5,
        "service option id 'twin' is also used by",
        "duplicate-ids/options/twin.yml",
    ),
    # --- organisation.yaml: routing (7.1.2-7.1.4) and time zone --------------------------------
    one(
        "access-unknown-option",
        12,
        21,
        "no service option 'repair' in this organisation; did you mean 'repairs'?",
        "access-unknown-option/organisation.yaml",
    ),
    one(
        "access-unknown-ivr",
        12,
        10,
        "no IVR menu named 'main-manu'",
        "access-unknown-ivr/organisation.yaml",
    ),
    one(
        "ivr-duplicate-key",
        19,
        14,
        "key '1' is used twice in this menu",
        "ivr-duplicate-key/organisation.yaml",
    ),
    one(
        "unknown-timezone",
        4,
        11,
        "unknown time zone 'Europe/Londn'; did you mean 'Europe/London'?",
        "unknown-timezone/organisation.yaml",
    ),
]
IN_CORPUS = [c for c in CASES if (BROKEN / c.target).exists()]


def rel(path: str) -> str:
    """A reported path relative to broken/ (reported paths are absolute)."""
    return Path(path).resolve().relative_to(BROKEN.resolve()).as_posix()


def located(case: Case) -> list[tuple[str, int, int]]:
    return [(file, line, col) for file, line, col, _ in case.where]


ALL_ERRORS = sorted(w for c in IN_CORPUS for w in located(c))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_broken_ruleset_gives_its_located_error(case: Case) -> None:
    problems = validate([BROKEN / case.target], catalogue=CATALOGUE)
    errors = [p for p in problems if p.severity == "error"]
    found = [(rel(p.path), p.line, p.col) for p in errors]
    assert found == located(case), "\n".join(map(str, errors))
    for problem, (_, _, _, phrase) in zip(errors, case.where, strict=True):
        assert phrase in problem.message


def test_every_broken_option_file_is_in_the_table_and_the_base_is_valid() -> None:
    """Each file makes one change to valid.yaml; valid.yaml itself has no problem at all."""
    assert validate([BROKEN / "borough/options/valid.yaml"], catalogue=CATALOGUE) == []
    files = {f"borough/options/{p.name}" for p in (BROKEN / "borough/options").iterdir()}
    listed = {c.target for c in CASES}
    assert files - listed == {"borough/options/valid.yaml"}


def test_validating_the_whole_corpus_reports_every_mistake_once_and_nothing_else() -> None:
    problems = validate([BROKEN], catalogue=CATALOGUE)
    errors = sorted((rel(p.path), p.line, p.col) for p in problems if p.severity == "error")
    assert errors == ALL_ERRORS
    warnings = [(rel(p.path), p.line) for p in problems if p.severity == "warning"]
    # a rule naming a missing action leaves the action it meant unused
    assert warnings == [
        ("borough/options/unknown-action-default.yaml", 31),
        ("borough/options/unknown-action-then.yaml", 24),
    ]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli_validate_exits_1_printing_path_line_col_message(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    target = BROKEN / case.target
    code, out, _ = run(capsys, "validate", "--catalogue", str(CATALOGUE), str(target))
    assert code == 1
    printed = [LINE.match(line) for line in out.splitlines()]
    assert all(printed), out
    errors = [m for m in printed if m and not m["message"].startswith("warning: ")]
    assert [(rel(m["path"]), int(m["line"]), int(m["col"])) for m in errors] == located(case)
    for m, (_, _, _, phrase) in zip(errors, case.where, strict=True):
        assert phrase in m["message"]


def test_cli_validate_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--json", "--catalogue", str(CATALOGUE), str(BROKEN))
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    problems = report["problems"]
    for p in problems:
        assert set(p) == {"path", "line", "col", "code", "severity", "message"}
        assert isinstance(p["line"], int) and isinstance(p["col"], int)
        assert p["severity"] in ("error", "warning")
    errors = sorted(
        (rel(p["path"]), p["line"], p["col"]) for p in problems if p["severity"] == "error"
    )
    assert errors == ALL_ERRORS
    codes = {rel(p["path"]): p["code"] for p in problems if p["severity"] == "error"}
    assert codes["borough/options/unknown-key.yaml"] == "unknown-key"
    assert codes["borough/options/cond-bad-choice.yaml"] == "bad-condition"
    assert codes["borough/options/escalation-not-officer.yaml"] == "escalation-end"
    assert codes["borough/options/duplicate-key.yaml"] == "duplicate-key"


def test_cli_validate_json_for_a_valid_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--json", "--catalogue", str(CATALOGUE), str(BOROUGH))
    assert code == 0
    assert json.loads(out) == {"valid": True, "problems": []}


def test_the_installed_command_never_prints_a_traceback() -> None:
    """The real entry point, in its own process, over the whole corpus at once."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "oohcore.cli",
            "validate",
            "--catalogue",
            str(CATALOGUE),
            str(BROKEN),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    printed = [LINE.match(line) for line in result.stdout.splitlines()]
    assert all(printed), result.stdout
    errors = sorted(
        (rel(m["path"]), int(m["line"]), int(m["col"]))
        for m in printed
        if m and not m["message"].startswith("warning: ")
    )
    assert errors == ALL_ERRORS


def test_validate_valid_rulesets_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "validate", "--catalogue", str(CATALOGUE), str(BOROUGH), str(CATALOGUE)
    )
    assert code == 0
    assert out == ""
    assert err.startswith("valid: ")


def test_validate_with_only_warnings_exits_0(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "borough"
    (folder / "options").mkdir(parents=True)
    (folder / "organisation.yaml").write_text((BROKEN / "borough/organisation.yaml").read_text())
    (folder / "options/unused.yaml").write_text(
        "id: unused\nname: Unused action\ndecision:\n  default: advise\nactions:\n"
        "  advise: {kind: resolve, information: Advice.}\n"
        "  spare: {kind: resolve, information: Never chosen.}\n"
    )
    code, out, err = run(capsys, "validate", str(folder))
    assert code == 0
    assert re.fullmatch(
        r".*unused\.yaml:7:3: warning: action 'spare' is never chosen by the decision\n", out
    )
    assert "1 warning(s)" in err


def test_validate_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    assert "PATH" in capsys.readouterr().err.upper()


@pytest.mark.parametrize("kind", KINDS)
def test_schema_prints_the_published_json_schema(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "schema", kind)
    assert code == 0
    schema = json.loads(out)
    assert schema == published(kind)  # type: ignore[arg-type]
    assert schema["$id"].endswith(f"/{kind}.schema.json")


def test_schema_defaults_to_the_service_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out)["title"] == "ServiceOptionFile"


def test_versions_prints_each_version_hash(capsys: pytest.CaptureFixture[str]) -> None:
    """5.3.1: the hash an officer signs off, and whether each option is signed off."""
    code, out, _ = run(capsys, "versions", "--catalogue", str(CATALOGUE), str(BOROUGH))
    assert code == 0
    org = load_organisation(BOROUGH, catalogue=CATALOGUE)
    lines = out.splitlines()
    assert lines[0] == f"organisation test-borough: {org.version}"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", org.version)
    expected = {f"  {o.id}: {o.version} (NOT signed off)" for o in org.service_options.values()}
    assert set(lines[1:]) == expected
    assert len(expected) == 2


def test_versions_shows_a_signed_off_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "borough"
    shutil.copytree(BOROUGH, folder)
    version = load_organisation(folder, catalogue=CATALOGUE).service_options["helpline"].version
    helpline = folder / "options/helpline.yaml"
    helpline.write_text(
        helpline.read_text() + f"sign_off: {{by: A. Officer, on: 2026-01-05, version: {version}}}\n"
    )
    code, out, _ = run(capsys, "versions", "--catalogue", str(CATALOGUE), str(folder))
    assert code == 0
    assert f"  helpline: {version} (signed off)" in out.splitlines()
    assert any(line.endswith("(NOT signed off)") for line in out.splitlines())


def test_versions_of_a_broken_organisation_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "versions", str(BROKEN / "unknown-timezone"))
    assert code == 1
    assert out == ""
    assert "organisation.yaml:4:11: unknown time zone" in err
