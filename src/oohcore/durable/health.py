"""Health and back-pressure: how far behind the runners are, and a record when it is too far.

Every promise of the specification that has a clock (the referral time limit, 5.2.3.3 and 6.4 b;
escalation waits, 5.3.2; the lone-worker check-in) depends on the runners handling due work
soon after it falls due. The store already says how far behind they are, whatever runs them:

* **timer lag**: the age of the oldest timer that is due (``due_at <= now``) and neither fired
  nor cancelled;
* **message lag**: the age, from the moment it was first due, of the oldest message neither sent
  nor failed for good — a message waiting for a retry, or being sent under a runner's lease,
  has not been handled yet (a referral's time limit runs from the end of the call, 6.4 b, not
  from its last attempt); ``messages_due`` counts those a runner could attempt now
  (``next_attempt_at <= now``).

:func:`lag` reads both in one short read (each is one indexed ``MIN``/``COUNT``); :func:`read_lag`
does it on a :class:`~oohcore.store.Store`; :func:`prometheus` renders it in the Prometheus text
exposition format for a host to serve on its metrics endpoint (``oohcore health --prometheus``
prints the same). A runner given ``lag_threshold`` (:class:`oohcore.durable.runner.Runner`) checks its
lag after each tick and reports it (``TickReport.lag``); when lag passes the threshold an
**episode** is recorded in ``lag_episodes`` (:func:`watch`): one row when it starts, closed when
lag is back under the threshold — once per episode however many runners, processes or ticks see
it (a unique ``open_slot`` makes a second open episode impossible), and a warning is logged once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    String,
    Table,
    bindparam,
    func,
    select,
    update,
)

from oohcore.clock import as_utc
from oohcore.durable.outbox import outbox
from oohcore.durable.timers import timers
from oohcore.store import Store
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared, insert_ignoring_conflict

__all__ = [
    "EpisodeChange",
    "Health",
    "LagEpisode",
    "episodes",
    "health",
    "lag",
    "lag_episodes",
    "prometheus",
    "read_lag",
    "watch",
]

logger = logging.getLogger("oohcore.health")

_ID = BigInteger().with_variant(Integer(), "sqlite")

lag_episodes = Table(
    "lag_episodes",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # 1 while the episode is open, NULL once it has ended: UNIQUE, so at most one is open
    Column("open_slot", Integer(), nullable=True, unique=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("threshold_seconds", Float(), nullable=False),
    Column("lag_seconds", Float(), nullable=False),  # the lag seen when it started
    Column("worst_seconds", Float(), nullable=False),  # the worst lag seen during it
    Column("what", String(20), nullable=False),  # "timers" or "messages": the older one
)


@dataclass(frozen=True, slots=True)
class Health:
    """The runners' lag at ``now`` (see the module doc)."""

    now: datetime
    timers_due: int
    oldest_timer_due_at: datetime | None
    messages_due: int
    oldest_message_due_at: datetime | None
    open_episode_since: datetime | None = None

    @property
    def timer_lag(self) -> timedelta:
        return _age(self.now, self.oldest_timer_due_at)

    @property
    def message_lag(self) -> timedelta:
        return _age(self.now, self.oldest_message_due_at)

    @property
    def lag(self) -> timedelta:
        """The larger of the two."""
        return max(self.timer_lag, self.message_lag)

    @property
    def behind(self) -> str:
        """Which queue is furthest behind: ``"timers"`` or ``"messages"``."""
        return "timers" if self.timer_lag >= self.message_lag else "messages"

    def as_dict(self) -> dict[str, object]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at is not None else None

        return {
            "now": self.now.isoformat(),
            "timers_due": self.timers_due,
            "oldest_timer_due_at": iso(self.oldest_timer_due_at),
            "timer_lag_seconds": self.timer_lag.total_seconds(),
            "messages_due": self.messages_due,
            "oldest_message_due_at": iso(self.oldest_message_due_at),
            "message_lag_seconds": self.message_lag.total_seconds(),
            "lag_seconds": self.lag.total_seconds(),
            "lag_episode_since": iso(self.open_episode_since),
        }


def _age(now: datetime, due: datetime | None) -> timedelta:
    return max(timedelta(0), now - due) if due is not None else timedelta(0)


# Both read through the pending indexes (timers: fired_at, cancelled_at, due_at).
_timer_lag = Prepared(
    select(func.count(), func.min(timers.c.due_at)).where(
        timers.c.fired_at.is_(None),
        timers.c.cancelled_at.is_(None),
        timers.c.due_at <= bindparam("now"),
    )
)
_message_lag = Prepared(
    select(
        func.count().filter(outbox.c.next_attempt_at <= bindparam("now")),
        func.min(outbox.c.due_at),
    ).where(
        outbox.c.sent_at.is_(None),
        outbox.c.failed_at.is_(None),
        outbox.c.due_at <= bindparam("now"),
    )
)
_open_episode = Prepared(
    select(lag_episodes.c.id, lag_episodes.c.started_at, lag_episodes.c.worst_seconds).where(
        lag_episodes.c.open_slot == 1
    )
)
_worse = Prepared(
    update(lag_episodes)
    .where(lag_episodes.c.id == bindparam("b_id"), lag_episodes.c.worst_seconds < bindparam("w"))
    .values(worst_seconds=bindparam("w"))
)
_end = Prepared(
    update(lag_episodes)
    .where(lag_episodes.c.id == bindparam("b_id"), lag_episodes.c.open_slot == 1)
    .values(open_slot=None, ended_at=bindparam("at"))
)


