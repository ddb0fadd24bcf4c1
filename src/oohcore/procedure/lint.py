"""Lint for ambiguity and dead ends in a ruleset (audit item 8: "no ambiguity in who should be
contacted when and how"; 5.3.1, 5.3.2).

``oohcore lint ORG|FOLDER`` (and ``oohcore validate --strict``) reports, each at its
``file:line:col``:

* ``never-matches``: a rule whose condition no answers can make true (under any choice of the
  option's settings);
* ``unreachable``: a rule that can hold, but whenever it does an earlier rule holds too, so it
  is never the one chosen; the **witness** is answers for which it holds, and the rule that
  takes the call instead;
* ``never-asked``: a question whose ``ask_if`` can never hold;
* ``never-read``: a question whose answer no rule, ``ask_if`` or message reads (nor the call
  record's search index: name, address, postcode);
* ``unused-action``: an action no reachable rule, the default or a fallback chooses;
* ``no-number``: a signpost or transfer with neither a directory contact nor a number;
* ``nobody-holds``: an escalation whose last stage is a rota role nobody holds at every
  moment in ``rota.yaml`` (read as the engine reads it, either format; dated cover aside), so
  an exhausted escalation can end with nobody holding the call (audit item 9, 5.3.2);
* ``unrouted``: an option no access number or IVR menu leads to (7.1.3, 7.1.4).

Every witness is checked by running the compiled decision on it (:mod:`.witness`). A finding
the organisation accepts is explained in the option file: ``lint: {"<kind> <target>": reason}``
(``target``: ``rule-3`` (1-based), a question's field, an action id, or ``option``); it is then
shown as explained, and does not fail the lint.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oohcore.errors import Problem, RulesetError
from oohcore.rulesets.compiler import Organisation, ServiceOption
from oohcore.rulesets.loader import (
    ORGANISATION_FILE,
    load_catalogue,
    load_organisation,
    option_sources,
)
from oohcore.rulesets.models import LoneWorker, Refer, Signpost, Transfer
from oohcore.rulesets.source import PathKey, Source, read_yaml

from .witness import Search, Witness, first, names

__all__ = ["KINDS", "Finding", "LintReport", "lint_option", "lint_path", "nobody_holds"]

KINDS = (
    "never-matches",
    "unreachable",
    "never-asked",
    "never-read",
    "unused-action",
    "no-number",
    "nobody-holds",
    "unrouted",
)
RECORD_FIELDS = frozenset({"caller_name", "address", "postcode", "uprn"})
"""Answers the engine reads for the call record's search index (5.2.7) whatever the rules do."""
ROTA_FILE = "rota.yaml"


@dataclass(frozen=True)
class Finding:
    """One lint finding, located; ``witness`` for rule findings."""

    kind: str
    option: str
    target: str  # rule-3, a field, an action id, or "option"
    path: str
    line: int
    col: int
    message: str
    witness: Mapping[str, Any] | None = None
    rule: int | None = None  # the rule the finding is about (0-based)
    covered_by: int | None = None  # unreachable: the rule that takes the call (None: default)
    explained: str | None = None  # the reason given in the ruleset's ``lint:`` key

    @property
    def key(self) -> str:
        return f"{self.kind} {self.target}"

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.kind}: {self.message}"
        if self.witness is not None:
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.witness.items()))
            text += f"\n    witness: {shown}"
        if self.explained is not None:
            text += f"\n    explained in the ruleset: {self.explained}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "option": self.option,
            "target": self.target,
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "witness": dict(self.witness) if self.witness is not None else None,
            "rule": self.rule,
            "covered_by": self.covered_by,
            "explained": self.explained,
        }


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    options: int = 0

    @property
    def open(self) -> list[Finding]:
        """The findings not explained in the ruleset: these fail the lint."""
        return [f for f in self.findings if f.explained is None]


def _at(
    source: Source | None, path: PathKey, *, at_key: bool = False, default: str = ""
) -> tuple[str, int, int]:
    if source is None:
        return default, 0, 0
    pos = source.key_where(path) if at_key else source.where(path)
    return pos.file, pos.line, pos.col


def _rule_text(i: int) -> str:
    return f"rule {i + 1}"


def _setting_choices(option: ServiceOption) -> list[dict[str, str]]:
    """Every other combination of the option's settings' allowed values (2.2.2)."""
    settings = option.definition.settings
    if not settings:
        return []
    combos = itertools.product(*(s.allowed for s in settings.values()))
    current = dict(option.settings)
    out = [dict(zip(settings, c, strict=True)) for c in combos]
    return [c for c in out if c != current][:64]


