"""Scenario tests (oohcore.procedure.scenarios; 5.3.1 user-acceptance testing, issue 11 item 4).

The catalogue and the example borough ship a scenario file for every option; they all pass and
exercise every rule and every default (coverage 100%). A scenario that expects the wrong
action fails with a readable report and in JUnit XML; a malformed scenario file is an error
at its line; a scenario runs with the variant in force at its time (5.4.3).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from oohcore.cli import main
from oohcore.errors import RulesetError
from oohcore.procedure.scenarios import SCENARIOS_DIR, Scenario, run_path, run_scenario
from oohcore.rulesets.loader import load_catalogue, load_organisation

ROOT = Path(__file__).parents[1]
CATALOGUE = ROOT / "rulesets" / "catalogue"
EXAMPLE = ROOT / "examples" / "example-borough"


@pytest.mark.parametrize("folder", [CATALOGUE, EXAMPLE])
def test_every_option_has_scenarios_that_pass_with_full_coverage(folder: Path) -> None:
    run = run_path(folder)
    assert run.failed == [], [r.failures for r in run.failed]
    files = {p.stem for p in (folder / SCENARIOS_DIR).glob("*.yaml")}
    assert files == set(run.rules)  # a scenario file for every option
    assert run.uncovered() == {}
    assert run.coverage() == 1.0
    assert len(run.results) >= sum(n + 1 for n in run.rules.values())


def test_coverage_names_the_rules_no_scenario_exercises(tmp_path: Path) -> None:
    folder = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, folder)
    path = folder / SCENARIOS_DIR / "housing-repairs.yaml"
    text = path.read_text()
    start = text.index("- name: 'rule 1:")
    end = text.index("- name: 'rule 2:")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    run = run_path(folder)
    assert run.uncovered() == {"housing-repairs": [0]}
    assert run.coverage() < 1.0


def test_a_wrong_expectation_fails_readably_and_in_junit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, folder)
    path = folder / SCENARIOS_DIR / "housing-repairs.yaml"
    path.write_text(
        path.read_text().replace("action: signpost-gas", "action: refer-emergency", 1), "utf-8"
    )
    junit = tmp_path / "junit.xml"
    assert main(["test", str(folder), "--junit", str(junit), "--coverage"]) == 1
    out = capsys.readouterr().out
    assert "FAIL housing-repairs: rule 1" in out
    assert "action: expected refer-emergency, got signpost-gas" in out
    suites = ET.parse(junit).getroot()
    suite = next(s for s in suites if s.get("name") == "housing-repairs")
    assert suite.get("failures") == "1"
    failed = [c for c in suite if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0].get("name", "").startswith("rule 1")
    assert "not exercised: housing-repairs: rule 1" in out  # a failing scenario covers nothing


def test_scenario_files_are_validated_with_located_errors(tmp_path: Path) -> None:
    folder = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, folder)
    path = folder / SCENARIOS_DIR / "noise.yaml"
    path.write_text(
        "option: noise\n"
        "scenarios:\n"
        "  - name: bad\n"
        '    at: "2026-12-19T23:00"\n'
        "    answers: {noise_type: kazoo, colour: red}\n"
        "    expect: {action: no-such-action}\n"
        "    surprise: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(RulesetError) as exc:
        run_path(folder)
    shown = [str(p) for p in exc.value.problems]
    assert any(s.endswith("noise.yaml:7:5: unknown key 'surprise'") for s in shown), shown
    path.write_text(path.read_text().replace("    surprise: 1\n", ""), encoding="utf-8")
    with pytest.raises(RulesetError) as exc:
        run_path(folder)
    shown = [str(p) for p in exc.value.problems]
    assert any(":6:" in s and "no action 'no-such-action'" in s for s in shown), shown
    assert any(":5:" in s and "'kazoo' is not an option of noise_type" in s for s in shown)
    assert any(":5:" in s and "asks no question 'colour'" in s for s in shown)
    assert main(["test", str(folder)]) == 1


def test_the_variant_in_force_at_the_time_decides() -> None:
    """Example Borough's noise patrol stops at 03:00 on weeknights (5.4.3)."""
    org = load_organisation(EXAMPLE)
    noise = org.service_options["noise"]
    answers = {
        "caller_name": "A Caller",
        "address": "1 High Street",
        "contact_phone": "07700 900123",
        "noise_type": "music",
        "happening_now": True,
    }
    answers = {k: v for k, v in answers.items() if k in {q.field for q in noise.questions}}
    for q in noise.questions:  # answer any other essential question plainly
        if q.essential and q.field not in answers and q.ask_if is None:
            answers[q.field] = next(iter(q.options)) if q.options else "given"
    late = Scenario.model_validate(
        {"name": "late", "at": "2026-12-16T03:30", "answers": answers, "expect": {"action": "x"}}
    )
    early = late.model_copy(update={"at": late.at.replace(hour=23)})
    rule_late, _ = run_scenario(noise, late, directory=org.directory)
    rule_early, _ = run_scenario(noise, early, directory=org.directory)
    rules = noise.definition.decision.rules
    assert rule_late is not None and rules[rule_late].when == 'variant == "no-patrol"'
    assert rule_early != rule_late


