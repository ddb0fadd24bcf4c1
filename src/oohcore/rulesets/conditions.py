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
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

MAX_LENGTH = 2000
MAX_DEPTH = 40
MAX_NUMBER = 1e15  # a number literal, either way (as in a ruleset's YAML, source.MAX_NUMBER)
MAX_NUMBER_DIGITS = 30  # digits of a number literal, its decimals included


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
            if len(raw) > MAX_NUMBER_DIGITS or abs(value) > MAX_NUMBER:
                # 4: a literal too large for a float would be infinity, emitted as 'inf'
                raise ConditionError(
                    f"the number {raw[:20]}{'…' if len(raw) > 20 else ''} is too large; a "
                    f"number in a condition has at most {MAX_NUMBER_DIGITS} digits and is "
                    f"at most {MAX_NUMBER:.0e}",
                    pos,
                )
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

    def __init__(self, fixed: Mapping[str, Any] | None = None) -> None:
        self.constants: dict[str, Any] = {}
        self.fixed = dict(fixed or {})  # settings: constants of the ruleset version

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
            if node.name in self.fixed:
                return repr(self.fixed[node.name])
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
            first = node.args[0] if node.args else None
            if node.function == "length" and isinstance(first, Name):
                x = self.emit(first)
                return f"(0 if {x} is None else len({x}))"
            if (
                node.function == "between"
                and isinstance(first, Name)
                and all(isinstance(a, Literal) for a in node.args[1:])
            ):
                x, lo, hi = (self.emit(a) for a in node.args)
                return f"({x} is not None and {lo} <= {x} <= {hi})"
            args = ", ".join(self.emit(a) for a in node.args)
            return f"_{node.function}({args})"
        raise AssertionError(node)  # pragma: no cover

    def _maybe_none(self, node: Node) -> bool:
        """Whether the value of ``node`` may be None at run time (an unanswered field)."""
        if isinstance(node, Name):
            return node.name not in self.fixed
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


def _exec(name: str, lines: list[str], constants: Mapping[str, Any]) -> Callable[..., Any]:
    """Compile generated source (built from a checked tree only) with empty builtins."""
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {
        "__builtins__": {},
        "bool": bool,
        "len": len,
        **_HELPERS,
        **constants,
    }
    exec(compile(source, f"<oohcore {name}>", "exec"), namespace)
    fn: Callable[..., Any] = namespace[name]
    return fn


def _build(name: str, body: list[str], constants: Mapping[str, Any]) -> Callable[..., Any]:
    return _exec(name, [f"def {name}(values):", *(f"    {line}" for line in body)], constants)


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
    emitter = _Emitter(fixed or {})
    body = [f"f_{n} = get({n!r})" for n in sorted(used - set(emitter.fixed))]
    fn = _build(
        "holds",
        ["get = values.get", *body, f"return bool({emitter.emit(node)})"],
        emitter.constants,
    )
    return CompiledCondition(text, used, fn)


def _check_rules(
    conditions: Sequence[str], fields: Mapping[str, FieldType]
) -> list[tuple[Node, frozenset[str]]]:
    checked: list[tuple[Node, frozenset[str]]] = []
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
        checked.append((node, fields_read))
    return checked


def _names(node: Node) -> set[str]:
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Not):
        return _names(node.operand)
    if isinstance(node, BoolOp):
        return set().union(*(_names(o) for o in node.operands))
    if isinstance(node, Compare):
        return _names(node.left) | _names(node.right)
    if isinstance(node, Call):
        return set().union(set(), *(_names(a) for a in node.args))
    return set()


def _constraint(node: Node, name: str) -> tuple[frozenset[Any], Node | None] | None:
    """If ``node`` can only hold when field ``name`` has one of a few literal values — it is, or
    is a conjunction containing, ``name == literal`` or ``name in [literals]`` — return those
    values and what is left of the condition (None: nothing left, it then always holds)."""
    conjuncts = list(node.operands) if isinstance(node, BoolOp) and node.op == "and" else [node]
    for k, c in enumerate(conjuncts):
        values: frozenset[Any] | None = None
        if isinstance(c, Compare) and c.op == "==":
            if isinstance(c.left, Name) and c.left.name == name and isinstance(c.right, Literal):
                values = frozenset((c.right.value,))
            elif isinstance(c.right, Name) and c.right.name == name and isinstance(c.left, Literal):
                values = frozenset((c.left.value,))
        elif (
            isinstance(c, Compare)
            and c.op == "in"
            and isinstance(c.left, Name)
            and c.left.name == name
            and isinstance(c.right, ListLiteral)
        ):
            values = frozenset(item.value for item in c.right.items)
        if values is None or any(isinstance(v, bool) for v in values):
            continue
        rest = conjuncts[:k] + conjuncts[k + 1 :]
        if not rest:
            return values, None
        if len(rest) == 1:
            return values, rest[0]
        assert isinstance(node, BoolOp)
        return values, BoolOp(node.offset, "and", tuple(rest))
    return None


