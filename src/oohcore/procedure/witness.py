"""Witnesses: example answers that make a rule of a decision hold, or reach it.

The condition language (:mod:`oohcore.rulesets.conditions`) is small enough that no external
solver is needed. Each field a decision reads gets a finite set of *representative* values:

* a choice, yes/no, weekday or variant: every value it can take (and "unanswered", 5.3.3);
* a number: each constant it is compared with, one either side of it, and its bounds (interval
  reasoning: between two neighbouring constants every number behaves alike);
* text: each constant it is compared with or searched for, and some other text;
* a list of choices: nothing, each value alone, and all of them.

A depth-first search assigns these values field by field and evaluates the conditions in three
values (true, false, not yet known), cutting a branch as soon as the target rule is false or
an earlier rule is true. Each candidate is then made realistic (an answer is only given to a
question that is asked, and every essential question that is asked is answered, 5.3.3) and
**checked by running the compiled decision on it**: a witness is never just the search's word.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oohcore.rulesets.compiler import Outcome, ServiceOption
from oohcore.rulesets.conditions import (
    BoolOp,
    Call,
    Compare,
    ListLiteral,
    Literal,
    Name,
    Node,
    Not,
    Type,
    compile_condition,
    compile_decision,
    parse,
)
from oohcore.rulesets.models import QuestionType

__all__ = ["MAX_STEPS", "Search", "Witness", "builtin_defaults"]

MAX_STEPS = 400_000
"""How many partial assignments one search may try before it gives up (says "unknown")."""


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()

_WEEKEND = frozenset({"sat", "sun"})
_BUILTIN_RANGES = {"hour": (0, 23), "minute": (0, 59)}


def builtin_defaults() -> dict[str, Any]:
    """Values of the built-in fields a witness does not need to choose: a Saturday night."""
    return {
        "hour": 22,
        "minute": 0,
        "weekday": "sat",
        "weekend": True,
        "bank_holiday": False,
        "duplicate": False,
        "variant": "standard",
        "caller_number": "07700900000",
    }


@dataclass(frozen=True)
class Witness:
    """Field values (answers, and the built-ins the decision reads) and what the compiled
    decision made of them: ``chosen`` the action, ``rule`` the rule index (None: the default)."""

    values: Mapping[str, Any]
    chosen: str | None = None
    rule: int | None = None
    searched: frozenset[str] = frozenset()

    @property
    def answers(self) -> dict[str, Any]:
        """The values of the fields the search chose, without the fixed settings."""
        return {k: v for k, v in self.values.items() if k in self.searched}


def _truthy(value: Any) -> Any:
    if value is UNKNOWN:
        return UNKNOWN
    return bool(value)


def _maybe_none(node: Node, fixed: Mapping[str, Any]) -> bool:
    if isinstance(node, Name):
        return node.name not in fixed
    return isinstance(node, Call) and node.function in ("lower", "upper")


def evaluate(node: Node, env: Mapping[str, Any], fixed: Mapping[str, Any]) -> Any:
    """The value of ``node`` under ``env`` (a field missing from it is not yet known: the
    result is then :data:`UNKNOWN` unless the known part decides it). The semantics are those
    of the compiled code: an unanswered field makes a comparison false."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ListLiteral):
        return frozenset(item.value for item in node.items)
    if isinstance(node, Name):
        if node.name in fixed:
            return fixed[node.name]
        return env.get(node.name, UNKNOWN)
    if isinstance(node, Not):
        inner = _truthy(evaluate(node.operand, env, fixed))
        return UNKNOWN if inner is UNKNOWN else not inner
    if isinstance(node, BoolOp):
        stop = node.op == "or"
        unknown = False
        for operand in node.operands:
            v = _truthy(evaluate(operand, env, fixed))
            if v is UNKNOWN:
                unknown = True
            elif v is stop:
                return stop
        return UNKNOWN if unknown else not stop
    if isinstance(node, Compare):
        return _compare(node, env, fixed)
    if isinstance(node, Call):
        args = [evaluate(a, env, fixed) for a in node.args]
        if any(a is UNKNOWN for a in args):
            return UNKNOWN
        return _call(node.function, args)
    raise AssertionError(node)  # pragma: no cover


