"""Finding, reading, resolving and validating ruleset folders.

A ruleset folder is either an **organisation** (``organisation.yaml`` plus one file per service
option in ``options/``) or a **catalogue** (``catalogue.yaml`` plus ``options/``); either may
have a ``directory.yaml`` of contacts that actions name by id (an organisation's entries
override the catalogue's of the same id, whole). A service
option may start from another with ``extends:`` — ``catalogue:<id>`` for the packaged
catalogue (5.3.4) or a path relative to the file — and override parts of it with JSON Merge
Patch semantics (RFC 7396): mappings merge key by key, ``null`` removes a key, and anything
else, lists included, replaces what it inherits.

Loading is all-or-nothing: :func:`load_organisation` returns a fully compiled
:class:`~oohcore.rulesets.compiler.Organisation` or raises :class:`~oohcore.errors.RulesetError`
listing every problem found, each at ``file:line:col``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from jsonschema.exceptions import ValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from oohcore.errors import Problem, RulesetError
from oohcore.rulesets import models
from oohcore.rulesets.compiler import (
    Organisation,
    ServiceOption,
    check_directory,
    check_organisation,
    check_roles,
    compile_organisation,
    compile_service_option,
    version_hash,
)
from oohcore.rulesets.models import (
    CatalogueFile,
    DirectoryEntry,
    DirectoryFile,
    OrganisationFile,
    RotaRole,
    ServiceOptionFile,
)
from oohcore.rulesets.schema import Kind, validator
from oohcore.rulesets.source import (
    PathKey,
    Source,
    path_problem,
    read_yaml,
    real_path,
    walk,
)

ORGANISATION_FILE = "organisation.yaml"
CATALOGUE_FILE = "catalogue.yaml"
DIRECTORY_FILE = "directory.yaml"
OPTIONS_DIR = "options"
CATALOGUE_PREFIX = "catalogue:"
MAX_OPTION_FILES = 1_000  # service option files in one folder's options/ (the catalogue has 17)
MAX_EXTENDS = 10  # files in one 'extends' chain; the catalogue's longest is 2
MAX_MESSAGE = 400  # characters of one problem's message (it never prints a whole file back)


def _key(path: Path) -> Path:
    """``path`` with its links followed where they can be (a loop of links cannot)."""
    return real_path(path) or Path(os.path.abspath(path))


def default_catalogue() -> Path:
    """The catalogue shipped with oohcore (``rulesets/catalogue`` in a source checkout)."""
    packaged = Path(str(resources.files("oohcore") / "catalogue"))
    if (packaged / CATALOGUE_FILE).is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "rulesets" / "catalogue"


@dataclass(frozen=True, eq=False)
class Catalogue:
    """A catalogue of ready-made service options (5.3.4)."""

    id: str
    name: str
    rota_roles: Mapping[str, RotaRole]
    service_options: Mapping[str, ServiceOption]
    path: Path
    directory: Mapping[str, DirectoryEntry] = field(default_factory=dict)


@dataclass
class _Session:
    """One load or validate run: a cache of parsed files and the problems found."""

    catalogue: Path
    problems: list[Problem] = field(default_factory=list)
    # the folders a file may be read from (the ruleset folder being loaded and the catalogue)
    roots: tuple[Path, ...] = ()
    sources: dict[Path, Source | None] = field(default_factory=dict)
    unreadable: dict[Path, list[Problem]] = field(default_factory=dict)
    found_by: dict[Path, list[Problem]] = field(default_factory=dict)  # option file -> problems
    directories: dict[Path, dict[str, DirectoryEntry] | None] = field(default_factory=dict)

    def directory(self, folder: Path, *, organisation: bool) -> dict[str, DirectoryEntry] | None:
        """The contacts of ``folder``'s ``directory.yaml`` ({} when it has none), or None when
        the file has problems (reported once)."""
        path = _key(folder / DIRECTORY_FILE)
        if path not in self.directories:
            self.directories[path] = self._read_directory(path, organisation=organisation)
        return self.directories[path]

    def _read_directory(
        self, path: Path, *, organisation: bool
    ) -> dict[str, DirectoryEntry] | None:
        if not path.is_file():
            return {}
        source = self.read(path)
        if source is None:
            return None
        problems = _validate(source, source.data, "directory")
        model: DirectoryFile | None = None
        if not problems:
            model, problems = _build_model(source, source.data, DirectoryFile)
        if model is not None:
            problems += check_directory(source, model, organisation=organisation)
        self.problems.extend(problems)
        if model is None or any(p.severity == "error" for p in problems):
            return None
        return dict(model.contacts)

    def read(self, written: Path) -> Source | None:
        path = _key(written)
        if path not in self.sources:
            try:
                self.sources[path] = read_yaml(written, within=self.roots)
            except RulesetError as exc:
                self.unreadable[path] = exc.problems
                self.sources[path] = None
        if path in self.unreadable:
            # reported to every reader (each option extending a broken file learns why)
            self.problems.extend(self.unreadable[path])
        return self.sources[path]


# ---------------------------------------------------------------------------------------------
# Schema and model validation with located messages
# ---------------------------------------------------------------------------------------------

_PATTERN_HINTS = {
    models.ID_PATTERN: "an id is lower-case letters and digits in words joined by single "
    "hyphens, e.g. housing-repairs",
    models.FIELD_PATTERN: "a field name is lower-case letters, digits and underscores, "
    "starting with a letter, e.g. caller_name",
    models.DURATION_PATTERN: "write a duration such as 10m, 1h30m or 45s",
    models.CLOCK_PATTERN: 'write a time of day in quotes as "HH:MM" (24-hour), e.g. "17:00"',
}
_JSON_TYPES = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys to values",
    "null": "nothing",
}


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (yes/no)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        # a short excerpt only: the value may come from a file that is not a ruleset at all
        return f"the text {value[:60] + '…' if len(value) > 60 else value!r}"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _schema_problem(source: Source, error: ValidationError) -> list[Problem]:
    path: PathKey = tuple(error.absolute_path)
    v = error.validator
    inst: Any = error.instance
    value: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if v in ("anyOf", "oneOf") and error.context:
        # e.g. "a duration or nothing", "a list or a mapping": report against the branch that
        # was meant, the one of the value's own type
        meant = [
            e
            for e in error.context
            if not (
                e.validator == "type"
                and (e.validator_value == "null" or e.absolute_path == error.absolute_path)
            )
        ]
        if meant:
            out = []
            for sub in meant:
                out.extend(_schema_problem(source, sub))
            return out
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(schema.get("properties", {}))
        out = []
        for key in inst:
            if key in allowed:
                continue
            close = _suggest(key, allowed)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = f" (allowed here: {', '.join(allowed)})" if allowed and not close else ""
            out.append(
                source.problem(
                    (*path, key), f"unknown key {key!r}{hint}{listed}", "unknown-key", at_key=True
                )
            )
        return out
    if v == "required":
        missing = _missing_key(error)
        where = f"in {path[-1]!r}" if path else "at the top of the file"
        # at the key that opens the mapping (``decision:``), not at its first entry
        return [
            source.problem(path, f"missing {missing!r} {where}", "missing-key", at_key=bool(path))
        ]
    if v == "enum":
        choices = ", ".join(str(x) for x in value)
        return [
            source.problem(
                path, f"{_describe(inst)} is not allowed here; use one of: {choices}", "bad-value"
            )
        ]
    if v == "pattern" and tuple(error.relative_schema_path)[-2:] == ("propertyNames", "pattern"):
        # a key of a mapping keyed by ids or names (actions, settings, options)
        hint = _PATTERN_HINTS.get(str(value), f"it must match {value}")
        return [
            source.problem(
                (*path, inst), f"the key {inst!r} is not valid: {hint}", "bad-format", at_key=True
            )
        ]
    if v == "pattern":
        hint = _PATTERN_HINTS.get(str(value), f"it must match {value}")
        return [source.problem(path, f"{_describe(inst)} is not valid: {hint}", "bad-format")]
    if v == "type":
        want = value
        wants = [want] if isinstance(want, str) else list(want)
        words = " or ".join(_JSON_TYPES.get(w, w) for w in wants)
        msg = f"expected {words}, found {_describe(inst)}"
        if "string" in wants and isinstance(inst, (int, float, bool)):
            msg += (
                "; put the value in quotes (unquoted, YAML reads 17:00 or 0207 as numbers and "
                "yes/no/on/off as true/false)"
            )
        return [source.problem(path, msg, "bad-type")]
    if v == "minItems":
        n = value
        return [source.problem(path, f"needs at least {n} item{'s' if n != 1 else ''}", "too-few")]
    if v == "minLength":
        return [source.problem(path, "must not be empty", "empty")]
    if v == "maxLength":
        return [source.problem(path, f"is longer than {value} characters", "too-long")]
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return [
            source.problem(
                path,
                f"{_describe(inst)} is out of range ({v} {value})",
                "out-of-range",
            )
        ]
    return [source.problem(path, error.message, f"schema-{v}")]


def _suggest(key: Any, allowed: list[str]) -> list[str]:
    return difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)


def _missing_key(error: ValidationError) -> str:
    return error.message.split("'")[1] if "'" in error.message else error.message


def _validate(source: Source, data: Any, kind: Kind) -> list[Problem]:
    errors = list(validator(kind).iter_errors(data))
    # 'nmae: x' is one mistake: report the unknown key (did you mean 'name'?), not also that
    # 'name' is missing
    misspelt = {
        (tuple(e.absolute_path), close)
        for e in errors
        if e.validator == "additionalProperties"
        and isinstance(e.instance, dict)
        and isinstance(e.schema, dict)
        for key in e.instance
        if key not in e.schema.get("properties", {})
        for close in _suggest(key, sorted(e.schema.get("properties", {})))
    }
    problems: list[Problem] = []
    for error in errors:
        if error.validator == "required" and (
            (tuple(error.absolute_path), _missing_key(error)) in misspelt
        ):
            continue
        problems.extend(_schema_problem(source, error))
    return problems


M = TypeVar("M", bound=BaseModel)


def _data_path(data: Any, loc: Sequence[Any]) -> PathKey:
    """The keys and indexes of a pydantic error location that exist in ``data``. The steps in
    between — a union's tag (``refer``), a model or validator name — are not in the file."""
    out: list[str | int] = []
    node = data
    for step in loc:
        in_dict = isinstance(node, dict) and step in node
        in_list = isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        if in_dict or in_list:
            out.append(step)
            node = node[step]
    return tuple(out)


