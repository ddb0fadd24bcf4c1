"""Loading ruleset folders (oohcore.rulesets.loader): extends, positions, versions, sign-off.

A service option may start from a catalogue ruleset (5.3.4) and override parts of it with
``extends:`` (RFC 7396 merge patch); every problem points at the file and line it comes from;
a version is a content hash, and only the exact signed-off version counts as signed off
(5.3.1); loading is all-or-nothing (DESIGN.md principle 6). The folders used are the small
fixtures in tests/rulesets/ (copied to tmp_path when a test changes them), except the last
test, which checks the real catalogue and example borough.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from oohcore.errors import RulesetError
from oohcore.rulesets.compiler import ServiceOption
from oohcore.rulesets.loader import (
    Catalogue,
    load_catalogue,
    load_organisation,
    load_organisations,
    merge_patch,
    validate,
)
from oohcore.rulesets.models import Refer, Signpost, Transfer
from oohcore.rulesets.source import parse_yaml

ROOT = Path(__file__).parents[1]
RULESETS = Path(__file__).parent / "rulesets"
CATALOGUE = RULESETS / "catalogue"
BOROUGH = RULESETS / "borough"
PARENT = (CATALOGUE / "options/repairs.yaml").resolve()


def borough_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "borough"
    shutil.copytree(BOROUGH, folder)
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def option(folder: Path, option_id: str, **options: Any) -> ServiceOption:
    return load_organisation(folder, catalogue=CATALOGUE, **options).service_options[option_id]


def position(path: Path, needle: str, word: str | None = None) -> tuple[int, int]:
    """Line and column of ``word`` on the first line of ``path`` containing ``needle``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number, line.index(word or needle) + 1
    raise AssertionError(f"{needle!r} not in {path}")


# ---------------------------------------------------------------------------------------------
# Loading the fixtures
# ---------------------------------------------------------------------------------------------


def test_load_organisation_compiles_everything() -> None:
    org = load_organisation(BOROUGH, catalogue=CATALOGUE)
    assert org.id == "test-borough"
    assert sorted(org.service_options) == ["helpline", "repairs"]
    assert sorted(org.rota_roles) == ["duty-officer", "line-manager", "repairs-contractor"]
    # access numbers by their digits, +44 written as 0 (7.1.2, 7.1.3)
    assert org.access_numbers["+442079460000"].ivr == "main-menu"
    assert org.access_numbers["+442079460001"].service_option == "repairs"
    assert [c.service_option for c in org.ivr_menus["main-menu"].choices] == [
        "repairs",
        "helpline",
    ]
    # 7.1.5: priorities under high load, unlisted options last
    assert [org.priority(o) for o in ("repairs", "helpline", "other")] == [0, 1, 2]
    assert org.referral_time_limit == timedelta(minutes=20)


def test_a_stand_alone_option_takes_the_organisations_hours_and_time_limit() -> None:
    org = load_organisation(BOROUGH, catalogue=CATALOGUE)
    helpline = org.service_options["helpline"]
    assert helpline.hours == org.hours
    assert helpline.time_limit == timedelta(minutes=20)  # 6.4b: the organisation's default
    assert helpline.organisation_id == "test-borough"
    assert helpline.essential_fields == frozenset({"topic", "caller_name"})


def test_decisions_and_ask_if_run() -> None:
    helpline = option(BOROUGH, "helpline")
    assert helpline.decide({"topic": "emergency", "weekday": "sat"}).action_id == (
        "transfer-security"
    )
    outcome = helpline.decide({"topic": "emergency", "weekday": "mon"})
    assert (outcome.action_id, outcome.rule) == ("refer-officer", 1)
    default = helpline.decide({})
    assert (default.action_id, default.rule) == ("give-advice", None)
    assert [q.field for q in helpline.questions_to_ask({})] == ["topic", "caller_name"]
    asked = helpline.questions_to_ask({"topic": "lone_worker"})
    assert [q.field for q in asked] == ["topic", "caller_name", "minutes"]
    template = helpline.template("actions", "refer-officer", "message", "body")
    assert template is not None
    assert template.render({"caller_name": "Ann", "topic": "emergency"}) == (
        "Ann called about emergency. Reply to {acknowledge}."
    )


def test_load_catalogue() -> None:
    catalogue = load_catalogue(CATALOGUE)
    assert isinstance(catalogue, Catalogue)
    assert catalogue.id == "test-catalogue"
    repairs = catalogue.service_options["repairs"]
    assert repairs.settings == {"boiler_response": "refer"}
    assert repairs.time_limit == timedelta(minutes=10)


