"""``oohcore diff`` (oohcore.procedure.diff): changes in a council officer's words (2.3.1).

Two copies of the real catalogue, the second edited the way an officer would: a condition
widened, another narrowed, one reworded, a rule added, a wait shortened, a contact changed.
Each comes out as one sentence; a widened condition's example really holds under the new
condition and not the old (checked with both compiled conditions).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oohcore.cli import main
from oohcore.procedure.diff import diff_paths
from oohcore.rulesets.conditions import compile_condition
from oohcore.rulesets.loader import load_catalogue

ROOT = Path(__file__).parents[1]
CATALOGUE = ROOT / "rulesets" / "catalogue"
RULE6 = '"electrical_fault", "insecure"]'


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, count), encoding="utf-8")


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(CATALOGUE, old)
    shutil.copytree(CATALOGUE, new)
    return old, new


def test_unchanged_says_nothing(versions: tuple[Path, Path]) -> None:
    assert diff_paths(*versions) == []


def test_widened_condition_with_a_checked_example(versions: tuple[Path, Path]) -> None:
    old, new = versions
    path = new / "options" / "housing-repairs.yaml"
    _edit(path, RULE6, '"electrical_fault", "insecure", "no_heating"]')
    changes = diff_paths(old, new)
    assert [c.what for c in changes] == ["condition-widened"]
    change = changes[0]
    assert change.text.startswith("rule 6 now applies to more calls")
    assert change.example is not None and change.example["repair"] == "no_heating"
    a = load_catalogue(old).service_options["housing-repairs"]
    b = load_catalogue(new).service_options["housing-repairs"]
    before = compile_condition(a.definition.decision.rules[5].when, b.fields)
    after = compile_condition(b.definition.decision.rules[5].when, b.fields)
    assert after.holds(change.example) and not before.holds(change.example)


def test_narrowed_and_reworded(versions: tuple[Path, Path]) -> None:
    old, new = versions
    path = new / "options" / "housing-repairs.yaml"
    _edit(path, RULE6, '"electrical_fault"]')
    _edit(
        path,
        '\'tenure in ["housing_association", "private"]\'',
        '\'tenure in ["private", "housing_association"]\'',
    )
    whats = {c.what: c for c in diff_paths(old, new)}
    assert set(whats) == {"condition-narrowed", "condition-reworded"}
    assert (whats["condition-narrowed"].example or {}).get("repair") == "insecure"
    assert "rule 4 was reworded (it applies to the same calls)" in whats["condition-reworded"].text


def test_rule_added_wait_shortened_contact_changed(
    versions: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = versions
    path = new / "options" / "housing-repairs.yaml"
    _edit(
        path,
        "    - when: 'duplicate'\n",
        "    - when: 'repair == \"no_power\" and vulnerable'\n"
        "      then: refer-emergency\n"
        "    - when: 'duplicate'\n",
    )
    _edit(path, "wait: 15m", "wait: 10m")
    _edit(path, "contact: gas-emergency", "contact: samaritans")
    texts = [str(c) for c in diff_paths(old, new)]
    assert any(
        'rule 5 added: when repair == "no_power" and vulnerable then refer-emergency' in t
        for t in texts
    ), texts
    assert any("escalation stage 1: the wait shortened from 15m to 10m" in t for t in texts)
    assert any("contact changed from gas-emergency to samaritans" in t for t in texts)
    # one file against another works the same, from the command line
    assert main(["diff", str(old / "options/housing-repairs.yaml"), str(path)]) == 0
    out = capsys.readouterr().out
    assert "housing-repairs: rule 5 added" in out


def test_options_added_and_removed(versions: tuple[Path, Path]) -> None:
    old, new = versions
    (new / "options" / "parks.yaml").unlink()
    texts = [str(c) for c in diff_paths(old, new)]
    assert texts == ["parks: service option removed"]