def _build_model(source: Source, data: Any, model: type[M]) -> tuple[M | None, list[Problem]]:
    try:
        return model.model_validate(data), []
    except PydanticError as exc:
        problems = []
        for err in exc.errors():
            loc = _data_path(data, err["loc"])
            problems.append(
                source.problem(loc, str(err["msg"]).replace("Value error, ", ""), "invalid")
            )
        return None, problems


# ---------------------------------------------------------------------------------------------
# extends: resolution and merge
# ---------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch of plain data."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merged_source(parent: Source, child: Source) -> Source:
    data = merge_patch(parent.data, child.data)
    merged = Source(path=child.path, data=data)
    for p, _ in walk(data):
        pos = child.values.get(p) or parent.values.get(p)
        if pos is not None:
            merged.values[p] = pos
        kpos = child.keys.get(p) or parent.keys.get(p)
        if kpos is not None:
            merged.keys[p] = kpos
    return merged


def _resolve(session: _Session, path: Path, stack: tuple[Path, ...] = ()) -> Source | None:
    """The option file at ``path`` with its ``extends`` chain applied (``extends`` removed)."""
    source = session.read(path)
    if source is None:
        return None
    data = source.data
    if not isinstance(data, dict):
        session.problems.append(
            source.problem(
                (), f"expected a mapping of keys to values, found {_describe(data)}", "bad-type"
            )
        )
        return None
    extends = data.get("extends")
    if extends is None:
        if "extends" in data:
            resolved = Source(
                source.path,
                {k: v for k, v in data.items() if k != "extends"},
                source.values,
                source.keys,
            )
            return resolved
        return source
    if not isinstance(extends, str):
        session.problems.append(
            source.problem(
                ("extends",),
                f"expected text such as catalogue:housing-repairs, found {_describe(extends)}",
                "bad-type",
            )
        )
        return None
    if extends.startswith(CATALOGUE_PREFIX):
        name = extends[len(CATALOGUE_PREFIX) :]
        if not re.fullmatch(models.ID_PATTERN, name):
            session.problems.append(
                source.problem(
                    ("extends",),
                    f"{name!r} is not a catalogue service option id; write catalogue:<id>, "
                    "e.g. catalogue:housing-repairs",
                    "bad-extends",
                )
            )
            return None
        target = session.catalogue / OPTIONS_DIR / f"{name}.yaml"
        if not target.is_file():
            known = sorted(p.stem for p in (session.catalogue / OPTIONS_DIR).glob("*.yaml"))
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean 'catalogue:{close[0]}'?" if close else ""
            session.problems.append(
                source.problem(
                    ("extends",),
                    f"the catalogue has no service option {name!r} (looked for {target}){hint}",
                    "bad-extends",
                )
            )
            return None
    else:
        bad = path_problem(extends)
        if bad is not None:
            session.problems.append(
                source.problem(("extends",), f"'extends' cannot be used: {bad}", "bad-extends")
            )
            return None
        target = path.parent / extends
        if not target.is_file():
            session.problems.append(
                source.problem(
                    ("extends",),
                    f"'extends' names {extends!r}, but there is no file {target}; write catalogue:<id> or a path relative to this file",
                    "bad-extends",
                )
            )
            return None
        real = _key(target)
        if not any(real.is_relative_to(root) for root in session.roots):
            # 3: extends stays inside the ruleset folder (and the catalogue): it never reads
            # /etc/passwd and prints it back
            session.problems.append(
                source.problem(
                    ("extends",),
                    f"'extends' names {extends!r}, which is outside the ruleset folder "
                    f"{session.roots[0] if session.roots else path.parent} and the catalogue; "
                    "a service option extends only files inside them",
                    "extends-outside",
                )
            )
            return None
    here, there = _key(path), _key(target)
    if there in stack or there == here:
        chain = " -> ".join(p.name for p in (*stack, here, there))
        session.problems.append(
            source.problem(
                ("extends",), f"'extends' goes round in a circle: {chain}", "extends-cycle"
            )
        )
        return None
    if len(stack) + 1 >= MAX_EXTENDS:
        session.problems.append(
            source.problem(
                ("extends",),
                f"'extends' chains more than {MAX_EXTENDS} files; extend the catalogue's option "
                "directly",
                "extends-too-long",
            )
        )
        return None
    parent = _resolve(session, target, (*stack, here))
    if parent is None:
        return None
    child = Source(
        source.path, {k: v for k, v in data.items() if k != "extends"}, source.values, source.keys
    )
    return _merged_source(parent, child)