def _constrained(node: Node) -> set[str]:
    """The fields ``node`` is keyed on: those for which :func:`_constraint` finds values (one
    pass over its conjuncts, not one per field)."""
    conjuncts = list(node.operands) if isinstance(node, BoolOp) and node.op == "and" else [node]
    out: set[str] = set()
    for c in conjuncts:
        if not isinstance(c, Compare):
            continue
        if c.op == "==":
            for name, lit in ((c.left, c.right), (c.right, c.left)):
                if (
                    isinstance(name, Name)
                    and isinstance(lit, Literal)
                    and not isinstance(lit.value, bool)
                ):
                    out.add(name.name)
        elif (
            c.op == "in"
            and isinstance(c.left, Name)
            and isinstance(c.right, ListLiteral)
            and not any(isinstance(item.value, bool) for item in c.right.items)
        ):
            out.add(c.left.name)
    return out


def _dispatch_field(
    nodes: Sequence[Node], fields: Mapping[str, FieldType], fixed: Mapping[str, Any]
) -> str | None:
    """The field most rules are keyed on (e.g. ``repair``), if it is worth dispatching on."""
    counts: dict[str, int] = {}
    for node in nodes:
        for name in _constrained(node):
            counts[name] = counts.get(name, 0) + 1
    best, best_count = None, 0
    for name in sorted(set(counts) - set(fixed)):
        if fields[name].type not in (Type.STRING, Type.NUMBER):
            continue
        if counts[name] > best_count:
            best, best_count = name, counts[name]
    return best if best_count >= 3 and best_count * 3 >= len(nodes) else None


_LITERAL_TYPES: dict[type, Type] = {
    bool: Type.BOOL,
    int: Type.NUMBER,
    float: Type.NUMBER,
    str: Type.STRING,
}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def _fold(node: Node, known: Mapping[str, Any]) -> Node:
    """``node`` with the fields of ``known`` replaced by their (non-None) values and whatever
    that decides worked out: a rule that cannot hold becomes ``false``, one that must, ``true``."""
    if isinstance(node, Name):
        if node.name in known:
            value = known[node.name]
            return Literal(node.offset, value, _LITERAL_TYPES[type(value)])
        return node
    if isinstance(node, Not):
        inner = _fold(node.operand, known)
        if isinstance(inner, Literal):
            return Literal(node.offset, not inner.value, Type.BOOL)
        return Not(node.offset, inner)
    if isinstance(node, BoolOp):
        stop = node.op == "or"  # the value that decides an or (true) / an and (false)
        kept: list[Node] = []
        for operand in node.operands:
            folded = _fold(operand, known)
            if isinstance(folded, Literal):
                if bool(folded.value) is stop:
                    return Literal(node.offset, stop, Type.BOOL)
                continue
            kept.append(folded)
        if not kept:
            return Literal(node.offset, not stop, Type.BOOL)
        # a group of one stays a group: as an operand of a comparison it is still made a real
        # yes/no (an unanswered yes/no inside it counts as no), see _Emitter.emit_operand
        return BoolOp(node.offset, node.op, tuple(kept))
    if isinstance(node, Compare):
        left, right = _fold(node.left, known), _fold(node.right, known)
        if isinstance(left, Literal) and isinstance(right, Literal) and node.op in _ORDER:
            return Literal(node.offset, _ORDER[node.op](left.value, right.value), Type.BOOL)
        if isinstance(left, Literal) and isinstance(right, ListLiteral):
            found = left.value in {item.value for item in right.items}
            return Literal(node.offset, found if node.op == "in" else not found, Type.BOOL)
        return Compare(node.offset, node.op, left, right)
    if isinstance(node, Call):
        if (
            node.function == "answered"
            and isinstance(node.args[0], Name)
            and node.args[0].name in known
        ):
            return Literal(node.offset, True, Type.BOOL)
        return Call(node.offset, node.function, tuple(_fold(a, known) for a in node.args))
    return node


def _first_body(
    emitter: _Emitter, rules: Sequence[tuple[int, Node]], bound: set[str], *, limited: bool
) -> list[str]:
    """``if <rule>: return <its index>`` in order, then ``return limit``: the index of the first
    of ``rules`` that holds. With ``limited``, rules from index ``limit`` on are not tried (an
    earlier rule of another list already holds)."""
    body: list[str] = []
    for i, node in rules:
        if limited:
            body.append(f"if limit <= {i}:")
            body.append("    return limit")
        if isinstance(node, Literal):
            if node.value:
                body.append(f"return {i}")
                return body
            continue
        for name in sorted(_names(node) - bound - set(emitter.fixed)):
            body.append(f"f_{name} = get({name!r})")
            bound.add(name)
        body.append(f"if {emitter.emit(node)}:")
        body.append(f"    return {i}")
    body.append("return limit")
    return body