def _compare(node: Compare, env: Mapping[str, Any], fixed: Mapping[str, Any]) -> Any:
    left = evaluate(node.left, env, fixed)
    right = evaluate(node.right, env, fixed)
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if isinstance(node.left, BoolOp):
        left = bool(left)
    if isinstance(node.right, BoolOp):
        right = bool(right)
    op = node.op
    if op == "in" and isinstance(node.right, ListLiteral):
        return left in right
    if op == "==" and not (_maybe_none(node.left, fixed) and _maybe_none(node.right, fixed)):
        return left == right
    if left is None or right is None:
        return False
    if op == "in":
        return left in right
    if op == "notin":
        return left not in right
    return {
        "==": lambda: left == right,
        "!=": lambda: left != right,
        "<": lambda: left < right,
        "<=": lambda: left <= right,
        ">": lambda: left > right,
        ">=": lambda: left >= right,
    }[op]()


def _call(function: str, args: Sequence[Any]) -> Any:
    if function == "answered":
        return args[0] is not None
    if function == "length":
        return 0 if args[0] is None else len(args[0])
    if function in ("lower", "upper"):
        return None if args[0] is None else getattr(args[0], function)()
    if function == "between":
        x, lo, hi = args
        return x is not None and lo is not None and hi is not None and lo <= x <= hi
    a, b = args
    if a is None or b is None:
        return False
    a, b = a.casefold(), b.casefold()
    if function == "contains":
        return b in a
    if function == "starts_with":
        return a.startswith(b)
    return a.endswith(b)  # ends_with


def names(node: Node) -> set[str]:
    """The field names ``node`` reads."""
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Not):
        return names(node.operand)
    if isinstance(node, BoolOp):
        return set().union(*(names(o) for o in node.operands))
    if isinstance(node, Compare):
        return names(node.left) | names(node.right)
    if isinstance(node, Call):
        return set().union(set(), *(names(a) for a in node.args))
    return set()


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Not):
        yield from _walk(node.operand)
    elif isinstance(node, BoolOp):
        for o in node.operands:
            yield from _walk(o)
    elif isinstance(node, Compare):
        yield from _walk(node.left)
        yield from _walk(node.right)
    elif isinstance(node, Call):
        for a in node.args:
            yield from _walk(a)


def _field_of(node: Node) -> str | None:
    """The field under ``node``: ``x``, ``lower(x)``, ``upper(x)``."""
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call) and node.function in ("lower", "upper") and node.args:
        return _field_of(node.args[0])
    return None