def lint_option(
    option: ServiceOption,
    source: Source | None,
    *,
    rota_roles_held: frozenset[str] | None = None,
) -> list[Finding]:
    """The findings of one compiled option. ``rota_roles_held``: the roles someone holds at
    every moment of the organisation's rota (None: no rota to check against)."""
    findings: list[Finding] = []
    model = option.definition
    default_file = source.path if source is not None else option.id

    def add(
        kind: str,
        target: str,
        path: PathKey,
        message: str,
        *,
        at_key: bool = False,
        witness: Witness | None = None,
        rule: int | None = None,
        covered_by: int | None = None,
    ) -> None:
        file, line, col = _at(source, path, at_key=at_key, default=default_file)
        findings.append(
            Finding(
                kind,
                option.id,
                target,
                file,
                line,
                col,
                message,
                dict(witness.answers) if witness is not None else None,
                rule,
                covered_by,
            )
        )

    search = Search(option)
    others = [Search(option, settings=s) for s in _setting_choices(option)]
    reached: set[int | None] = set()
    for i, rule in enumerate(model.decision.rules):
        where: PathKey = ("decision", "rules", i, "when")
        if first(search.reaching(i)) is not None:
            reached.add(i)
            continue
        if search.exhausted:
            continue  # too many combinations to be sure: no finding
        if any(first(o.reaching(i)) is not None for o in others):
            reached.add(i)  # it serves another choice of the settings (2.2.2)
            continue
        holds = first(search.holding(i))
        if holds is not None:
            by = _rule_text(holds.rule) if holds.rule is not None else "the default"
            add(
                "unreachable",
                f"rule-{i + 1}",
                where,
                f"{_rule_text(i)} ({rule.when!r}, then {rule.then}) is never reached: whenever "
                f"it holds an earlier rule holds too; with the witness's answers {by} "
                f"({holds.chosen}) takes the call",
                witness=holds,
                rule=i,
                covered_by=holds.rule,
            )
            continue
        if search.exhausted:
            continue
        add(
            "never-matches",
            f"rule-{i + 1}",
            where,
            f"{_rule_text(i)} ({rule.when!r}) can never match: no answers make it true",
            rule=i,
        )
    if any(first(o.reaching(None)) is not None for o in [search, *others]):
        reached.add(None)

    # questions
    read: set[str] = set()
    for node in search.rules:
        read |= names(node)
    for cond in search.ask_if.values():
        read |= names(cond)
    for tpl in option.templates.values():
        read |= set(tpl.placeholders)
    for i, q in enumerate(model.script.questions):
        if q.ask_if is not None and first(search.asking(q.field)) is None and not search.exhausted:
            add(
                "never-asked",
                q.field,
                ("script", "questions", i, "ask_if"),
                f"question {q.field!r} is never asked: its ask_if ({q.ask_if!r}) can never hold",
            )
        elif q.field not in read and q.field not in RECORD_FIELDS:
            add(
                "never-read",
                q.field,
                ("script", "questions", i, "field"),
                f"the answer to {q.field!r} is never read: no rule, ask_if or message uses it, "
                "so it is not passed on to anyone",
            )

    # actions
    used: set[str] = {
        model.decision.rules[i].then if i is not None else model.decision.default for i in reached
    }
    used |= {
        a.fallback for a_id, a in model.actions.items() if isinstance(a, Transfer) and a.fallback
    }
    for action_id, action in model.actions.items():
        path: PathKey = ("actions", action_id)
        if action_id not in used:
            add(
                "unused-action",
                action_id,
                path,
                f"action {action_id!r} is never chosen: no reachable rule, the default or a "
                "fallback leads to it",
                at_key=True,
            )
        if isinstance(action, Signpost | Transfer) and action.contact is None and not action.number:
            add(
                "no-number",
                action_id,
                path,
                f"the {action.kind} {action_id!r} gives the caller no number: name a directory "
                "'contact' (5.2.3.1, 5.2.3.2)",
                at_key=True,
            )
    if rota_roles_held is not None:
        findings += _escalation_findings(option, source, rota_roles_held)
    return _explain(findings, model.lint)


def _explain(findings: list[Finding], reasons: Mapping[str, str]) -> list[Finding]:
    out = []
    for f in findings:
        reason = reasons.get(f.key)
        if reason is not None:
            f = replace(f, explained=reason)
        out.append(f)
    return out


