"""Author patterns (a question's ``pattern:``), matched in linear time.

A pattern is written by a council officer and matched against what a caller says, under the
store's write lock: Python's ``re`` backtracks, so ``(\\w+\\s?)+$`` takes seconds on a short
answer and doubles with every character (issue 7, defect 5). Patterns are compiled with RE2
(``google-re2``), whose matching time is linear in the text whatever the pattern; RE2 has no
backreferences (``\\1``) and no lookaround (``(?=…)``), and such a pattern is refused when the
ruleset loads. ``\\d``, ``\\w`` and ``\\s`` are ASCII in RE2: write ``\\pL`` for any letter.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

MAX_PATTERN_LENGTH = 500  # characters of a pattern
_MAX_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # our located message says it, not a line on stderr
    options.max_mem = _MAX_MEMORY
    return options


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern, or :class:`PatternError`."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "not a valid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"the pattern is not one oohcore can match in linear time: {reason} (no "
            "backreferences such as \\1 and no lookaround such as (?=...))"
        ) from None


def full_match(pattern: str, text: str) -> bool:
    """Whether all of ``text`` matches ``pattern`` (in time linear in ``text``)."""
    return compile_pattern(pattern).fullmatch(text) is not None
