"""The published JSON Schemas of the ruleset files.

They are generated from the pydantic models (``models.py``) so the two cannot disagree, then
shaped for people: a discriminated action is checked by ``if kind == … then …`` so an error
names the field that is wrong rather than "not valid under any of the given schemas", and a
service option that ``extends:`` another is checked as a merge patch, so it need not repeat
what it inherits.

The generated files live in the package (``oohcore/rulesets/schemas/*.schema.json``), are
printed by ``oohcore schema``, and a test fails if they drift from the models — regenerate them
with ``python -m oohcore.rulesets.schema``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from pydantic import BaseModel

from oohcore.rulesets.models import (
    CatalogueFile,
    DirectoryFile,
    OrganisationFile,
    ServiceOptionFile,
)

Kind = Literal["organisation", "service-option", "catalogue", "directory"]
KINDS: tuple[Kind, ...] = ("organisation", "service-option", "catalogue", "directory")
_MODELS: dict[str, type[BaseModel]] = {
    "organisation": OrganisationFile,
    "service-option": ServiceOptionFile,
    "catalogue": CatalogueFile,
    "directory": DirectoryFile,
}
SCHEMA_BASE = "https://oohcore.dev/schemas/"


def generate(kind: Kind) -> dict[str, Any]:
    """Build the schema of ``kind`` from the models."""
    schema: dict[str, Any] = _MODELS[kind].model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_BASE}{kind}.schema.json"
    _shape(schema)
    if kind == "service-option":
        schema = _with_patch_form(schema)
    return schema


_META = ("$schema", "$id", "title", "description")


def _with_patch_form(schema: dict[str, Any]) -> dict[str, Any]:
    """A service option file is complete, or — with ``extends:`` — a merge patch (RFC 7396) of
    the file it extends: only what differs, ``null`` to remove a key. Checking such a file
    against the complete form would flag every partial override (an action given only its
    ``time_limit``), so the schema says: with ``extends``, the patch form; without, the
    complete form. oohcore itself checks the merged file, which is complete."""
    defs: dict[str, Any] = schema.pop("$defs")
    meta = {k: schema[k] for k in _META if k in schema}
    complete = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    name = str(complete["title"])
    patch_defs = {f"{k}Patch": _patch_form(v) for k, v in defs.items()}
    patch = _patch_form(complete)
    patch["required"] = ["id"]
    all_defs = {**defs, name: complete, **patch_defs, f"{name}Patch": patch}
    assert len(all_defs) == 2 * len(defs) + 2, "a Patch name collides with a model name"
    return {
        **meta,
        "type": "object",
        "$defs": all_defs,
        "if": {"required": ["extends"], "properties": {"extends": {"type": "string"}}},
        "then": {"$ref": f"#/$defs/{name}Patch"},
        "else": {"$ref": f"#/$defs/{name}"},
    }


def _patch_form(node: Any) -> Any:
    """The schema of a merge patch of what ``node`` describes: nothing is required and any
    mapping key may be null. A list replaces the inherited list whole, so list items keep the
    complete form (``items`` is left alone), as do the ``if`` tests of discriminated actions."""
    if isinstance(node, list):
        return [_patch_form(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "required":
            continue
        if key == "$ref":
            out[key] = f"{value}Patch"
        elif key == "properties":
            out[key] = {k: _nullable(_patch_form(v)) for k, v in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = _nullable(_patch_form(value))
        elif key == "allOf" and all(set(v) == {"if", "then"} for v in value):
            # a discriminated action: one that does not restate its ``kind`` (it inherits it)
            # must still be a valid patch of some kind
            (prop,) = value[0]["if"]["required"]
            out[key] = [
                *_patch_form(value),
                {
                    "if": {"not": {"required": [prop]}},
                    "then": {"anyOf": [_patch_form(v["then"]) for v in value]},
                },
            ]
        elif key in ("anyOf", "oneOf", "allOf", "then", "else"):
            out[key] = _patch_form(value)
        else:
            out[key] = value
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _shape(node: Any) -> None:
    """Replace discriminated ``oneOf`` by per-kind ``if/then`` and drop noise."""
    if isinstance(node, dict):
        patterns = node.get("patternProperties")
        if (
            patterns
            and len(patterns) == 1
            and not {"properties", "additionalProperties"} & set(node)
        ):
            # pydantic writes a dict with constrained keys as patternProperties alone, which lets
            # any key that does not match through unchecked ("Call_Back:" with any content):
            # say instead that every key must match and every value must be valid.
            ((pattern, values),) = node.pop("patternProperties").items()
            node["propertyNames"] = {"pattern": pattern}
            node["additionalProperties"] = values
        disc = node.get("discriminator")
        if disc and "oneOf" in node:
            prop = disc["propertyName"]
            mapping: dict[str, str] = disc["mapping"]
            node.pop("oneOf")
            node.pop("discriminator")
            node["type"] = "object"
            node["required"] = [prop]
            node["properties"] = {prop: {"enum": sorted(mapping)}}
            node["allOf"] = [
                {
                    "if": {"properties": {prop: {"const": value}}, "required": [prop]},
                    "then": {"$ref": ref},
                }
                for value, ref in sorted(mapping.items())
            ]
        for value in node.values():
            _shape(value)
    elif isinstance(node, list):
        for item in node:
            _shape(item)


def _schema_dir() -> Path:
    return Path(str(resources.files("oohcore.rulesets") / "schemas"))


@cache
def published(kind: Kind) -> dict[str, Any]:
    """The schema of ``kind`` as shipped in the package."""
    path = _schema_dir() / f"{kind}.schema.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@cache
def validator(kind: Kind) -> Draft202012Validator:
    return Draft202012Validator(published(kind))


def write_all(directory: Path | None = None) -> list[Path]:
    """(Re)write the published schemas from the models."""
    directory = directory or _schema_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / f"{kind}.schema.json"
        path.write_text(
            json.dumps(generate(kind), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for p in write_all():
        print(p)