def _utc(value: datetime | None) -> datetime | None:
    # MIN() of a UTCDateTime column comes back untyped on some backends (an ISO string on SQLite)
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def lag(conn: Connection, now: datetime) -> Health:
    """The runners' lag at ``now`` (logical time: what is due), read in ``conn``."""
    now = as_utc(now)
    n_timers, oldest_timer = _timer_lag.execute(conn, {"now": now}).first() or (0, None)
    n_messages, oldest_message = _message_lag.execute(conn, {"now": now}).first() or (0, None)
    episode = _open_episode.execute(conn).first()
    return Health(
        now=now,
        timers_due=int(n_timers or 0),
        oldest_timer_due_at=_utc(oldest_timer),
        messages_due=int(n_messages or 0),
        oldest_message_due_at=_utc(oldest_message),
        open_episode_since=_utc(episode[1]) if episode is not None else None,
    )


def read_lag(store: Store, now: datetime | None = None) -> Health:
    """:func:`lag` in a read of its own (``now`` defaults to the store's clock)."""
    at = as_utc(now) if now is not None else as_utc(store.clock.now())
    with store.read() as conn:
        return lag(conn, at)


health = read_lag  # the name a host looks for


class EpisodeChange(StrEnum):
    STARTED = "started"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class LagEpisode:
    """A recorded episode of lag over the threshold."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    threshold_seconds: float
    lag_seconds: float
    worst_seconds: float
    what: str


def watch(conn: Connection, seen: Health, threshold: timedelta) -> EpisodeChange | None:
    """Record an episode's start when ``seen.lag`` passes ``threshold`` and none is open, and
    its end when lag is back under it; run it in a transaction. Returns what this call changed
    (``None``: nothing, e.g. another runner already recorded the start)."""
    over = seen.lag > threshold
    worst = seen.lag.total_seconds()
    episode = _open_episode.execute(conn).first()
    if episode is None and over:
        created = insert_ignoring_conflict(
            conn,
            lag_episodes,
            "open_slot",
            {
                "open_slot": 1,
                "started_at": seen.now,
                "threshold_seconds": threshold.total_seconds(),
                "lag_seconds": worst,
                "worst_seconds": worst,
                "what": seen.behind,
            },
        )
        if created:
            logger.warning(
                "runner lag %.1f s passed the threshold of %.1f s (%d timers, %d messages due; "
                "%s furthest behind)",
                worst,
                threshold.total_seconds(),
                seen.timers_due,
                seen.messages_due,
                seen.behind,
            )
            return EpisodeChange.STARTED
        return None
    if episode is not None and over:
        if worst > float(episode[2]):
            _worse.execute(conn, {"b_id": episode[0], "w": worst})
        return None
    if episode is not None and _end.execute(conn, {"b_id": episode[0], "at": seen.now}).rowcount:
        logger.info("runner lag back under %.1f s", threshold.total_seconds())
        return EpisodeChange.ENDED
    return None


def episodes(conn: Connection) -> list[LagEpisode]:
    """Every recorded lag episode, oldest first."""
    c = lag_episodes.c
    rows = conn.execute(
        select(
            c.id,
            c.started_at,
            c.ended_at,
            c.threshold_seconds,
            c.lag_seconds,
            c.worst_seconds,
            c.what,
        ).order_by(c.id)
    )
    return [
        LagEpisode(int(r[0]), r[1], r[2], float(r[3]), float(r[4]), float(r[5]), str(r[6]))
        for r in rows
    ]


def prometheus(seen: Health) -> str:
    """``seen`` in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def metric(name: str, kind: str, text: str, value: float) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name} {value:g}")

    metric(
        "oohcore_timer_lag_seconds",
        "gauge",
        "Age of the oldest due timer not yet fired or cancelled.",
        seen.timer_lag.total_seconds(),
    )
    metric("oohcore_timers_due", "gauge", "Due timers not yet handled.", seen.timers_due)
    metric(
        "oohcore_message_lag_seconds",
        "gauge",
        "Age of the oldest due outbox message not yet sent or failed.",
        seen.message_lag.total_seconds(),
    )
    metric("oohcore_messages_due", "gauge", "Due messages not yet handled.", seen.messages_due)
    metric(
        "oohcore_lag_episode_open",
        "gauge",
        "1 while a lag episode (lag over the runners' threshold) is open.",
        1 if seen.open_episode_since is not None else 0,
    )
    return "\n".join(lines) + "\n"
