"""Checks that need more than the schema, and compilation into runnable objects.

The loader hands over validated models together with their source map; this module checks the
cross-references a schema cannot express (actions named by rules exist, rota roles are declared,
escalations end at an officer, conditions and templates are well-typed …), reporting each
problem at ``file:line:col``, and builds the immutable :class:`ServiceOption` and
:class:`Organisation` the engine runs on.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from oohcore.errors import Problem
from oohcore.phones import e164
from oohcore.rulesets.conditions import (
    CompiledCondition,
    ConditionError,
    FieldType,
    Type,
    compile_condition,
    compile_decision,
)
from oohcore.rulesets.models import (
    IVR_SAY_PLACEHOLDERS,
    MAX_NO_CHOICE_WAIT,
    WEEKDAYS,
    AccessNumber,
    AckLinks,
    Action,
    DirectoryEntry,
    DirectoryFile,
    EscalationPolicy,
    EscalationStage,
    Hours,
    IvrMenu,
    LoneWorker,
    Message,
    OrganisationFile,
    OutOfScope,
    OutOfScopeResponse,
    PolicyNotify,
    Priorities,
    PriorityMode,
    Question,
    QuestionType,
    Refer,
    Resolve,
    RoleKind,
    RotaRole,
    ServiceOptionFile,
    Signpost,
    Standard,
    Transfer,
    UkNation,
    format_duration,
)
from oohcore.rulesets.patterns import PatternError, compile_pattern
from oohcore.rulesets.source import PathKey, Source, _excerpt
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
        "attendance_overdue": FieldType(
            Type.BOOL,
            description="the earlier call's referral is past its attendance_target with no "
            "attendance recorded (audit item 7)",
        ),
        # Facts the engine reads from the organisation's gazetteer for the ``address`` answer
        # (ADDRESS_FACTS below); unknown (None) when there is no gazetteer or no address yet.
        "outside_area": FieldType(
            Type.BOOL,
            description="the address is outside the organisation's area: its postcode is not "
            "in the gazetteer, or (no postcode given) no gazetteer address matches (4.1.5b)",
        ),
        "property_owner": FieldType(
            Type.STRING,
            description="the gazetteer's owner of the matched property, e.g. council, "
            "leasehold (7.11: whether a repair order will be issued)",
        ),
    }
)
ADDRESS_FACTS = frozenset({"outside_area", "property_owner"})
"""The built-in fields the engine fills in from the gazetteer (4.1.5b, 7.11)."""
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
# Placeholders of the templates of an action that names a directory contact, filled from the
# directory entry when the call runs (2.3.3): the number is never part of the signed text.
CONTACT_PLACEHOLDERS = frozenset(
    {"contact_name", "contact_number", "contact_email", "contact_opening_times"}
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


W = TypeVar("W")


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
    contacts: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """For each action that names directory contacts, their ids (the numbers are looked up in
    the directory when the call runs; they are no part of :attr:`version`)."""

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
    priority_mode: PriorityMode = PriorityMode.always
    high_call_volume: int | None = None
    """With ``priority_mode`` high_call_volume: the number of waiting calls from which the
    priorities apply (7.1.5)."""
    ivr: Mapping[str, CompiledIvrMenu] = field(default_factory=lambda: MappingProxyType({}))
    """Each IVR menu with its choices by key, their compiled ``say`` and the no-choice wait."""
    feed_options: frozenset[str] = frozenset()
    """The service options whose requests go to the organisation's feed when a call closes
    (7.8); empty: no feed."""
    last_resort: str = ""
    """Alerted at once when nobody on the rota can take a referral (issue 7 defect 1): a rota
    role id or a directory contact id (``last_resort`` in organisation.yaml)."""
    escalation_policies: Mapping[str, EscalationPolicy] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Named escalation policies (issue 8 item 5), snapshotted into each referral using one."""
    ack_links: AckLinks | None = None
    """Where the key of its signed acknowledgement links is, and how long they last."""
    directory: Mapping[str, DirectoryEntry] = field(default_factory=lambda: MappingProxyType({}))
    """The directory as the files give it (the organisation's entries over the catalogue's):
    what :func:`oohcore.directory.seed` puts in the store. At run time the store's entries are
    the living ones (2.3.3); this is no part of :attr:`version`."""

    def priority(self, option_id: str) -> int:
        """The option's place in the priorities, lower first (7.1.5); unlisted options come
        after the listed ones. Whether it applies now: :meth:`priorities_apply`."""
        try:
            return self.priorities.index(option_id)
        except ValueError:
            return len(self.priorities)

    def priorities_apply(self, waiting_calls: int) -> bool:
        """Whether option priorities order the queue when ``waiting_calls`` calls wait
        (7.1.5): always, or only in a period of high call volume."""
        if self.priority_mode is PriorityMode.always:
            return bool(self.priorities)
        return self.high_call_volume is not None and waiting_calls >= self.high_call_volume

    def order_waiting(
        self,
        calls: Sequence[W],
        *,
        option_of: Callable[[W], str | None],
        arrived_at: Callable[[W], datetime],
    ) -> list[W]:
        """``calls`` (all the calls waiting) in the order to answer them: by option priority
        when :meth:`priorities_apply`, then by time of arrival (7.1.5)."""
        if self.priorities_apply(len(calls)):
            return sorted(calls, key=lambda c: (self.priority(option_of(c) or ""), arrived_at(c)))
        return sorted(calls, key=arrived_at)


