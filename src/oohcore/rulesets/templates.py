"""Message templates: text with named placeholders, e.g. ``"Ref {reference}: {address}"``.

Only bare placeholder names are allowed — no attribute access (``{a.b}``), no indexing
(``{a[0]}``), no conversions or format specifications — so a template can only ever copy a
captured value into text. ``{{`` and ``}}`` write literal braces. Templates are checked when a
ruleset loads (an unknown placeholder is an error at its column) and pre-split once, so
rendering is a join.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class TemplateError(Exception):
    """A problem in a template at character ``offset`` (0-based) of its text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    text: str
    parts: tuple[tuple[str, str | None], ...]  # (literal text, placeholder or None)

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(name for _, name in self.parts if name is not None)

    def render(self, values: Mapping[str, Any], *, missing: str = "not given") -> str:
        """Fill in the placeholders; an unanswered value reads ``missing``."""
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                value = values.get(name)
                out.append(missing if value is None or value == "" else _text(value))
        return "".join(out)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value)
    return str(value)


def compile_template(text: str, names: frozenset[str] | set[str]) -> CompiledTemplate:
    """Check ``text`` against the placeholder ``names`` it may use and pre-split it."""
    parts: list[tuple[str, str | None]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "{}" and text[i + 1 : i + 2] == c:
            literal.append(c)
            i += 2
            continue
        if c == "}":
            raise TemplateError("a '}' with no '{' before it; write a literal brace as '}}'", i)
        if c != "{":
            literal.append(c)
            i += 1
            continue
        end = text.find("}", i)
        if end < 0:
            raise TemplateError("this '{' is never closed; write a literal brace as '{{'", i)
        name = text[i + 1 : end]
        if not _NAME_RE.match(name):
            raise TemplateError(
                f"{{{name}}} is not allowed: a placeholder is a bare name such as {{address}} "
                "(no dots, indexes or formatting)",
                i,
            )
        if name not in names:
            import difflib

            close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
            hint = f"; did you mean {{{close[0]}}}?" if close else ""
            raise TemplateError(f"unknown placeholder {{{name}}}{hint}", i)
        parts.append(("".join(literal), name))
        literal = []
        i = end + 1
    if literal or not parts:
        parts.append(("".join(literal), None))
    return CompiledTemplate(text, tuple(parts))
