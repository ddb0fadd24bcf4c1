"""Message templates: text with named placeholders, e.g. ``"Ref {reference}: {address}"``.

Only bare placeholder names are allowed — no attribute access (``{a.b}``), no indexing
(``{a[0]}``), no conversions or format specifications — so a template can only ever copy a
captured value into text. ``{{`` and ``}}`` write literal braces. Templates are checked when a
ruleset loads (an unknown placeholder is an error at its column) and pre-split once, so
rendering is a join.

An **optional part** ``{#name}…{/name}`` is written only when ``name`` is known (neither
missing nor empty), so a referral can carry the UPRN where the gazetteer found one (7.11)
without printing a label with nothing after it: ``"{address}{#uprn} (UPRN {uprn}){/uprn}"``.
Optional parts do not nest. A placeholder outside one reads ``"not given"`` when unknown.
"""

from __future__ import annotations

import difflib
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


Part = tuple[str, str | None, str | None]
"""(literal text, placeholder or None, the name the part depends on or None)."""


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    text: str
    parts: tuple[Part, ...]

    @property
    def placeholders(self) -> frozenset[str]:
        """Every name the template reads (placeholders and the names of optional parts)."""
        return frozenset(n for _, name, when in self.parts for n in (name, when) if n is not None)

    def render(self, values: Mapping[str, Any], *, missing: str = "not given") -> str:
        """Fill in the placeholders; an unanswered value reads ``missing``, and an optional
        part whose name is unknown is left out."""
        out: list[str] = []
        for literal, name, when in self.parts:
            if when is not None and not known(values.get(when)):
                continue
            out.append(literal)
            if name is not None:
                value = values.get(name)
                out.append(_text(value) if known(value) else missing)
        return "".join(out)


def known(value: Any) -> bool:
    """A value is known unless it is missing, empty text or an empty list (``False`` and
    ``0`` are known: they are answers)."""
    if value is None or value == "":
        return False
    return not (isinstance(value, (list, tuple, set, frozenset)) and not value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _unknown(name: str, names: frozenset[str] | set[str], offset: int) -> TemplateError:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
    hint = f"; did you mean {{{close[0]}}}?" if close else ""
    return TemplateError(f"unknown placeholder {{{name}}}{hint}", offset)


def compile_template(text: str, names: frozenset[str] | set[str]) -> CompiledTemplate:
    """Check ``text`` against the placeholder ``names`` it may use and pre-split it."""
    parts: list[Part] = []
    literal: list[str] = []
    section: tuple[str, int] | None = None  # the open optional part's name and offset
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
        inner = text[i + 1 : end] if end >= 0 else ""
        if end < 0 or any(ch in inner for ch in "{\n\r"):
            # a placeholder is one name on one line: '{team' left open is reported here, in
            # one line, not as a "placeholder" running on to the next '}' (10)
            raise TemplateError("this '{' is never closed; write a literal brace as '{{'", i)
        mark, name = (inner[0], inner[1:]) if inner[:1] in ("#", "/") else ("", inner)
        if not _NAME_RE.match(name):
            raise TemplateError(
                f"{{{inner if len(inner) <= 40 else inner[:40] + '…'}}} is not allowed: a placeholder is a bare name such as {{address}} "
                "(no dots, indexes or formatting), and an optional part is written "
                "{#name}...{/name}",
                i,
            )
        if name not in names:
            raise _unknown(name, names, i + (1 if mark else 0))
        when = section[0] if section else None
        if mark == "#":
            if section is not None:
                raise TemplateError(
                    f"optional parts do not nest: close {{/{section[0]}}} before opening "
                    f"{{#{name}}}",
                    i,
                )
            parts.append(("".join(literal), None, None))
            section = (name, i)
        elif mark == "/":
            if section is None or section[0] != name:
                expected = f"; the open part is {{#{section[0]}}}" if section else ""
                raise TemplateError(f"{{/{name}}} closes no {{#{name}}}{expected}", i)
            parts.append(("".join(literal), None, when))
            section = None
        else:
            parts.append(("".join(literal), name, when))
        literal = []
        i = end + 1
    if section is not None:
        raise TemplateError(
            f"the optional part {{#{section[0]}}} is never closed; end it with {{/{section[0]}}}",
            section[1],
        )
    if literal or not parts:
        parts.append(("".join(literal), None, None))
    # drop the empty pieces that opening and closing optional parts leave
    kept = tuple(p for p in parts if p[0] or p[1]) or (("", None, None),)
    return CompiledTemplate(text, kept)
