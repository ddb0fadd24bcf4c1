"""Benchmark: one housing-repairs triage decision, oohcore against rule-engine and CEL.

The decision is a real service option file (``fixtures/housing-triage``) loaded with
:func:`oohcore.rulesets.loader.load_catalogue`; oohcore is measured through the public
``ServiceOption.decide(values)``. Its ``when:`` conditions are parsed with oohcore's own parser
and translated mechanically, node by node, into the syntax of the two peers:

* ``rule-engine`` (https://pypi.org/project/rule-engine/): one ``Rule`` per condition, tried
  in order, first match wins;
* CEL (``common-expression-language``): one program per condition, tried in order, first match
  wins, and also the whole decision as one program ``c0 ? 0 : c1 ? 1 : ... : -1``.

Settings are constants of a ruleset version; oohcore binds them when it compiles, and the
translators do the same by writing the setting's value as a literal.

The same random inputs (fixed seed, every field answered) go to all of them in the same run;
every input must get the same rule from all four, and every rule (and the default) must be
chosen at least once, or the script exits non-zero. Timing: ``time.perf_counter`` over all
inputs, best of a few passes after a warm-up, the garbage collector paused as timeit does.
Prints one JSON line of decisions per second (and the inputs per rule on stderr).

The inputs answer every field because the peers have no equivalent of oohcore's rule for
unanswered fields (any test of one is false): a missing field is an error in both, and a null
one raises in rule-engine's ``<``, so the translations are faithful only for answered fields.

Run: ``.venv/bin/python bench/decide.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cel
import rule_engine  # type: ignore[import-untyped]

from oohcore.rulesets.compiler import ServiceOption
from oohcore.rulesets.conditions import (
    BoolOp,
    Call,
    Compare,
    ListLiteral,
    Literal,
    Name,
    Node,
    Not,
    parse,
)
from oohcore.rulesets.loader import load_catalogue

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "housing-triage"
OPTION_ID = "housing-repairs-triage"

Values = dict[str, Any]
Runner = Callable[[Sequence[Values]], list[int]]


# ---------------------------------------------------------------------------------------------
# Translation of oohcore's syntax tree into the peers' languages
# ---------------------------------------------------------------------------------------------


class Unsupported(Exception):
    """A construct the peer language has no faithful equivalent for."""


def _quote(text: str) -> str:
    """A double-quoted string literal; both peers take ``\\\\`` and ``\\"`` escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Translator:
    """Shared walk over the tree; subclasses give the peer's spelling of each construct."""

    reserved: frozenset[str] = frozenset()
    and_op = "and"
    or_op = "or"

    def __init__(self, fixed: Mapping[str, Any]) -> None:
        self.fixed = fixed

    def __call__(self, node: Node) -> str:
        return self.emit(node)

    def emit(self, node: Node) -> str:
        if isinstance(node, Literal):
            return self.literal(node.value)
        if isinstance(node, ListLiteral):
            return "[" + ", ".join(self.literal(item.value) for item in node.items) + "]"
        if isinstance(node, Name):
            if node.name in self.fixed:
                return self.literal(self.fixed[node.name])
            if node.name in self.reserved:
                raise Unsupported(f"field name {node.name!r} is a reserved word")
            return node.name
        if isinstance(node, Not):
            return self.negate(self.emit(node.operand))
        if isinstance(node, BoolOp):
            joiner = self.and_op if node.op == "and" else self.or_op
            return "(" + f" {joiner} ".join(self.emit(o) for o in node.operands) + ")"
        if isinstance(node, Compare):
            left, right = self.emit(node.left), self.emit(node.right)
            if node.op == "in":
                return f"({left} in {right})"
            if node.op == "notin":
                return self.not_in(left, right)
            return f"({left} {node.op} {right})"
        if isinstance(node, Call):
            args = [self.emit(a) for a in node.args]
            if node.function == "between":
                x, lo, hi = args
                return f"({lo} <= {x} {self.and_op} {x} <= {hi})"
            if node.function == "answered":
                return f"({args[0]} != null)"
            return self.call(node.function, args)
        raise Unsupported(f"unknown node {node!r}")

    def literal(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return _quote(value)
        raise Unsupported(f"literal {value!r}")

    def negate(self, operand: str) -> str:
        raise NotImplementedError

    def not_in(self, left: str, right: str) -> str:
        raise NotImplementedError

    def call(self, function: str, args: list[str]) -> str:
        raise NotImplementedError


class RuleEngineTranslator(_Translator):
    """rule-engine: ``and or not``, ``in`` / ``not in`` on arrays, ``.length``, ``.as_lower``."""

    reserved = frozenset(
        {"and", "or", "not", "in", "if", "else", "for", "true", "false", "null", "inf", "nan"}
    )

    def negate(self, operand: str) -> str:
        return f"(not {operand})"

    def not_in(self, left: str, right: str) -> str:
        return f"({left} not in {right})"

    def call(self, function: str, args: list[str]) -> str:
        # oohcore compares text case-insensitively (casefold); rule-engine has only as_lower,
        # which agrees with casefold on all but a few non-ASCII letters.
        if function == "length":
            return f"{args[0]}.length"
        if function in ("lower", "upper"):
            return f"{args[0]}.as_{function}"
        if function == "contains":
            return f"({args[1]}.as_lower in {args[0]}.as_lower)"
        if function in ("starts_with", "ends_with"):
            return f"{args[0]}.as_lower.{function}({args[1]}.as_lower)"
        raise Unsupported(f"function {function}()")


class CelTranslator(_Translator):
    """CEL: ``&& || !``, ``in`` on lists, ``size()``, ``.contains()`` / ``.startsWith()``."""

    reserved = frozenset(
        {"in", "as", "break", "const", "continue", "else", "for", "function", "if", "import"}
        | {"let", "loop", "package", "namespace", "return", "var", "void", "while"}
        | {"true", "false", "null"}
    )
    and_op = "&&"
    or_op = "||"

    def negate(self, operand: str) -> str:
        return f"!{operand}"

    def not_in(self, left: str, right: str) -> str:
        return f"!({left} in {right})"

    def call(self, function: str, args: list[str]) -> str:
        if function == "length":
            return f"size({args[0]})"
        # Case-insensitive text tests need lowerAscii(), which the Rust core lacks (it is in
        # cel.stdlib as a Python function); the fixture does not use them.
        raise Unsupported(f"function {function}()")


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
# Relative call volume by hour of the out-of-hours service (busy evenings, quiet small hours).
_HOUR_WEIGHT = {h: w for h, w in enumerate(
    [4, 3, 2, 2, 2, 2, 3, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 10, 12, 12, 11, 9, 7, 5]
)}  # fmt: skip
_WATER = ("flooding", "water_leak", "roof_damage")
_REPAIRS = {
    "gas_smell": 3,
    "flooding": 7,
    "water_leak": 14,
    "no_heating": 13,
    "no_hot_water": 8,
    "no_power": 5,
    "electrical_fault": 6,
    "blocked_toilet": 8,
    "insecure": 8,
    "lift_failure": 5,
    "lift_trapped": 1,
    "roof_damage": 6,
    "other": 16,
}
_STREETS = ("Mill Lane", "Station Road", "Church Street", "Park View", "Victoria Court")


def _pick(rng: random.Random, weights: Mapping[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _when(rng: random.Random) -> Values:
    """A moment within the common out-of-hours service hours (17:00–08:00 on working days,
    all weekend and all of a bank holiday)."""
    kind = _pick(rng, {"weekday": 66, "weekend": 31, "bank_holiday": 3})
    if kind == "weekday":
        day = rng.choice(_WEEKDAYS)
        hour = _pick(rng, {h: w for h, w in _HOUR_WEIGHT.items() if h < 8 or h >= 17})
    else:
        day = rng.choice(("sat", "sun")) if kind == "weekend" else rng.choice(("mon", "fri"))
        hour = _pick(rng, _HOUR_WEIGHT)
    return {
        "hour": hour,
        "minute": rng.randrange(60),
        "weekday": day,
        "weekend": day in ("sat", "sun"),
        "bank_holiday": kind == "bank_holiday",
    }


def _hazards(rng: random.Random, repair: str) -> list[str]:
    electrical = repair in ("electrical_fault", "no_power")
    chance = {
        "gas_smell": 0.008,
        "sparking": 0.12 if electrical else 0.005,
        "burning_smell": 0.10 if electrical else 0.005,
        "exposed_wires": 0.25 if repair == "electrical_fault" else 0.01,
        "water_near_electrics": 0.15 if repair in _WATER else 0.005,
        "ceiling_bulging": 0.15 if repair in _WATER else 0.005,
        "sewage": 0.15 if repair == "blocked_toilet" else 0.005,
        "broken_glass": 0.30 if repair == "insecure" else 0.005,
    }
    return [h for h, p in chance.items() if rng.random() < p]


def make_inputs(n: int, seed: int) -> list[Values]:
    """``n`` calls with every question and built-in field answered."""
    rng = random.Random(seed)
    out: list[Values] = []
    for i in range(n):
        repair = _pick(rng, _REPAIRS)
        lift = repair.startswith("lift")
        values: Values = {
            "caller_name": f"Caller {i}",
            "address": f"{rng.randint(1, 200)} {rng.choice(_STREETS)}",
            "contact_phone": f"07700 9{rng.randrange(100000):05d}",
            "caller_number": f"07700 9{rng.randrange(100000):05d}",
            "variant": "standard",
            "duplicate": rng.random() < 0.07,
            "not_attended": rng.random() < 0.35,
            "tenure": _pick(
                rng,
                {"council_tenant": 82, "leaseholder": 10, "housing_association": 5, "private": 3},
            ),
            "repair": repair,
            "hazards": _hazards(rng, repair),
            "leak_severity": _pick(
                rng, {"drip": 35, "contained": 30, "uncontained": 25, "pouring": 10}
            ),
            "floors_affected": _pick(rng, {0: 60, 1: 20, 2: 12, 3: 5, 4: 3}),
            "floor_level": _pick(
                rng, {0: 30, 1: 20, 2: 15, 3: 10, **dict.fromkeys(range(4, 16), 2)}
            ),
            "break_in": rng.random() < (0.4 if repair == "insecure" else 0.02),
            "only_toilet": rng.random() < 0.7,
            "wheelchair_user": rng.random() < (0.15 if lift else 0.05),
            "neighbours_affected": rng.random() < 0.35,
            "vulnerable": rng.random() < 0.28,
            "outside_temp": max(-10, min(25, round(rng.gauss(7, 5)))),
            "storm_warning": rng.random() < 0.12,
            "details": f"{repair.replace('_', ' ')} reported at {rng.randint(1, 200)}",
            **_when(rng),
        }
        out.append(values)
    return out


# ---------------------------------------------------------------------------------------------
# The contenders: each maps the inputs to the index of the first rule that holds, or -1
# ---------------------------------------------------------------------------------------------


def oohcore_runner(option: ServiceOption) -> Callable[[Sequence[Values]], list[Any]]:
    decide = option.decide

    def run(inputs: Sequence[Values]) -> list[Any]:
        return [decide(v) for v in inputs]

    return run


def rule_engine_runner(texts: Sequence[str]) -> Runner:
    # The default context resolves names as dict items; an explicit type_resolver was tried
    # and made evaluation slower, so it is left out.
    matchers = [rule_engine.Rule(t).matches for t in texts]

    def run(inputs: Sequence[Values]) -> list[int]:
        out: list[int] = []
        append = out.append
        for v in inputs:
            for i, matches in enumerate(matchers):
                if matches(v):
                    append(i)
                    break
            else:
                append(-1)
        return out

    return run


def _cel_variables(programs: Sequence[Any]) -> tuple[str, ...]:
    return tuple(sorted({name for p in programs for name in p.variables()}))


# How the inputs reach CEL, fastest first of those measured on this decision: execute() on a
# dict (or a Context built from one) converts every entry, so the dict is first cut down to the
# variables the programs read (Program.variables()); a Context with a variable resolver
# (values.get) came second, converting the whole 26-field input dict a distant third.


def cel_runner(texts: Sequence[str]) -> Runner:
    compiled = [cel.compile(t) for t in texts]
    names = _cel_variables(compiled)
    programs = [p.execute for p in compiled]
    make_context = cel.Context

    def run(inputs: Sequence[Values]) -> list[int]:
        out: list[int] = []
        append = out.append
        for v in inputs:
            get = v.get
            ctx = make_context({n: get(n) for n in names})  # converted once for all rules
            for i, execute in enumerate(programs):
                if execute(ctx):
                    append(i)
                    break
            else:
                append(-1)
        return out

    return run


def cel_single_runner(texts: Sequence[str]) -> Runner:
    source = "".join(f"({t}) ? {i} : " for i, t in enumerate(texts)) + "-1"
    program = cel.compile(source)
    names = _cel_variables([program])
    execute = program.execute

    def run(inputs: Sequence[Values]) -> list[int]:
        return [execute({n: v.get(n) for n in names}) for v in inputs]

    return run


def best_rates(
    runs: Mapping[str, tuple[Callable[[Sequence[Values]], list[Any]], int]],
    inputs: Sequence[Values],
    warmup: int,
) -> dict[str, tuple[float, list[Any]]]:
    """Decisions per second of each ``name: (run, passes)``: the best of its timed passes over
    all inputs, after a warm-up on the first ``warmup`` inputs. The passes are taken in rounds,
    one per contender per round, so a noisy spell of the machine is shared out among them."""
    for run, _ in runs.values():
        run(inputs[:warmup])
    best = dict.fromkeys(runs, float("inf"))
    results: dict[str, list[Any]] = {}
    for round_ in range(max(passes for _, passes in runs.values())):
        for name, (run, passes) in runs.items():
            if round_ >= passes:
                continue
            gc.disable()  # as timeit does
            try:
                start = time.perf_counter()
                results[name] = run(inputs)
                best[name] = min(best[name], time.perf_counter() - start)
            finally:
                gc.enable()
    return {name: (len(inputs) / best[name], results[name]) for name in runs}


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--inputs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=20240517)
    ap.add_argument("--repeat", type=int, default=7, help="timed passes for oohcore and CEL")
    ap.add_argument("--repeat-rule-engine", type=int, default=2, help="timed passes (slow)")
    ap.add_argument("--warmup", type=int, default=500, help="inputs run before timing")
    ap.add_argument("--show", action="store_true", help="print the translated rules to stderr")
    args = ap.parse_args(argv)

    option = load_catalogue(FIXTURE).service_options[OPTION_ID]
    rules = option.definition.decision.rules
    trees = [parse(rule.when) for rule in rules]
    to_rule_engine = RuleEngineTranslator(option.settings)
    to_cel = CelTranslator(option.settings)
    re_texts = [to_rule_engine(t) for t in trees]
    cel_texts = [to_cel(t) for t in trees]
    if args.show:
        for i, rule in enumerate(rules):
            print(f"rule {i}\n  oohcore:     {rule.when}", file=sys.stderr)
            print(f"  rule-engine: {re_texts[i]}\n  CEL:         {cel_texts[i]}", file=sys.stderr)

    inputs = make_inputs(args.inputs, args.seed)

    rates = best_rates(
        {
            "oohcore": (oohcore_runner(option), args.repeat),
            "rule_engine": (rule_engine_runner(re_texts), args.repeat_rule_engine),
            "cel": (cel_runner(cel_texts), args.repeat),
            "cel_single_program": (cel_single_runner(cel_texts), args.repeat),
        },
        inputs,
        args.warmup,
    )
    ooh_rate, outcomes = rates["oohcore"]
    expected = [-1 if o.rule is None else o.rule for o in outcomes]
    re_rate, re_got = rates["rule_engine"]
    cel_rate, cel_got = rates["cel"]
    single_rate, single_got = rates["cel_single_program"]

    failed = False
    for name, got in (
        ("rule_engine", re_got),
        ("cel", cel_got),
        ("cel_single_program", single_got),
    ):
        bad = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
        if bad:
            failed = True
            i = bad[0]
            print(
                f"{name} disagrees with oohcore on {len(bad)} inputs; first: input {i} "
                f"oohcore rule {expected[i]}, {name} rule {got[i]}: {inputs[i]}",
                file=sys.stderr,
            )
    fired = Counter(expected)
    never = [i for i in [*range(len(rules)), -1] if not fired[i]]
    if never:
        failed = True
        print(f"rules that never fired (-1: the default): {never}", file=sys.stderr)
    print(
        "inputs per rule (-1: the default): " + ", ".join(f"{i}:{fired[i]}" for i in sorted(fired)),
        file=sys.stderr,
    )
    if failed:
        return 1

    print(
        json.dumps(
            {
                "oohcore": round(ooh_rate),
                "rule_engine": round(re_rate),
                "cel": round(cel_rate),
                "cel_single_program": round(single_rate),
                "ratio_rule_engine": round(ooh_rate / re_rate, 1),
                "ratio_cel": round(ooh_rate / cel_rate, 1),
                "ratio_cel_single_program": round(ooh_rate / single_rate, 1),
                "rules": len(rules),
                "inputs": len(inputs),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
