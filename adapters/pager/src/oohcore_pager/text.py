"""The text of a page: short, plain ASCII, within a length limit, the reference always kept.

A pager shows a few hundred characters at most, often fewer, and paging terminals speak 7-bit
ASCII (TAP/IXO behind SNPP). :func:`page_text` turns an outbound message into such a text:

1. The message's ``body`` (the ruleset's own template, signed off with the option, DESIGN.md
   principle 1) is used as it is when it fits the limit and carries the reference.
2. Otherwise the text is composed from the message's case data (``fields``) in the priority
   order of spec 5.2.5: a) name of contact, b) address, c) contact telephone number, d) brief
   details, e) reference number. The reference is reserved first and always kept (it is how the
   officer finds the call, 5.2.2); the other items follow in priority order, each whole while
   it fits, the first that does not fit shortened, and the rest left out.
3. A message without case data has its body shortened, with the reference appended if the
   shortened body lost it.

Text is folded to ASCII (accents dropped, typographic quotes and dashes straightened, anything
else becomes ``?``) and control characters are removed, so nothing a caller typed can turn into
a protocol line of its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from oohcore.channels import OutboundMessage

__all__ = ["FIELD_ORDER", "SEPARATOR", "ascii_text", "page_text"]

#: the case fields a page carries, in the priority order of spec 5.2.5 (a-d; e is the reference)
FIELD_ORDER: tuple[str, ...] = ("caller_name", "address", "phone", "details")
SEPARATOR = " / "
_ELLIPSIS = ".."
_SHORTEST_PART = 4  # a shortened item shorter than this tells the officer nothing

_PUNCTUATION = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "–": "-",
        "—": "-",
        "‐": "-",
        "‑": "-",
        "−": "-",
        "…": "...",
        "\u00a0": " ",
        "£": "GBP",
        "€": "EUR",
    }
)
_SPACES = re.compile(r"[ \t\f\v]+")


def ascii_text(text: str, *, multiline: bool = False) -> str:
    """``text`` as printable ASCII with single spaces; line breaks kept only if ``multiline``
    (as ``\\n``), otherwise joined with :data:`SEPARATOR`."""
    text = unicodedata.normalize("NFKD", text.translate(_PUNCTUATION))
    out: list[str] = []
    for ch in text:
        if ch in "\r\n":
            out.append("\n")
        elif ch.isascii():
            out.append(ch if ch.isprintable() or ch == "\t" else " ")
        elif unicodedata.combining(ch):
            continue  # the accent of a letter NFKD has split off
        elif unicodedata.category(ch).startswith("Z"):
            out.append(" ")
        else:
            out.append("?")
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(out).split("\n")]
    lines = [line for line in lines if line]
    return ("\n" if multiline else SEPARATOR).join(lines)


def _shorten(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    if room < _SHORTEST_PART + len(_ELLIPSIS):
        return ""
    return text[: room - len(_ELLIPSIS)].rstrip() + _ELLIPSIS


def _reference_of(message: OutboundMessage) -> str | None:
    ref = message.reference or message.fields.get("reference")
    if ref is None:
        return None
    text = ascii_text(str(ref))
    return text or None


def _from_fields(fields: Mapping[str, Any], limit: int, suffix: str) -> str:
    room = limit - len(suffix) - (len(SEPARATOR) if suffix else 0)
    parts: list[str] = []
    for name in FIELD_ORDER:
        value = fields.get(name)
        if value is None:
            continue
        item = ascii_text(str(value))
        if not item:
            continue
        needed = len(item) + (len(SEPARATOR) if parts else 0)
        if needed <= room:
            parts.append(item)
            room -= needed
            continue
        shortened = _shorten(item, room - (len(SEPARATOR) if parts else 0))
        if shortened:
            parts.append(shortened)
        break
    return SEPARATOR.join([*parts, suffix] if suffix else parts)


def page_text(message: OutboundMessage, limit: int, *, multiline: bool = False) -> str:
    """The text to page for ``message``, at most ``limit`` characters (see the module's notes).

    ``multiline``: keep the body's line breaks (for SNPP's DATA); otherwise one line.
    """
    if limit < 1:
        raise ValueError("a page's length limit must be positive")
    reference = _reference_of(message)
    suffix = f"Ref {reference}" if reference else ""
    body = ascii_text(message.body, multiline=multiline)
    if body and len(body) <= limit and (reference is None or reference in body):
        return body
    if len(suffix) >= limit:
        return suffix[:limit]
    if any(message.fields.get(name) not in (None, "") for name in FIELD_ORDER):
        return _from_fields(message.fields, limit, suffix)
    if reference is None:
        return _shorten(body, limit) or body[:limit]
    flat = ascii_text(message.body)
    room = limit - len(suffix) - len(SEPARATOR)
    head = _shorten(flat, room)
    return f"{head}{SEPARATOR}{suffix}" if head else suffix
