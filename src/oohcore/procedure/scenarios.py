"""Scenario tests: user-acceptance tests of a service option's procedure (5.3.1).

A scenario file sits beside the options of a ruleset folder, ``scenarios/<option-id>.yaml``::

    option: housing-repairs
    scenarios:
      - name: A smell of gas goes to the national gas emergency line
        at: "2026-12-19T22:00"          # local time of the call
        answers: {repair: gas_smell, tenure: council_tenant}
        duplicate: false                 # optional: an earlier call on the same issue (5.2.7)
        facts: {outside_area: true}      # optional: what the gazetteer says of the address
                                         # (outside_area, property_owner: 4.1.5b, 7.11)
        rota: {housing-duty-officer: Jas Patel}   # optional: who holds each role then
        expect:
          action: signpost-gas
          rule: 1                        # optional: the rule that chooses it (1-based; 0: default)
          contacts: [gas-emergency]      # the directory contacts the action names
          say: ["0800 111 999"]          # texts the handler's words must contain
          escalation: [housing-duty-officer, corporate-duty-officer]   # roles, in order
          holders: [Jas Patel]           # with rota: who holds each stage's role

``oohcore test ORG`` runs every scenario through the compiled decision exactly as the engine
decides a call (the answers, the local time fields, the variant in force at ``at``, the
settings), reports each, and writes JUnit XML with ``--junit FILE``; ``--coverage`` lists the
rules (and defaults) no scenario exercises. Scenario files are validated with located errors.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from oohcore.calendar import active_variant, local_fields
from oohcore.directory import placeholders
from oohcore.errors import Problem, RulesetError
from oohcore.rulesets.compiler import ADDRESS_FACTS, ServiceOption
from oohcore.rulesets.loader import ORGANISATION_FILE, load_catalogue, load_organisation
from oohcore.rulesets.models import DirectoryEntry, QuestionType, UkNation
from oohcore.rulesets.source import Source, read_yaml

__all__ = [
    "SCENARIOS_DIR",
    "Result",
    "Scenario",
    "TestRun",
    "draft_file",
    "draft_scenarios",
    "junit_xml",
    "run_path",
    "run_scenario",
]

SCENARIOS_DIR = "scenarios"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Expect(_Strict):
    action: str
    rule: int | None = Field(default=None, ge=0, description="1-based; 0 is the default")
    contacts: list[str] | None = None
    say: list[str] = Field(default_factory=list)
    escalation: list[str] | None = None
    holders: list[str] | None = None


class Scenario(_Strict):
    name: str = Field(min_length=1)
    at: datetime
    answers: dict[str, Any] = Field(default_factory=dict)
    duplicate: bool = False
    facts: dict[str, Any] = Field(
        default_factory=dict,
        description="What the gazetteer says of the address (outside_area: yes/no, "
        "property_owner: text; 4.1.5b, 7.11)",
    )
    settings: dict[str, str] = Field(
        default_factory=dict,
        description="Another choice of the option's settings (2.2.2), to test that procedure",
    )
    rota: dict[str, str] = Field(default_factory=dict)
    expect: Expect


class ScenarioFile(_Strict):
    option: str
    scenarios: list[Scenario] = Field(min_length=1)


@dataclass(frozen=True)
class Result:
    option: str
    name: str
    path: str
    line: int
    passed: bool
    rule: int | None  # the rule chosen (0-based), None: the default
    failures: tuple[str, ...] = ()


@dataclass
class TestRun:
    results: list[Result] = field(default_factory=list)
    rules: dict[str, int] = field(default_factory=dict)  # option -> number of rules
    covered: dict[str, set[int | None]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.passed]

    def uncovered(self) -> dict[str, list[int | None]]:
        """Per option, the rules (0-based; None: the default) no scenario exercises."""
        out: dict[str, list[int | None]] = {}
        for option, count in sorted(self.rules.items()):
            wanted: list[int | None] = [*range(count), None]
            missing = [r for r in wanted if r not in self.covered.get(option, set())]
            if missing:
                out[option] = missing
        return out

    def coverage(self) -> float:
        total = sum(n + 1 for n in self.rules.values())
        missing = sum(len(v) for v in self.uncovered().values())
        return 1.0 if total == 0 else (total - missing) / total


def _problem(source: Source, loc: Sequence[Any], message: str, *, at_key: bool = False) -> Problem:
    return source.problem(tuple(loc), message, "bad-scenario", at_key=at_key)


def read_scenarios(path: Path) -> tuple[Source, ScenarioFile]:
    """Read and validate one scenario file. Raises :class:`RulesetError`, located."""
    source = read_yaml(path)
    try:
        model = ScenarioFile.model_validate(source.data)
    except PydanticError as exc:
        problems = []
        for err in exc.errors():
            msg = str(err["msg"])
            extra = err["type"] == "extra_forbidden"
            loc = tuple(err["loc"])
            if extra:
                msg = f"unknown key {loc[-1]!r}"
            elif err["type"] == "missing" and loc:
                # located at the mapping that lacks it, naming the key
                msg = f"missing {loc[-1]!r}"
                loc = loc[:-1]
            problems.append(_problem(source, loc, msg, at_key=extra))
        raise RulesetError(problems) from None
    return source, model


def check_scenarios(source: Source, model: ScenarioFile, option: ServiceOption) -> list[Problem]:
    """What a schema cannot say: the option, actions, fields and choice values exist."""
    problems: list[Problem] = []
    if model.option != option.id:
        problems.append(
            _problem(source, ("option",), f"the file is for {option.id!r}, not {model.option!r}")
        )
    questions = {q.field: q for q in option.questions}
    for i, sc in enumerate(model.scenarios):
        base = ("scenarios", i)
        if sc.expect.action not in option.actions:
            known = ", ".join(sorted(option.actions))
            problems.append(
                _problem(
                    source,
                    (*base, "expect", "action"),
                    f"no action {sc.expect.action!r} in {option.id} (actions: {known})",
                )
            )
        count = len(option.definition.decision.rules)
        allowed = option.definition.settings
        for name, value in sc.settings.items():
            if name not in allowed or value not in allowed[name].allowed:
                problems.append(
                    _problem(
                        source,
                        (*base, "settings", name),
                        f"{name}: {value!r} is not a setting of {option.id} and one of its "
                        "allowed values",
                    )
                )
        if sc.expect.rule is not None and sc.expect.rule > count:
            problems.append(
                _problem(source, (*base, "expect", "rule"), f"{option.id} has only {count} rules")
            )
        for name, value in sc.facts.items():
            where = (*base, "facts", name)
            if name not in ADDRESS_FACTS:
                known = ", ".join(sorted(ADDRESS_FACTS))
                problems.append(_problem(source, where, f"{name!r} is not a fact ({known})"))
            elif name == "outside_area" and not isinstance(value, bool):
                problems.append(_problem(source, where, "outside_area takes true or false"))
            elif name == "property_owner" and not isinstance(value, str):
                problems.append(_problem(source, where, "property_owner takes a text"))
        for name, value in sc.answers.items():
            q = questions.get(name)
            where = (*base, "answers", name)
            if q is None:
                problems.append(_problem(source, where, f"{option.id} asks no question {name!r}"))
                continue
            if q.type is QuestionType.choice and q.options and value not in q.options:
                listed = ", ".join(q.options)
                problems.append(
                    _problem(source, where, f"{value!r} is not an option of {name} ({listed})")
                )
            if q.type is QuestionType.yes_no and not isinstance(value, bool):
                problems.append(_problem(source, where, f"{name} takes true or false"))
            if q.type is QuestionType.number and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                problems.append(_problem(source, where, f"{name} takes a number"))
    return problems


def _values(
    option: ServiceOption,
    sc: Scenario,
    *,
    timezone: str,
    nation: UkNation,
) -> dict[str, Any]:
    """What the decision sees, as :meth:`CallContext.values` builds it for a call."""
    at = sc.at if sc.at.tzinfo is not None else sc.at.replace(tzinfo=ZoneInfo(timezone))
    variant = active_variant(option.definition.variants, at, timezone=timezone, nation=nation)
    values: dict[str, Any] = {
        **option.settings,
        **sc.settings,
        **local_fields(at, timezone=timezone, nation=nation),
    }
    values.update(sc.answers)
    values.update(sc.facts)
    values.update(
        variant=variant.id if variant else "standard",
        duplicate=sc.duplicate,
        caller_number="07700900000",
    )
    return values


def run_scenario(
    option: ServiceOption,
    sc: Scenario,
    *,
    directory: Mapping[str, DirectoryEntry],
    timezone: str = "Europe/London",
    nation: UkNation = UkNation.ENG,
) -> tuple[int | None, list[str]]:
    """Run one scenario: the rule chosen (None: the default) and what did not match."""
    from .witness import Search, evaluate

    values = _values(option, sc, timezone=timezone, nation=nation)
    failures: list[str] = []
    search = Search(option, settings={**option.settings, **sc.settings})
    asked = {
        q.field
        for q in option.questions
        if q.field not in search.ask_if
        or evaluate(search.ask_if[q.field], values, search.fixed) is True
    }
    missing = sorted(f for f in option.essential_fields & asked if f not in sc.answers)
    if missing:
        failures.append(f"essential questions unanswered: {', '.join(missing)} (5.3.3)")
    outcome = search.decide(values)
    exp = sc.expect
    if outcome.action_id != exp.action:
        failures.append(f"action: expected {exp.action}, got {outcome.action_id}")
    if exp.rule is not None:
        got = 0 if outcome.rule is None else outcome.rule + 1
        if got != exp.rule:
            failures.append(f"rule: expected {exp.rule}, got {got} (0 is the default)")
    contacts = list(option.contacts.get(outcome.action_id, ()))
    if exp.contacts is not None and contacts != exp.contacts:
        failures.append(f"contacts: expected {exp.contacts}, got {contacts}")
    action = outcome.action
    contact_id = getattr(action, "contact", None)
    if contact_id:
        values.update(placeholders(directory.get(contact_id)))
    say_tpl = option.template("actions", outcome.action_id, "say")
    say = say_tpl.render(values) if say_tpl else ""
    for text in exp.say:
        if text not in say:
            failures.append(f"the handler's words do not contain {text!r}: {say!r}")
    stages = [s.rota_role for s in getattr(action, "escalation", ())]
    if exp.escalation is not None and stages != exp.escalation:
        failures.append(f"escalation: expected {exp.escalation}, got {stages}")
    if exp.holders is not None:
        holders = [sc.rota.get(role, "nobody") for role in stages]
        if holders != exp.holders:
            failures.append(f"holders: expected {exp.holders}, got {holders}")
    return outcome.rule, failures


def _options(
    folder: Path, catalogue: str | Path | None
) -> tuple[Mapping[str, ServiceOption], Mapping[str, DirectoryEntry], str, UkNation]:
    if (folder / ORGANISATION_FILE).is_file():
        org = load_organisation(folder, catalogue=catalogue)
        return org.service_options, org.directory, org.timezone, org.nation
    cat = load_catalogue(folder)
    return cat.service_options, cat.directory, "Europe/London", UkNation.ENG


def _load(
    folder: Path, options: Mapping[str, ServiceOption]
) -> tuple[list[tuple[Source, ScenarioFile, ServiceOption]], list[Problem]]:
    """Every scenario file of ``folder``, read and checked against its option."""
    problems: list[Problem] = []
    loaded: list[tuple[Source, ScenarioFile, ServiceOption]] = []
    for file in sorted((folder / SCENARIOS_DIR).glob("*.yaml")):
        try:
            source, model = read_scenarios(file)
        except RulesetError as exc:
            problems += exc.problems
            continue
        found_option = options.get(file.stem)
        if found_option is None:
            problems.append(
                Problem(str(file), 1, 1, f"no service option {file.stem!r} here", "bad-scenario")
            )
            continue
        found = check_scenarios(source, model, found_option)
        problems += found
        if not found:
            loaded.append((source, model, found_option))
    return loaded, problems


def check_path(path: str | Path, *, catalogue: str | Path | None = None) -> list[Problem]:
    """The problems of the scenario files of a folder, without running them (``oohcore
    validate`` checks every file a folder holds)."""
    folder = Path(path)
    return _load(folder, _options(folder, catalogue)[0])[1]


def run_path(path: str | Path, *, catalogue: str | Path | None = None) -> TestRun:
    """Run every scenario file of the organisation or catalogue folder ``path``. Raises
    :class:`RulesetError` (located) for a scenario file that is not valid."""
    folder = Path(path)
    options, directory, timezone, nation = _options(folder, catalogue)
    run = TestRun()
    for option in options.values():
        run.rules[option.id] = len(option.definition.decision.rules)
        run.covered[option.id] = set()
        run.versions[option.id] = option.version
    loaded, problems = _load(folder, options)
    if problems:
        raise RulesetError(problems)
    for source, model, option in loaded:
        for i, sc in enumerate(model.scenarios):
            rule, failures = run_scenario(
                option, sc, directory=directory, timezone=timezone, nation=nation
            )
            pos = source.where(("scenarios", i, "name"))
            run.results.append(
                Result(option.id, sc.name, pos.file, pos.line, not failures, rule, tuple(failures))
            )
            if not failures:
                run.covered[option.id].add(rule)
    for option in options.values():
        run.results += _sign_off_results(option, run.results)
    return run


def _sign_off_results(option: ServiceOption, results: Sequence[Result]) -> list[Result]:
    """5.3.1: a version signed off on scenarios that no longer pass is not signed off on
    what it does now; each scenario the sign-off names must still pass."""
    so = option.definition.sign_off
    if so is None or not option.signed_off or not so.scenarios:
        return []
    passed = {r.name for r in results if r.option == option.id and r.passed}
    missing = [name for name in so.scenarios if name not in passed]
    if not missing:
        return []
    return [
        Result(
            option.id,
            f"sign-off by {so.by} on {so.on}",
            f"<{option.id} sign_off>",
            0,
            False,
            None,
            tuple(f"the sign-off names scenario {n!r}, which does not pass" for n in missing),
        )
    ]


def junit_xml(run: TestRun) -> str:
    """JUnit XML for CI: one test suite per option, one test case per scenario."""
    suites = ET.Element("testsuites", name="oohcore scenarios")
    by_option: dict[str, list[Result]] = {}
    for r in run.results:
        by_option.setdefault(r.option, []).append(r)
    for option, results in sorted(by_option.items()):
        failed = [r for r in results if not r.passed]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=option,
            tests=str(len(results)),
            failures=str(len(failed)),
        )
        for r in results:
            case = ET.SubElement(
                suite, "testcase", classname=option, name=r.name, file=r.path, line=str(r.line)
            )
            if not r.passed:
                fail = ET.SubElement(case, "failure", message=r.failures[0])
                fail.text = "\n".join(r.failures)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


# -- drafting scenarios from witnesses --------------------------------------------------------

DRAFT_HEADER = """\
# Scenario tests of {name} (5.3.1 user-acceptance testing): one per rule and the default.
# Drafted from lint witnesses (oohcore test --draft), reviewed, then kept: a change to the
# option that changes an outcome fails here until the scenario is updated.
"""


def draft_file(path: str | Path, option_id: str, *, catalogue: str | Path | None = None) -> str:
    """The text of a draft scenario file for ``option_id`` of the folder ``path``."""
    import yaml

    folder = Path(path)
    if (folder / ORGANISATION_FILE).is_file():
        org = load_organisation(folder, catalogue=catalogue)
        options, directory = org.service_options, org.directory
        timezone, nation = org.timezone, org.nation
    else:
        cat = load_catalogue(folder)
        options, directory = cat.service_options, cat.directory
        timezone, nation = "Europe/London", UkNation.ENG
    option = options.get(option_id)
    if option is None:
        known = ", ".join(sorted(options))
        raise RulesetError.single(
            folder, 0, 0, f"no service option {option_id!r} here (options: {known})", "not-found"
        )
    drafts = draft_scenarios(option, directory=directory, timezone=timezone, nation=nation)
    body = yaml.safe_dump(
        {"option": option.id, "scenarios": drafts}, sort_keys=False, allow_unicode=True, width=100
    )
    return DRAFT_HEADER.format(name=option.name) + body


_TIME_FIELDS = ("hour", "minute", "weekday", "weekend", "bank_holiday", "variant")


def _time_for(
    option: ServiceOption, want: Mapping[str, Any], timezone: str, nation: UkNation
) -> datetime | None:
    """A local time at which the built-in time fields (and the variant) are ``want``."""
    tz = ZoneInfo(timezone)
    start = date(2026, 12, 19)  # a fortnight with weekends, bank holidays and weekdays
    minute = int(want.get("minute", 0))
    for day in range(21):
        for hour in range(24):
            at = datetime.combine(start + timedelta(days=day), datetime.min.time(), tz).replace(
                hour=hour, minute=minute
            )
            got = dict(local_fields(at, timezone=timezone, nation=nation))
            variant = active_variant(
                option.definition.variants, at, timezone=timezone, nation=nation
            )
            got["variant"] = variant.id if variant else "standard"
            if all(got[k] == v for k, v in want.items()):
                return at
    return None


def draft_scenarios(
    option: ServiceOption,
    *,
    directory: Mapping[str, DirectoryEntry],
    timezone: str = "Europe/London",
    nation: UkNation = UkNation.ENG,
) -> list[dict[str, Any]]:
    """One draft scenario per reachable rule and the default, from witnesses (answers for
    which the compiled decision chooses it) at a real time: for an officer to review, name
    and sign off — a draft states what the procedure does, not what it should do."""
    import itertools

    from .witness import Search

    rules = option.definition.decision.rules
    out: list[dict[str, Any]] = []
    defined = option.definition.settings
    combos = [dict(option.settings)] + [
        c
        for c in (
            dict(zip(defined, v, strict=True))
            for v in itertools.product(*(s.allowed for s in defined.values()))
        )
        if c != dict(option.settings)
    ]
    for rule in [*range(len(rules)), None]:
        found = None
        for settings in combos:
            found = _draft_one(
                option,
                Search(option, settings=settings),
                rule,
                settings,
                directory=directory,
                timezone=timezone,
                nation=nation,
            )
            if found is not None:
                break
        if found is not None:
            out.append(found)
    return out


def _draft_one(
    option: ServiceOption,
    search: Any,
    rule: int | None,
    settings: Mapping[str, str],
    *,
    directory: Mapping[str, DirectoryEntry],
    timezone: str,
    nation: UkNation,
) -> dict[str, Any] | None:
    rules = option.definition.decision.rules
    other = {k: v for k, v in settings.items() if option.settings.get(k) != v}
    for w in search.reaching(rule):
        want = {k: w.values[k] for k in _TIME_FIELDS if k in w.searched}
        at = _time_for(option, want, timezone, nation)
        if at is None:
            continue
        answers = {k: v for k, v in w.values.items() if k in {q.field for q in option.questions}}
        facts = {k: w.values[k] for k in sorted(ADDRESS_FACTS) if w.values.get(k) is not None}
        sc = Scenario(
            name="draft",
            at=at.replace(tzinfo=None),
            answers=answers,
            duplicate=bool(w.values.get("duplicate", False)),
            facts=facts,
            settings=other,
            expect={"action": w.chosen or ""},
        )
        got, _ = run_scenario(option, sc, directory=directory, timezone=timezone, nation=nation)
        if got != rule:
            continue
        action = option.actions[w.chosen or ""]
        what = rules[rule].when if rule is not None else "no rule holds"
        expect: dict[str, Any] = {
            "action": w.chosen,
            "rule": 0 if rule is None else rule + 1,
            "contacts": list(option.contacts.get(w.chosen or "", ())),
        }
        stages = [s.rota_role for s in getattr(action, "escalation", ())]
        if stages:
            expect["escalation"] = stages
        entry: dict[str, Any] = {
            "name": f"{'default' if rule is None else f'rule {rule + 1}'}: {what}"[:200],
            "at": at.replace(tzinfo=None).isoformat(timespec="minutes"),
            "answers": answers,
        }
        if sc.duplicate:
            entry["duplicate"] = True
        if facts:
            entry["facts"] = facts
        if other:
            entry["settings"] = other
        entry["expect"] = expect
        return entry
    return None
