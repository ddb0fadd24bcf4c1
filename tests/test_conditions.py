"""The condition language of ``when:`` and ``ask_if:`` (oohcore.rulesets.conditions).

Council officers' conditions are never evaluated as Python (DESIGN.md principle 2): they are
parsed, type-checked against the script's fields and compiled from the checked tree. These tests
pin down the semantics (truth tables, every function, unanswered fields, 5.3.3), the errors with
their offsets, the safety limits, and — with a seeded random generator — that compiled
conditions and decisions agree with a small reference interpreter written here from the
documented semantics (docs/rulesets.md "Conditions").
"""

from __future__ import annotations

import ast
import operator
import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from oohcore.rulesets import conditions
from oohcore.rulesets.conditions import (
    FUNCTION_NAMES,
    MAX_DEPTH,
    MAX_LENGTH,
    ConditionError,
    FieldType,
    Type,
    check,
    compile_condition,
    compile_decision,
    parse,
)

FIELDS: dict[str, FieldType] = {
    "repair": FieldType(Type.STRING, frozenset({"leak", "no_heating", "broken_window"})),
    "hazards": FieldType(Type.STRINGS, frozenset({"gas", "water", "fire"})),
    "vulnerable": FieldType(Type.BOOL),
    "alone": FieldType(Type.BOOL),
    "outside_temp": FieldType(Type.NUMBER),
    "age": FieldType(Type.NUMBER),
    "notes": FieldType(Type.STRING),
    "floors": FieldType(Type.NUMBERS),
    "response": FieldType(Type.STRING, frozenset({"refer", "information_only"})),
}


def holds(text: str, **values: Any) -> bool:
    return compile_condition(text, FIELDS).holds(values)


def error_of(text: str, fields: Mapping[str, FieldType] = FIELDS) -> ConditionError:
    with pytest.raises(ConditionError) as info:
        compile_condition(text, fields)
    return info.value


# ---------------------------------------------------------------------------------------------
# Truth tables
# ---------------------------------------------------------------------------------------------

BOOLS = [True, False, None]


@pytest.mark.parametrize("a", BOOLS)
@pytest.mark.parametrize("b", BOOLS)
def test_and_or_not_truth_tables(a: bool | None, b: bool | None) -> None:
    # an unanswered yes/no counts as no (docs/rulesets.md, "Unanswered questions")
    ta, tb = bool(a), bool(b)
    assert holds("vulnerable and alone", vulnerable=a, alone=b) is (ta and tb)
    assert holds("vulnerable or alone", vulnerable=a, alone=b) is (ta or tb)
    assert holds("not vulnerable", vulnerable=a) is (not ta)
    assert holds("not (vulnerable and alone)", vulnerable=a, alone=b) is (not (ta and tb))
    assert holds("not vulnerable or not alone", vulnerable=a, alone=b) is (not ta or not tb)


def test_precedence_not_binds_looser_than_comparison_and_tighter_than_and() -> None:
    # `not a == b` is `not (a == b)`; `a or b and c` is `a or (b and c)`
    assert holds('not repair == "leak"', repair="no_heating") is True
    assert holds('not repair == "leak"', repair="leak") is False
    assert holds("vulnerable or alone and false", vulnerable=True, alone=True) is True
    assert holds("(vulnerable or alone) and false", vulnerable=True, alone=True) is False
    assert holds("not vulnerable and alone", vulnerable=False, alone=True) is True
    assert holds("not vulnerable and alone", vulnerable=False, alone=False) is False


NUMBER_PAIRS = [(1, 2), (2, 2), (3, 2), (-1.5, -1.5), (0, -2.5)]
ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@pytest.mark.parametrize("op", ORDER_OPS)
@pytest.mark.parametrize(("x", "y"), NUMBER_PAIRS)
def test_number_comparisons(op: str, x: float, y: float) -> None:
    expected = ORDER_OPS[op](x, y)
    assert holds(f"outside_temp {op} {y}", outside_temp=x) is expected
    assert holds(f"outside_temp {op} age", outside_temp=x, age=y) is expected
    assert holds(f"{x} {op} age", age=y) is expected
    # unanswered: every comparison that uses the field is false, whatever the operator
    assert holds(f"outside_temp {op} {y}") is False
    assert holds(f"{x} {op} age") is False
    assert holds(f"outside_temp {op} age", outside_temp=x) is False


