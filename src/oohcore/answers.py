"""Checking a caller's answers against the script's questions (5.3.3, 7.4.1, 7.11).

Each answer is turned into the one form the decision, templates and reports rely on: numbers
within the question's bounds, yes/no as booleans, choices among the question's options, UK
telephone numbers as digits, postcodes normalised (``SW1A 1AA``), dates ISO, times ``HH:MM``,
text within its length and pattern.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from oohcore.rulesets.models import DEFAULT_TEXT_LENGTH, Question, QuestionType
from oohcore.rulesets.patterns import full_match
from oohcore.search.addresses import InvalidPostcode, normalise_postcode

_PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")
_NUMBER_RE = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?\Z", re.ASCII
)
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def clean_answer(q: Question, value: Any) -> Any:
    """The stored form of one answer to ``q``, or :class:`ValueError` with a message for the
    call handler."""
    t = q.type
    if t is QuestionType.number:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("expected a number")
        if isinstance(value, str):
            # ASCII digits only: float() would also take "1_0", "٣" (Arabic-Indic three),
            # "nan" and "inf", none of which a call handler means as a number
            if not _NUMBER_RE.match(value.strip()):
                raise ValueError(f"{value[:40]!r} is not a number")
            number = float(value)
        else:
            number = value
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a number")
        if q.min is not None and number < q.min:
            raise ValueError(f"{number} is below the minimum {q.min:g}")
        if q.max is not None and number > q.max:
            raise ValueError(f"{number} is above the maximum {q.max:g}")
        return number
    if t is QuestionType.yes_no:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("yes", "y", "no", "n"):
            return value.strip().lower().startswith("y")
        raise ValueError("expected yes or no")
    if t is QuestionType.choice:
        if not isinstance(value, str) or value not in (q.options or {}):
            raise ValueError(f"{value!r} is not one of: {', '.join(q.options or {})}")
        return value
    if t is QuestionType.choices:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple, set, frozenset)):
            raise ValueError("expected a list of choices")
        bad = [v for v in items if v not in (q.options or {})]
        if bad:
            raise ValueError(f"{', '.join(map(str, bad))} not among: {', '.join(q.options or {})}")
        return sorted(set(items))
    if not isinstance(value, str):
        raise ValueError("expected text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a character that is not valid text (a lone surrogate)") from None
    text = value.strip()
    # every answer given as text has a maximum (issue 7, 5): the question's, else the default,
    # checked before any other work is done on it
    limit = q.max_length if q.max_length is not None else DEFAULT_TEXT_LENGTH
    if len(text) > limit:
        raise ValueError(f"longer than {limit} characters")
    if t is QuestionType.phone:
        digits = re.sub(r"[\s()-]", "", text)
        if not _PHONE_RE.match(digits):
            raise ValueError(f"{value!r} is not a telephone number")
        return digits
    if t is QuestionType.postcode:
        try:
            return normalise_postcode(text)
        except InvalidPostcode as exc:
            raise ValueError(str(exc)) from None
    if t is QuestionType.date:
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if t is QuestionType.time:
        if not _TIME_RE.match(text):
            raise ValueError(f"{value!r} is not a time (HH:MM)")
        return text
    if q.pattern is not None and not full_match(q.pattern, text):
        raise ValueError("does not have the expected form")
    return text
