"""Which database errors are faults of the machine, and what a person is told about them.

The store (:mod:`oohcore.store`) turns every such fault into its documented ``StoreError`` in
one place, its transaction helper, so no raw driver error leaves the façade or the runner: a
host is told in plain words what happened and whether the same step may simply be tried again
(``retry_safe``). A step, its events, messages and timers are one transaction (DESIGN.md,
principle 8), so a fault before the commit leaves nothing behind and the retry records the step
once; only a connection lost *while the commit is on its way* leaves the outcome in doubt.

A fault of the machine: the database cannot be reached or is restarting (PostgreSQL closes its
connections), the disk is full, an I/O error, the connection pool is exhausted, the database
file is damaged. Errors of the statement itself (``IntegrityError``, ``DataError``,
``ProgrammingError``) and a concurrent transaction's conflict (:func:`oohcore.store.store.is_conflict`)
are not faults: they keep SQLAlchemy's classes, and the engine maps them to ``ConcurrentChange``
and ``InvalidArgument``.
"""

from __future__ import annotations

import sqlite3
import sys
from enum import Enum
from typing import Any

from sqlalchemy import exc as sa_exc

__all__ = ["Fault", "classify", "describe"]


class Fault(Enum):
    """What kind of fault a database error is."""

    UNAVAILABLE = "unavailable"  # may pass: unreachable, restarting, disk full, locked, I/O
    BUSY = "busy"  # SQLite: another writer kept the lock past the busy timeout
    DAMAGED = "damaged"  # the database file is not a database, or is corrupt: restore it


# PostgreSQL's SQLSTATEs for "another transaction got there first" (kept in step with
# oohcore.store.store.CONFLICT_SQLSTATES, which the engine turns into ConcurrentChange).
_CONFLICTS = frozenset({"40001", "40P01", "55P03", "23505"})
_PG_DAMAGED = frozenset({"XX001", "XX002"})  # data_corrupted, index_corrupted


def _driver_classes(error: BaseException) -> tuple[type[BaseException], ...] | None:
    """The DB-API module's (OperationalError, InterfaceError, InternalError, DatabaseError) of
    a raw driver error (PostgreSQL's), found on its own module."""
    module: Any = sys.modules.get(type(error).__module__.split(".")[0])
    names = ("OperationalError", "InterfaceError", "InternalError", "DatabaseError")
    found = [getattr(module, n, None) for n in names]
    if all(isinstance(c, type) and issubclass(c, BaseException) for c in found):
        return tuple(found)  # type: ignore[arg-type]
    return None


def classify(error: BaseException) -> Fault | None:
    """The fault ``error`` is, or None for an error of the statement or a conflict."""
    if isinstance(error, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return Fault.UNAVAILABLE  # the pool is exhausted, or a connection could not be had
    orig = getattr(error, "orig", None) or error
    if (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)) in _CONFLICTS:
        return None
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return Fault.UNAVAILABLE  # SQLAlchemy saw the connection die (a restart, a reset)
        return classify(orig) if orig is not error else None
    if isinstance(error, sqlite3.Error):
        return _sqlite_fault(error)
    classes = _driver_classes(error)
    if classes is None:
        return None
    operational, interface, internal, database = classes
    if getattr(error, "sqlstate", None) in _PG_DAMAGED:
        return Fault.DAMAGED
    # not DatabaseError's subclasses IntegrityError, DataError, ProgrammingError …
    if isinstance(error, (operational, interface, internal)) or type(error) is database:
        return Fault.UNAVAILABLE
    return None


# SQLite's primary result codes (https://sqlite.org/rescode.html): its OperationalError also
# covers errors of the statement ("no such table" is SQLITE_ERROR), so the code decides.
_SQLITE_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_DAMAGED = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
# SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL,
# SQLITE_NOLFS
_SQLITE_UNAVAILABLE = frozenset({7, 8, 10, 13, 14, 15, 22})


def _sqlite_fault(error: sqlite3.Error) -> Fault | None:
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    primary = code & 0xFF
    if primary in _SQLITE_BUSY:
        return Fault.BUSY
    if primary in _SQLITE_DAMAGED:
        return Fault.DAMAGED
    return Fault.UNAVAILABLE if primary in _SQLITE_UNAVAILABLE else None


def _reason(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def describe(fault: Fault, error: BaseException, where: str, *, in_doubt: bool) -> str:
    """The message for people: what happened to the store at ``where`` and what to do."""
    reason = _reason(error)
    if fault is Fault.DAMAGED:
        return (
            f"the database at {where} is damaged ({reason}): nothing more can be written to "
            "it; stop the service, restore the database from a backup and run "
            "`oohcore audit verify`"
        )
    if in_doubt:
        return (
            f"the connection to the database at {where} was lost while the step was being "
            f"committed ({reason}): it may or may not have been recorded. Read the call back "
            "(desk.get, desk.events) once the database is back before trying the step again"
        )
    if fault is Fault.BUSY:
        return (
            f"the database at {where} stayed locked by another process for longer than the busy "
            f"timeout ({reason}); nothing was written: try the step again (the other process "
            "may be stuck, or the timeout too short)"
        )
    hint = ""
    if "full" in reason.lower() or "space" in reason.lower():
        hint = " (free disk space where the database lives)"
    return (
        f"the database at {where} cannot be used just now ({reason}){hint}; nothing was "
        "written: try the step again once the database is back"
    )