def test_load_organisations_finds_every_folder(tmp_path: Path) -> None:
    shutil.copytree(BOROUGH, tmp_path / "a")
    shutil.copytree(BOROUGH, tmp_path / "nested/b")
    with pytest.raises(RulesetError) as info:
        load_organisations(tmp_path, catalogue=CATALOGUE)
    assert "organisation id 'test-borough' is also used by" in str(info.value)
    organisation = tmp_path / "nested/b/organisation.yaml"
    organisation.write_text(organisation.read_text().replace("id: test-borough", "id: other"))
    loaded = load_organisations(tmp_path, catalogue=CATALOGUE)
    assert sorted(o.id for o in loaded) == ["other", "test-borough"]


def test_options_of_a_catalogue_extend_that_catalogue(tmp_path: Path) -> None:
    """validate() reads a catalogue as load_catalogue() does: 'catalogue:<id>' inside it names
    its own options, whatever the default catalogue is."""
    catalogue = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, catalogue)
    write(
        catalogue / "options/night-repairs.yaml", "extends: catalogue:repairs\nid: night-repairs\n"
    )
    assert sorted(load_catalogue(catalogue).service_options) == ["night-repairs", "repairs"]
    assert validate([catalogue]) == []
    assert validate([catalogue / "options/night-repairs.yaml"]) == []


def test_not_a_ruleset_folder(tmp_path: Path) -> None:
    with pytest.raises(RulesetError) as info:
        load_organisation(tmp_path)
    assert info.value.problems[0].code == "not-an-organisation"
    with pytest.raises(RulesetError) as info:
        load_catalogue(tmp_path)
    assert info.value.problems[0].code == "not-a-catalogue"
    problems = validate([tmp_path])
    assert [(p.code, p.line, p.col) for p in problems] == [("not-a-ruleset", 0, 0)]


# ---------------------------------------------------------------------------------------------
# extends: RFC 7396 merge patch (5.3.4)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7396, Appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_does_not_change_its_inputs() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": None, "c": 2}})
    assert target == {"a": {"b": 1}}


def test_extends_merges_mappings_deletes_nulls_and_replaces_lists() -> None:
    parent = load_catalogue(CATALOGUE).service_options["repairs"].definition
    child = option(BOROUGH, "repairs").definition
    # a mapping merges key by key: the setting's value changes, its description stays
    assert child.settings["boiler_response"].value == "signpost"
    assert child.settings["boiler_response"].description == (
        parent.settings["boiler_response"].description
    )
    # null removes what is inherited
    assert parent.description is not None
    assert child.description is None
    # a list replaces the inherited list; what is not mentioned is inherited unchanged
    refer, parent_refer = child.actions["refer-contractor"], parent.actions["refer-contractor"]
    assert isinstance(refer, Refer) and isinstance(parent_refer, Refer)
    assert [c.value for c in parent_refer.channels] == ["phone", "sms"]
    assert [c.value for c in refer.channels] == ["sms"]
    assert refer.escalation == parent_refer.escalation
    assert refer.time_limit == timedelta(minutes=5)
    signpost = child.actions["signpost-gas"]
    assert isinstance(signpost, Signpost)
    assert (signpost.contact, signpost.service) == (
        "gas-emergency",  # inherited
        "Gas emergency line (the borough's own)",
    )
    assert child.script == parent.script
    assert child.extends is None  # resolved away


def test_extends_changes_behaviour_through_settings() -> None:
    values = {"repair": "no_heating"}
    assert load_catalogue(CATALOGUE).service_options["repairs"].decide(values).action_id == (
        "out-of-scope"
    )
    child = option(BOROUGH, "repairs")
    assert child.decide(values).action_id == "signpost-gas"  # boiler_response: signpost
    assert child.time_limit == timedelta(minutes=5)  # the shortest referral limit


def test_extends_a_relative_path_through_a_chain(tmp_path: Path) -> None:
    folder = borough_copy(tmp_path)
    write(
        folder / "shared/night-repairs.yaml",
        "extends: catalogue:repairs\nid: night-repairs\nstandard: platinum\n",
    )
    write(
        folder / "options/repairs.yaml",
        "extends: ../shared/night-repairs.yaml\nid: repairs\nname: Repairs at night\n",
    )
    repairs = option(folder, "repairs").definition
    assert (repairs.id, repairs.name, repairs.standard.value) == (
        "repairs",
        "Repairs at night",
        "platinum",
    )
    assert repairs.settings["boiler_response"].value == "refer"  # from the catalogue