_DecisionKey = tuple[
    tuple[str, ...], tuple[tuple[str, FieldType], ...], tuple[tuple[str, Any], ...]
]
_DECISIONS: OrderedDict[_DecisionKey, Callable[[Mapping[str, Any]], int]] = OrderedDict()
MAX_CACHED_DECISIONS = 256


def compile_decision(
    conditions: Sequence[str],
    fields: Mapping[str, FieldType],
    fixed: Mapping[str, Any] | None = None,
    results: Sequence[Any] | None = None,
) -> Callable[[Mapping[str, Any]], Any]:
    """Compile an ordered rule list into one function of the field values.

    It returns ``results[i]`` for the first rule ``i`` that holds and ``results[-1]`` when none
    does (so ``results`` has one more item than there are rules); without ``results`` it returns
    the rule's index, or -1 for the default. Raises :class:`ConditionError` with ``.rule`` set
    to the index of the offending rule.

    A decision is compiled once for its content (the rules, the field types and the settings):
    validating an option and loading it, or opening an engine again in the same process, find
    it in a cache instead of compiling it again.

    Speed: fields are fetched lazily, settings (``fixed``) are folded in as constants, and when
    many rules are keyed on one field (``repair == "leak" and …``) the function first dispatches
    on that field's value through a dict to the rules keyed on that value (with the known test
    removed), and runs the rules keyed on no value once, only those before the first match.
    First-match-wins order is kept. Compiling is linear in the size of the rules: a rule is
    folded once per value it is keyed on, and a rule keyed on none is emitted once.
    """
    fixed = dict(fixed or {})
    if results is not None and len(results) != len(conditions) + 1:
        raise ValueError("results needs one item per rule and one for the default")
    key: _DecisionKey = (
        tuple(conditions),
        tuple(sorted(fields.items())),
        tuple(sorted(fixed.items())),
    )
    index = _DECISIONS.get(key)
    if index is None:
        index = _compile_decision(conditions, fields, fixed)
        _DECISIONS[key] = index
        if len(_DECISIONS) > MAX_CACHED_DECISIONS:
            _DECISIONS.popitem(last=False)
    else:
        _DECISIONS.move_to_end(key)
    if results is None:
        n = len(conditions)
        return lambda values: -1 if (i := index(values)) == n else i
    chosen = tuple(results)
    return lambda values: chosen[index(values)]


def _compile_decision(
    conditions: Sequence[str], fields: Mapping[str, FieldType], fixed: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], int]:
    """The index of the first rule that holds, ``len(conditions)`` when none does."""
    checked = _check_rules(conditions, fields)
    emitter = _Emitter(fixed)
    nodes = [_fold(node, fixed) for node, _ in checked]
    n = len(nodes)
    key = _dispatch_field(nodes, fields, fixed)
    if key is None:
        body = _first_body(emitter, list(enumerate(nodes)), set(), limited=False)
        return _build("decide", ["get = values.get", f"limit = {n}", *body], emitter.constants)
    constraints = [_constraint(node, key) for node in nodes]
    keyed: dict[Any, list[tuple[int, Node]]] = {}
    others: list[tuple[int, Node]] = []
    for i, (node, c) in enumerate(zip(nodes, constraints, strict=True)):
        if c is None:
            others.append((i, node))
            continue
        for value in sorted(c[0], key=repr):
            # in the branch of this value the key has it: fold it into the rule (its rest)
            rest = Literal(node.offset, True, Type.BOOL) if c[1] is None else c[1]
            keyed.setdefault(value, []).append((i, _fold(rest, {key: value})))
    lines: list[str] = []
    table: list[str] = []
    for b, value in enumerate(sorted(keyed, key=repr)):
        lines.append(f"def _b{b}(get, f_{key}, limit):")
        lines += [
            f"    {line}" for line in _first_body(emitter, keyed[value], {key}, limited=False)
        ]
        table.append(f"{emitter.const(value)}: _b{b}")
    lines.append("_branches = {" + ", ".join(table) + "}")
    lines.append("def decide(values):")
    lines.append("    get = values.get")
    lines.append(f"    f_{key} = get({key!r})")
    lines.append(f"    branch = _branches.get(f_{key})")
    lines.append(f"    limit = {n} if branch is None else branch(get, f_{key}, {n})")
    if others:
        lines += [f"    {line}" for line in _first_body(emitter, others, {key}, limited=True)]
    else:
        lines.append("    return limit")
    return _exec("decide", lines, emitter.constants)
