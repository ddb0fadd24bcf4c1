"""Checks that need more than the schema, and compilation into runnable objects.

The loader hands over validated models together with their source map; this module checks the
cross-references a schema cannot express (actions named by rules exist, rota roles are declared,
escalations end at an officer, conditions and templates are well-typed …), reporting each
problem at ``file:line:col``, and builds the immutable :class:`ServiceOption` and
:class:`Organisation` the engine runs on.
"""

from __future__ import annotations

import hashlib
import json
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from oohcore.errors import Problem
from oohcore.rulesets.conditions import (
    CompiledCondition,
    ConditionError,
    FieldType,
    Type,
    compile_condition,
    compile_decision,
)
from oohcore.rulesets.models import (
    WEEKDAYS,
    AccessNumber,
    Action,
    EscalationStage,
    Hours,
    IvrMenu,
    LoneWorker,
    OrganisationFile,
    OutOfScope,
    Question,
    QuestionType,
    Refer,
    RoleKind,
    RotaRole,
    ServiceOptionFile,
    Standard,
    Transfer,
    UkNation,
)
from oohcore.rulesets.source import PathKey, Source
from oohcore.rulesets.templates import CompiledTemplate, TemplateError, compile_template

# Fields every condition may read, filled in by the engine for each call (docs/rulesets.md).
BUILTIN_FIELDS: Mapping[str, FieldType] = MappingProxyType(
    {
        "hour": FieldType(Type.NUMBER, description="local hour of the call, 0–23"),
        "minute": FieldType(Type.NUMBER, description="local minute of the call, 0–59"),
        "weekday": FieldType(
            Type.STRING, frozenset(d.value for d in WEEKDAYS), "local day: mon … sun"
        ),
        "weekend": FieldType(Type.BOOL, description="Saturday or Sunday (local)"),
        "bank_holiday": FieldType(Type.BOOL, description="a bank holiday of the organisation"),
        "caller_number": FieldType(Type.STRING, description="the number the caller rang from"),
        "duplicate": FieldType(
            Type.BOOL, description="an earlier call about the same issue was found (5.2.7)"
        ),
    }
)
# Placeholders every template may use besides the option's fields and settings.
BUILTIN_PLACEHOLDERS = frozenset(
    {
        "reference",
        "organisation",
        "service_option",
        "caller_number",
        "received_at",
        "time_limit",
        "variant",
        "handler",
        "uprn",  # from the gazetteer when the address matched (7.11); "not given" otherwise
    }
)

_QUESTION_TYPES: Mapping[QuestionType, Type] = {
    QuestionType.number: Type.NUMBER,
    QuestionType.yes_no: Type.BOOL,
    QuestionType.choices: Type.STRINGS,
}