def test_texts_contacts_and_escalation_are_checked() -> None:
    cat = load_catalogue(CATALOGUE)
    option = cat.service_options["housing-repairs"]
    base = {
        "name": "gas",
        "at": "2026-12-19T22:00",
        "answers": {
            "caller_name": "A",
            "address": "1 High St",
            "contact_phone": "07700 900123",
            "tenure": "council_tenant",
            "repair": "gas_smell",
            "details": "smell of gas",
        },
    }
    good = Scenario.model_validate(
        {**base, "expect": {"action": "signpost-gas", "contacts": ["gas-emergency"]}}
    )
    assert run_scenario(option, good, directory=cat.directory)[1] == []
    bad = Scenario.model_validate(
        {
            **base,
            "expect": {
                "action": "signpost-gas",
                "contacts": ["samaritans"],
                "say": ["text that is not there"],
                "escalation": ["housing-duty-officer"],
            },
        }
    )
    failures = run_scenario(option, bad, directory=cat.directory)[1]
    assert [f.split(":")[0] for f in failures] == [
        "contacts",
        "the handler's words do not contain 'text that is not there'",
        "escalation",
    ]
    unanswered = Scenario.model_validate(
        {**base, "answers": {"repair": "gas_smell"}, "expect": {"action": "signpost-gas"}}
    )
    assert (
        "essential questions unanswered"
        in run_scenario(option, unanswered, directory=cat.directory)[1][0]
    )


def test_a_sign_off_names_the_scenarios_that_passed(tmp_path: Path) -> None:
    """5.3.1: sign-off records who, when, their role and the scenarios that passed; a named
    scenario that no longer passes fails the run, and the engine still serves only versions
    whose hash the sign-off names (``require_sign_off``)."""
    folder = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, folder)
    version = load_catalogue(folder).service_options["parks"].version
    names = [r.name for r in run_path(folder).results if r.option == "parks"]
    path = folder / "options" / "parks.yaml"
    signed = (
        path.read_text()
        + "\nsign_off:\n  by: Sam Patel\n  role: Head of Parks\n  on: 2026-11-30\n"
        + f"  version: {version}\n  scenarios:\n"
        + "".join(f"    - {n!r}\n" for n in names)
    )
    path.write_text(signed, encoding="utf-8")
    option = load_catalogue(folder).service_options["parks"]
    assert option.signed_off and option.definition.sign_off is not None
    assert option.definition.sign_off.role == "Head of Parks"
    assert run_path(folder).failed == []
    path.write_text(signed + "    - 'a scenario since deleted'\n", encoding="utf-8")
    failed = run_path(folder).failed
    assert [r.name for r in failed] == ["sign-off by Sam Patel on 2026-11-30"]
    assert "'a scenario since deleted', which does not pass" in failed[0].failures[0]


def test_a_draft_covers_every_rule_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "example-borough"
    shutil.copytree(EXAMPLE, folder)
    shutil.rmtree(folder / SCENARIOS_DIR)
    assert main(["test", str(folder), "--draft", "noise"]) == 0
    draft = capsys.readouterr().out
    assert draft.startswith("# Scenario tests of Noise nuisance")
    (folder / SCENARIOS_DIR).mkdir()
    (folder / SCENARIOS_DIR / "noise.yaml").write_text(draft, encoding="utf-8")
    run = run_path(folder)
    assert run.failed == []
    assert "noise" not in run.uncovered()  # every rule and the default
    assert main(["test", str(folder), "--draft", "nosie"]) == 1
    assert "no service option 'nosie'" in capsys.readouterr().err