def test_positions_point_into_the_file_that_holds_the_mistake(tmp_path: Path) -> None:
    """A mistake written in the child is reported in the child; a rule inherited from the
    parent that no longer fits (the child replaced the questions) is reported in the parent,
    at the column of the field name, and validate() of the child file reports it too."""
    folder = borough_copy(tmp_path)
    child = write(
        folder / "options/repairs.yaml",
        "extends: catalogue:repairs\n"
        "id: repairs\n"
        "script:\n"
        "  questions:\n"
        "    - field: repair\n"
        "      ask: What needs repairing?\n"
        "      type: choice\n"
        "      options: {leak: Leak, no_heating: No heating, broken_window: Window}\n"
        "    - field: address\n"
        "      ask: Address?\n"
        "    - field: contact_phone\n"
        "      ask: Phone?\n"
        "actions:\n"
        "  signpost-gas:\n"
        "    contct: gas-emergency\n",
    )
    with pytest.raises(RulesetError) as info:
        load_organisation(folder, catalogue=CATALOGUE)
    found = [(Path(p.path), p.line, p.col, p.message) for p in info.value.problems]
    assert found[0][:3] == (child.resolve(), 15, 5)
    assert "unknown key 'contct'; did you mean 'contact'?" in found[0][3]
    assert len(found) == 1  # the schema stops this file before the conditions are checked

    text = child.read_text().replace("    contct: gas-emergency\n", "    contact: gas-emergency\n")
    child.write_text(text)
    problems = validate([child], catalogue=CATALOGUE)
    rule = position(PARENT, "(vulnerable or outside_temp < 5)", "vulnerable")
    assert [(Path(p.path), p.line, p.col) for p in problems if p.severity == "error"] == [
        (PARENT, *rule),
    ]
    assert "unknown field 'vulnerable'" in problems[0].message


def test_a_broken_parent_is_reported_to_each_option_that_extends_it(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue"
    write(catalogue / "catalogue.yaml", "id: cat\nname: Cat\n")
    write(catalogue / "options/base.yaml", "id: base\nname: [unclosed\n")
    folder = tmp_path / "org"
    write(folder / "organisation.yaml", (RULESETS / "broken/borough/organisation.yaml").read_text())
    for name in ("first", "second"):
        write(folder / f"options/{name}.yaml", f"extends: catalogue:base\nid: {name}\n")
    for name in ("first", "second"):
        problems = validate([folder / f"options/{name}.yaml"], catalogue=catalogue)
        assert [(Path(p.path).name, p.code) for p in problems] == [("base.yaml", "yaml-syntax")]
    with pytest.raises(RulesetError) as info:
        load_organisation(folder, catalogue=catalogue)
    assert [p.code for p in info.value.problems] == ["yaml-syntax"]  # reported once


def test_quoted_values_with_escapes_map_offsets_to_columns() -> None:
    source = parse_yaml(
        'a: \'it\'\'s x\'\nb: "q \\"w\\" \\x41 e"\nc: plain x\nd: "no escapes x"\n', "f.yaml"
    )
    assert source.data == {"a": "it's x", "b": 'q "w" A e', "c": "plain x", "d": "no escapes x"}
    col = {k: source.problem((k,), "m", "c", offset=len(v) - 1).col for k, v in source.data.items()}
    # the last character of each value, as it is written in the file
    assert col == {"a": 11, "b": 18, "c": 10, "d": 16}
    assert source.problem(("b",), "m", "c", offset=len(source.data["b"])).col == 19  # the end


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("k: >-\n  first line\n  second {x} here\n", 3, 10),  # folded block
        ("k: |\n  one\n    two {x}\n", 3, 9),  # literal block, more indented
        ("k: plain text that\n  goes on {x}\n", 2, 11),  # plain, over two lines
        ('k: "quoted \\"q\\" over\n  two {x} lines"\n', 2, 7),
        ("k: 'single ''q'' over\n\n  {x} blank'\n", 3, 3),  # with a blank line
        ('k: "esc \\x41\\u00e9 \\\n  {x}"\n', 2, 3),  # escapes, an escaped line break
    ],
)
def test_text_over_several_lines_maps_offsets_to_line_and_column(
    text: str, line: int, col: int
) -> None:
    """A long condition or template written as a YAML block is reported where the mistake is
    written, not at the '>-' that starts it."""
    source = parse_yaml(text, "t.yaml")
    problem = source.problem(("k",), "m", "c", offset=source.data["k"].index("{x}"))
    assert (problem.line, problem.col) == (line, col)
    assert text.splitlines()[line - 1][col - 1 : col + 2] == "{x}"