@dataclass(frozen=True, slots=True)
class CompiledIvrChoice:
    key: str
    service_option: str
    say: CompiledTemplate | None
    """Rendered with ``organisation`` and ``service_option`` (the names)."""


@dataclass(frozen=True, slots=True)
class CompiledIvrMenu:
    """An IVR menu as the engine runs it (2.1.2a, 5.1.2, 7.1.4)."""

    id: str
    prompt: str
    choices: Mapping[str, CompiledIvrChoice]
    no_choice: str | None
    """The service option of a caller who presses nothing, or None (the call stays in the
    menu)."""
    no_choice_wait: timedelta
    """How long after the prompt a caller who has pressed nothing counts as making no choice."""


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


@dataclass(frozen=True)
class OptionContext:
    """What the checks of one service option share: the report they add to, and what the
    option is checked against. ``roles`` or ``directory`` None: that file was unreadable
    (already reported), so names in it are not checked."""

    report: _Report
    model: ServiceOptionFile
    roles: Mapping[str, RotaRole] | None
    directory: Mapping[str, DirectoryEntry] | None
    organisation_directory: str | None
    """For an organisation's option, the path of its ``directory.yaml``: the contacts the
    option names must be reachable (a catalogue may leave a number to each organisation)."""
    out_of_scope_categories: frozenset[str]
    address_fields: frozenset[str]  # fields of type address: their UPRN may be known (7.11)
    policies: Mapping[str, EscalationPolicy] | None = None
    """The organisation's escalation policies (None: not known here, not checked)."""


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
    directory: Mapping[str, DirectoryEntry] | None = None,
    organisation_directory: str | None = None,
    policies: Mapping[str, EscalationPolicy] | None = None,
) -> tuple[ServiceOption | None, list[Problem]]:
    """Check ``model`` (from ``source``) in its organisation and compile it.

    ``directory`` is the organisation's directory (its own entries over the catalogue's): the
    contact ids the actions name are checked against it, but it is no part of the option's
    version (DESIGN principle 10)."""
    r = _Report(source)
    ctx = OptionContext(
        report=r,
        model=model,
        roles=roles,
        directory=directory,
        organisation_directory=organisation_directory,
        policies=policies,
        out_of_scope_categories=out_of_scope_categories,
        address_fields=frozenset(
            q.field for q in model.script.questions if q.type is QuestionType.address
        ),
    )
    fields: dict[str, FieldType] = dict(BUILTIN_FIELDS)
    fields["variant"] = _check_variants(r, model)
    settings = _check_settings(r, model, fields)
    _check_questions(r, model, fields, settings)
    ask_if = _compile_ask_if(r, model, fields, settings)
    decision_ok = _check_decision(r, model, fields, settings)
    _check_unused_actions(r, model)
    for action_id, action in model.actions.items():
        ACTION_CHECKS[action.kind](ctx, ("actions", action_id), action)
    templates = _compile_templates(r, model, settings)

    errors = [p for p in r.problems if p.severity == "error"]
    if errors or not decision_ok:
        return None, r.problems
    hours = model.hours or default_hours
    if hours is None:
        r.add(
            (),
            "this service option has no 'hours' and there is no organisation to take them from",
            "missing-hours",
        )
        return None, r.problems
    outcomes = tuple(
        Outcome(rule.then, model.actions[rule.then], i)
        for i, rule in enumerate(model.decision.rules)
    )
    outcomes += (Outcome(model.decision.default, model.actions[model.decision.default], None),)
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
        contacts=MappingProxyType(
            {a: ids for a, action in model.actions.items() if (ids := contact_ids(action))}
        ),
    )
    return option, r.problems


