"""Query plans in tests: the statements a piece of code sends to SQLite, and SQLite's plan of one.

SQLite keeps no statistics, so a statement that reads the wrong index (a walk over every event of
an organisation for one call, say) is as fast as the right one on a test's small store and only
shows on a big one: the tests that guard against that hold the plan itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import event as sa_event

from oohcore.store import Store


@contextmanager
def statements(store: Store, marker: str) -> Iterator[list[tuple[str, Any]]]:
    """The ``(sql, parameters)`` of every statement containing ``marker`` that goes through
    ``store``'s SQLAlchemy engine while the block runs (statements of :class:`Prepared` on
    SQLite bypass it: plan those with :func:`plan` and their ``_plan_sqlite``)."""
    seen: list[tuple[str, Any]] = []

    def listen(_c: object, _cur: object, sql: str, params: Any, *_: object) -> None:
        if marker in sql and not sql.startswith("EXPLAIN"):
            seen.append((sql, params))

    sa_event.listen(store.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", listen)


def plan(conn: Connection, sql: str, params: Sequence[Any] = ()) -> str:
    """SQLite's ``EXPLAIN QUERY PLAN`` of ``sql``, its steps joined into one line."""
    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(params)).all()
    return " | ".join(str(row[-1]) for row in rows)