# ---------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------


@dataclass
class _Header:
    kind: Kind
    source: Source | None
    model: OrganisationFile | CatalogueFile | None
    roles: dict[str, RotaRole] | None
    directory: dict[str, DirectoryEntry] | None  # None: a directory file has problems


def _read_header(session: _Session, folder: Path) -> _Header:
    org = folder / ORGANISATION_FILE
    kind: Kind = "organisation" if org.is_file() else "catalogue"
    path = org if kind == "organisation" else folder / CATALOGUE_FILE
    directory = _folder_directory(session, folder, kind)
    source = session.read(path)
    if source is None:
        return _Header(kind, None, None, None, directory)
    problems = _validate(source, source.data, kind)
    model: OrganisationFile | CatalogueFile | None = None
    if not problems:
        model_type: type[OrganisationFile] | type[CatalogueFile] = (
            OrganisationFile if kind == "organisation" else CatalogueFile
        )
        model, problems = _build_model(source, source.data, model_type)
    session.problems.extend(problems)
    roles = None
    if model is not None:
        roles, role_problems = check_roles(source, model.rota_roles)
        session.problems.extend(role_problems)
    return _Header(kind, source, model, roles, directory)


def _folder_directory(
    session: _Session, folder: Path, kind: Kind
) -> dict[str, DirectoryEntry] | None:
    """The directory an organisation's options name contacts from: the catalogue's national
    entries, overridden (whole entry by id) by the organisation's own."""
    if kind != "organisation":
        return session.directory(folder, organisation=False)
    national = session.directory(session.catalogue, organisation=False)
    own = session.directory(folder, organisation=True)
    if national is None or own is None:
        return None
    return {**national, **own}