def test_yaml_aliases_cannot_make_a_file_explode() -> None:
    """Nine aliases of nine aliases ... would be 9**9 values: stopped at MAX_VALUES, with a
    located error instead of hanging the validator (aliases used modestly are fine)."""
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    with pytest.raises(RulesetError) as info:
        parse_yaml(text, "laughs.yaml")
    (problem,) = info.value.problems
    assert problem.code == "yaml-too-large"
    assert "more than 100,000 values" in problem.message
    source = parse_yaml("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n", "fine.yaml")
    assert source.data == {"a": [1, 2], "b": [1, 2], "c": [[1, 2], [1, 2]]}


# ---------------------------------------------------------------------------------------------
# Versions and sign-off (5.3.1)
# ---------------------------------------------------------------------------------------------

STANDALONE = """\
id: advice
name: Advice line
standard: bronze
script:
  questions:
    - field: topic
      ask: What is it about?
      type: choice
      options:
        bins: Bins
        noise: Noise
decision:
  rules:
    - when: topic == "noise"
      then: refer-officer
  default: give-advice
actions:
  give-advice:
    kind: resolve
    information: See the website.
  refer-officer:
    kind: refer
    rota_role: duty-officer
    channels: [phone, sms]
    time_limit: 90m
    escalation:
      - rota_role: duty-officer
        channels: [phone]
"""

# the same content: other key order, flow style, comments, quotes, defaults written out,
# 1h30m for 90m
REFORMATTED = """\
# Advice line, written differently
name: "Advice line"
id: advice
actions:
  refer-officer: {kind: refer, channels: [phone, sms], rota_role: 'duty-officer',
    escalation: [{channels: [phone], rota_role: duty-officer, wait: 15m}],
    time_limit: 1h30m, acknowledge_within: 15m}
  give-advice:
    information: "See the website."
    kind: resolve
decision:
  default: give-advice
  rules: [{then: refer-officer, when: 'topic == "noise"'}]
standard: bronze
script: {questions: [{field: topic, ask: What is it about?, type: choice, essential: false,
  options: {noise: Noise, bins: Bins}}]}
"""


def version_of(tmp_path: Path, text: str, name: str = "org") -> ServiceOption:
    folder = tmp_path / name
    if not folder.exists():
        write(
            folder / "organisation.yaml",
            (RULESETS / "broken/borough/organisation.yaml").read_text(),
        )
    write(folder / "options/advice.yaml", text)
    return load_organisation(folder, catalogue=CATALOGUE).service_options["advice"]


def test_version_is_stable_across_formatting_and_key_order(tmp_path: Path) -> None:
    first = version_of(tmp_path, STANDALONE)
    assert first.version.startswith("sha256:") and len(first.version) == 71
    assert version_of(tmp_path, REFORMATTED, "again").version == first.version


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('when: topic == "noise"', 'when: topic == "bins"'),  # a rule
        ("time_limit: 90m", "time_limit: 60m"),  # a time limit
        ("channels: [phone, sms]", "channels: [sms, phone]"),  # the order of channels
        ("standard: bronze", "standard: silver"),
        ("information: See the website.", "information: See the council's website."),
    ],
)
def test_version_changes_when_behaviour_changes(tmp_path: Path, old: str, new: str) -> None:
    assert STANDALONE.count(old) == 1
    before = version_of(tmp_path, STANDALONE).version
    assert version_of(tmp_path, STANDALONE.replace(old, new), "changed").version != before


def test_version_of_an_extending_option_is_that_of_its_merged_content(tmp_path: Path) -> None:
    """Writing out in full what ``extends`` gives is the same version."""
    child = option(BOROUGH, "repairs")
    merged = merge_patch(
        yaml.safe_load(PARENT.read_text()),
        yaml.safe_load((BOROUGH / "options/repairs.yaml").read_text()),
    )
    merged.pop("extends")
    folder = borough_copy(tmp_path)
    write(folder / "options/repairs.yaml", yaml.safe_dump(merged, sort_keys=False))
    assert option(folder, "repairs").version == child.version


