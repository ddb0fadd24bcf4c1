"""The published JSON Schemas of the ruleset files (oohcore.rulesets.schema).

They are what an editor or a CI job checks ruleset files against without oohcore
(docs/rulesets.md: "Editors that understand JSON Schema ..."), so they must not drift from the
models the loader uses (DESIGN.md principle 1: one source of truth), and a plain ``jsonschema``
run over a valid file must pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from oohcore.rulesets.schema import KINDS, Kind, generate, published, write_all

RULESETS = Path(__file__).parent / "rulesets"
SCHEMA_DIR = Path(__file__).parents[1] / "src" / "oohcore" / "rulesets" / "schemas"


class EditorLoader(yaml.SafeLoader):
    """YAML as an editor's language server reads it (YAML 1.2 core schema): dates stay text."""


EditorLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=EditorLoader)


def kind_of(path: Path) -> Kind:
    return {
        "organisation.yaml": "organisation",
        "catalogue.yaml": "catalogue",
        "directory.yaml": "directory",
    }.get(path.name, "service-option")  # type: ignore[return-value]


def errors(kind: Kind, data: Any) -> list[str]:
    """Every message plain jsonschema gives, with those under "not valid under any of"."""
    validator = Draft202012Validator(json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text()))
    found: list[str] = []
    stack = list(validator.iter_errors(data))
    while stack:
        error = stack.pop()
        if error.context:
            stack.extend(c for c in error.context if c.validator_value != "null")
        else:
            found.append(error.message)
    return found


# ---------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_equals_a_freshly_generated_one(kind: Kind) -> None:
    """If this fails, regenerate: ``.venv/bin/python -m oohcore.rulesets.schema``."""
    fresh = generate(kind)
    committed_text = (SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8")
    assert json.loads(committed_text) == fresh
    assert committed_text == json.dumps(fresh, indent=2, sort_keys=True) + "\n"
    assert published(kind) == fresh


def test_write_all_writes_the_three_schemas(tmp_path: Path) -> None:
    written = write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{k}.schema.json" for k in KINDS)
    for path in written:
        assert path.read_text() == (SCHEMA_DIR / path.name).read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_the_schemas_are_valid_draft_2020_12(kind: Kind) -> None:
    schema = published(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://oohcore.dev/schemas/{kind}.schema.json"


# ---------------------------------------------------------------------------------------------
# What an editor or CI would do: plain jsonschema over the YAML files
# ---------------------------------------------------------------------------------------------

VALID_FILES = [
    *sorted(p for folder in ("catalogue", "borough") for p in (RULESETS / folder).rglob("*.yaml")),
    RULESETS / "broken/borough/options/valid.yaml",
]


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.relative_to(RULESETS).as_posix())
def test_valid_files_pass_plain_jsonschema(path: Path) -> None:
    assert errors(kind_of(path), load(path)) == []


def test_the_fixtures_cover_every_kind_and_an_extends() -> None:
    kinds = {kind_of(p) for p in VALID_FILES}
    assert kinds == set(KINDS)
    assert any("extends" in load(p) for p in VALID_FILES)


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("unknown-key", "'essentail' was unexpected"),
        ("missing-key", "'default' is a required property"),
        ("bad-enum", "'platnum' is not one of"),
        ("bad-id", "'Bad_Id' does not match"),
        ("bad-action-id", "'Call_Back' does not match"),  # keys of id-keyed mappings too
        ("bad-duration", "'10 minutes' does not match"),
        ("bad-time", "'25:00' does not match"),
        ("wrong-type", "'phone' is not of type 'array'"),
    ],
)
def test_format_mistakes_fail_plain_jsonschema_too(name: str, phrase: str) -> None:
    found = errors("service-option", load(RULESETS / f"broken/borough/options/{name}.yaml"))
    assert any(phrase in message for message in found), found


def test_an_option_that_extends_need_only_give_its_id() -> None:
    assert errors("service-option", {"id": "repairs", "extends": "catalogue:repairs"}) == []
    assert errors("service-option", {"extends": "catalogue:repairs"}) == [
        "'id' is a required property"
    ]
    found = errors("service-option", {"id": "repairs"})
    assert sorted(found) == sorted(
        f"'{key}' is a required property" for key in ("name", "decision", "actions")
    )


def test_an_option_that_extends_is_checked_as_a_merge_patch() -> None:
    """RFC 7396, as the loader applies it: mappings give only what differs, null removes a
    key, and a list replaces the inherited list, so list items must be complete."""
    child: dict[str, Any] = {
        "id": "repairs",
        "extends": "catalogue:repairs",
        "description": None,
        "settings": {"boiler_response": {"value": "signpost"}},
        "actions": {"refer-contractor": {"time_limit": "5m"}, "signpost-gas": None},
    }
    assert errors("service-option", child) == []
    child["actions"]["refer-contractor"]["time_limit"] = "soon"
    assert any("'soon' does not match" in m for m in errors("service-option", child))
    child["actions"]["refer-contractor"] = {"time_limt": "5m"}  # checked without its kind
    assert any("'time_limt' was unexpected" in m for m in errors("service-option", child))
    child["actions"]["refer-contractor"] = {"escalation": [{"rota_role": "duty-officer"}]}
    assert "'channels' is a required property" in errors("service-option", child)
    child["actions"]["refer-contractor"] = {"kind": "refer", "time_limt": "5m"}
    assert errors("service-option", child) == [
        "Additional properties are not allowed ('time_limt' was unexpected)"
    ]