def _option_files(folder: Path) -> list[Path]:
    options = folder / OPTIONS_DIR
    return sorted([*options.glob("*.yaml"), *options.glob("*.yml")])


def _load_option(
    session: _Session,
    folder: Path,
    path: Path,
    header: _Header,
    files: dict[str, Path],
    categories: frozenset[str],
) -> ServiceOption | None:
    """Resolve, validate and compile one option file of ``folder``; problems go to
    ``session``. ``files`` collects the ids seen so far (to find duplicates)."""
    model = header.model
    org_model = model if isinstance(model, OrganisationFile) else None
    source = _resolve(session, path)
    if source is None:
        return None
    problems = _validate(source, source.data, "service-option")
    if problems:
        session.problems.extend(problems)
        return None
    option_model, problems = _build_model(source, source.data, ServiceOptionFile)
    session.problems.extend(problems)
    if option_model is None:
        return None
    if option_model.id != path.stem:
        session.problems.append(
            source.problem(
                ("id",),
                f"the id {option_model.id!r} does not match the file name {path.name!r}; rename the file to {option_model.id}.yaml or change the id",
                "id-mismatch",
            )
        )
    if option_model.id in files:
        session.problems.append(
            source.problem(
                ("id",),
                f"service option id {option_model.id!r} is also used by {files[option_model.id]}",
                "duplicate-id",
            )
        )
        return None
    files[option_model.id] = path
    default_hours = org_model.hours if org_model else models.COMMON_HOURS
    default_limit: timedelta = (
        org_model.referral_time_limit
        if org_model
        else models.OrganisationFile.model_fields["referral_time_limit"].default
    )
    # The version covers what the option inherits from its organisation too (its hours when it
    # has none, the default referral time limit): a sign-off is of the behaviour as a whole.
    version = version_hash(
        {
            "option": option_model.model_dump(
                mode="json", by_alias=True, exclude={"sign_off", "extends"}
            ),
            "inherited": {
                "hours": None
                if option_model.hours
                else default_hours.model_dump(mode="json", by_alias=True),
                "referral_time_limit": models.format_duration(default_limit),
            },
        }
    )
    option, problems = compile_service_option(
        source,
        option_model,
        organisation_id=model.id if model else folder.name,
        roles=header.roles,
        out_of_scope_categories=categories,
        default_hours=default_hours,
        default_time_limit=default_limit,
        version=version,
        directory=header.directory,
        organisation_directory=str(folder / DIRECTORY_FILE) if org_model else None,
        policies=org_model.escalation_policies if org_model else None,
    )
    session.problems.extend(problems)
    return option


