"""Lint for ambiguity and dead ends (oohcore.procedure.lint; issue 11 item 3, audit item 8).

Each finding kind is shown on a small ruleset (the test borough of tests/rulesets with one
option written to show them), and each witness is checked by running the *compiled* decision
on it: the witness of an unreachable rule really makes that rule's condition hold and really
is taken by the earlier rule named; a rule that can never match really is false over every
value of its fields. The real catalogue and example borough lint clean (or explained).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from oohcore.cli import main
from oohcore.procedure.lint import lint_path
from oohcore.procedure.witness import Search, builtin_defaults, first
from oohcore.rulesets.conditions import compile_condition
from oohcore.rulesets.loader import load_organisation

ROOT = Path(__file__).parents[1]
RULESETS = Path(__file__).parent / "rulesets"

OPTION = """\
id: lintme
name: Lint examples
script:
  questions:
    - field: caller_name
      ask: Your name?
      essential: true
    - field: kind
      ask: What kind?
      type: choice
      essential: true
      options: {a: A, b: B, c: C}
    - field: urgent
      ask: Is it urgent?
      type: yes_no
    - field: age
      ask: How old?
      type: number
      min: 0
      max: 120
    - field: impossible
      ask: Never asked
      type: yes_no
      ask_if: 'kind == "a" and kind == "b"'
    - field: shoe_size
      ask: Shoe size?
decision:
  rules:
    - when: 'kind == "a"'
      then: act-a
    - when: 'kind == "a" and urgent'
      then: act-b
    - when: 'age > 100 and age < 50'
      then: act-c
    - when: 'kind == "b" and age >= 65'
      then: act-d
    - when: 'kind == "c" and urgent and hour >= 22'
      then: refer
  default: act-default
actions:
  act-a: {kind: resolve, information: a}
  act-b: {kind: resolve, information: b}
  act-c: {kind: resolve, information: c}
  act-d: {kind: signpost, service: Somewhere}
  act-spare: {kind: resolve, information: spare}
  act-default: {kind: resolve, information: "{caller_name} {impossible}"}
  refer:
    kind: refer
    rota_role: duty-officer
    channels: [phone]
    escalation:
      - rota_role: duty-officer
        channels: [phone]
"""

ROTA = """\
officers:
  - {id: ann, name: Ann, phone: "07700 900001"}
assignments:
  - {role: duty-officer, officer: ann, from: "2026-12-01T17:00:00", to: "2026-12-02T08:00:00"}
