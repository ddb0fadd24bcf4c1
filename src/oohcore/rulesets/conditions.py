"""The condition language of ``when:`` (and ``ask_if:``) clauses.

Council officers write conditions such as::

    repair == "no_heating" and (vulnerable or outside_temp < 5)
    hour >= 22 or weekend
    "gas" in hazards and not duplicate

The language is deliberately small (see docs/rulesets.md): field names, number / string / boolean
literals, lists, comparison (``== != < <= > >=``), membership (``in``, ``not in``), ``and``,
``or``, ``not``, parentheses and a fixed set of named functions. There is no attribute access,
no indexing, no assignment, no loops and no imports, and an expression is at most
``MAX_LENGTH`` characters and ``MAX_DEPTH`` levels deep, so the work an expression does is
bounded by its size.

It is parsed and type-checked when a ruleset is loaded — an unknown field, a type error, an
unknown function or an option value a ``choice`` question does not have is an error at the exact
column — and compiled once into a plain Python function. Compilation generates Python source
*from the checked syntax tree only*: field names are matched against ``[a-z][a-z0-9_]*`` and
looked up in the schema, literals are re-emitted with ``repr`` of the parsed value, and the
functions come from a fixed table; the author's text itself never reaches ``compile``. The
generated module runs with empty builtins.

Unanswered fields (5.3.3: a caller need not answer every question) are ``None`` at run time.
Any comparison, membership test or function involving an unanswered field is false (``length``
gives 0), and a bare unanswered yes/no field is false. ``not`` negates the result, so
``not (repair == "leak")`` holds when ``repair`` is unanswered. ``answered(field)`` tests for an
answer explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

MAX_LENGTH = 2000
MAX_DEPTH = 40


class Type(Enum):
    BOOL = "yes/no"
    NUMBER = "number"
    STRING = "text"
    STRINGS = "list of text"
    NUMBERS = "list of numbers"

    def __str__(self) -> str:
        return self.value


_ELEMENT = {Type.STRINGS: Type.STRING, Type.NUMBERS: Type.NUMBER}


@dataclass(frozen=True, slots=True)
class FieldType:
    """What a condition may assume about a field: its type and, for a choice, its values."""

    type: Type
    values: frozenset[str] | None = None  # allowed values of a choice / setting / weekday
    description: str = ""


class ConditionError(Exception):
    """A problem in a condition, at character ``offset`` (0-based) of its text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.rule: int | None = None  # set by compile_decision: which rule it is in


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|-)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"and", "or", "not", "in", "true", "false"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number | string | name | keyword | op | end
    text: str
    offset: int
    value: Any = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = ""
            if ch == "=":
                hint = "; to compare, write =="
            elif ch in "&|":
                hint = "; write 'and' / 'or'"
            elif ch == "!":
                hint = "; write 'not' (or != to compare)"
            elif ch in "\"'":
                hint = "; the string is not closed"
            elif ch == ".":
                hint = "; attribute access is not part of the language"
            raise ConditionError(f"unexpected character {ch!r}{hint}", pos)
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "number":
            value: Any = float(raw) if "." in raw else int(raw)
            tokens.append(Token("number", raw, pos, value))
        elif kind == "string":
            tokens.append(Token("string", raw, pos, _unquote(raw, pos)))
        elif kind == "name":
            if raw in _KEYWORDS:
                tokens.append(Token("keyword", raw, pos))
            elif raw.lower() in _KEYWORDS or raw in {"True", "False", "AND", "OR", "NOT"}:
                raise ConditionError(f"write {raw.lower()!r} in lower case", pos)
            else:
                tokens.append(Token("name", raw, pos))
        elif kind == "op":
            tokens.append(Token("op", raw, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(raw: str, offset: int) -> str:
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt not in "\\\"'":
                raise ConditionError(
                    f"unknown escape '\\{nxt}' in a string; only \\\\, \\\" and \\' are allowed",
                    offset + 1 + i,
                )
            out.append(nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    offset: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any
    type: Type


@dataclass(frozen=True, slots=True)
class ListLiteral(Node):
    items: tuple[Literal, ...]
    type: Type


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: str  # and | or
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # == != < <= > >= in notin
    left: Node
    right: Node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.text == word

    def is_op(self, op: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == op

    def expect_op(self, op: str, what: str) -> Token:
        if not self.is_op(op):
            raise ConditionError(
                f"expected {op!r} {what}, found {self._describe(self.tok)}", self.tok.offset
            )
        return self.take()

    @staticmethod
    def _describe(tok: Token) -> str:
        return "the end of the condition" if tok.kind == "end" else repr(tok.text)

    def parse(self) -> Node:
        node = self.parse_or()
        if self.tok.kind != "end":
            hint = ""
            if self.tok.kind in ("name", "number", "string"):
                hint = " (is an 'and' or 'or' missing?)"
            raise ConditionError(f"unexpected {self._describe(self.tok)}{hint}", self.tok.offset)
        return node

    def _enter(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(
                f"the condition is nested more than {MAX_DEPTH} levels deep", offset
            )

    def parse_or(self) -> Node:
        start = self.tok.offset
        items = [self.parse_and()]
        while self.is_kw("or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp(start, "or", tuple(items))

    def parse_and(self) -> Node:
        start = self.tok.offset
        items = [self.parse_not()]
        while self.is_kw("and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp(start, "and", tuple(items))

    def parse_not(self) -> Node:
        if self.is_kw("not"):
            tok = self.take()
            self._enter(tok.offset)
            node = Not(tok.offset, self.parse_not())
            self.depth -= 1
            return node
        return self.parse_compare()

    def parse_compare(self) -> Node:
        left = self.parse_operand()
        tok = self.tok
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            right = self.parse_operand()
            node: Node = Compare(tok.offset, tok.text, left, right)
        elif self.is_kw("in"):
            self.take()
            node = Compare(tok.offset, "in", left, self.parse_operand())
        elif (
            self.is_kw("not")
            and self.tokens[self.i + 1].kind == "keyword"
            and (self.tokens[self.i + 1].text == "in")
        ):
            self.take()
            self.take()
            node = Compare(tok.offset, "notin", left, self.parse_operand())
        else:
            return left
        nxt = self.tok
        if nxt.kind == "op" and nxt.text in ("==", "!=", "<", "<=", ">", ">="):
            raise ConditionError(
                "comparisons cannot be chained; join them with 'and' (or use between())",
                nxt.offset,
            )
        return node

    def parse_operand(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Literal(tok.offset, tok.value, Type.NUMBER)
        if self.is_op("-") and self.tokens[self.i + 1].kind == "number":
            self.take()
            num = self.take()
            return Literal(tok.offset, -num.value, Type.NUMBER)
        if tok.kind == "string":
            self.take()
            return Literal(tok.offset, tok.value, Type.STRING)
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            self.take()
            return Literal(tok.offset, tok.text == "true", Type.BOOL)
        if tok.kind == "name":
            self.take()
            if self.is_op("("):
                return self.parse_call(tok)
            return Name(tok.offset, tok.text)
        if self.is_op("("):
            self.take()
            self._enter(tok.offset)
            node = self.parse_or()
            self.depth -= 1
            if not self.is_op(")"):
                raise ConditionError(
                    f"this '(' is never closed: expected ')' but found {self._describe(self.tok)}",
                    tok.offset,
                )
            self.take()
            return node
        if self.is_op("["):
            return self.parse_list()
        if tok.kind == "end":
            raise ConditionError(
                "the condition ends too early: a value or field is missing", tok.offset
            )
        raise ConditionError(f"expected a value or a field name, found {tok.text!r}", tok.offset)

    def parse_call(self, name: Token) -> Node:
        self.take()  # (
        args: list[Node] = []
        self._enter(name.offset)
        if not self.is_op(")"):
            args.append(self.parse_or())
            while self.is_op(","):
                self.take()
                args.append(self.parse_or())
        self.depth -= 1
        self.expect_op(")", f"to close the call of {name.text}()")
        return Call(name.offset, name.text, tuple(args))

    def parse_list(self) -> Node:
        start = self.take()
        self._enter(start.offset)  # a list inside a list nests too: bound it like '('
        items: list[Literal] = []
        while not self.is_op("]"):
            item = self.parse_operand()
            if not isinstance(item, Literal) or item.type not in (Type.STRING, Type.NUMBER):
                raise ConditionError("a list may hold only text or number values", item.offset)
            if items and item.type != items[0].type:
                raise ConditionError(
                    "a list must hold values of one type (all text or all numbers)", item.offset
                )
            items.append(item)
            if self.is_op(","):
                self.take()
            elif not self.is_op("]"):
                raise ConditionError(
                    f"expected ',' or ']' in the list, found {self._describe(self.tok)}",
                    self.tok.offset,
                )
        self.take()
        self.depth -= 1
        if not items:
            raise ConditionError("an empty list is always false; remove the test", start.offset)
        list_type = Type.STRINGS if items[0].type is Type.STRING else Type.NUMBERS
        return ListLiteral(start.offset, tuple(items), list_type)


def parse(text: str) -> Node:
    """Parse a condition; raise :class:`ConditionError` with the offending offset."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"a condition may be at most {MAX_LENGTH} characters long", MAX_LENGTH)
    if not text.strip():
        raise ConditionError("the condition is empty", 0)
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------
# Type checking
# ---------------------------------------------------------------------------------------------

# name -> (argument types (None = any of the listed in `_FLEX`), result type)
_FUNCTIONS: dict[str, tuple[tuple[Type | str, ...], Type]] = {
    "answered": (("field",), Type.BOOL),
    "contains": ((Type.STRING, Type.STRING), Type.BOOL),
    "starts_with": ((Type.STRING, Type.STRING), Type.BOOL),
    "ends_with": ((Type.STRING, Type.STRING), Type.BOOL),
    "lower": ((Type.STRING,), Type.STRING),
    "upper": ((Type.STRING,), Type.STRING),
    "length": (("text-or-list",), Type.NUMBER),
    "between": ((Type.NUMBER, Type.NUMBER, Type.NUMBER), Type.BOOL),
}
FUNCTION_NAMES = tuple(sorted(_FUNCTIONS))


@dataclass
class _Checked:
    type: Type
    values: frozenset[str] | None = None  # known values of a choice-typed expression
    fields: set[str] = field(default_factory=set)


class _Checker:
    def __init__(self, fields: Mapping[str, FieldType]) -> None:
        self.fields = fields

    def check(self, node: Node) -> _Checked:
        if isinstance(node, Literal):
            return _Checked(node.type)
        if isinstance(node, ListLiteral):
            return _Checked(node.type)
        if isinstance(node, Name):
            ft = self.fields.get(node.name)
            if ft is None:
                raise ConditionError(self._unknown(node.name), node.offset)
            return _Checked(ft.type, ft.values, {node.name})
        if isinstance(node, Not):
            inner = self.check(node.operand)
            self._want_bool(inner, node.operand, "'not'")
            return _Checked(Type.BOOL, fields=inner.fields)
        if isinstance(node, BoolOp):
            used: set[str] = set()
            for operand in node.operands:
                c = self.check(operand)
                self._want_bool(c, operand, f"'{node.op}'")
                used |= c.fields
            return _Checked(Type.BOOL, fields=used)
        if isinstance(node, Compare):
            return self.check_compare(node)
        if isinstance(node, Call):
            return self.check_call(node)
        raise AssertionError(node)  # pragma: no cover

    def _unknown(self, name: str) -> str:
        if name in _FUNCTIONS:
            return f"{name} is a function; call it as {name}(...)"
        close = _closest(name, self.fields)
        hint = f"; did you mean {close!r}?" if close else ""
        return f"unknown field {name!r}{hint} (fields are the script's questions, settings and built-ins)"

    @staticmethod
    def _want_bool(c: _Checked, node: Node, where: str) -> None:
        if c.type is not Type.BOOL:
            raise ConditionError(
                f"{where} needs a yes/no value, but this is {c.type}; compare it with something "
                "(e.g. == or >)",
                node.offset,
            )

    def check_compare(self, node: Compare) -> _Checked:
        left = self.check(node.left)
        right = self.check(node.right)
        used = left.fields | right.fields
        op = node.op
        if op in ("in", "notin"):
            shown = "in" if op == "in" else "not in"
            element = _ELEMENT.get(right.type)
            if element is None:
                raise ConditionError(
                    f"'{shown}' needs a list on its right, but this is {right.type}"
                    + (
                        "; to look for words in text use contains()"
                        if right.type is Type.STRING
                        else ""
                    ),
                    node.right.offset,
                )
            if left.type is not element:
                raise ConditionError(
                    f"cannot look for {left.type} in a {right.type}", node.left.offset
                )
            self._check_values(left, node.right)
            self._check_values(right, node.left)
            return _Checked(Type.BOOL, fields=used)
        if op in ("==", "!="):
            if left.type is not right.type:
                raise ConditionError(
                    f"cannot compare {left.type} with {right.type} using {op}", node.offset
                )
            if left.type in _ELEMENT:
                # a `choices` answer arrives as a list, which would never equal a list literal
                raise ConditionError(
                    f"{op} cannot compare lists; test for one value with 'in' "
                    '(e.g. "gas" in hazards) or the number of values with length()',
                    node.offset,
                )
            self._check_values(left, node.right)
            self._check_values(right, node.left)
            return _Checked(Type.BOOL, fields=used)
        # ordering
        if left.type is not right.type or left.type not in (Type.NUMBER, Type.STRING):
            raise ConditionError(
                f"{op} compares two numbers (or two texts), not {left.type} and {right.type}",
                node.offset,
            )
        return _Checked(Type.BOOL, fields=used)

    @staticmethod
    def _check_values(choice: _Checked, other: Node) -> None:
        """A choice field compared with a literal must use one of its values."""
        if choice.values is None:
            return
        literals: Sequence[Literal]
        if isinstance(other, Literal) and other.type is Type.STRING:
            literals = (other,)
        elif isinstance(other, ListLiteral) and other.type is Type.STRINGS:
            literals = other.items
        else:
            return
        for lit in literals:
            if lit.value not in choice.values:
                allowed = ", ".join(sorted(choice.values))
                close = _closest(lit.value, choice.values)
                hint = f"; did you mean {close!r}?" if close else ""
                raise ConditionError(
                    f"{lit.value!r} is not one of the possible values ({allowed}){hint}",
                    lit.offset,
                )

    def check_call(self, node: Call) -> _Checked:
        spec = _FUNCTIONS.get(node.function)
        if spec is None:
            known = ", ".join(FUNCTION_NAMES)
            raise ConditionError(
                f"unknown function {node.function}(); the functions are {known}", node.offset
            )
        params, result = spec
        if len(node.args) != len(params):
            raise ConditionError(
                f"{node.function}() takes {len(params)} argument(s), given {len(node.args)}",
                node.offset,
            )
        used: set[str] = set()
        for arg, want in zip(node.args, params, strict=True):
            if want == "field":
                if not isinstance(arg, Name):
                    raise ConditionError(f"{node.function}() takes a field name", arg.offset)
                used |= self.check(arg).fields
                continue
            c = self.check(arg)
            used |= c.fields
            if want == "text-or-list":
                if c.type not in (Type.STRING, Type.STRINGS, Type.NUMBERS):
                    raise ConditionError(
                        f"{node.function}() takes text or a list, not {c.type}", arg.offset
                    )
            elif c.type is not want:
                raise ConditionError(
                    f"{node.function}() needs {want} here, not {c.type}", arg.offset
                )
        return _Checked(result, fields=used)


def _closest(word: str, candidates: Any) -> str | None:
    import difflib

    same_but_case = [c for c in candidates if c.casefold() == word.casefold()]
    if same_but_case:  # "Mon" for "mon", "LEAK" for "leak": difflib scores these low
        return str(same_but_case[0])
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return found[0] if found else None


def check(node: Node, fields: Mapping[str, FieldType]) -> tuple[Type, frozenset[str]]:
    """Type-check ``node`` against ``fields``; return its type and the fields it reads."""
    c = _Checker(fields).check(node)
    return c.type, frozenset(c.fields)


# ---------------------------------------------------------------------------------------------
# Compilation to Python
# ---------------------------------------------------------------------------------------------


def _h_contains(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and b.casefold() in a.casefold()


def _h_starts(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold().startswith(b.casefold())


def _h_ends(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold().endswith(b.casefold())


def _h_lower(a: str | None) -> str | None:
    return None if a is None else a.lower()


def _h_upper(a: str | None) -> str | None:
    return None if a is None else a.upper()


def _h_length(a: Sized | None) -> int:
    return 0 if a is None else len(a)


def _h_between(x: float | None, lo: float | None, hi: float | None) -> bool:
    return x is not None and lo is not None and hi is not None and lo <= x <= hi


_HELPERS: dict[str, Callable[..., Any]] = {
    "_contains": _h_contains,
    "_starts_with": _h_starts,
    "_ends_with": _h_ends,
    "_lower": _h_lower,
    "_upper": _h_upper,
    "_length": _h_length,
    "_between": _h_between,
}


class _Emitter:
    """Emit a Python expression for a checked node. Field values are locals ``f_<name>``."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}

    def const(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, node: Node) -> str:
        if isinstance(node, Literal):
            return repr(node.value)
        if isinstance(node, ListLiteral):
            return self.const(frozenset(item.value for item in node.items))
        if isinstance(node, Name):
            return f"f_{node.name}"
        if isinstance(node, Not):
            return f"(not {self.emit(node.operand)})"
        if isinstance(node, BoolOp):
            return "(" + f" {node.op} ".join(self.emit(o) for o in node.operands) + ")"
        if isinstance(node, Compare):
            return self.emit_compare(node)
        if isinstance(node, Call):
            if node.function == "answered":
                return f"({self.emit(node.args[0])} is not None)"
            args = ", ".join(self.emit(a) for a in node.args)
            return f"_{node.function}({args})"
        raise AssertionError(node)  # pragma: no cover

    def _maybe_none(self, node: Node) -> bool:
        """Whether the value of ``node`` may be None at run time (an unanswered field)."""
        if isinstance(node, Name):
            return True
        return isinstance(node, Call) and node.function in ("lower", "upper")

    def emit_operand(self, node: Node) -> str:
        """A comparison operand. Python's ``and``/``or`` give an operand back (``None and x`` is
        None), so a yes/no group is made a real bool first: an unanswered yes/no counts as no
        inside it, and ``(a and b) == false`` agrees with ``not (a and b)``."""
        code = self.emit(node)
        return f"bool{code}" if isinstance(node, BoolOp) else code

    def emit_compare(self, node: Compare) -> str:
        left, right = self.emit_operand(node.left), self.emit_operand(node.right)
        op = node.op
        if op == "in" and isinstance(node.right, ListLiteral):
            # None is never in a set of literals: no guard needed
            return f"({left} in {right})"
        py_op = {"notin": "not in"}.get(op, op)
        expr = f"{left} {py_op} {right}"
        if op == "==" and not (self._maybe_none(node.left) and self._maybe_none(node.right)):
            return f"({expr})"
        guards = [
            f"{side} is not None"
            for n, side in ((node.left, left), (node.right, right))
            if self._maybe_none(n)
        ]
        return "(" + " and ".join([*guards, expr]) + ")"


@dataclass(frozen=True)
class CompiledCondition:
    """A checked, compiled condition: ``holds(values)`` is true when it holds."""

    text: str
    fields: frozenset[str]
    holds: Callable[[Mapping[str, Any]], bool]


def _build(
    name: str,
    body: list[str],
    fields: set[str],
    constants: Mapping[str, Any],
    fixed: Mapping[str, Any] | None = None,
) -> Callable[..., Any]:
    """Build the function. ``fixed`` fields (settings) are constants of the ruleset version and
    are bound once here instead of being looked up on every call."""
    fixed = fixed or {}
    lines = [f"def {name}(values):", "    get = values.get"]
    lines += [
        f"    f_{f} = {fixed[f]!r}" if f in fixed else f"    f_{f} = get({f!r})"
        for f in sorted(fields)
    ]
    lines += [f"    {line}" for line in body]
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {"__builtins__": {}, "bool": bool, **_HELPERS, **constants}
    exec(compile(source, f"<oohcore {name}>", "exec"), namespace)
    fn: Callable[..., Any] = namespace[name]
    return fn


def compile_condition(
    text: str, fields: Mapping[str, FieldType], fixed: Mapping[str, Any] | None = None
) -> CompiledCondition:
    """Parse, check and compile one condition. Raises :class:`ConditionError`."""
    node = parse(text)
    result, used = check(node, fields)
    if result is not Type.BOOL:
        raise ConditionError(
            f"a condition must be yes or no, but this gives {result}; compare it with something",
            node.offset,
        )
    emitter = _Emitter()
    fn = _build(
        "holds", [f"return bool({emitter.emit(node)})"], set(used), emitter.constants, fixed
    )
    return CompiledCondition(text, used, fn)


def compile_decision(
    conditions: Sequence[str],
    fields: Mapping[str, FieldType],
    fixed: Mapping[str, Any] | None = None,
) -> Callable[[Mapping[str, Any]], int]:
    """Compile an ordered rule list into one function returning the index of the first rule
    that holds, or -1 when none does (the decision's default).

    Raises :class:`ConditionError` with ``.rule`` set to the index of the offending rule.
    """
    emitter = _Emitter()
    body: list[str] = []
    used: set[str] = set()
    for i, text in enumerate(conditions):
        try:
            node = parse(text)
            result, fields_read = check(node, fields)
            if result is not Type.BOOL:
                raise ConditionError(
                    f"a condition must be yes or no, but this gives {result}; compare it with "
                    "something",
                    node.offset,
                )
        except ConditionError as exc:
            exc.rule = i
            raise
        used |= fields_read
        body.append(f"if {emitter.emit(node)}:")
        body.append(f"    return {i}")
    body.append("return -1")
    return _build("decide", body, used, emitter.constants, fixed)