@pytest.mark.parametrize("op", ORDER_OPS)
@pytest.mark.parametrize(("x", "y"), [("abc", "abd"), ("b", "b"), ("b", "a")])
def test_text_comparisons(op: str, x: str, y: str) -> None:
    assert holds(f'notes {op} "{y}"', notes=x) is ORDER_OPS[op](x, y)
    assert holds(f'notes {op} "{y}"') is False


def test_yes_no_equality() -> None:
    assert holds("vulnerable == true", vulnerable=True) is True
    assert holds("vulnerable == false", vulnerable=False) is True
    assert holds("vulnerable != alone", vulnerable=True, alone=False) is True
    # a comparison involving an unanswered field is false, even `== false`
    assert holds("vulnerable == false") is False
    assert holds("vulnerable != true") is False


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ('repair in ["leak", "no_heating"]', {"repair": "leak"}, True),
        ('repair in ["leak", "no_heating"]', {"repair": "broken_window"}, False),
        ('repair in ["leak", "no_heating"]', {}, False),
        ('repair not in ["leak", "no_heating"]', {"repair": "broken_window"}, True),
        ('repair not in ["leak", "no_heating"]', {"repair": "leak"}, False),
        ('repair not in ["leak", "no_heating"]', {}, False),
        ('"gas" in hazards', {"hazards": ["gas", "fire"]}, True),
        ('"gas" in hazards', {"hazards": ["water"]}, False),
        ('"gas" in hazards', {"hazards": []}, False),
        ('"gas" in hazards', {}, False),
        ('"gas" not in hazards', {"hazards": []}, True),
        ('"gas" not in hazards', {"hazards": ["gas"]}, False),
        ('"gas" not in hazards', {}, False),
        ("repair in hazards", {"repair": "leak", "hazards": ["gas"]}, False),
        ("outside_temp in [1, 2.5, -3]", {"outside_temp": 2.5}, True),
        ("outside_temp in [1, 2.5, -3]", {"outside_temp": -3}, True),
        ("outside_temp in [1, 2.5, -3]", {"outside_temp": 0}, False),
        ("3 in floors", {"floors": [1, 3]}, True),
        ("3 not in floors", {"floors": [1, 3]}, False),
        ('weekday in ["sat", "sun"]', {"weekday": "sun"}, True),
    ],
)
def test_membership(text: str, values: dict[str, Any], expected: bool) -> None:
    fields = {**FIELDS, "weekday": FieldType(Type.STRING, frozenset({"sat", "sun", "mon"}))}
    assert compile_condition(text, fields).holds(values) is expected