def version_hash(data: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON form of ``data`` (sorted keys, no spaces)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a decision: which action, and which rule chose it (None: the default)."""

    action_id: str
    action: Action
    rule: int | None


@dataclass(frozen=True, eq=False)
class ServiceOption:
    """A compiled, immutable service option version (5.3.1): what the engine runs."""

    organisation_id: str
    id: str
    name: str
    standard: Standard
    version: str
    definition: ServiceOptionFile
    hours: Hours
    settings: Mapping[str, str]
    fields: Mapping[str, FieldType]
    questions: tuple[Question, ...]
    essential_fields: frozenset[str]
    ask_if: Mapping[str, CompiledCondition]
    templates: Mapping[PathKey, CompiledTemplate]
    time_limit: timedelta
    decide: Callable[[Mapping[str, Any]], Outcome] = field(repr=False)
    """Run the decision on the field values (answers, settings and built-ins): the
    :class:`Outcome` of the first rule that holds, else the default's. It never fails. This is
    the compiled function itself (no wrapper), as it runs for every call."""

    @property
    def signed_off(self) -> bool:
        """True when the file's ``sign_off.version`` is this exact version (5.3.1)."""
        so = self.definition.sign_off
        return so is not None and so.version == self.version

    @property
    def actions(self) -> Mapping[str, Action]:
        return self.definition.actions

    def template(self, *path: str | int) -> CompiledTemplate | None:
        return self.templates.get(tuple(path))

    def questions_to_ask(self, values: Mapping[str, Any]) -> list[Question]:
        """The script's questions, less those whose ``ask_if`` does not hold for ``values``."""
        return [
            q
            for q in self.questions
            if q.field not in self.ask_if or self.ask_if[q.field].holds(values)
        ]


@dataclass(frozen=True, eq=False)
class Organisation:
    """A compiled Participating Organisation with its service options (13.3)."""

    id: str
    name: str
    timezone: str
    nation: UkNation
    hours: Hours
    referral_time_limit: timedelta
    rota_roles: Mapping[str, RotaRole]
    access_numbers: Mapping[str, AccessNumber]
    ivr_menus: Mapping[str, IvrMenu]
    priorities: tuple[str, ...]
    out_of_scope_categories: frozenset[str]
    service_options: Mapping[str, ServiceOption]
    version: str
    path: Path | None = None

    def priority(self, option_id: str) -> int:
        """Lower is served first under high load (7.1.5); unlisted options come after."""
        try:
            return self.priorities.index(option_id)
        except ValueError:
            return len(self.priorities)


def normalise_number(number: str) -> str:
    """A dialled number as digits only, with +44 written as a leading 0."""
    digits = re.sub(r"[^0-9+]", "", number)
    if digits.startswith("+44"):
        digits = "0" + digits[3:]
    return digits.lstrip("+")


# ---------------------------------------------------------------------------------------------
# Checking and compiling a service option
# ---------------------------------------------------------------------------------------------


class _Report:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(
        self,
        path: Sequence[str | int],
        message: str,
        code: str,
        *,
        offset: int | None = None,
        at_key: bool = False,
        warning: bool = False,
    ) -> None:
        p = self.source.problem(path, message, code, offset=offset, at_key=at_key)
        if warning:
            p = Problem(p.path, p.line, p.col, p.message, p.code, severity="warning")
        self.problems.append(p)


def _field_type(q: Question) -> FieldType:
    t = _QUESTION_TYPES.get(q.type, Type.STRING)
    values = (
        frozenset(q.options)
        if q.options and q.type in (QuestionType.choice, QuestionType.choices)
        else None
    )
    return FieldType(t, values, q.ask)


def compile_service_option(
    source: Source,
    model: ServiceOptionFile,
    *,
    organisation_id: str,
    roles: Mapping[str, RotaRole] | None,
    out_of_scope_categories: frozenset[str],
    default_hours: Hours | None,
    default_time_limit: timedelta,
    version: str,
) -> tuple[ServiceOption | None, list[Problem]]:
    """Check ``model`` (from ``source``) in its organisation and compile it."""
    r = _Report(source)
    fields: dict[str, FieldType] = dict(BUILTIN_FIELDS)
    variant_ids = {"standard"}
    for i, variant in enumerate(model.variants):
        if variant.id in variant_ids:
            r.add(
                ("variants", i, "id"),
                f"variant id {variant.id!r} is used twice (or is the reserved 'standard')",
                "duplicate-id",
            )
        variant_ids.add(variant.id)
    fields["variant"] = FieldType(
        Type.STRING, frozenset(variant_ids), "the variant in force (5.4.3)"
    )

    settings: dict[str, str] = {}
    for name, setting in model.settings.items():
        if name in fields:
            r.add(
                ("settings", name),
                f"{name!r} is a built-in field; give the setting another name",
                "reserved-name",
                at_key=True,
            )
            continue
        if setting.value not in setting.allowed:
            allowed = ", ".join(setting.allowed)
            r.add(
                ("settings", name, "value"),
                f"{setting.value!r} is not one of the allowed values ({allowed})",
                "bad-setting",
            )
        settings[name] = setting.value
        fields[name] = FieldType(Type.STRING, frozenset(setting.allowed), setting.description)

    for i, q in enumerate(model.script.questions):
        path: PathKey = ("script", "questions", i)
        if q.field in fields:
            what = (
                "a setting"
                if q.field in settings
                else "a built-in field"
                if q.field in BUILTIN_FIELDS or q.field == "variant"
                else "asked twice"
            )
            r.add(
                (*path, "field"),
                f"field {q.field!r} is {what}; give the question another field name",
                "duplicate-field",
            )
            continue
        if q.field in BUILTIN_PLACEHOLDERS:
            r.add(
                (*path, "field"),
                f"field name {q.field!r} is reserved for a built-in placeholder",
                "reserved-name",
            )
        is_choice = q.type in (QuestionType.choice, QuestionType.choices)
        if is_choice and not q.options:
            r.add(
                path,
                f"a {q.type.value} question needs 'options' (value: label)",
                "missing-options",
                at_key=False,
            )
        if q.options and not is_choice:
            r.add(
                (*path, "options"),
                f"'options' is only for choice questions, but this one is {q.type.value}",
                "stray-options",
                at_key=True,
            )
        if (q.min is not None or q.max is not None) and q.type is not QuestionType.number:
            r.add(path, "'min'/'max' are only for number questions", "stray-bounds")
        if q.min is not None and q.max is not None and q.min > q.max:
            r.add((*path, "min"), f"min ({q.min}) is greater than max ({q.max})", "bad-bounds")
        if q.pattern is not None:
            try:
                re.compile(q.pattern)
            except re.error as exc:
                r.add(
                    (*path, "pattern"),
                    f"the pattern is not a valid regular expression: {exc}",
                    "bad-pattern",
                )
        fields[q.field] = _field_type(q)

    question_fields = {q.field for q in model.script.questions}
    ask_if: dict[str, CompiledCondition] = {}
    for i, q in enumerate(model.script.questions):
        if q.ask_if is not None:
            try:
                ask_if[q.field] = compile_condition(q.ask_if, fields, settings)
            except ConditionError as exc:
                r.add(
                    ("script", "questions", i, "ask_if"),
                    exc.message,
                    "bad-condition",
                    offset=exc.offset,
                )

    # decision → actions
    action_ids = set(model.actions)
    for i, rule in enumerate(model.decision.rules):
        if rule.then not in action_ids:
            r.add(
                ("decision", "rules", i, "then"),
                _unknown_action(rule.then, action_ids),
                "unknown-action",
            )
    if model.decision.default not in action_ids:
        r.add(
            ("decision", "default"),
            _unknown_action(model.decision.default, action_ids),
            "unknown-action",
        )
    decide: Callable[[Mapping[str, Any]], int] | None = None
    try:
        decide = compile_decision([rule.when for rule in model.decision.rules], fields, settings)
    except ConditionError as exc:
        r.add(
            ("decision", "rules", exc.rule or 0, "when"),
            exc.message,
            "bad-condition",
            offset=exc.offset,
        )
        # keep checking the other rules, so one run reports every bad condition
        for i, rule in enumerate(model.decision.rules):
            if i == exc.rule:
                continue
            try:
                compile_condition(rule.when, fields, settings)
            except ConditionError as other:
                r.add(
                    ("decision", "rules", i, "when"),
                    other.message,
                    "bad-condition",
                    offset=other.offset,
                )

    used_actions = {rule.then for rule in model.decision.rules} | {model.decision.default}
    used_actions |= {
        a.fallback for a in model.actions.values() if isinstance(a, Transfer) and a.fallback
    }
    for action_id in model.actions:
        if action_id not in used_actions:
            r.add(
                ("actions", action_id),
                f"action {action_id!r} is never chosen by the decision",
                "unused-action",
                at_key=True,
                warning=True,
            )

    # actions: roles, escalation, categories
    for action_id, action in model.actions.items():
        path = ("actions", action_id)
        if isinstance(action, Transfer) and action.fallback and action.fallback not in action_ids:
            r.add(
                (*path, "fallback"), _unknown_action(action.fallback, action_ids), "unknown-action"
            )
        if isinstance(action, Refer):
            _check_role(r, (*path, "rota_role"), action.rota_role, roles)
            _check_escalation(r, path, action.escalation, roles)
        if isinstance(action, LoneWorker):
            _check_escalation(r, path, action.escalation, roles)
        if (
            isinstance(action, OutOfScope)
            and out_of_scope_categories
            and action.category not in out_of_scope_categories
        ):
            known = ", ".join(sorted(out_of_scope_categories))
            r.add(
                (*path, "category"),
                f"unknown out-of-scope category {action.category!r}; declare it under out_of_scope_categories (known: {known})",
                "unknown-category",
            )

    # templates
    placeholders = BUILTIN_PLACEHOLDERS | question_fields | set(settings) | set(BUILTIN_FIELDS)
    templates: dict[PathKey, CompiledTemplate] = {}
    for tpath, text in _template_texts(model):
        try:
            templates[tpath] = compile_template(text, placeholders)
        except TemplateError as exc:
            r.add(tpath, exc.message, "bad-template", offset=exc.offset)

    errors = [p for p in r.problems if p.severity == "error"]
    if errors or decide is None:
        return None, r.problems
    outcomes = tuple(
        Outcome(rule.then, model.actions[rule.then], i)
        for i, rule in enumerate(model.decision.rules)
    )
    outcomes += (Outcome(model.decision.default, model.actions[model.decision.default], None),)
    hours = model.hours or default_hours
    if hours is None:
        r.add(
            (),
            "this service option has no 'hours' and there is no organisation to take them from",
            "missing-hours",
        )
        return None, r.problems
    option = ServiceOption(
        organisation_id=organisation_id,
        id=model.id,
        name=model.name,
        standard=model.standard,
        version=version,
        definition=model,
        hours=hours,
        settings=MappingProxyType(settings),
        fields=MappingProxyType(fields),
        questions=tuple(model.script.questions),
        essential_fields=frozenset(q.field for q in model.script.questions if q.essential),
        ask_if=MappingProxyType(ask_if),
        templates=MappingProxyType(templates),
        time_limit=_time_limit(model, default_time_limit),
        decide=compile_decision(
            [rule.when for rule in model.decision.rules], fields, settings, results=outcomes
        ),
    )
    return option, r.problems


def _time_limit(model: ServiceOptionFile, default: timedelta) -> timedelta:
    limits = [a.time_limit for a in model.actions.values() if isinstance(a, Refer) and a.time_limit]
    return min(limits) if limits else default


def _unknown_action(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    hint = (
        f"; did you mean {close[0]!r}?"
        if close
        else f"; the actions are: {', '.join(sorted(known))}"
    )
    return f"no action named {name!r} in 'actions'{hint}"


def _check_role(
    r: _Report, path: PathKey, role: str, roles: Mapping[str, RotaRole] | None
) -> RotaRole | None:
    """The declared role, or None (reported). ``roles`` None: the header was unreadable, so
    roles cannot be checked and are not reported."""
    if roles is None:
        return None
    found = roles.get(role)
    if found is None:
        import difflib

        close = difflib.get_close_matches(role, list(roles), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        r.add(
            path,
            f"unknown rota role {role!r}{hint}; declare it under rota_roles in organisation.yaml (or catalogue.yaml)",
            "unknown-role",
        )
    return found


def _check_escalation(
    r: _Report,
    path: PathKey,
    stages: Sequence[EscalationStage],
    roles: Mapping[str, RotaRole] | None,
) -> None:
    """Audit items 8–9, spec 5.3.2/6.4e: an escalation exists and, when every stage is
    exhausted, ends at an on-call officer of the organisation."""
    if not stages:
        r.add(
            path,
            "this referral has no escalation procedure; add 'escalation' stages ending at an on-call officer (5.3.2, audit item 9)",
            "no-escalation",
            at_key=True,
        )
        return
    found = [
        _check_role(r, (*path, "escalation", i, "rota_role"), s.rota_role, roles)
        for i, s in enumerate(stages)
    ]
    last = found[-1]
    if last is not None and last.kind is not RoleKind.officer:
        r.add(
            (*path, "escalation", len(stages) - 1, "rota_role"),
            f"the last escalation stage goes to {last.id!r}, a {last.kind.value}; it must end at an on-call officer (a rota role of kind 'officer') so an exhausted escalation always reaches a named person (audit item 9)",
            "escalation-end",
        )


def _template_texts(model: ServiceOptionFile) -> list[tuple[PathKey, str]]:
    out: list[tuple[PathKey, str]] = []
    for i, v in enumerate(model.variants):
        out.append((("variants", i, "tell_caller"), v.tell_caller))
    for action_id, action in model.actions.items():
        base: PathKey = ("actions", action_id)
        for name in ("say", "caller_sms"):
            text = getattr(action, name)
            if text is not None:
                out.append(((*base, name), text))
        message = getattr(action, "message", None)
        if message is not None:
            for name in ("sms", "subject", "body"):
                text = getattr(message, name)
                if text is not None:
                    out.append(((*base, "message", name), text))
        for i, stage in enumerate(getattr(action, "escalation", ())):
            if stage.say is not None:
                out.append(((*base, "escalation", i, "say"), stage.say))
    return out


# ---------------------------------------------------------------------------------------------
# Organisation-level checks
# ---------------------------------------------------------------------------------------------


def check_roles(
    source: Source, roles: Sequence[RotaRole]
) -> tuple[dict[str, RotaRole], list[Problem]]:
    r = _Report(source)
    out: dict[str, RotaRole] = {}
    for i, role in enumerate(roles):
        if role.id in out:
            r.add(
                ("rota_roles", i, "id"), f"rota role {role.id!r} is declared twice", "duplicate-id"
            )
        out[role.id] = role
    return out, r.problems


def check_organisation(
    source: Source, model: OrganisationFile, option_ids: set[str]
) -> list[Problem]:
    """Routing and references of ``organisation.yaml`` (7.1.2–7.1.5)."""
    r = _Report(source)
    try:
        zoneinfo.ZoneInfo(model.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        import difflib

        close = difflib.get_close_matches(
            model.timezone, sorted(zoneinfo.available_timezones()), n=1, cutoff=0.8
        )
        hint = f"did you mean {close[0]!r}?" if close else "use an IANA name such as Europe/London"
        r.add(
            ("timezone",),
            f"unknown time zone {model.timezone!r}; {hint}",
            "bad-timezone",
        )
    menus: dict[str, IvrMenu] = {}
    for i, menu in enumerate(model.ivr_menus):
        if menu.id in menus:
            r.add(("ivr_menus", i, "id"), f"IVR menu {menu.id!r} is declared twice", "duplicate-id")
        menus[menu.id] = menu
        keys: set[str] = set()
        for j, choice in enumerate(menu.choices):
            if choice.key in keys:
                r.add(
                    ("ivr_menus", i, "choices", j, "key"),
                    f"key {choice.key!r} is used twice in this menu",
                    "duplicate-key",
                )
            keys.add(choice.key)
            _check_option_ref(
                r,
                ("ivr_menus", i, "choices", j, "service_option"),
                choice.service_option,
                option_ids,
            )
        if menu.no_choice is not None:
            _check_option_ref(r, ("ivr_menus", i, "no_choice"), menu.no_choice, option_ids)
    numbers: dict[str, int] = {}
    for i, access in enumerate(model.access_numbers):
        path = ("access_numbers", i)
        digits = normalise_number(access.number)
        if digits in numbers:
            r.add(
                (*path, "number"),
                f"number {access.number!r} is listed twice (first at entry {numbers[digits] + 1})",
                "duplicate-number",
            )
        numbers[digits] = i
        if (access.service_option is None) == (access.ivr is None):
            r.add(
                path,
                "an access number goes to exactly one of 'service_option' or 'ivr' (7.1.3)",
                "access-target",
            )
        if access.service_option is not None:
            _check_option_ref(r, (*path, "service_option"), access.service_option, option_ids)
        if access.ivr is not None and access.ivr not in menus:
            r.add((*path, "ivr"), f"no IVR menu named {access.ivr!r} in ivr_menus", "unknown-ivr")
    seen: set[str] = set()
    for i, option_id in enumerate(model.priorities):
        if option_id in seen:
            r.add(("priorities", i), f"{option_id!r} is listed twice", "duplicate-id")
        seen.add(option_id)
        _check_option_ref(r, ("priorities", i), option_id, option_ids)
    return r.problems


def _check_option_ref(r: _Report, path: PathKey, option_id: str, option_ids: set[str]) -> None:
    if option_id not in option_ids:
        import difflib

        close = difflib.get_close_matches(option_id, list(option_ids), n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        r.add(path, f"no service option {option_id!r} in this organisation{hint}", "unknown-option")
