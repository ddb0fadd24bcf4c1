"""The page ledger: which messages were paged (so a key is paged once) and how many pages each
pager had lately (the per-pager rate limit). SQLite from the standard library.

With a ``path`` the ledger is a small SQLite file, so both survive a process restart and are
shared by every process of the host that points at the same file (SQLite's locking, WAL
journal). Without one it lives in memory and is per process: a restart forgets it, and the
rate limit and the de-duplication then start afresh.

The ledger holds idempotency keys, pager ids, times and the provider's reference, never the
text of a page (that is case data, kept by the host's store under its retention policy).

Every attempt goes through :meth:`PageLedger.begin` and then :meth:`PageLedger.finish`:

* ``begin`` answers, in one ``BEGIN IMMEDIATE`` transaction, :class:`Proceed` (and reserves a
  slot in the pager's window), :class:`Duplicate` (the key was paged already) or :class:`Wait`
  (the rate limit is reached, or another attempt of the same key is in flight);
* ``finish`` records the outcome: ``sent`` (the key is now a duplicate), ``failed`` (the
  provider certainly did not page: the slot is given back) or ``unknown`` (it may have paged,
  e.g. a time-out after SEND: the slot stays counted, and the key may be paged again).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path

from oohcore.channels import ChannelError
from oohcore.clock import Clock

from .config import PageRateLimit, PagerConfigError

__all__ = ["Duplicate", "Outcome", "PageLedger", "Proceed", "Wait"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    idempotency_key TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    pager TEXT NOT NULL,
    at REAL NOT NULL,
    state TEXT NOT NULL,
    provider_ref TEXT
);
CREATE INDEX IF NOT EXISTS pages_by_pager ON pages (channel, pager, at);
"""


class Outcome(Enum):
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Proceed:
    """Page now."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """This key was paged already."""

    provider_ref: str | None


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: try again after ``after``."""

    after: timedelta
    reason: str


class PageLedger:
    """Sent keys and recent pages per pager, in memory or in a SQLite file."""

    def __init__(
        self,
        path: Path | None,
        *,
        clock: Clock,
        rate_limit: PageRateLimit | None,
        keep_sent: timedelta = timedelta(days=14),
    ) -> None:
        self.path = path
        self._clock = clock
        self._rate = rate_limit
        self._keep_sent = keep_sent
        self._lock = threading.Lock()
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = sqlite3.connect(
                str(path) if path is not None else ":memory:",
                timeout=10,
                isolation_level=None,
                check_same_thread=False,
            )
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise PagerConfigError(
                f"the page ledger {path} cannot be opened ({exc}); set state_path to a "
                "writable file (its folder is created), or leave it unset to keep it in memory"
            ) from None

    def begin(
        self, channel: str, pager: str, key: str, *, lease: timedelta
    ) -> Proceed | Duplicate | Wait:
        """Decide whether ``key`` may be paged to ``pager`` now (see the module's notes)."""
        now = self._clock.now().timestamp()
        with self._lock:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                answer = self._begin(db, channel, pager, key, now, lease.total_seconds())
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return answer

    def _begin(
        self, db: sqlite3.Connection, channel: str, pager: str, key: str, now: float, lease: float
    ) -> Proceed | Duplicate | Wait:
        window = self._rate.per.total_seconds() if self._rate is not None else 0.0
        db.execute(
            "DELETE FROM pages WHERE (state != 'sent' AND at < ?) OR at < ?",
            (now - max(window, lease, 3600.0), now - self._keep_sent.total_seconds()),
        )
        row = db.execute(
            "SELECT state, at, provider_ref FROM pages WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if row is not None:
            state, at, ref = row
            if state == "sent":
                return Duplicate(ref)
            if state == "inflight" and at + lease > now:
                return Wait(
                    timedelta(seconds=at + lease - now),
                    "an earlier attempt of this message is still in progress",
                )
        if self._rate is not None:
            times = [
                at
                for (at,) in db.execute(
                    "SELECT at FROM pages WHERE channel = ? AND pager = ? AND idempotency_key != ?"
                    " AND state IN ('inflight', 'sent', 'unknown') AND at > ? ORDER BY at",
                    (channel, pager, key, now - window),
                )
            ]
            if len(times) >= self._rate.pages:
                frees_at = times[len(times) - self._rate.pages] + window
                return Wait(
                    timedelta(seconds=max(0.0, frees_at - now)),
                    f"rate limit: at most {self._rate.pages} page(s) to this pager per "
                    f"{_duration(self._rate.per)}",
                )
        db.execute(
            "INSERT INTO pages (idempotency_key, channel, pager, at, state) "
            "VALUES (?, ?, ?, ?, 'inflight') ON CONFLICT (idempotency_key) DO UPDATE SET "
            "channel = excluded.channel, pager = excluded.pager, at = excluded.at, "
            "state = 'inflight', provider_ref = NULL",
            (key, channel, pager, now),
        )
        return Proceed()

    def finish(self, key: str, outcome: Outcome, provider_ref: str | None = None) -> None:
        """Record how the attempt that :meth:`begin` let proceed ended."""
        with self._lock:
            db = self._open()
            if outcome is Outcome.FAILED:
                db.execute(
                    "DELETE FROM pages WHERE idempotency_key = ? AND state = 'inflight'", (key,)
                )
            else:
                db.execute(
                    "UPDATE pages SET state = ?, provider_ref = ? WHERE idempotency_key = ?",
                    (outcome.value, provider_ref, key),
                )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            raise ChannelError("the pager channel is closed; send is not called after close")
        return self._db


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