"""


@pytest.fixture
def borough(tmp_path: Path) -> Path:
    folder = tmp_path / "borough"
    shutil.copytree(RULESETS / "borough", folder)
    (folder / "options" / "lintme.yaml").write_text(OPTION, encoding="utf-8")
    (folder / "rota.yaml").write_text(ROTA, encoding="utf-8")
    return folder


def _findings(borough: Path) -> dict[str, list]:  # type: ignore[type-arg]
    report = lint_path(borough, catalogue=RULESETS / "catalogue")
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for f in report.findings:
        if f.option == "lintme":
            out.setdefault(f.kind, []).append(f)
    return out


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_unreachable_rule_has_a_witness_the_compiled_decision_confirms(borough: Path) -> None:
    found = _findings(borough)["unreachable"]
    assert [f.target for f in found] == ["rule-2"]
    f = found[0]
    path = borough / "options" / "lintme.yaml"
    assert (Path(f.path).resolve(), f.line) == (path.resolve(), _line_of(path, "urgent'"))
    option = load_organisation(borough, catalogue=RULESETS / "catalogue").service_options["lintme"]
    assert f.witness is not None
    values = {**builtin_defaults(), **option.settings, **f.witness}
    # the witness makes rule 2 hold …
    assert compile_condition(option.definition.decision.rules[1].when, option.fields).holds(values)
    # … and the earlier rule named takes the call
    assert f.covered_by == 0
    assert option.decide(values).rule == 0


def test_never_matching_rule_is_false_over_every_value(borough: Path) -> None:
    found = _findings(borough)["never-matches"]
    assert [f.target for f in found] == ["rule-3"]
    assert found[0].witness is None
    option = load_organisation(borough, catalogue=RULESETS / "catalogue").service_options["lintme"]
    cond = compile_condition(option.definition.decision.rules[2].when, option.fields)
    # every whole and half number of the question's range, and unanswered
    ages = [None, *(x / 2 for x in range(0, 241))]
    assert not any(cond.holds({"age": a}) for a in ages)


def test_reached_rules_have_witnesses_that_reach_them(borough: Path) -> None:
    option = load_organisation(borough, catalogue=RULESETS / "catalogue").service_options["lintme"]
    search = Search(option)
    for rule in (0, 3, 4, None):
        w = first(search.reaching(rule))
        assert w is not None, rule
        assert option.decide(w.values).rule == rule  # checked on the compiled decision
    w4 = first(search.reaching(3))
    assert w4 is not None and w4.values["kind"] == "b" and w4.values["age"] >= 65
    w5 = first(search.reaching(4))
    assert w5 is not None and w5.values["hour"] >= 22 and w5.values["urgent"] is True
    # an essential question the witness does not need is still answered (5.3.3)
    assert "caller_name" in w4.values


def test_question_findings(borough: Path) -> None:
    found = _findings(borough)
    assert [f.target for f in found["never-asked"]] == ["impossible"]
    assert [f.target for f in found["never-read"]] == ["shoe_size"]
    path = borough / "options" / "lintme.yaml"
    assert found["never-read"][0].line == _line_of(path, "field: shoe_size")


def test_action_findings(borough: Path) -> None:
    found = _findings(borough)
    # act-b and act-c are chosen only by dead rules; act-spare by none
    assert sorted(f.target for f in found["unused-action"]) == ["act-b", "act-c", "act-spare"]
    assert [f.target for f in found["no-number"]] == ["act-d"]
    path = borough / "options" / "lintme.yaml"
    assert found["no-number"][0].line == _line_of(path, "act-d:")


def test_escalation_nobody_holds_and_unrouted(borough: Path) -> None:
    found = _findings(borough)
    assert [f.target for f in found["nobody-holds"]] == ["refer"]
    assert "nobody holds at every moment" in found["nobody-holds"][0].message
    assert [f.target for f in found["unrouted"]] == ["option"]
    assert found["unrouted"][0].path.endswith("organisation.yaml")
    # with a standing holder the escalation finding goes away
    (borough / "rota.yaml").write_text(
        ROTA + "  - {role: duty-officer, officer: ann}\n", encoding="utf-8"
    )
    assert "nobody-holds" not in _findings(borough)


NEW_ROTA = """\
officers:
  - {id: ann, name: Ann, phone: "07700 900001"}
  - {id: bob, name: Bob, phone: "07700 900002"}
roles:
  - role: duty-officer
    stages:
      - layers:
          - {name: weekly, officers: [ann, bob], turn: 7d, handoff: "2026-01-05T17:00"}
  - role: night-officer
    stages:
      - layers:
          - name: nights
            officers: [bob]
            restrictions: [{days: [daily], from: "17:00", to: "08:00"}]
  - role: area-officer
    area: north
    stages:
      - layers: [{name: north only, officers: [ann]}]
overrides:
  - {role: area-officer, officer: bob, from: "2026-12-01T00:00", to: "2027-12-01T00:00"}
"""

ENDS_AT = """\
  {action}:
    kind: refer
    rota_role: duty-officer
    channels: [phone]
    escalation:
      - rota_role: {role}
        channels: [phone]