FUNCTION_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("answered(outside_temp)", {"outside_temp": 0}, True),
    ("answered(outside_temp)", {}, False),
    ("answered(vulnerable)", {"vulnerable": False}, True),
    ("not answered(notes)", {}, True),
    ('contains(notes, "smoke")', {"notes": "Black SMOKE from flat"}, True),
    ('contains(notes, "smoke")', {"notes": "a smell"}, False),
    ('contains(notes, "smoke")', {}, False),
    ('starts_with(notes, "gas")', {"notes": "Gas smell"}, True),
    ('starts_with(notes, "gas")', {"notes": "smell of gas"}, False),
    ('starts_with(notes, "gas")', {}, False),
    ('ends_with(notes, "GAS")', {"notes": "smell of gas"}, True),
    ('ends_with(notes, "gas")', {"notes": "gas smell"}, False),
    ('ends_with(notes, "gas")', {}, False),
    ('lower(notes) == "leak"', {"notes": "LeAk"}, True),
    ('lower(notes) == "LEAK"', {"notes": "leak"}, False),
    ('lower(notes) == "leak"', {}, False),
    ('lower(notes) != "leak"', {}, False),
    ('upper(notes) == "LEAK"', {"notes": "Leak"}, True),
    ('upper(notes) == "LEAK"', {}, False),
    ("length(notes) == 4", {"notes": "leak"}, True),
    ("length(notes) == 0", {}, True),  # length gives 0 for an unanswered field
    ("length(hazards) >= 2", {"hazards": ["gas", "fire"]}, True),
    ("length(hazards) >= 2", {"hazards": ["gas"]}, False),
    ("length(floors) == 0", {"floors": []}, True),
    ("between(outside_temp, 0, 4)", {"outside_temp": 0}, True),
    ("between(outside_temp, 0, 4)", {"outside_temp": 4}, True),
    ("between(outside_temp, 0, 4)", {"outside_temp": 4.5}, False),
    ("between(outside_temp, 0, 4)", {"outside_temp": -1}, False),
    ("between(outside_temp, 0, 4)", {}, False),
    ("between(5, outside_temp, age)", {"outside_temp": 1, "age": 9}, True),
    ("between(5, outside_temp, age)", {"outside_temp": 1}, False),
]


@pytest.mark.parametrize(("text", "values", "expected"), FUNCTION_CASES)
def test_functions(text: str, values: dict[str, Any], expected: bool) -> None:
    assert holds(text, **values) is expected


def test_every_function_is_covered_by_the_table() -> None:
    used = {name for name in FUNCTION_NAMES for text, _, _ in FUNCTION_CASES if f"{name}(" in text}
    assert used == set(FUNCTION_NAMES)
    assert len(FUNCTION_NAMES) == 8


def test_unanswered_semantics_as_documented() -> None:
    """conditions.py docstring: comparisons, membership and functions involving an unanswered
    field are false (length gives 0), a bare unanswered yes/no is false, `not` negates."""
    empty: dict[str, Any] = {}
    assert holds('repair == "leak"', **empty) is False
    assert holds('repair != "leak"', **empty) is False
    assert holds('not (repair == "leak")', **empty) is True
    assert holds("vulnerable", **empty) is False
    assert holds("not vulnerable", **empty) is True
    assert holds('answered(repair) and repair != "leak"', repair="no_heating") is True
    assert holds('answered(repair) and repair != "leak"', **empty) is False
    # an unanswered yes/no counts as no inside and/or, also when the result is compared
    assert holds("(vulnerable and alone) == false", alone=True) is True
    assert holds("(vulnerable and alone) != true", alone=True) is True
    assert holds("(vulnerable or alone) == true", alone=True) is True
    assert holds("(vulnerable or alone) == false", alone=False) is True


def test_literals() -> None:
    assert holds("true") is True
    assert holds("false") is False
    assert holds("outside_temp < -2.5", outside_temp=-3) is True
    assert holds("outside_temp == - 2", outside_temp=-2) is True
    assert holds("notes == 'it\\'s'", notes="it's") is True
    assert holds('notes == "say \\"hi\\""', notes='say "hi"') is True
    assert holds('notes == "back\\\\slash"', notes="back\\slash") is True
    assert holds('notes == "£5 — ok"', notes="£5 — ok") is True


# ---------------------------------------------------------------------------------------------
# Settings, fields read, decisions
# ---------------------------------------------------------------------------------------------


def test_settings_are_bound_as_constants_of_the_version() -> None:
    fixed = {"response": "information_only"}
    c = compile_condition('response == "information_only"', FIELDS, fixed)
    assert c.holds({}) is True
    # a value for the setting given at run time is ignored: the ruleset version decides
    assert c.holds({"response": "refer"}) is True
    d = compile_decision(['response == "refer"', "true"], FIELDS, fixed)
    assert d({"response": "refer"}) == 1