# -- the script ---------------------------------------------------------------------------------


def _check_variants(r: _Report, model: ServiceOptionFile) -> FieldType:
    """Variant ids are unique (5.4.3); the built-in field ``variant`` takes one of them."""
    variant_ids = {"standard"}
    for i, variant in enumerate(model.variants):
        if variant.id in variant_ids:
            r.add(
                ("variants", i, "id"),
                f"variant id {variant.id!r} is used twice (or is the reserved 'standard')",
                "duplicate-id",
            )
        variant_ids.add(variant.id)
    return FieldType(Type.STRING, frozenset(variant_ids), "the variant in force (5.4.3)")


def _check_settings(
    r: _Report, model: ServiceOptionFile, fields: dict[str, FieldType]
) -> dict[str, str]:
    """Each setting's value is one it allows; conditions read it like a field."""
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
    return settings


def _check_questions(
    r: _Report, model: ServiceOptionFile, fields: dict[str, FieldType], settings: Mapping[str, str]
) -> None:
    """Each question captures a field of its own, with options, bounds and pattern that fit
    its type (5.3.3, 7.4.1); its field joins ``fields``."""
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
        if q.field in BUILTIN_PLACEHOLDERS or q.field in CONTACT_PLACEHOLDERS:
            r.add(
                (*path, "field"),
                f"field name {q.field!r} is reserved for a built-in placeholder",
                "reserved-name",
            )
        is_choice = q.type in (QuestionType.choice, QuestionType.choices)
        if is_choice and not q.options:
            r.add(
                path, f"a {q.type.value} question needs 'options' (value: label)", "missing-options"
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
                compile_pattern(q.pattern)  # RE2: linear-time matching (issue 7, 5)
            except PatternError as exc:
                r.add((*path, "pattern"), str(exc), "bad-pattern")
        fields[q.field] = _field_type(q)


def _compile_ask_if(
    r: _Report,
    model: ServiceOptionFile,
    fields: Mapping[str, FieldType],
    settings: Mapping[str, str],
) -> dict[str, CompiledCondition]:
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
    return ask_if


# -- the decision ---------------------------------------------------------------------------------


def _check_decision(
    r: _Report,
    model: ServiceOptionFile,
    fields: Mapping[str, FieldType],
    settings: Mapping[str, str],
) -> bool:
    """Every rule names an action and every condition compiles (each bad one is reported,
    not only the first). True when the decision compiles."""
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
    try:
        compile_decision([rule.when for rule in model.decision.rules], fields, settings)
    except ConditionError as exc:
        r.add(
            ("decision", "rules", exc.rule or 0, "when"),
            exc.message,
            "bad-condition",
            offset=exc.offset,
        )
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
        return False
    return True


def _check_unused_actions(r: _Report, model: ServiceOptionFile) -> None:
    used = {rule.then for rule in model.decision.rules} | {model.decision.default}
    used |= {a.fallback for a in model.actions.values() if isinstance(a, Transfer) and a.fallback}
    for action_id in model.actions:
        if action_id not in used:
            r.add(
                ("actions", action_id),
                f"action {action_id!r} is never chosen by the decision",
                "unused-action",
                at_key=True,
                warning=True,
            )


def _time_limit(model: ServiceOptionFile, default: timedelta) -> timedelta:
    limits = [a.time_limit for a in model.actions.values() if isinstance(a, Refer) and a.time_limit]
    return min(limits) if limits else default


def _unknown_action(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    hint = (
        f"; did you mean {close[0]!r}?"
        if close
        else f"; the actions are: {', '.join(sorted(known))}"
    )
    return f"no action named {name!r} in 'actions'{hint}"


# -- the actions: one check per kind (ACTION_CHECKS) ----------------------------------------------


def contact_ids(action: Action) -> tuple[str, ...]:
    """The directory contacts an action names (5.2.3.1, 5.2.3.2, 5.2.3.5)."""
    contact = getattr(action, "contact", None)
    return (contact,) if contact else ()


def _check_signpost(ctx: OptionContext, path: PathKey, action: Signpost) -> None:
    """5.2.3.1: the caller is told of another service, its number and opening times."""
    _check_contact(ctx, path, action.contact, needs="number")
    _warn_literal(ctx, path, action, ("number", "opening_times"))


def _check_transfer(ctx: OptionContext, path: PathKey, action: Transfer) -> None:
    """5.2.3.2: the call is transferred to a number; a fallback action may follow."""
    if action.contact is None and action.number is None:
        ctx.report.add(
            path,
            "a transfer needs a number to transfer to: give 'contact' (an entry of directory.yaml)",
            "transfer-target",
            at_key=True,
        )
    _check_contact(ctx, path, action.contact, needs="number")
    _warn_literal(ctx, path, action, ("number",))
    action_ids = set(ctx.model.actions)
    if action.fallback and action.fallback not in action_ids:
        ctx.report.add(
            (*path, "fallback"), _unknown_action(action.fallback, action_ids), "unknown-action"
        )


def _check_refer(ctx: OptionContext, path: PathKey, action: Refer) -> None:
    """5.2.3.3: a role of the rota, an escalation ending at an officer, the UPRN (7.11)."""
    if action.policy is not None:
        if ctx.policies is not None and action.policy not in ctx.policies:
            known = ", ".join(sorted(ctx.policies)) or "none"
            ctx.report.add(
                (*path, "policy"),
                f"unknown escalation policy {action.policy!r}; declare it under "
                f"escalation_policies in organisation.yaml (known: {known})",
                "unknown-policy",
            )
    else:
        assert action.rota_role is not None
        _check_role(ctx.report, (*path, "rota_role"), action.rota_role, ctx.roles)
        _check_escalation(ctx.report, path, action.escalation, ctx.roles)
    _check_uprn(ctx, path, action.message, ("sms", "body"))


def _check_resolve(ctx: OptionContext, path: PathKey, action: Resolve) -> None:
    """5.2.3.4: nothing to check beyond the schema (the information is free text)."""


def _check_out_of_scope(ctx: OptionContext, path: PathKey, action: OutOfScope) -> None:
    """5.2.3.5, 11.7.3f: a declared category; a forward reaches the daytime service."""
    categories = ctx.out_of_scope_categories
    if categories and action.category not in categories:
        known = ", ".join(sorted(categories))
        ctx.report.add(
            (*path, "category"),
            f"unknown out-of-scope category {action.category!r}; declare it under out_of_scope_categories (known: {known})",
            "unknown-category",
        )
    _check_contact(ctx, path, action.contact, needs="number or email")
    if action.response is OutOfScopeResponse.forward_to_daytime:
        _check_uprn(ctx, path, action.message, ("body",))


def _check_lone_worker(ctx: OptionContext, path: PathKey, action: LoneWorker) -> None:
    """5.2.3.6: the alert's escalation ends at an officer."""
    _check_escalation(ctx.report, path, action.escalation, ctx.roles)


ActionCheck = Callable[[OptionContext, PathKey, Any], None]
ACTION_CHECKS: Mapping[str, ActionCheck] = MappingProxyType(
    {
        "signpost": _check_signpost,
        "transfer": _check_transfer,
        "refer": _check_refer,
        "resolve": _check_resolve,
        "out_of_scope": _check_out_of_scope,
        "lone_worker": _check_lone_worker,
    }
)
"""The checks of each action kind beyond the schema, keyed by ``kind``: a new action kind
adds its model to ``models.Action``, one function here and one line in this table."""


def _check_contact(ctx: OptionContext, path: PathKey, contact: str | None, *, needs: str) -> None:
    """The contact is an entry of the directory; in an organisation, one that can be reached
    (a catalogue entry may leave the number to each organisation)."""
    if contact is None or ctx.directory is None:
        return
    entry = ctx.directory.get(contact)
    where = (*path, "contact")
    if entry is None:
        close = difflib.get_close_matches(contact, list(ctx.directory), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        ctx.report.add(
            where,
            f"no contact {contact!r} in the directory{hint}; add it to directory.yaml (of the organisation, or the catalogue for a national number)",
            "unknown-contact",
        )
        return
    reachable = entry.number is not None or (needs != "number" and entry.email is not None)
    if ctx.organisation_directory is not None and not reachable:
        ctx.report.add(
            where,
            f"the directory entry {contact!r} ({entry.name}) has no {needs}; the catalogue leaves it to each organisation: give it under 'contacts:' in {ctx.organisation_directory}",
            "unreachable-contact",
        )


def _warn_literal(ctx: OptionContext, path: PathKey, action: Action, names: Sequence[str]) -> None:
    for name in names:
        if getattr(action, name) is not None:
            ctx.report.add(
                (*path, name),
                f"'{name}' is written into the signed option, so changing it needs a new sign-off; name a directory entry with 'contact' instead (2.3.3)",
                "literal-contact",
                at_key=True,
                warning=True,
            )


def _check_uprn(ctx: OptionContext, path: PathKey, message: Message, names: Sequence[str]) -> None:
    """7.11: property identifiers (UPRNs) are in all service request data passed on."""
    for name in names:
        text = getattr(message, name)
        if text is None or "{uprn}" in text:
            continue
        if any(f"{{{field}}}" in text for field in ctx.address_fields):
            ctx.report.add(
                (*path, "message", name),
                "this text passes on an address but not its UPRN (7.11); add e.g. '{#uprn} UPRN {uprn}{/uprn}', written only when the UPRN is known",
                "no-uprn",
                warning=True,
            )


def _check_role(
    r: _Report, path: PathKey, role: str, roles: Mapping[str, RotaRole] | None
) -> RotaRole | None:
    """The declared role, or None (reported). ``roles`` None: the header was unreadable, so
    roles cannot be checked and are not reported."""
    if roles is None:
        return None
    found = roles.get(role)
    if found is None:
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


# -- templates ------------------------------------------------------------------------------------


def _compile_templates(
    r: _Report, model: ServiceOptionFile, settings: Mapping[str, str]
) -> dict[PathKey, CompiledTemplate]:
    """Every template of the option, checked against the names it may use: the option's
    fields and settings, the built-ins, and in an action that names a contact, the contact's
    ``contact_*`` placeholders (filled from the directory when the call runs)."""
    placeholders = (
        BUILTIN_PLACEHOLDERS
        | {q.field for q in model.script.questions}
        | set(settings)
        | set(BUILTIN_FIELDS)
    )
    with_contact = placeholders | CONTACT_PLACEHOLDERS
    templates: dict[PathKey, CompiledTemplate] = {}
    for tpath, text in _template_texts(model):
        names = placeholders
        if tpath[0] == "actions" and contact_ids(model.actions[str(tpath[1])]):
            names = with_contact
        try:
            templates[tpath] = compile_template(text, names)
        except TemplateError as exc:
            r.add(tpath, exc.message, "bad-template", offset=exc.offset)
    return templates


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


def check_directory(source: Source, model: DirectoryFile, *, organisation: bool) -> list[Problem]:
    """An organisation's own entries can be reached: each has a number or an email (the
    catalogue's may leave both to each organisation)."""
    r = _Report(source)
    if organisation:
        for contact, entry in model.contacts.items():
            if entry.number is None and entry.email is None:
                r.add(
                    ("contacts", contact),
                    f"contact {contact!r} has neither 'number' nor 'email'; give at least one",
                    "unreachable-contact",
                    at_key=True,
                )
    return r.problems


def check_organisation(
    source: Source,
    model: OrganisationFile,
    option_ids: set[str],
    *,
    roles: Mapping[str, RotaRole] | None = None,
    directory: Mapping[str, DirectoryEntry] | None = None,
) -> list[Problem]:
    """Routing and references of ``organisation.yaml`` (7.1.2–7.1.5), and its last resort
    (issue 7 defect 1: a rota role or a directory contact that exists)."""
    r = _Report(source)
    if roles is not None and directory is not None:
        _check_last_resort(r, model.last_resort, roles, directory)
        for name, policy in model.escalation_policies.items():
            _check_policy(r, ("escalation_policies", name), policy, roles, directory)
    _check_timezone(r, model.timezone)
    menus = _check_ivr_menus(r, model.ivr_menus, option_ids)
    _check_access_numbers(r, model.access_numbers, menus, option_ids)
    _check_priorities(r, model.priorities, option_ids)
    if model.feed is not None and model.feed.service_options != "all":
        for i, option_id in enumerate(model.feed.service_options):
            _check_option_ref(r, ("feed", "service_options", i), option_id, option_ids)
    return r.problems


def _check_last_resort(
    r: _Report,
    last_resort: str,
    roles: Mapping[str, RotaRole],
    directory: Mapping[str, DirectoryEntry],
) -> None:
    if last_resort in roles:
        return
    entry = directory.get(last_resort)
    if entry is None:
        r.add(
            ("last_resort",),
            f"last_resort {last_resort!r} is neither a rota role nor a directory contact; name "
            "who is alerted when nobody on the rota can take a referral (e.g. duty-manager)",
            "unknown-last-resort",
        )
    elif entry.number is None and entry.email is None:
        r.add(
            ("last_resort",),
            f"last_resort {last_resort!r} has no number or email in the directory: it could "
            "never be alerted",
            "unreachable-last-resort",
        )


def _check_policy(
    r: _Report,
    path: PathKey,
    policy: EscalationPolicy,
    roles: Mapping[str, RotaRole],
    directory: Mapping[str, DirectoryEntry],
) -> None:
    """Issue 8 item 5, audit item 9: every role and contact a policy names exists, and its
    last notify step names someone who holds the call (a rota role of kind officer or manager,
    or a directory contact with a number or email): it can never end with nobody told."""
    last: tuple[int, PolicyNotify] | None = None
    for i, step in enumerate(policy.steps):
        if not isinstance(step, PolicyNotify):
            continue
        last = (i, step)
        if step.notify is not None:
            _check_role(r, (*path, "steps", i, "notify"), step.notify, roles)
        elif step.contact not in directory:
            r.add(
                (*path, "steps", i, "contact"),
                f"unknown contact {step.contact!r}; add it to directory.yaml",
                "unknown-contact",
            )
    if last is None:
        r.add(
            (*path, "steps"),
            "this policy notifies nobody: it needs a notify step naming who holds the call",
            "policy-nobody-told",
        )
        return
    i, step = last
    role = roles.get(step.notify) if step.notify is not None else None
    entry = directory.get(step.contact) if step.contact is not None else None
    holds = (role is not None and role.kind in (RoleKind.officer, RoleKind.manager)) or (
        entry is not None and (entry.number is not None or entry.email is not None)
    )
    known = role is not None or entry is not None
    if known and not holds:
        what = f"{role.id!r}, a {role.kind.value}" if role is not None else repr(step.contact)
        r.add(
            (*path, "steps", i),
            f"the policy's last notify step goes to {what}; it must name someone who holds the "
            "call (an officer or manager role, or a directory contact with a number or email), "
            "so the policy never ends with nobody told (audit item 9)",
            "policy-end",
        )


def timezone_problem(timezone: str) -> str | None:
    """Why ``timezone`` is not a usable IANA time zone name (with a did-you-mean), or None.

    Hours, rotas and working days are read on this wall clock (2.1.5); a name that is a path,
    empty, holds a NUL or is far too long is refused here before anything opens a zone file."""
    if timezone and len(timezone) <= 64 and "\0" not in timezone:
        try:
            zoneinfo.ZoneInfo(timezone)
            return None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    close = difflib.get_close_matches(
        timezone[:64], sorted(zoneinfo.available_timezones()), n=1, cutoff=0.8
    )
    hint = f"did you mean {close[0]!r}?" if close else "use an IANA name such as Europe/London"
    return f"unknown time zone {_excerpt(timezone)}; {hint}"


def _check_timezone(r: _Report, timezone: str) -> None:
    problem = timezone_problem(timezone)
    if problem is not None:
        r.add(("timezone",), problem, "bad-timezone")


def _check_ivr_menus(
    r: _Report, ivr_menus: Sequence[IvrMenu], option_ids: set[str]
) -> dict[str, IvrMenu]:
    """Keys are unique in a menu, choices and ``no_choice`` name options, ``say`` is a
    template of the names it may use, and the no-choice wait is short (2.1.2a, 5.1.2, 7.1.4)."""
    menus: dict[str, IvrMenu] = {}
    for i, menu in enumerate(ivr_menus):
        path: PathKey = ("ivr_menus", i)
        if menu.id in menus:
            r.add((*path, "id"), f"IVR menu {menu.id!r} is declared twice", "duplicate-id")
        menus[menu.id] = menu
        keys: set[str] = set()
        for j, choice in enumerate(menu.choices):
            cpath: PathKey = (*path, "choices", j)
            if choice.key in keys:
                r.add(
                    (*cpath, "key"),
                    f"key {choice.key!r} is used twice in this menu",
                    "duplicate-key",
                )
            keys.add(choice.key)
            _check_option_ref(r, (*cpath, "service_option"), choice.service_option, option_ids)
            if choice.say is not None:
                _ivr_say(r, (*cpath, "say"), choice.say)
        if menu.no_choice is not None:
            _check_option_ref(r, (*path, "no_choice"), menu.no_choice, option_ids)
        elif "no_choice_wait" in menu.model_fields_set:
            r.add(
                (*path, "no_choice_wait"),
                "'no_choice_wait' has no effect without 'no_choice' (the option a caller who presses nothing is handled under)",
                "stray-wait",
                at_key=True,
            )
        if menu.no_choice_wait > MAX_NO_CHOICE_WAIT:
            r.add(
                (*path, "no_choice_wait"),
                f"a caller who presses nothing would wait {format_duration(menu.no_choice_wait)}; "
                f"at most {format_duration(MAX_NO_CHOICE_WAIT)} (someone in danger may be "
                "unable to choose, 5.1.2)",
                "long-wait",
            )
    return menus


def _ivr_say(r: _Report, path: PathKey, text: str) -> CompiledTemplate | None:
    if not text.strip():
        r.add(path, "'say' is blank; write what the IVR says, or leave 'say' out", "empty")
        return None
    try:
        return compile_template(text, IVR_SAY_PLACEHOLDERS)
    except TemplateError as exc:
        r.add(path, exc.message, "bad-template", offset=exc.offset)
        return None


def _check_access_numbers(
    r: _Report,
    access_numbers: Sequence[AccessNumber],
    menus: Mapping[str, IvrMenu],
    option_ids: set[str],
) -> None:
    numbers: dict[str, int] = {}
    for i, access in enumerate(access_numbers):
        path: PathKey = ("access_numbers", i)
        digits = e164(access.number)
        if digits is None:
            r.add(
                (*path, "number"),
                f"{access.number!r} is not a telephone number; write it as dialled, "
                "e.g. '020 7946 0000'",
                "bad-number",
            )
        elif digits in numbers:  # one number in two spellings too (7.1.2)
            r.add(
                (*path, "number"),
                f"number {access.number!r} is listed twice (first at entry {numbers[digits] + 1})",
                "duplicate-number",
            )
        else:
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


def _check_priorities(r: _Report, priorities: list[str] | Priorities, option_ids: set[str]) -> None:
    """7.1.5: each option once; 'waiting_calls' with high_call_volume only, and required."""
    base: PathKey = ("priorities",)
    listed: Sequence[str] = priorities if isinstance(priorities, list) else priorities.options
    if isinstance(priorities, Priorities):
        base = ("priorities", "options")
        high = priorities.applies is PriorityMode.high_call_volume
        if high and priorities.waiting_calls is None:
            r.add(
                ("priorities",),
                "with 'applies: high_call_volume', say how many waiting calls make a period of high call volume: 'waiting_calls: 5'",
                "missing-key",
                at_key=True,
            )
        if not high and priorities.waiting_calls is not None:
            r.add(
                ("priorities", "waiting_calls"),
                "'waiting_calls' is for 'applies: high_call_volume'; with 'always' the priorities apply whatever the queue",
                "stray-waiting-calls",
                at_key=True,
            )
    seen: set[str] = set()
    for i, option_id in enumerate(listed):
        if option_id in seen:
            r.add((*base, i), f"{option_id!r} is listed twice", "duplicate-id")
        seen.add(option_id)
        _check_option_ref(r, (*base, i), option_id, option_ids)


def _check_option_ref(r: _Report, path: PathKey, option_id: str, option_ids: set[str]) -> None:
    if option_id not in option_ids:
        close = difflib.get_close_matches(option_id, list(option_ids), n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        r.add(path, f"no service option {option_id!r} in this organisation{hint}", "unknown-option")


# ---------------------------------------------------------------------------------------------
# Compiling an organisation
# ---------------------------------------------------------------------------------------------


def compile_organisation(
    model: OrganisationFile,
    *,
    rota_roles: Mapping[str, RotaRole],
    out_of_scope_categories: frozenset[str],
    service_options: Mapping[str, ServiceOption],
    directory: Mapping[str, DirectoryEntry],
    path: Path | None,
) -> Organisation:
    """The compiled :class:`Organisation` of a checked ``organisation.yaml``. Its version
    covers the file alone (not the directory, which changes without a sign-off)."""
    priorities = model.priorities
    options = priorities.options if isinstance(priorities, Priorities) else priorities
    mode = priorities.applies if isinstance(priorities, Priorities) else PriorityMode.always
    return Organisation(
        id=model.id,
        name=model.name,
        timezone=model.timezone,
        nation=model.nation,
        hours=model.hours,
        referral_time_limit=model.referral_time_limit,
        rota_roles=MappingProxyType(dict(rota_roles)),
        access_numbers=MappingProxyType(
            {e164(a.number) or a.number: a for a in model.access_numbers}
        ),
        ivr_menus=MappingProxyType({m.id: m for m in model.ivr_menus}),
        priorities=tuple(options),
        out_of_scope_categories=out_of_scope_categories,
        service_options=MappingProxyType(dict(service_options)),
        version=version_hash(model.model_dump(mode="json", by_alias=True)),
        path=path,
        priority_mode=mode,
        high_call_volume=priorities.waiting_calls if isinstance(priorities, Priorities) else None,
        ivr=MappingProxyType({m.id: _compile_menu(m) for m in model.ivr_menus}),
        feed_options=_feed_options(model, service_options),
        last_resort=model.last_resort,
        ack_links=model.ack_links,
        escalation_policies=MappingProxyType(dict(model.escalation_policies)),
        directory=MappingProxyType(dict(directory)),
    )


def _feed_options(
    model: OrganisationFile, service_options: Mapping[str, ServiceOption]
) -> frozenset[str]:
    if model.feed is None:
        return frozenset()
    if model.feed.service_options == "all":
        return frozenset(service_options)
    return frozenset(model.feed.service_options)


def _compile_menu(menu: IvrMenu) -> CompiledIvrMenu:
    return CompiledIvrMenu(
        id=menu.id,
        prompt=menu.prompt,
        choices=MappingProxyType(
            {
                c.key: CompiledIvrChoice(
                    c.key,
                    c.service_option,
                    compile_template(c.say, IVR_SAY_PLACEHOLDERS) if c.say is not None else None,
                )
                for c in menu.choices
            }
        ),
        no_choice=menu.no_choice,
        no_choice_wait=menu.no_choice_wait,
    )