def _load_folder(
    session: _Session, folder: Path, only: Path | None = None
) -> Organisation | Catalogue | None:
    """Load ``folder``; with ``only`` (a resolved file of it), check just that file: the other
    option files are not compiled, and their names stand for their ids."""
    session.roots = (_key(folder), _key(session.catalogue))
    header = _read_header(session, folder)
    model = header.model
    org_model = model if isinstance(model, OrganisationFile) else None
    categories = frozenset(model.out_of_scope_categories) if model else frozenset()
    compiled: dict[str, ServiceOption] = {}
    files: dict[str, Path] = {}
    option_files = _option_files(folder)
    if len(option_files) > MAX_OPTION_FILES:
        session.problems.append(
            Problem(
                str(folder / OPTIONS_DIR),
                0,
                0,
                f"{len(option_files):,} service option files in {folder / OPTIONS_DIR}: at most "
                f"{MAX_OPTION_FILES:,} are read in one folder",
                "too-many-options",
            )
        )
        return None
    if not option_files:
        session.problems.append(
            Problem(
                str(folder / OPTIONS_DIR),
                0,
                0,
                f"no service option files (*.yaml) in {folder / OPTIONS_DIR}",
                "no-options",
            )
        )
    for path in option_files:
        if only is not None and _key(path) != only:
            files.setdefault(path.stem, path)  # for duplicate ids (its own id is checked alone)
            continue
        first = len(session.problems)
        option = _load_option(session, folder, path, header, files, categories)
        # What loading this file found, wherever it is located (an inherited rule can fail in
        # the file it extends): validate() of this one file reports all of it.
        session.found_by[_key(path)] = session.problems[first:]
        if option is not None:
            compiled[option.id] = option
    if header.source is not None and org_model is not None:
        # an option file with its own errors still exists: routing to it is not also an error
        option_ids = set(files) | {p.stem for p in option_files}
        routing = check_organisation(
            header.source,
            org_model,
            option_ids,
            roles=header.roles or {},
            directory=header.directory,
        )
        session.problems.extend(routing)
        if any(p.severity == "error" for p in routing):
            return None
    if model is None or len(compiled) != len(option_files) or header.directory is None:
        return None
    if org_model is not None:
        return compile_organisation(
            org_model,
            rota_roles=header.roles or {},
            out_of_scope_categories=categories,
            service_options=compiled,
            directory=header.directory,
            path=folder,
        )
    assert isinstance(model, CatalogueFile)
    return Catalogue(
        model.id,
        model.name,
        MappingProxyType(dict(header.roles or {})),
        MappingProxyType(compiled),
        folder,
        MappingProxyType(header.directory),
    )