def test_fields_read_are_reported() -> None:
    c = compile_condition('repair == "leak" and (vulnerable or outside_temp < 5)', FIELDS)
    assert c.fields == frozenset({"repair", "vulnerable", "outside_temp"})
    node = parse("answered(notes) or length(hazards) > 1")
    assert check(node, FIELDS) == (Type.BOOL, frozenset({"notes", "hazards"}))
    assert check(parse("outside_temp"), FIELDS)[0] is Type.NUMBER


def test_compile_decision_returns_the_first_matching_rule_or_minus_one() -> None:
    decide = compile_decision(
        ['repair == "leak"', "vulnerable", 'repair == "leak" or true'], FIELDS
    )
    assert decide({"repair": "leak", "vulnerable": True}) == 0  # first match wins
    assert decide({"repair": "no_heating", "vulnerable": True}) == 1
    assert decide({"repair": "no_heating"}) == 2
    none_match = compile_decision(['repair == "leak"', "vulnerable"], FIELDS)
    assert none_match({}) == -1
    assert compile_decision([], FIELDS)({"repair": "leak"}) == -1


def test_compile_decision_names_the_offending_rule() -> None:
    with pytest.raises(ConditionError) as info:
        compile_decision(['repair == "leak"', "vulnerable", "outside_tmp > 3"], FIELDS)
    assert info.value.rule == 2
    assert info.value.offset == 0
    assert "did you mean 'outside_temp'" in info.value.message
    with pytest.raises(ConditionError) as info:
        compile_decision(["outside_temp"], FIELDS)
    assert info.value.rule == 0
    assert "must be yes or no" in info.value.message


# ---------------------------------------------------------------------------------------------
# Errors at their offsets (docs/rulesets.md "Checked when loaded")
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "phrase"),
    [
        # syntax
        ('(repair == "leak" or vulnerable', 0, "this '(' is never closed"),
        ('repair = "leak"', 7, "to compare, write =="),
        ("vulnerable && alone", 11, "write 'and' / 'or'"),
        ("vulnerable || alone", 11, "write 'and' / 'or'"),
        ("!vulnerable", 0, "write 'not'"),
        ("0 < outside_temp < 5", 17, "comparisons cannot be chained"),
        ("age == outside_temp == 3", 20, "comparisons cannot be chained"),
        ("vulnerable and", 14, "ends too early"),
        ("vulnerable alone", 11, "is an 'and' or 'or' missing?"),
        ("True", 0, "write 'true' in lower case"),
        ("vulnerable AND alone", 11, "write 'and' in lower case"),
        ('notes == "abc', 9, "the string is not closed"),
        ('notes == "a\\nb"', 11, "unknown escape"),
        ("notes == ,", 9, "expected a value or a field name, found ','"),
        ('contains(notes, "x"', 19, "expected ')' to close the call of contains()"),
        ("outside_temp in [1 2]", 19, "expected ',' or ']'"),
        ("outside_temp in []", 16, "an empty list is always false"),
        ('outside_temp in [1, "a"]', 20, "values of one type"),
        ("outside_temp in [age]", 17, "only text or number values"),
        ("outside_temp in [[1]]", 17, "only text or number values"),
        ("", 0, "the condition is empty"),
        ("   ", 0, "the condition is empty"),
        ("notes == 1e5", 10, "is an 'and' or 'or' missing?"),
        # names and functions
        ("vulnerabel", 0, "unknown field 'vulnerabel'; did you mean 'vulnerable'?"),
        ("answered(outside_tmp)", 9, "did you mean 'outside_temp'?"),
        ("startswith(notes, 'a')", 0, "unknown function startswith()"),
        ("contains", 0, "contains is a function; call it as contains(...)"),
        ('contains(notes, "a", "b")', 0, "takes 2 argument(s), given 3"),
        ('answered("notes")', 9, "answered() takes a field name"),
        # types
        ('outside_temp == "cold"', 13, "cannot compare number with text using =="),
        ("vulnerable == 1", 11, "cannot compare yes/no with number"),
        ("outside_temp", 0, "must be yes or no, but this gives number"),
        ("lower(notes)", 0, "must be yes or no, but this gives text"),
        ("vulnerable and outside_temp", 15, "'and' needs a yes/no value, but this is number"),
        ("not notes", 4, "'not' needs a yes/no value, but this is text"),
        ("vulnerable < alone", 11, "compares two numbers (or two texts)"),
        ('repair in "leak"', 10, "to look for words in text use contains()"),
        ('1 in ["a"]', 0, "cannot look for number in a list of text"),
        ("length(outside_temp) > 1", 7, "length() takes text or a list, not number"),
        ('contains(outside_temp, "1")', 9, "contains() needs text here, not number"),
        ('between("a", 1, 2)', 8, "between() needs number here, not text"),
        ("hazards == floors", 8, "cannot compare list of text with list of numbers"),
        # option values of a choice (5.3.3 script answers are checked against the question)
        ('repair == "lek"', 10, "'lek' is not one of the possible values"),
        ('"lek" != repair', 0, "did you mean 'leak'?"),
        ('repair in ["leak", "noheating"]', 19, "did you mean 'no_heating'?"),
        ('"gass" in hazards', 0, "did you mean 'gas'?"),
        ('response == "refer_all"', 12, "(information_only, refer)"),
        ('repair == "LEAK"', 10, "did you mean 'leak'?"),
        ("Vulnerable", 0, "did you mean 'vulnerable'?"),
    ],
)
def test_errors_are_located(text: str, offset: int, phrase: str) -> None:
    err = error_of(text)
    assert phrase in err.message
    assert err.offset == offset