class Search:
    """The witness search of one compiled service option (under its settings, or under
    ``settings``: another choice the organisation could make)."""

    def __init__(
        self,
        option: ServiceOption,
        *,
        settings: Mapping[str, str] | None = None,
        max_steps: int = MAX_STEPS,
    ) -> None:
        self.option = option
        self.max_steps = max_steps
        self.fixed: dict[str, Any] = dict(option.settings)
        self.decide = option.decide
        rules = option.definition.decision.rules
        if settings is not None and dict(settings) != self.fixed:
            # another choice of the option's settings (2.2.2): the decision compiled for it
            self.fixed = {**self.fixed, **settings}
            outcomes = [Outcome(r.then, option.actions[r.then], i) for i, r in enumerate(rules)]
            default = option.definition.decision.default
            outcomes.append(Outcome(default, option.actions[default], None))
            self.decide = compile_decision(
                [r.when for r in rules], option.fields, self.fixed, results=outcomes
            )
        self.rules: list[Node] = [parse(r.when) for r in rules]
        self.questions = {q.field: q for q in option.questions}
        self.ask_if: dict[str, Node] = {
            q.field: parse(q.ask_if) for q in option.questions if q.ask_if is not None
        }
        self.exhausted = False  # the last search hit max_steps
        literals: dict[str, set[Any]] = {}
        lengths: dict[str, set[int]] = {}
        every = [*self.rules, *self.ask_if.values()]
        for root in every:
            for node in _walk(root):
                self._collect(node, literals, lengths)
        self.domains: dict[str, list[Any]] = {
            name: self._domain(name, literals.get(name, set()), lengths.get(name, set()))
            for name in option.fields
            if name not in self.fixed
        }

    def extend(self, nodes: Sequence[Node]) -> None:
        """Widen the domains with the constants of ``nodes`` (conditions of another version)."""
        literals: dict[str, set[Any]] = {}
        lengths: dict[str, set[int]] = {}
        for root in [*self.rules, *self.ask_if.values(), *nodes]:
            for node in _walk(root):
                self._collect(node, literals, lengths)
        for name in self.domains:
            self.domains[name] = self._domain(
                name, literals.get(name, set()), lengths.get(name, set())
            )

    # -- domains --------------------------------------------------------------------------------

    @staticmethod
    def _collect(node: Node, literals: dict[str, set[Any]], lengths: dict[str, set[int]]) -> None:
        if isinstance(node, Compare):
            for a, b in ((node.left, node.right), (node.right, node.left)):
                name = _field_of(a)
                if isinstance(a, Call) and a.function == "length" and a.args:
                    inner = _field_of(a.args[0])
                    if inner is not None and isinstance(b, Literal):
                        lengths.setdefault(inner, set()).add(int(b.value))
                if name is None:
                    continue
                if isinstance(b, Literal):
                    literals.setdefault(name, set()).add(b.value)
                elif isinstance(b, ListLiteral):
                    literals.setdefault(name, set()).update(i.value for i in b.items)
        elif isinstance(node, Call) and node.args:
            name = _field_of(node.args[0])
            if name is None:
                return
            for arg in node.args[1:]:
                if isinstance(arg, Literal):
                    literals.setdefault(name, set()).add(arg.value)

    def _domain(self, name: str, literals: set[Any], lengths: set[int]) -> list[Any]:
        ft = self.option.fields[name]
        question = self.questions.get(name)
        out: list[Any] = []
        if ft.type is Type.BOOL:
            out = [True, False]
        elif ft.type is Type.NUMBER:
            lo: float | None
            hi: float | None
            lo, hi = _BUILTIN_RANGES.get(name, (None, None))
            if question is not None:
                lo, hi = question.min, question.max
            points: set[float] = set()
            for c in literals:
                if isinstance(c, bool) or not isinstance(c, int | float):
                    continue
                step = 1 if isinstance(c, int) else 0.5
                points.update((c - step, c, c + step))
            points.update(b for b in (lo, hi) if b is not None)
            if not points:
                points.add(lo if lo is not None else 0)
            out = sorted(
                _tidy(p) for p in points if (lo is None or p >= lo) and (hi is None or p <= hi)
            )
        elif ft.type is Type.STRING and ft.values is not None:
            out = sorted(ft.values)
        elif ft.type is Type.STRING:
            texts = {str(v) for v in literals if isinstance(v, str)}
            texts |= {"x" * n for k in lengths for n in (k - 1, k, k + 1) if n >= 0}
            out = [*sorted(texts), "something else"]
        elif ft.type is Type.STRINGS:
            values = sorted(ft.values or {str(v) for v in literals if isinstance(v, str)})
            out = [[], *([v] for v in values)]
            if len(values) > 1:
                out.append(list(values))
            for k in lengths:
                for n in (k - 1, k, k + 1):
                    if 1 < n < len(values):
                        out.append(values[:n])
        elif ft.type is Type.NUMBERS:
            nums = sorted(v for v in literals if isinstance(v, int | float))
            out = [[], *([v] for v in nums)]
        if question is not None:
            out.append(None)  # unanswered (5.3.3)
        return out

    # -- the search -----------------------------------------------------------------------------

    def _order(self, first: set[str], rest: set[str]) -> list[str]:
        wanted = set(first) | set(rest)
        # a question's ask_if fields are needed to judge whether it is asked
        changed = True
        while changed:
            changed = False
            for name in list(wanted):
                cond = self.ask_if.get(name)
                if cond is not None:
                    more = names(cond) - wanted - set(self.fixed)
                    if more:
                        wanted |= more
                        changed = True
        wanted -= set(self.fixed)
        ordered = sorted(first - set(self.fixed), key=lambda n: (len(self.domains[n]), n))
        ordered += sorted(wanted - set(ordered), key=lambda n: (len(self.domains[n]), n))
        return ordered

    def _candidates(
        self, must_hold: Sequence[Node], must_fail: Sequence[Node], fields: list[str]
    ) -> Iterator[dict[str, Any]]:
        env: dict[str, Any] = {}
        steps = 0
        self.exhausted = False
        fixed = self.fixed

        def rec(k: int) -> Iterator[dict[str, Any]]:
            nonlocal steps
            steps += 1
            if steps > self.max_steps:
                self.exhausted = True
                return
            for n in must_fail:
                if evaluate(n, env, fixed) is True:
                    return
            for n in must_hold:
                v = _truthy(evaluate(n, env, fixed))
                if v is False:
                    return
            if k == len(fields):
                yield dict(env)
                return
            name = fields[k]
            for value in self.domains[name]:
                env[name] = value
                yield from rec(k + 1)
                if self.exhausted:
                    break
            env.pop(name, None)

        yield from rec(0)

    def values_for(self, env: Mapping[str, Any]) -> dict[str, Any] | None:
        """The full field values of a candidate, or None when it is not realistic: an answer
        to a question not asked, an essential question asked but left unanswered, or a
        weekday that contradicts ``weekend``."""
        values: dict[str, Any] = {**builtin_defaults(), **self.fixed}
        values.update(env)
        day = env.get("weekday")
        if "weekday" in env and "weekend" not in env:
            values["weekend"] = day in _WEEKEND
        if "weekend" in env and "weekday" not in env:
            values["weekday"] = "sat" if env["weekend"] else "wed"
        if values["weekend"] != (values["weekday"] in _WEEKEND):
            return None
        for q in self.option.questions:
            cond = self.ask_if.get(q.field)
            asked = cond is None or evaluate(cond, values, self.fixed) is True
            if q.field in env:
                if env[q.field] is not None and not asked:
                    return None
                if env[q.field] is None and asked and q.essential:
                    return None
            elif q.essential and asked:
                values[q.field] = _placeholder(q.type, q.options, q.min)
        for name in [k for k, v in values.items() if v is None]:
            del values[name]
        return values

    def witnesses_for(
        self, must_hold: Sequence[Node], must_fail: Sequence[Node], first: set[str]
    ) -> Iterator[Witness]:
        """Realistic candidates for which ``must_hold`` may hold and ``must_fail`` fail,
        with what the decision chooses for them (the caller checks the conditions)."""
        return self._witnesses(must_hold, must_fail, first)

    def _witnesses(
        self, must_hold: Sequence[Node], must_fail: Sequence[Node], first: set[str]
    ) -> Iterator[Witness]:
        rest = set().union(set(), *(names(n) for n in must_fail))
        fields = self._order(first, rest)
        for env in self._candidates(must_hold, must_fail, fields):
            values = self.values_for(env)
            if values is None:
                continue
            outcome: Outcome = self.decide(values)
            yield Witness(values, outcome.action_id, outcome.rule, frozenset(env))

    def reaching(self, rule: int | None) -> Iterator[Witness]:
        """Witnesses that the decision chooses ``rule`` (None: the default) for — each one
        checked by running the compiled decision."""
        target = [self.rules[rule]] if rule is not None else []
        earlier = self.rules[:rule] if rule is not None else self.rules
        first = names(target[0]) if target else set()
        for w in self._witnesses(target, earlier, first):
            if w.rule == rule:
                yield w

    def holding(self, rule: int) -> Iterator[Witness]:
        """Witnesses that rule ``rule``'s condition holds for (whatever rule comes first),
        each checked with the compiled condition."""
        cond = compile_condition(
            self.option.definition.decision.rules[rule].when, self.option.fields, self.fixed
        )
        node = self.rules[rule]
        for w in self._witnesses([node], [], names(node)):
            if cond.holds(w.values):
                yield w

    def asking(self, field: str) -> Iterator[Witness]:
        """Witnesses that the question of ``field`` is asked for (its ``ask_if`` holds)."""
        cond = self.ask_if.get(field)
        if cond is None:
            return
        compiled = self.option.ask_if[field]
        for w in self._witnesses([cond], [], names(cond)):
            if compiled.holds(w.values):
                yield w


def first(found: Iterator[Witness]) -> Witness | None:
    return next(found, None)


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _placeholder(kind: QuestionType, options: Mapping[str, str] | None, low: float | None) -> Any:
    if kind is QuestionType.yes_no:
        return False
    if kind is QuestionType.number:
        return _tidy(low) if low is not None else 0
    if kind is QuestionType.choice and options:
        return next(iter(options))
    if kind is QuestionType.choices and options:
        return [next(iter(options))]
    return "given"
