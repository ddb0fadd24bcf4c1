"""A rota's schedule and how it answers "who is on call" (2.1.3, 2.3.3, 7.5, 13.3c, 14.4).

Pure data and arithmetic, no storage. A :class:`RotaData` holds an organisation's officers, its
role schedules and its overrides. A role (optionally for one sub-category or area, 7.5) has
ordered **stages**; each stage is **layers**, later layers over earlier ones, and
**overrides** lie over all layers of their stage (taking effect now or on a future date).

A layer is either a rotation -- officers in turn, a turn length and a handoff time, optionally
restricted to windows such as "weekdays 17:00-08:00" -- or explicit shifts (an imported
iCalendar).

**Wall clock.** Turn lengths, handoffs and restriction windows are in the organisation's wall
clock (Europe/London), never in elapsed hours: a daily turn handed off at 17:00 hands off at
17:00 every day, so the shift across a clock change lasts 23 hours in spring and 25 in autumn,
as long as the clock says. Two documented answers:

* A wall time that happens twice (01:30 on 2026-10-25) is taken at its *first* occurrence
  (BST, ``fold=0``) for handoffs and window edges. Between the two occurrences the turn that
  started at the first stays on: it never flips back at the second.
* A wall time that does not exist (01:30 on 2026-03-29, inside the spring-forward gap) is
  refused in a rota file (a located error naming the gap); a rotation whose handoff falls there
  on one night hands off at the moment the clock jumps (02:00 BST, 01:00 UTC).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from oohcore.rota.model import OnCallAnswer, OnCallOfficer, OnCallStage

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS: Mapping[str, tuple[int, ...]] = {
    "weekdays": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "daily": (0, 1, 2, 3, 4, 5, 6),
}


def in_gap(naive: datetime, tz: ZoneInfo) -> bool:
    """True when the wall time ``naive`` does not exist in ``tz`` (a spring-forward gap)."""
    back = naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return back != naive


def wall_to_utc(naive: datetime, tz: ZoneInfo) -> datetime:
    """The instant the wall clock of ``tz`` reads ``naive``: the first occurrence when it
    happens twice, the moment the clock jumps when it falls in a gap (module docstring)."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if not in_gap(naive, tz):
        return first
    # the gap: the earliest instant whose wall time is at or after ``naive``
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class Restriction:
    """A window a layer is on for: starting on ``days`` (0 = Monday) at ``start``, ending at
    ``end`` the same day, or the next day when ``end`` is not after ``start``."""

    days: tuple[int, ...]
    start: time
    end: time

    def windows(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.days:
            return None
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return (
            wall_to_utc(datetime.combine(day, self.start), tz),
            wall_to_utc(datetime.combine(end_day, self.end), tz),
        )

    def text(self) -> str:
        return f"{','.join(DAYS[d] for d in self.days)} {self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class Shift:
    """An explicit shift of an imported calendar: ``officer`` holds it from ``start`` to
    ``end`` (UTC instants)."""

    start: datetime
    end: datetime
    officer: str


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of a stage: a rotation (``officers`` in turn, each for ``turn`` of wall clock,
    the first turn from ``handoff``, a naive local time) or, with ``shifts``, explicit shifts.
    ``turn`` None: the first officer stands (no rotation)."""

    name: str
    officers: tuple[str, ...] = ()
    turn: timedelta | None = None
    handoff: datetime | None = None
    restrictions: tuple[Restriction, ...] = ()
    shifts: tuple[Shift, ...] = ()

    def _turn_start(self, k: int) -> datetime:
        assert self.handoff is not None and self.turn is not None
        return self.handoff + k * self.turn

    def turn_at(self, at: datetime, tz: ZoneInfo) -> int:
        """The index of the turn in progress at ``at`` (0 for a standing layer)."""
        if self.turn is None or self.handoff is None:
            return 0
        local = at.astimezone(tz).replace(tzinfo=None)
        k = (local - self.handoff) // self.turn
        while wall_to_utc(self._turn_start(k), tz) > at:
            k -= 1
        while wall_to_utc(self._turn_start(k + 1), tz) <= at:
            k += 1
        return k

    def on(self, at: datetime, tz: ZoneInfo) -> bool:
        """True when a restriction window (or no restriction at all) covers ``at``."""
        if not self.restrictions:
            return True
        today = at.astimezone(tz).date()
        for r in self.restrictions:
            for day in (today, today - timedelta(days=1)):
                w = r.windows(day, tz)
                if w is not None and w[0] <= at < w[1]:
                    return True
        return False

    def holders(self, at: datetime, tz: ZoneInfo) -> tuple[tuple[str, ...], str] | None:
        """The officers of this layer at ``at``, the one in turn first, and why; None when the
        layer does not cover ``at``."""
        if self.shifts:
            for s in self.shifts:
                if s.start <= at < s.end:
                    return (s.officer,), f"layer {self.name!r} shift {s.start:%Y-%m-%d %H:%M}Z"
            return None
        if not self.officers or not self.on(at, tz):
            return None
        if self.turn is None:
            return self.officers, f"layer {self.name!r}"
        k = self.turn_at(at, tz)
        i = k % len(self.officers)
        order = self.officers[i:] + self.officers[:i]
        start = self._turn_start(k)
        return order, f"layer {self.name!r}, turn from {start:%Y-%m-%d %H:%M}"

    def boundaries(self, start: datetime, end: datetime, tz: ZoneInfo) -> Iterable[datetime]:
        """Every instant in [start, end) where this layer's answer may change."""
        for s in self.shifts:
            yield s.start
            yield s.end
        if self.turn is not None and self.handoff is not None:
            k = self.turn_at(start, tz)
            while True:
                b = wall_to_utc(self._turn_start(k), tz)
                if b >= end:
                    break
                yield b
                k += 1
        if self.restrictions:
            day = start.astimezone(tz).date() - timedelta(days=1)
            last = end.astimezone(tz).date() + timedelta(days=1)
            while day <= last:
                for r in self.restrictions:
                    w = r.windows(day, tz)
                    if w is not None:
                        yield from w
                day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Override:
    """``officer`` holds stage ``stage`` of ``role`` from ``start`` to ``end`` (UTC), over
    every layer (2.3.3, 14.4). The latest override (highest ``id``) wins where they overlap."""

    id: int
    role: str
    officer: str
    start: datetime
    end: datetime
    stage: int = 1
    reason: str = ""
    category: str | None = None
    area: str | None = None


@dataclass(frozen=True, slots=True)
class RoleSchedule:
    """The ordered stages of a role, each a tuple of layers (stage 1 first), optionally for one
    sub-category or area (7.5)."""

    role: str
    stages: tuple[tuple[Layer, ...], ...]
    category: str | None = None
    area: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A period of a timeline during which the answer does not change."""

    start: datetime
    end: datetime
    answer: OnCallAnswer


def _key(answer: OnCallAnswer) -> tuple[tuple[int, tuple[str, ...], str], ...]:
    return tuple((s.number, tuple(o.id for o in s.officers), s.because) for s in answer.stages)


@dataclass(frozen=True)
class RotaData:
    """An organisation's whole rota: officers, role schedules, overrides."""

    officers: Mapping[str, OnCallOfficer] = field(default_factory=dict)
    roles: tuple[RoleSchedule, ...] = ()
    overrides: tuple[Override, ...] = ()

    # -- answering -------------------------------------------------------------------------

    @cached_property
    def _overrides_of(
        self,
    ) -> dict[str, tuple[list[datetime], tuple[Override, ...], timedelta]]:
        """Per role: the overrides sorted by start, their starts, and the longest one (so an
        answer looks only at those that can cover the moment)."""
        out: dict[str, tuple[list[datetime], tuple[Override, ...], timedelta]] = {}
        for role in {o.role for o in self.overrides}:
            ordered = tuple(
                sorted((o for o in self.overrides if o.role == role), key=lambda o: o.start)
            )
            longest = max((o.end - o.start for o in ordered), default=timedelta(0))
            out[role] = ([o.start for o in ordered], ordered, longest)
        return out

    def schedule(
        self, role: str, category: str | None = None, area: str | None = None
    ) -> RoleSchedule | None:
        """The schedule for ``role``: the one for this category and area, else this category,
        else this area, else the role's general one."""
        best: RoleSchedule | None = None
        best_rank = -1
        for r in self.roles:
            if r.role != role:
                continue
            if r.category is not None and r.category != category:
                continue
            if r.area is not None and r.area != area:
                continue
            rank = (2 if r.category is not None else 0) + (1 if r.area is not None else 0)
            if rank > best_rank:
                best, best_rank = r, rank
        return best

    def answer(
        self,
        role: str,
        at: datetime,
        tz: ZoneInfo,
        *,
        category: str | None = None,
        area: str | None = None,
    ) -> OnCallAnswer:
        at = at.astimezone(UTC)
        sched = self.schedule(role, category, area)
        n_stages = len(sched.stages) if sched else 0
        scope = (sched.category, sched.area) if sched else (None, None)
        winning: dict[int, Override] = {}
        starts, ordered, longest = self._overrides_of.get(role, ((), (), timedelta(0)))
        hi = bisect_right(starts, at)
        lo = bisect_left(starts, at - longest, 0, hi)
        for o in ordered[lo:hi]:
            if (
                at < o.end
                and (o.category, o.area) == scope
                and (o.stage not in winning or o.id > winning[o.stage].id)
            ):
                winning[o.stage] = o
        n_stages = max([n_stages, *winning])
        stages: list[OnCallStage] = []
        for number in range(1, n_stages + 1):
            ids: tuple[str, ...] = ()
            because = "nobody"
            layers = sched.stages[number - 1] if sched and number <= len(sched.stages) else ()
            for layer in reversed(layers):
                got = layer.holders(at, tz)
                if got is not None:
                    ids, because = got
                    break
            won = winning.get(number)
            if won is not None:
                ids = (won.officer, *(i for i in ids if i != won.officer))
                because = f"override #{won.id}" + (f": {won.reason}" if won.reason else "")
            officers = tuple(self.officers[i] for i in ids if i in self.officers)
            stages.append(OnCallStage(number, officers, because))
        return OnCallAnswer(role, at, tuple(stages))

    def timeline(
        self,
        role: str,
        start: datetime,
        end: datetime,
        tz: ZoneInfo,
        *,
        category: str | None = None,
        area: str | None = None,
    ) -> list[Segment]:
        """The answers for ``role`` over [start, end), one segment per unchanged answer."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        points = {start}
        sched = self.schedule(role, category, area)
        for layers in sched.stages if sched else ():
            for layer in layers:
                points.update(b for b in layer.boundaries(start, end, tz) if start < b < end)
        for o in self.overrides:
            if o.role == role:
                points.update(b for b in (o.start, o.end) if start < b < end)
        segments: list[Segment] = []
        for t in sorted(points):
            a = self.answer(role, t, tz, category=category, area=area)
            if segments and _key(segments[-1].answer) == _key(a):
                continue
            if segments:
                segments[-1] = replace(segments[-1], end=t)
            segments.append(Segment(t, end, a))
        return segments

    # -- changing --------------------------------------------------------------------------

    def with_officer(self, officer: OnCallOfficer) -> RotaData:
        return replace(self, officers={**self.officers, officer.id: officer})

    def with_role(self, schedule: RoleSchedule) -> RotaData:
        """Replace (or add) the schedule of ``schedule``'s role, category and area."""
        same = (schedule.role, schedule.category, schedule.area)
        kept = tuple(r for r in self.roles if (r.role, r.category, r.area) != same)
        return replace(self, roles=(*kept, schedule))

    def with_override(self, override: Override) -> RotaData:
        next_id = max((o.id for o in self.overrides), default=0) + 1
        return replace(self, overrides=(*self.overrides, replace(override, id=next_id)))

    def without_override(self, override_id: int) -> RotaData:
        return replace(self, overrides=tuple(o for o in self.overrides if o.id != override_id))

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "officers": [
                {
                    "id": o.id,
                    "name": o.name,
                    "phone": o.phone,
                    "email": o.email,
                    "pager": o.pager,
                    "accepts": list(o.accepts),
                }
                for o in self.officers.values()
            ],
            "roles": [
                {
                    "role": r.role,
                    "category": r.category,
                    "area": r.area,
                    "stages": [[_layer_json(la) for la in layers] for layers in r.stages],
                }
                for r in self.roles
            ],
            "overrides": [
                {
                    "id": o.id,
                    "role": o.role,
                    "officer": o.officer,
                    "start": o.start.isoformat(),
                    "end": o.end.isoformat(),
                    "stage": o.stage,
                    "reason": o.reason,
                    "category": o.category,
                    "area": o.area,
                }
                for o in self.overrides
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RotaData:
        officers = {
            o["id"]: OnCallOfficer(
                o["id"], o["name"], o["phone"], o["email"], o["pager"], tuple(o["accepts"])
            )
            for o in data["officers"]
        }
        roles = tuple(
            RoleSchedule(
                r["role"],
                tuple(tuple(_layer_from(la) for la in layers) for layers in r["stages"]),
                r["category"],
                r["area"],
            )
            for r in data["roles"]
        )
        overrides = tuple(
            Override(
                o["id"],
                o["role"],
                o["officer"],
                datetime.fromisoformat(o["start"]),
                datetime.fromisoformat(o["end"]),
                o["stage"],
                o["reason"],
                o["category"],
                o["area"],
            )
            for o in data["overrides"]
        )
        return cls(officers, roles, overrides)


def _layer_json(layer: Layer) -> dict[str, Any]:
    return {
        "name": layer.name,
        "officers": list(layer.officers),
        "turn_s": layer.turn.total_seconds() if layer.turn else None,
        "handoff": layer.handoff.isoformat() if layer.handoff else None,
        "restrictions": [
            {"days": list(r.days), "start": r.start.isoformat(), "end": r.end.isoformat()}
            for r in layer.restrictions
        ],
        "shifts": [[s.start.isoformat(), s.end.isoformat(), s.officer] for s in layer.shifts],
    }


def _layer_from(d: Mapping[str, Any]) -> Layer:
    return Layer(
        d["name"],
        tuple(d["officers"]),
        timedelta(seconds=d["turn_s"]) if d["turn_s"] is not None else None,
        datetime.fromisoformat(d["handoff"]) if d["handoff"] else None,
        tuple(
            Restriction(
                tuple(r["days"]), time.fromisoformat(r["start"]), time.fromisoformat(r["end"])
            )
            for r in d["restrictions"]
        ),
        tuple(
            Shift(datetime.fromisoformat(a), datetime.fromisoformat(b), o)
            for a, b, o in d["shifts"]
        ),
    )


def parse_days(words: Sequence[str]) -> tuple[int, ...]:
    """Day names (``mon``..``sun``, ``weekdays``, ``weekends``, ``daily``) as weekday numbers;
    raises ValueError naming an unknown word."""
    out: set[int] = set()
    for w in words:
        w = w.lower()[:3] if w.lower()[:3] in DAYS else w.lower()
        if w in DAYS:
            out.add(DAYS.index(w))
        elif w in DAY_GROUPS:
            out.update(DAY_GROUPS[w])
        else:
            raise ValueError(f"unknown day {w!r}; use mon..sun, weekdays, weekends or daily")
    return tuple(sorted(out))