def test_comparing_lists_for_equality_is_rejected() -> None:
    # a `choices` answer is a list; `hazards == ["gas"]` could never hold at run time
    err = error_of('hazards == ["gas"]')
    assert "in" in err.message
    assert err.offset == 8


# ---------------------------------------------------------------------------------------------
# Safety (DESIGN.md principle 2; docs/rulesets.md "Safe by construction")
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "phrase"),
    [
        ("notes.upper", 5, "attribute access is not part of the language"),
        ('notes.__class__ == "x"', 5, "attribute access"),
        ("__class__", 0, "unknown field '__class__'"),
        ("__import__", 0, "unknown field '__import__'"),
        ("exec", 0, "unknown field 'exec'"),
        ("__import__('os')", 0, "unknown function __import__()"),
        ("exec('print(1)')", 0, "unknown function exec()"),
        ("eval('1') == 1", 0, "unknown function eval()"),
        ("open('x') == 'y'", 0, "unknown function open()"),
        ("hazards[0] == 'gas'", 7, "unexpected '['"),
        ("lambda: true", 6, "unexpected character ':'"),
        ("vulnerable if alone else true", 11, "unexpected 'if'"),
        ("notes == 'a' + 'b'", 13, "unexpected character '+'"),
        ("repair == 'leak'; import os", 16, "unexpected character ';'"),
        ("f'{notes}' == 'x'", 1, "is an 'and' or 'or' missing?"),
    ],
)
def test_no_attribute_access_dunders_or_arbitrary_calls(
    text: str, offset: int, phrase: str
) -> None:
    err = error_of(text)
    assert phrase in err.message
    assert err.offset == offset


def test_code_in_a_string_literal_is_just_text() -> None:
    payload = "__import__('os').system('touch /tmp/oohcore-pwned') or exec('x')"
    c = compile_condition(f'notes == "{payload}"', FIELDS)
    assert c.holds({"notes": payload}) is True
    assert c.holds({"notes": "something else"}) is False
    quote_breaker = '\\"); import os; (\\"'
    c = compile_condition(f'notes == "{quote_breaker}"', FIELDS)
    assert c.holds({"notes": '"); import os; ("'}) is True


def test_generated_function_has_no_builtins() -> None:
    c = compile_condition("vulnerable", FIELDS)
    assert c.holds.__globals__["__builtins__"] == {}