"""


@pytest.mark.parametrize(
    ("role", "held"),
    [
        ("duty-officer", True),  # a rotation with no restriction: someone at every moment
        ("night-officer", False),  # nights only: nobody by day
        ("area-officer", False),  # the north area only, and a year of dated cover
    ],
)
def test_nobody_holds_reads_the_rota_format_the_docs_describe(
    borough: Path, capsys: pytest.CaptureFixture[str], role: str, held: bool
) -> None:
    """The engine's reader (oohcore.rota.read_rota): with roles, stages and layers a rotation
    holds the role, and a role held only by night, in one area or by dated cover does not.
    validate says so too, as a warning, with no store; --strict makes it an error."""
    org = borough / "organisation.yaml"
    org.write_text(
        org.read_text().replace(
            "    kind: manager\n",
            "    kind: manager\n  - {id: night-officer, name: Night officer, kind: officer}\n"
            "  - {id: area-officer, name: Area officer, kind: officer}\n",
            1,
        )
    )
    (borough / "rota.yaml").write_text(NEW_ROTA, encoding="utf-8")
    option = borough / "options" / "lintme.yaml"
    option.write_text(
        OPTION.replace(
            "  refer:\n    kind: refer\n    rota_role: duty-officer\n    channels: [phone]\n"
            "    escalation:\n      - rota_role: duty-officer\n        channels: [phone]\n",
            ENDS_AT.format(action="refer", role=role),
        ),
        encoding="utf-8",
    )
    found = _findings(borough).get("nobody-holds", [])
    line = _line_of(option, f"- rota_role: {role}")
    assert [(f.target, f.line) for f in found] == ([] if held else [("refer", line)])
    args = ["validate", str(borough), "--catalogue", str(RULESETS / "catalogue")]
    assert main(args) == 0  # a warning: the store's living rota may hold it
    out = capsys.readouterr().out
    warned = [x for x in out.splitlines() if "nobody-holds" in x]
    if held:
        assert warned == []
    else:
        assert len(warned) == 1 and f"lintme.yaml:{line}:" in warned[0], out
        assert ": warning: nobody-holds: the escalation of 'refer' ends at" in warned[0]
        assert main([*args, "--strict"]) == 1
        strict = [x for x in capsys.readouterr().out.splitlines() if "nobody-holds" in x]
        assert len(strict) == 1 and "warning" not in strict[0], strict


def test_the_old_format_still_counts_a_standing_assignment(borough: Path) -> None:
    (borough / "rota.yaml").write_text(
        ROTA + "  - {role: duty-officer, officer: ann}\n", encoding="utf-8"
    )
    assert "nobody-holds" not in _findings(borough)
    # a standing assignment of an officer not on the list: the rota does not load, and lint
    # does not guess (validate reports the rota's own error)
    (borough / "rota.yaml").write_text(
        ROTA + "  - {role: duty-officer, officer: zed}\n", encoding="utf-8"
    )
    assert "nobody-holds" not in _findings(borough)


def test_an_explained_finding_does_not_fail(
    borough: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["lint", str(borough), "--catalogue", str(RULESETS / "catalogue")]
    assert main(args) == 1
    path = borough / "options" / "lintme.yaml"
    text = path.read_text() + "lint:\n  unrouted option: Reached from the repairs line only.\n"
    path.write_text(text, encoding="utf-8")
    report = lint_path(borough, catalogue=RULESETS / "catalogue")
    unrouted = [f for f in report.findings if f.kind == "unrouted"]
    assert unrouted[0].explained == "Reached from the repairs line only."
    assert unrouted[0] not in report.open
    assert any(f.kind == "unreachable" for f in report.open)


def test_validate_strict_runs_lint(borough: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["validate", str(borough), "--catalogue", str(RULESETS / "catalogue")]
    assert main(args) == 0  # warnings only
    assert main([*args, "--strict"]) == 1
    out = capsys.readouterr().out
    assert "lintme.yaml" in out and "unreachable" in out


def test_settings_alternatives_are_not_dead_rules() -> None:
    """A rule that tests a setting (2.2.2) serves the other choice: not a finding."""
    report = lint_path(ROOT / "rulesets" / "catalogue")
    assert not [f for f in report.findings if f.option == "noise"]


@pytest.mark.parametrize("folder", ["rulesets/catalogue", "examples/example-borough"])
def test_catalogue_and_example_lint_clean(folder: str) -> None:
    report = lint_path(ROOT / folder)
    assert report.open == [], "\n".join(str(f) for f in report.open)
    for f in report.findings:
        assert f.explained and len(f.explained) > 20


def test_domains_cover_each_side_of_every_number() -> None:
    """Interval reasoning: a number compared with 5 is tried below, at and above 5."""
    org = load_organisation(ROOT / "examples" / "example-borough")
    search = Search(org.service_options["housing-repairs"])
    temps = search.domains["outside_temp"]
    assert {4, 5, 6} <= set(temps) and None in temps
    assert all(-30 <= t <= 45 for t in temps if t is not None)
    assert list(itertools.islice(search.reaching(None), 1))