def test_signed_off_only_for_the_exact_version(tmp_path: Path) -> None:
    unsigned = version_of(tmp_path, STANDALONE)
    assert unsigned.signed_off is False
    sign = "sign_off:\n  by: A. Officer, Head of Housing\n  on: 2026-01-05\n  version: {}\n"
    signed = version_of(tmp_path, STANDALONE + sign.format(unsigned.version))
    assert signed.version == unsigned.version  # signing off does not change the version
    assert signed.signed_off is True
    assert signed.definition.sign_off is not None
    assert str(signed.definition.sign_off.on) == "2026-01-05"
    changed = STANDALONE.replace("time_limit: 90m", "time_limit: 60m")
    stale = version_of(tmp_path, changed + sign.format(unsigned.version))
    assert stale.signed_off is False  # the signed-off version is no longer the one that runs
    other = version_of(tmp_path, STANDALONE + sign.format("sha256:" + "0" * 64))
    assert other.signed_off is False


def test_a_sign_off_version_must_look_like_a_hash(tmp_path: Path) -> None:
    with pytest.raises(RulesetError) as info:
        version_of(tmp_path, STANDALONE + "sign_off: {by: A, on: 2026-01-05, version: v1}\n")
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (STANDALONE.count("\n") + 1, 44)
    assert "the text 'v1' is not valid" in problem.message


# ---------------------------------------------------------------------------------------------
# All or nothing; warnings do not stop a load
# ---------------------------------------------------------------------------------------------


def test_warnings_do_not_fail_a_load(tmp_path: Path) -> None:
    text = STANDALONE + "  spare:\n    kind: resolve\n    information: Never chosen.\n"
    advice = version_of(tmp_path, text)
    assert "spare" in advice.actions
    problems = validate([tmp_path / "org"], catalogue=CATALOGUE)
    assert [(p.severity, p.code, p.line, p.col) for p in problems] == [
        ("warning", "unused-action", STANDALONE.count("\n") + 1, 3)
    ]
    assert str(problems[0]).endswith(": warning: action 'spare' is never chosen by the decision")


def test_load_raises_with_every_problem_and_returns_nothing(tmp_path: Path) -> None:
    folder = borough_copy(tmp_path)
    for name, old, new in [
        ("organisation.yaml", "timezone: Europe/London", "timezone: Mars/Olympus"),
        ("options/helpline.yaml", "      then: watch-visit", "      then: watch"),
        ("options/repairs.yaml", "    time_limit: 5m", "    time_limit: 5 minutes"),
        ("options/helpline.yaml", "        wait: 5m", "        wait: 5m\n        say: '{oops}'"),
    ]:
        path = folder / name
        assert path.read_text().count(old) == 1
        path.write_text(path.read_text().replace(old, new))
    with pytest.raises(RulesetError) as info:
        load_organisation(folder, catalogue=CATALOGUE)
    problems = info.value.problems
    assert [(Path(p.path).name, p.code) for p in problems] == [
        ("helpline.yaml", "unknown-action"),
        ("helpline.yaml", "bad-template"),
        ("repairs.yaml", "bad-format"),
        ("organisation.yaml", "bad-timezone"),
    ]  # sorted by path: options/… before organisation.yaml
    assert all(p.severity == "error" and p.line > 0 and p.col > 0 for p in problems)
    # the message lists them all as path:line:col
    message = str(info.value)
    assert message.startswith("4 problem(s) in the ruleset:")
    assert all(f"{p.path}:{p.line}:{p.col}: " in message for p in problems)


def test_a_broken_option_does_not_break_routing_to_it(tmp_path: Path) -> None:
    """An access number, IVR choice and priority naming an option whose file has an error are
    not errors of organisation.yaml as well: one mistake, one message."""
    folder = borough_copy(tmp_path)
    path = folder / "options/repairs.yaml"
    path.write_text(
        path.read_text().replace("  signpost-gas:\n", "  signpost-gas:\n    numbr: 1\n", 1)
    )
    problems = validate([folder], catalogue=CATALOGUE)
    assert [(Path(p.path).name, p.code) for p in problems] == [("repairs.yaml", "unknown-key")]


# ---------------------------------------------------------------------------------------------
# The real catalogue and example borough (written separately; this passes once they are done)
# ---------------------------------------------------------------------------------------------


def test_the_real_catalogue_and_example_borough_are_valid() -> None:
    problems = validate([ROOT / "rulesets/catalogue", ROOT / "examples/example-borough"])
    errors = [str(p) for p in problems if p.severity == "error"]
    assert errors == []