def test_length_limit() -> None:
    exact = "vulnerable" + " " * (MAX_LENGTH - len("vulnerable"))
    assert len(exact) == MAX_LENGTH
    assert compile_condition(exact, FIELDS).holds({"vulnerable": True}) is True
    long_chain = " or ".join(["vulnerable"] * 140)  # 1,956 characters
    assert compile_condition(long_chain, FIELDS).holds({"vulnerable": True}) is True
    err = error_of(exact + " ")
    assert f"at most {MAX_LENGTH} characters" in err.message
    assert err.offset == MAX_LENGTH


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "not " * n + "vulnerable",
        lambda n: "(" * n + "vulnerable" + ")" * n,
        lambda n: "length(" + "lower(" * (n - 1) + "notes" + ")" * n + " > 1",
        lambda n: "(vulnerable and " * n + "alone" + ")" * n,
    ],
    ids=["not", "parentheses", "calls", "and-groups"],
)
def test_depth_limit(make: Callable[[int], str]) -> None:
    # the limit itself compiles (and the generated Python is accepted)
    assert compile_condition(make(MAX_DEPTH), FIELDS).holds({}) in (True, False)
    err = error_of(make(MAX_DEPTH + 1))
    assert f"nested more than {MAX_DEPTH} levels deep" in err.message