def _ruleset_folders(path: Path) -> list[Path]:
    """Folders under ``path`` (or ``path`` itself) that hold an organisation or catalogue."""
    if (path / ORGANISATION_FILE).is_file() or (path / CATALOGUE_FILE).is_file():
        return [path]
    found = {p.parent for name in (ORGANISATION_FILE, CATALOGUE_FILE) for p in path.rglob(name)}
    return sorted(found)


def _capped(problem: Problem) -> Problem:
    if len(problem.message) <= MAX_MESSAGE:
        return problem
    return replace(problem, message=problem.message[: MAX_MESSAGE - 1] + "…")


def _errors(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(_capped(p) for p in problems if p.severity == "error"))


def load_organisation(path: str | Path, *, catalogue: str | Path | None = None) -> Organisation:
    """Load and compile one organisation folder. Raises :class:`RulesetError`."""
    folder = Path(path)
    if not (folder / ORGANISATION_FILE).is_file():
        raise RulesetError.single(
            folder, 0, 0, f"no {ORGANISATION_FILE} in {folder}", "not-an-organisation"
        )
    session = _Session(Path(catalogue) if catalogue else default_catalogue())
    result = _load_folder(session, folder)
    errors = _errors(session.problems)
    if errors or not isinstance(result, Organisation):
        raise RulesetError(
            errors
            or [Problem(str(folder), 0, 0, "the organisation could not be loaded", "not-loaded")]
        )
    return result


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load and compile a catalogue folder (default: the packaged one)."""
    folder = Path(path) if path else default_catalogue()
    if not (folder / CATALOGUE_FILE).is_file():
        raise RulesetError.single(
            folder, 0, 0, f"no {CATALOGUE_FILE} in {folder}", "not-a-catalogue"
        )
    session = _Session(folder)
    result = _load_folder(session, folder)
    errors = _errors(session.problems)
    if errors or not isinstance(result, Catalogue):
        raise RulesetError(
            errors
            or [Problem(str(folder), 0, 0, "the catalogue could not be loaded", "not-loaded")]
        )
    return result


def load_organisations(
    path: str | Path, *, catalogue: str | Path | None = None
) -> list[Organisation]:
    """Every organisation folder under ``path``; all problems of all of them in one error."""
    session = _Session(Path(catalogue) if catalogue else default_catalogue())
    loaded: list[Organisation] = []
    folders = [f for f in _ruleset_folders(Path(path)) if (f / ORGANISATION_FILE).is_file()]
    if not folders:
        raise RulesetError.single(
            path, 0, 0, f"no {ORGANISATION_FILE} found under {path}", "not-an-organisation"
        )
    for folder in folders:
        result = _load_folder(session, folder)
        if isinstance(result, Organisation):
            loaded.append(result)
    errors = _errors(session.problems)
    if errors:
        raise RulesetError(errors)
    ids: dict[str, Path | None] = {}
    for org in loaded:
        if org.id in ids:
            raise RulesetError.single(
                org.path or path,
                1,
                1,
                f"organisation id {org.id!r} is also used by {ids[org.id]}",
                "duplicate-id",
            )
        ids[org.id] = org.path
    return loaded


def validate(paths: Sequence[str | Path], *, catalogue: str | Path | None = None) -> list[Problem]:
    """Every problem (errors and warnings) in the files or folders ``paths``.

    A folder may be a ruleset folder or contain several; a single option file is checked in
    the context of its organisation (or catalogue), and only its own problems are reported.
    """
    base = Path(catalogue) if catalogue else default_catalogue()
    session = _Session(base)
    out: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            out.append(Problem(str(path), 0, 0, "no such file or folder", "not-found"))
            continue
        if not (path.is_file() or path.is_dir()):
            out.append(
                Problem(
                    str(path), 0, 0, "not a regular file or a folder (a FIFO or a device?)", "io"
                )
            )
            continue
        only: Path | None = None
        if path.is_file():
            only = _key(path)
            folder = path.parent.parent if path.parent.name == OPTIONS_DIR else path.parent
            folders = (
                [folder]
                if (folder / ORGANISATION_FILE).is_file() or (folder / CATALOGUE_FILE).is_file()
                else []
            )
        else:
            folders = _ruleset_folders(path)
        if not folders and only is not None:
            # a file is checked in its organisation's context, which this one does not have
            out.append(
                Problem(
                    str(path),
                    1,
                    1,
                    f"this file is not in a ruleset folder: neither {path.parent.name or '.'}/ "
                    f"nor the folder above an '{OPTIONS_DIR}' folder holds {ORGANISATION_FILE} "
                    f"or {CATALOGUE_FILE}; give validate an organisation or catalogue folder, or "
                    "a file inside one",
                    "not-a-ruleset",
                )
            )
            continue
        if not folders:
            out.append(
                Problem(
                    str(path),
                    0,
                    0,
                    f"no {ORGANISATION_FILE} or {CATALOGUE_FILE} found here; a ruleset folder holds one of them and an '{OPTIONS_DIR}' folder",
                    "not-a-ruleset",
                )
            )
            continue
        for folder in folders:
            session.problems = []
            # in a catalogue, 'catalogue:<id>' names its own options, as load_catalogue() reads it
            session.catalogue = base if (folder / ORGANISATION_FILE).is_file() else folder
            _load_folder(session, folder, only)
            found = session.problems
            if only is not None:
                found = [p for p in found if _key(Path(p.path)) == only]
                found += session.found_by.get(only, [])
            out.extend(found)
    unique = {(p.path, p.line, p.col, p.message): p for p in map(_capped, out)}
    return sorted(unique.values(), key=lambda p: (p.path, p.line, p.col))


def option_sources(path: str | Path, *, catalogue: str | Path | None = None) -> dict[str, Source]:
    """The source of each option file of the ruleset folder ``path``, its ``extends`` chain
    applied, by option id (its file name): where lint findings and scenario errors are
    located. Files that cannot be read are left out (``validate`` reports them)."""
    folder = Path(path)
    base = Path(catalogue) if catalogue else default_catalogue()
    session = _Session(base if (folder / ORGANISATION_FILE).is_file() else folder)
    out: dict[str, Source] = {}
    for file in _option_files(folder):
        source = _resolve(session, file)
        if source is not None:
            out[file.stem] = source
    return out