def test_an_options_version_covers_what_it_inherits_from_the_organisation(tmp_path: Path) -> None:
    """5.3.1: a sign-off is of the behaviour as a whole, so changing the organisation's default
    referral time limit (6.4b) changes the version of an option that relies on it."""
    import shutil

    from oohcore.rulesets.loader import load_organisation

    org = tmp_path / "org-b"
    shutil.copytree(Path(__file__).parent / "fixtures" / "engine" / "org-b", org)
    before = load_organisation(org).service_options["repairs"].version
    header = org / "organisation.yaml"
    header.write_text(header.read_text() + "referral_time_limit: 20m\n")
    after = load_organisation(org).service_options["repairs"].version
    assert before != after


def test_extends_names_a_catalogue_id_only(tmp_path: Path) -> None:
    import shutil

    org = tmp_path / "org-b"
    shutil.copytree(Path(__file__).parent / "fixtures" / "engine" / "org-b", org)
    option = org / "options" / "repairs.yaml"
    option.write_text("extends: catalogue:../../etc/x\n" + option.read_text())
    problems = validate([org])
    assert [p.code for p in problems] == ["bad-extends"]
    assert problems[0].line == 1 and "catalogue:<id>" in problems[0].message


# ---------------------------------------------------------------------------------------------
# The directory of contacts (2.3.3, DESIGN principle 10)
# ---------------------------------------------------------------------------------------------


def errors_of(problems: list[Any]) -> list[Any]:
    return [p for p in problems if p.severity == "error"]


def test_actions_name_directory_contacts_and_the_organisation_overrides_the_catalogue() -> None:
    org = load_organisation(BOROUGH, catalogue=CATALOGUE)
    repairs, helpline = org.service_options["repairs"], org.service_options["helpline"]
    assert dict(repairs.contacts) == {"signpost-gas": ("gas-emergency",)}
    assert dict(helpline.contacts) == {"transfer-security": ("security-desk",)}
    # the borough's own entry replaces the catalogue's of the same id, whole
    gas = org.directory["gas-emergency"]
    assert (gas.name, gas.number, gas.opening_times) == (
        "Borough gas emergency line",
        "0800 222 333",
        None,
    )
    # a catalogue entry the borough does not override is there too
    assert org.directory["daytime-repairs"].number is None
    assert load_catalogue(CATALOGUE).directory["gas-emergency"].number == "0800 111 999"


def test_the_directory_is_no_part_of_any_version(tmp_path: Path) -> None:
    """Changing a number is Regularly Variable Data (2.3.3): no new sign-off (5.3.1)."""
    folder = borough_copy(tmp_path)
    before = load_organisation(folder, catalogue=CATALOGUE)
    path = folder / "directory.yaml"
    path.write_text(path.read_text().replace('"020 7946 0999"', '"020 7946 0998"'))
    after = load_organisation(folder, catalogue=CATALOGUE)
    assert after.directory["security-desk"].number == "020 7946 0998"
    assert after.version == before.version
    for option_id, option in before.service_options.items():
        assert after.service_options[option_id].version == option.version


def test_an_unknown_contact_is_located_at_its_value_with_a_suggestion(tmp_path: Path) -> None:
    folder = borough_copy(tmp_path)
    path = folder / "options/helpline.yaml"
    path.write_text(path.read_text().replace("contact: security-desk", "contact: security-dsk"))
    problems = errors_of(validate([folder], catalogue=CATALOGUE))
    assert [(Path(p.path), p.line, p.col, p.code) for p in problems] == [
        (path, *position(path, "contact: security-dsk", "security-dsk"), "unknown-contact")
    ]
    assert "did you mean 'security-desk'?" in problems[0].message


def test_a_contact_the_catalogue_leaves_to_the_organisation_must_be_given(tmp_path: Path) -> None:
    folder = borough_copy(tmp_path)
    path = folder / "options/repairs.yaml"
    path.write_text(
        "extends: catalogue:repairs\nid: repairs\nactions:\n"
        "  signpost-gas:\n    contact: daytime-repairs\n"
    )
    problems = errors_of(validate([folder], catalogue=CATALOGUE))
    assert [(Path(p.path), p.code) for p in problems] == [(path, "unreachable-contact")]
    assert "has no number" in problems[0].message
    assert str(folder / "directory.yaml") in problems[0].message
    # the catalogue itself may leave it out: it is valid as a catalogue
    assert errors_of(validate([CATALOGUE])) == []