def _standing_roles(folder: Path, org: Organisation) -> frozenset[str] | None:
    """The roles someone holds at every moment in the folder's ``rota.yaml``, read as the
    engine reads it (either format); None when there is no rota, or it does not load (its own
    problems are validate's)."""
    from zoneinfo import ZoneInfo

    from oohcore.rota import read_rota
    from oohcore.rota.gaps import always_held

    path = folder / ROTA_FILE
    if not path.is_file():
        return None
    try:
        data = read_rota(path, timezone=org.timezone, roles=org.rota_roles)
    except RulesetError:
        return None
    tz = ZoneInfo(org.timezone)
    return frozenset(role for role in org.rota_roles if always_held(data, role, tz))


def nobody_holds(folder: str | Path, *, catalogue: str | Path | None = None) -> list[Finding]:
    """Only the ``nobody-holds`` findings of an organisation folder (``oohcore validate``
    reports them as warnings without a store: the store's living rota may hold the role, but
    the file that seeds it does not). Empty for a folder that does not load."""
    root = Path(folder)
    try:
        org = load_organisation(root, catalogue=catalogue)
    except RulesetError:
        return []
    held = _standing_roles(root, org)
    if held is None:
        return []
    sources = option_sources(root, catalogue=catalogue)
    return [
        f
        for option_id in sorted(org.service_options)
        for f in _escalation_findings(org.service_options[option_id], sources.get(option_id), held)
    ]


def _escalation_findings(
    option: ServiceOption, source: Source | None, held: frozenset[str]
) -> list[Finding]:
    findings: list[Finding] = []
    for action_id, action in option.definition.actions.items():
        if not isinstance(action, Refer | LoneWorker):
            continue
        stages = action.escalation
        if stages and stages[-1].rota_role not in held:
            last = len(stages) - 1
            file, line, col = _at(
                source,
                ("actions", action_id, "escalation", last, "rota_role"),
                default=source.path if source is not None else option.id,
            )
            findings.append(
                Finding(
                    "nobody-holds",
                    option.id,
                    action_id,
                    file,
                    line,
                    col,
                    f"the escalation of {action_id!r} ends at {stages[-1].rota_role!r}, which "
                    "nobody holds at every moment in rota.yaml (dated cover aside): an "
                    "exhausted escalation can end with nobody holding the call (5.3.2, audit "
                    "item 9)",
                )
            )
    return _explain(findings, option.definition.lint)


def _unrouted(org: Organisation, folder: Path) -> list[Finding]:
    source = read_yaml(folder / ORGANISATION_FILE)
    routed = {a.service_option for a in org.access_numbers.values() if a.service_option}
    for menu in org.ivr_menus.values():
        routed |= {c.service_option for c in menu.choices}
        if menu.no_choice:
            routed.add(menu.no_choice)
    findings = []
    for option in org.service_options.values():
        if option.id in routed:
            continue
        file, line, col = _at(source, ("access_numbers",), at_key=True)
        findings.append(
            Finding(
                "unrouted",
                option.id,
                "option",
                file,
                line,
                col,
                f"no access number or IVR menu leads to service option {option.id!r}: callers "
                "cannot reach it (7.1.3, 7.1.4)",
            )
        )
    return [
        f
        for option in org.service_options.values()
        for f in _explain([f for f in findings if f.option == option.id], option.definition.lint)
    ]


def lint_path(path: str | Path, *, catalogue: str | Path | None = None) -> LintReport:
    """Lint an organisation folder, a catalogue folder, or every ruleset folder under
    ``path``. Raises :class:`RulesetError` if a ruleset does not load (validate first)."""
    root = Path(path)
    folders = _folders(root)
    report = LintReport()
    for folder in folders:
        org: Organisation | None = None
        if (folder / ORGANISATION_FILE).is_file():
            org = load_organisation(folder, catalogue=catalogue)
            options: Mapping[str, ServiceOption] = org.service_options
        else:
            options = load_catalogue(folder).service_options
        sources = option_sources(folder, catalogue=catalogue)
        held = _standing_roles(folder, org) if org is not None else None
        for option_id in sorted(options):
            report.findings += lint_option(
                options[option_id], sources.get(option_id), rota_roles_held=held
            )
        report.options += len(options)
        if org is not None:
            report.findings += _unrouted(org, folder)
    return report


def _folders(root: Path) -> Sequence[Path]:
    from oohcore.rulesets.loader import CATALOGUE_FILE

    if (root / ORGANISATION_FILE).is_file() or (root / CATALOGUE_FILE).is_file():
        return [root]
    found = sorted(
        {p.parent for name in (ORGANISATION_FILE, CATALOGUE_FILE) for p in root.rglob(name)}
    )
    if not found:
        raise RulesetError(
            [Problem(str(root), 0, 0, "no organisation.yaml or catalogue.yaml here", "not-found")]
        )
    return found
