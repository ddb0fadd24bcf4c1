"""Column types and values every store table shares: UTC timestamps and canonical JSON.

:class:`UTCDateTime` accepts only aware datetimes and returns aware UTC datetimes on every
backend; :func:`to_json` writes canonical JSON text (sorted keys, aware datetimes as ISO 8601
UTC) and refuses anything that is not JSON with :class:`JSONValueError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
)
from sqlalchemy.types import TypeDecorator

from oohcore.store.store import StoreError

__all__ = ["JSONValueError", "NaiveDatetimeError", "UTCDateTime", "to_json"]


class NaiveDatetimeError(StoreError, ValueError):
    """A timestamp without a time zone was given to the store."""


class JSONValueError(StoreError, TypeError):
    """A value cannot be stored as JSON."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that always comes back timezone-aware (UTC).

    PostgreSQL stores ``timestamptz``. SQLite has no date type: the value is stored as naive UTC
    text of fixed width (``YYYY-MM-DD HH:MM:SS.ffffff``), so text comparison in SQL (``due_at <=
    :now``) orders correctly, and the time zone is attached again when read. Naive datetimes are
    refused, because their meaning would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(
                f"{value!r} has no time zone; the store keeps aware UTC timestamps "
                "(use clock.now() or datetime(..., tzinfo=UTC))"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    # On SQLite the two processors below do in one step what process_*_param plus SQLAlchemy's
    # own SQLite DATETIME conversion do in two, producing and reading exactly the same text
    # (``YYYY-MM-DD HH:MM:SS.ffffff``); timestamps are bound on every hot statement, so the
    # saving matters. Other databases use the standard path.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None or value.utcoffset() is None:
                self.process_bind_param(value, dialect)  # raises NaiveDatetimeError
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        fromisoformat = datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            parsed = fromisoformat(value)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)

        return process


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise JSONValueError(f"{value!r} has no time zone; pass an aware datetime")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        raise JSONValueError("a set has no order; pass a sorted list")
    raise JSONValueError(
        f"a {type(value).__name__} cannot be stored as JSON; use str, int, float, bool, None, "
        "lists, dicts with string keys, or aware datetimes"
    )


def to_json(value: Any) -> str:
    """``value`` as canonical JSON text: sorted keys, no spaces, non-ASCII kept, no NaN.

    Aware datetimes become ISO 8601 UTC strings (microseconds), dates ISO strings, enums their
    values. Anything else that is not JSON raises :class:`JSONValueError`.
    """
    try:
        return _ENCODER.encode(value)
    except JSONValueError:
        raise
    except (TypeError, ValueError) as exc:
        raise JSONValueError(str(exc)) from exc


_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_json_default,
)