@pytest.mark.parametrize("opener", ["[", "(", "not ", "lower("])
def test_deep_nesting_is_an_error_never_a_recursion_error(opener: str) -> None:
    text = opener * (MAX_LENGTH // len(opener))
    with pytest.raises(ConditionError):
        compile_condition(text, FIELDS)


# ---------------------------------------------------------------------------------------------
# Property checks against a reference interpreter (seeded, so failures reproduce)
# ---------------------------------------------------------------------------------------------

# A test-side expression: (kind, ...) tuples, rendered to text and evaluated by `ref`.
Expr = tuple[Any, ...]

VALUES: dict[str, list[Any]] = {
    "repair": [None, "leak", "no_heating", "broken_window"],
    "hazards": [None, [], ["gas"], ["water", "fire"]],
    "vulnerable": [None, True, False],
    "alone": [None, True, False],
    "outside_temp": [None, -2, 0, 3, 5, 7.5],
    "age": [None, 0, 5, 80],
    "notes": [None, "", "Gas leak", "leak", "LEAK in roof"],
    "floors": [None, [], [1, 2], [3]],
}
TEXT_LITERALS = ["leak", "LEAK", "gas", "", "roof", "Gas leak"]
NUMBER_LITERALS: list[float] = [-3, -2.5, 0, 1, 3, 5, 7.5, 10]
CMP = {
    **ORDER_OPS,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


def truth(value: Any) -> bool:
    return value is True


def ref(e: Expr, v: Mapping[str, Any]) -> Any:
    """The documented semantics, written independently of the compiler."""
    kind = e[0]
    if kind == "field":
        return v.get(e[1])
    if kind in ("lit", "list"):
        return e[1]
    if kind == "not":
        return not truth(ref(e[1], v))
    if kind == "and":
        return all(truth(ref(x, v)) for x in e[1])
    if kind == "or":
        return any(truth(ref(x, v)) for x in e[1])
    if kind == "cmp":
        a, b = ref(e[2], v), ref(e[3], v)
        return a is not None and b is not None and CMP[e[1]](a, b)
    if kind == "call":
        fn, args = e[1], e[2]
        if fn == "answered":
            return v.get(args[0][1]) is not None
        xs = [ref(a, v) for a in args]
        if fn == "length":
            return 0 if xs[0] is None else len(xs[0])
        if fn in ("lower", "upper"):
            return None if xs[0] is None else getattr(xs[0], fn)()
        if any(x is None for x in xs):
            return False
        if fn == "contains":
            return xs[1].casefold() in xs[0].casefold()
        if fn == "starts_with":
            return xs[0].casefold().startswith(xs[1].casefold())
        if fn == "ends_with":
            return xs[0].casefold().endswith(xs[1].casefold())
        if fn == "between":
            return xs[1] <= xs[0] <= xs[2]
    raise AssertionError(e)


def render(e: Expr, rng: random.Random) -> str:
    kind = e[0]
    if kind == "field":
        return str(e[1])
    if kind == "lit":
        value = e[1]
        if value is True or value is False:
            return "true" if value else "false"
        if isinstance(value, str):
            return rng.choice(['"{}"', "'{}'"]).format(value)
        return repr(value)
    if kind == "list":
        return "[" + ", ".join(render(("lit", x), rng) for x in e[1]) + "]"
    if kind == "not":
        return f"not ({render(e[1], rng)})"
    if kind in ("and", "or"):
        return f" {kind} ".join(f"({render(x, rng)})" for x in e[1])
    if kind == "cmp":
        return f"({render(e[2], rng)}) {e[1]} ({render(e[3], rng)})"
    if kind == "call":
        return f"{e[1]}(" + ", ".join(render(a, rng) for a in e[2]) + ")"
    raise AssertionError(e)


class Gen:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def number(self, depth: int) -> Expr:
        r = self.rng.random()
        if r < 0.4:
            return ("field", self.rng.choice(["outside_temp", "age"]))
        if r < 0.8 or depth <= 0:
            return ("lit", self.rng.choice(NUMBER_LITERALS))
        return ("call", "length", [self.rng.choice([self.text(depth - 1), ("field", "hazards")])])

    def text(self, depth: int) -> Expr:
        r = self.rng.random()
        if r < 0.4:
            return ("field", "notes")
        if r < 0.7 or depth <= 0:
            return ("lit", self.rng.choice(TEXT_LITERALS))
        return ("call", self.rng.choice(["lower", "upper"]), [self.text(depth - 1)])

    def boolean(self, depth: int) -> Expr:
        rng = self.rng
        forms = ["bool-field", "literal", "num-cmp", "text-cmp", "choice", "call"]
        if depth > 0:
            forms += ["not", "and", "or", "bool-cmp"] * 2
        form = rng.choice(forms)
        if form == "bool-field":
            return ("field", rng.choice(["vulnerable", "alone"]))
        if form == "literal":
            return ("lit", rng.choice([True, False]))
        if form == "num-cmp":
            if rng.random() < 0.2:
                items = rng.sample(NUMBER_LITERALS, rng.randint(1, 3))
                return (
                    "cmp",
                    rng.choice(["in", "not in"]),
                    self.number(depth - 1),
                    ("list", items),
                )
            if rng.random() < 0.15:
                return ("cmp", rng.choice(["in", "not in"]), self.number(0), ("field", "floors"))
            return (
                "cmp",
                rng.choice(list(ORDER_OPS)),
                self.number(depth - 1),
                self.number(depth - 1),
            )
        if form == "text-cmp":
            if rng.random() < 0.2:
                items = rng.sample(TEXT_LITERALS, rng.randint(1, 3))
                return ("cmp", rng.choice(["in", "not in"]), self.text(depth - 1), ("list", items))
            return ("cmp", rng.choice(list(ORDER_OPS)), self.text(depth - 1), self.text(depth - 1))
        if form == "choice":
            values = sorted(FIELDS["repair"].values or ())
            hazards = sorted(FIELDS["hazards"].values or ())
            return rng.choice(
                [
                    (
                        "cmp",
                        rng.choice(["==", "!="]),
                        ("field", "repair"),
                        ("lit", rng.choice(values)),
                    ),
                    (
                        "cmp",
                        rng.choice(["==", "!="]),
                        ("lit", rng.choice(values)),
                        ("field", "repair"),
                    ),
                    (
                        "cmp",
                        rng.choice(["in", "not in"]),
                        ("field", "repair"),
                        ("list", rng.sample(values, 2)),
                    ),
                    (
                        "cmp",
                        rng.choice(["in", "not in"]),
                        ("lit", rng.choice(hazards)),
                        ("field", "hazards"),
                    ),
                    (
                        "cmp",
                        rng.choice(["in", "not in"]),
                        ("field", "repair"),
                        ("field", "hazards"),
                    ),
                ]
            )
        if form == "call":
            fn = rng.choice(["answered", "contains", "starts_with", "ends_with", "between"])
            if fn == "answered":
                return ("call", fn, [("field", rng.choice(sorted(VALUES)))])
            if fn == "between":
                return ("call", fn, [self.number(depth - 1) for _ in range(3)])
            return ("call", fn, [self.text(depth - 1), self.text(depth - 1)])
        if form == "not":
            return ("not", self.boolean(depth - 1))
        if form in ("and", "or"):
            return (form, [self.boolean(depth - 1) for _ in range(rng.randint(2, 3))])
        # bool-cmp: a yes/no expression compared with another
        return ("cmp", rng.choice(["==", "!="]), self.boolean(depth - 1), self.boolean(depth - 1))

    def values(self) -> dict[str, Any]:
        return {
            name: self.rng.choice(options)
            for name, options in VALUES.items()
            if self.rng.random() < 0.85
        }


def test_compiled_conditions_agree_with_the_reference_interpreter() -> None:
    rng = random.Random(20260105)
    gen = Gen(rng)
    checked = 0
    for _ in range(400):
        expr = gen.boolean(rng.randint(0, 4))
        text = render(expr, rng)
        compiled = compile_condition(text, FIELDS)
        for _ in range(25):
            values = gen.values()
            expected = truth(ref(expr, values)) if expr[0] == "field" else ref(expr, values)
            assert compiled.holds(values) is expected, (text, values)
            checked += 1
    assert checked == 400 * 25


def test_compiled_decisions_agree_with_the_reference_interpreter() -> None:
    rng = random.Random(5323)
    gen = Gen(rng)
    seen_default = seen_rule = False
    for _ in range(150):
        exprs = [gen.boolean(rng.randint(0, 3)) for _ in range(rng.randint(1, 5))]
        decide = compile_decision([render(e, rng) for e in exprs], FIELDS)
        for _ in range(20):
            values = gen.values()
            expected = next((i for i, e in enumerate(exprs) if truth(ref(e, values))), -1)
            assert decide(values) == expected
            seen_default |= expected == -1
            seen_rule |= expected > 0
    assert seen_default and seen_rule  # both outcomes were exercised


ALLOWED_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.arguments,
    ast.arg,
    ast.Assign,
    ast.Return,
    ast.If,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.IsNot,
    ast.Call,
    ast.Attribute,
    # compile_decision's inlined length()/between() and its dispatch on a keyed field
    ast.IfExp,
    ast.Is,
    ast.Dict,
)
ALLOWED_CALLS = {"bool", "get", "len", "branch", *(f"_{name}" for name in FUNCTION_NAMES)}
ALLOWED_ATTRIBUTES = {("get", "values"), ("get", "_branches")}


def test_generated_code_uses_only_the_safe_subset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the author writes, the Python that is compiled holds no imports, no attribute
    access (but ``values.get``), and calls only ``bool``, ``get`` and the fixed helpers."""
    sources: list[str] = []
    real_compile = compile

    def spy(source: str, filename: str, mode: str) -> Any:
        sources.append(source)
        return real_compile(source, filename, mode)

    monkeypatch.setattr(conditions, "compile", spy, raising=False)
    rng = random.Random(7)
    gen = Gen(rng)
    hostile = "notes == \"\\\"); __import__('os').system('id'); (\\\"\""
    compile_condition(hostile, FIELDS)
    compile_decision([render(gen.boolean(4), rng) for _ in range(60)], FIELDS, {"response": "x"})
    for _ in range(100):
        compile_condition(render(gen.boolean(4), rng), FIELDS)
    assert len(sources) == 102
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            assert isinstance(node, ALLOWED_NODES), (type(node).__name__, source)
            if isinstance(node, ast.Attribute):
                assert (node.attr, getattr(node.value, "id", None)) in ALLOWED_ATTRIBUTES
            if isinstance(node, ast.Call):
                assert isinstance(node.func, ast.Name | ast.Attribute)
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                assert name in ALLOWED_CALLS, source
            if isinstance(node, ast.Name):
                assert not node.id.startswith("__"), source