@pytest.mark.parametrize(
    ("text", "needle", "code", "phrase"),
    [
        (
            "contacts:\n  desk:\n    name: Desk\n    number: call me\n",
            "call me",
            "bad-format",
            "is not valid",
        ),
        (
            "contacts:\n  desk:\n    nmae: Desk\n    number: '020 7946 0999'\n",
            "nmae",
            "unknown-key",
            "did you mean 'name'?",
        ),
        ("contacts:\n  Desk_1:\n    name: Desk\n", "Desk_1", "bad-format", "an id is lower-case"),
        ("contacts:\n  desk:\n    name: Desk\n", "desk", "unreachable-contact", "neither"),
        (
            "contacts:\n  desk:\n    name: Desk\n    email: not-an-address\n",
            "not-an-address",
            "bad-format",
            "is not valid",
        ),
    ],
)
def test_mistakes_in_directory_yaml_are_located(
    tmp_path: Path, text: str, needle: str, code: str, phrase: str
) -> None:
    folder = borough_copy(tmp_path)
    path = write(folder / "directory.yaml", text)
    problems = errors_of(validate([folder], catalogue=CATALOGUE))
    mine = [p for p in problems if Path(p.path) == path]
    assert [(p.line, p.col, p.code) for p in mine] == [(*position(path, needle), code)]
    assert phrase in mine[0].message
    with pytest.raises(RulesetError):
        load_organisation(folder, catalogue=CATALOGUE)


def test_a_number_written_into_the_option_still_works_but_is_warned_about(
    tmp_path: Path,
) -> None:
    folder = borough_copy(tmp_path)
    path = folder / "options/helpline.yaml"
    path.write_text(path.read_text().replace("contact: security-desk", "number: '020 7946 0999'"))
    problems = validate([folder], catalogue=CATALOGUE)
    assert [(p.code, p.severity) for p in problems] == [("literal-contact", "warning")]
    transfer = option(folder, "helpline").actions["transfer-security"]
    assert isinstance(transfer, Transfer) and transfer.number == "020 7946 0999"


def test_a_transfer_needs_a_contact_or_a_number(tmp_path: Path) -> None:
    folder = borough_copy(tmp_path)
    path = folder / "options/helpline.yaml"
    path.write_text(path.read_text().replace("    contact: security-desk\n", ""))
    problems = errors_of(validate([folder], catalogue=CATALOGUE))
    assert [p.code for p in problems] == ["transfer-target"]


def test_contact_placeholders_only_in_an_action_that_names_a_contact(tmp_path: Path) -> None:
    repairs = option(BOROUGH, "repairs")
    say = repairs.template("actions", "signpost-gas", "say")
    assert say is not None and "contact_number" in say.placeholders
    folder = borough_copy(tmp_path)
    path = folder / "options/helpline.yaml"
    text = path.read_text()
    path.write_text(text.replace("say: Thank you {caller_name};", "say: Call {contact_number};"))
    problems = errors_of(validate([folder], catalogue=CATALOGUE))
    assert [p.code for p in problems] == ["bad-template"]
    assert "unknown placeholder {contact_number}" in problems[0].message


def test_a_referral_text_with_an_address_but_no_uprn_is_warned_about(tmp_path: Path) -> None:
    """7.11: UPRNs are in all service request data passed on."""
    catalogue = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, catalogue)
    path = catalogue / "options/repairs.yaml"
    path.write_text(path.read_text().replace("{#uprn} (UPRN {uprn}){/uprn}", ""))
    problems = validate([catalogue])
    assert [(p.code, p.severity) for p in problems] == [("no-uprn", "warning")]
    assert (problems[0].line, problems[0].col) == position(path, "sms: ", '"Repair')


def test_every_action_kind_has_its_check() -> None:
    from typing import get_args

    from oohcore.rulesets.compiler import ACTION_CHECKS
    from oohcore.rulesets.models import Action

    union = get_args(get_args(Action)[0])
    kinds = {get_args(m.model_fields["kind"].annotation)[0] for m in union}
    assert set(ACTION_CHECKS) == kinds


# ---------------------------------------------------------------------------------------------
# Priorities (7.1.5) and IVR (2.1.2a, 5.1.2, 7.1.4)
# ---------------------------------------------------------------------------------------------


def with_organisation(tmp_path: Path, old: str, new: str) -> Path:
    folder = borough_copy(tmp_path)
    path = folder / "organisation.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return folder


def test_the_list_form_of_priorities_applies_always() -> None:
    org = load_organisation(BOROUGH, catalogue=CATALOGUE)
    assert org.priority_mode.value == "always" and org.high_call_volume is None
    assert org.priorities_apply(1)
    waiting = [("helpline", 1), ("other", 0), ("repairs", 2)]
    ordered = org.order_waiting(waiting, option_of=lambda c: c[0], arrived_at=lambda c: c[1])
    assert ordered == [("repairs", 2), ("helpline", 1), ("other", 0)]


def test_priorities_that_apply_only_in_high_call_volume(tmp_path: Path) -> None:
    folder = with_organisation(
        tmp_path,
        "priorities: [repairs, helpline]",
        "priorities:\n  applies: high_call_volume\n  waiting_calls: 3\n  options: [repairs]",
    )
    org = load_organisation(folder, catalogue=CATALOGUE)
    assert (org.priority_mode.value, org.high_call_volume, org.priorities) == (
        "high_call_volume",
        3,
        ("repairs",),
    )
    assert [org.priorities_apply(n) for n in (1, 2, 3, 10)] == [False, False, True, True]
    calls = [("helpline", 1), ("repairs", 2)]
    by_arrival = org.order_waiting(calls, option_of=lambda c: c[0], arrived_at=lambda c: c[1])
    assert by_arrival == calls  # two waiting: not a period of high call volume
    busy = [*calls, ("helpline", 3)]
    ordered = org.order_waiting(busy, option_of=lambda c: c[0], arrived_at=lambda c: c[1])
    assert ordered == [("repairs", 2), ("helpline", 1), ("helpline", 3)]


@pytest.mark.parametrize(
    ("new", "code", "needle"),
    [
        (
            "priorities:\n  applies: high_call_volume\n  options: [repairs]",
            "missing-key",
            "priorities:",
        ),
        (
            "priorities:\n  applies: always\n  waiting_calls: 3\n  options: [repairs]",
            "stray-waiting-calls",
            "waiting_calls",
        ),
        (
            "priorities:\n  applies: always\n  options: [repairs, repairs]",
            "duplicate-id",
            "[repairs, repairs]",
        ),
        ("priorities:\n  applies: sometimes\n  options: [repairs]", "bad-value", "sometimes"),
    ],
)
def test_mistakes_in_priorities_are_located(
    tmp_path: Path, new: str, code: str, needle: str
) -> None:
    folder = with_organisation(tmp_path, "priorities: [repairs, helpline]", new)
    problems = errors_of(validate([folder], catalogue=CATALOGUE))
    assert [p.code for p in problems] == [code]
    line, _ = position(folder / "organisation.yaml", needle)
    assert problems[0].line == line


def test_the_compiled_ivr_menu_has_its_no_choice_wait_and_says(tmp_path: Path) -> None:
    org = load_organisation(BOROUGH, catalogue=CATALOGUE)
    menu = org.ivr["main-menu"]
    assert (menu.no_choice, menu.no_choice_wait) == ("helpline", timedelta(seconds=10))
    assert [c.service_option for c in menu.choices.values()] == ["repairs", "helpline"]
    assert menu.choices["1"].say is None
    folder = with_organisation(
        tmp_path,
        "        service_option: repairs\n      - key",
        "        service_option: repairs\n        say: '{service_option}, from {organisation}.'\n      - key",
    )
    folder_org = folder / "organisation.yaml"
    folder_org.write_text(
        folder_org.read_text().replace(
            "no_choice: helpline", "no_choice: helpline\n    no_choice_wait: 8s"
        )
    )
    menu = load_organisation(folder, catalogue=CATALOGUE).ivr["main-menu"]
    assert menu.no_choice_wait == timedelta(seconds=8)
    say = menu.choices["1"].say
    assert say is not None
    assert (
        say.render({"service_option": "Repairs", "organisation": "Test"}) == "Repairs, from Test."
    )


@pytest.mark.parametrize(
    ("old", "new", "code", "phrase"),
    [
        (
            "no_choice: helpline",
            "no_choice: helpline\n    no_choice_wait: 2m",
            "long-wait",
            "at most 1m",
        ),
        ("no_choice: helpline", "no_choice_wait: 5s", "stray-wait", "no effect without"),
        (
            "        service_option: repairs\n      - key",
            "        service_option: repairs\n        say: '  '\n      - key",
            "empty",
            "blank",
        ),
        (
            "        service_option: repairs\n      - key",
            "        service_option: repairs\n        say: 'Press for {caller_name}'\n      - key",
            "bad-template",
            "unknown placeholder {caller_name}",
        ),
    ],
)
def test_mistakes_in_ivr_menus_are_located(
    tmp_path: Path, old: str, new: str, code: str, phrase: str
) -> None:
    folder = with_organisation(tmp_path, old, new)
    problems = errors_of(validate([folder], catalogue=CATALOGUE))
    assert [p.code for p in problems] == [code]
    assert phrase in problems[0].message
    assert Path(problems[0].path).name == "organisation.yaml" and problems[0].line > 0
