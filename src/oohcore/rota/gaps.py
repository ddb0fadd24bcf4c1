"""Coverage gaps (issue 8 Build 4; 5.3.2, 6.4e, audit items 8-9): every period inside the hours
of service when a rota role that a live option's referral or escalation needs has nobody on one
of its stages.

The hours of service are each option's own (:class:`~oohcore.calendar.ServiceCalendar`: its
weekly hours, bank holidays, the Christmas period, in the organisation's time zone); time
outside them is never a gap. A role needed by several options is checked inside the union of
their hours. A role with no schedule at all is a gap for the whole of those hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from oohcore.calendar import ServiceCalendar
from oohcore.rota.schedule import RotaData
from oohcore.rulesets.compiler import Organisation

_STEP = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Gap:
    """``role`` has nobody on stage ``stage`` from ``start`` to ``end`` (UTC) while
    ``options`` are in service."""

    role: str
    stage: int
    start: datetime
    end: datetime
    options: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "stage": self.stage,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "options": list(self.options),
        }


def needed_roles(organisation: Organisation) -> dict[str, tuple[str, ...]]:
    """For each rota role some option's referral or escalation names, the options naming it."""
    roles: dict[str, list[str]] = {}
    for option in organisation.service_options.values():
        for action in option.actions.values():
            names = [getattr(action, "rota_role", None)]
            names += [
                getattr(s, "rota_role", None) for s in getattr(action, "escalation", None) or ()
            ]
            # a named escalation policy's notify steps (issue 8 item 5)
            policy = organisation.escalation_policies.get(getattr(action, "policy", None) or "")
            if policy is not None:
                names += [getattr(step, "notify", None) for step in policy.steps]
            for name in names:
                if isinstance(name, str) and option.id not in roles.setdefault(name, []):
                    roles[name].append(option.id)
    return {r: tuple(o) for r, o in sorted(roles.items())}


def open_periods(
    calendar: ServiceCalendar, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The periods in [start, end) when ``calendar`` is open."""
    t = start
    while t < end:
        nxt = calendar.next_change(t) or t + _STEP
        nxt = min(nxt, end)
        if calendar.is_open(t):
            yield t, nxt
        t = nxt


def _union(periods: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for s, e in sorted(periods):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def coverage_gaps(
    organisation: Organisation, data: RotaData, start: datetime, end: datetime
) -> list[Gap]:
    """Every gap in [start, end), by role, then stage, then time."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    tz = ZoneInfo(organisation.timezone)
    gaps: list[Gap] = []
    for role, option_ids in needed_roles(organisation).items():
        hours = _union(
            p
            for oid in option_ids
            for p in open_periods(
                ServiceCalendar(
                    organisation.service_options[oid].hours,
                    timezone=organisation.timezone,
                    nation=organisation.nation,
                ),
                start,
                end,
            )
        )
        if not hours:
            continue
        empty: dict[int, list[tuple[datetime, datetime]]] = {}
        for seg in data.timeline(role, start, end, tz):
            stages = seg.answer.stages or ()
            if not stages:
                empty.setdefault(1, []).append((seg.start, seg.end))
            for st in stages:
                if not st.officers:
                    empty.setdefault(st.number, []).append((seg.start, seg.end))
        for stage, periods in sorted(empty.items()):
            for s, e in _union(periods):
                for hs, he in hours:
                    lo, hi = max(s, hs), min(e, he)
                    if lo < hi:
                        gaps.append(Gap(role, stage, lo, hi, option_ids))
    return _merged(gaps)


def _merged(gaps: list[Gap]) -> list[Gap]:
    out: list[Gap] = []
    for g in gaps:
        last = out[-1] if out else None
        if last and (last.role, last.stage) == (g.role, g.stage) and last.end >= g.start:
            out[-1] = Gap(g.role, g.stage, last.start, max(last.end, g.end), g.options)
        else:
            out.append(g)
    return out


# a fortnight from a Monday with no clock change in it: restrictions are weekly wall-clock
# windows, so what a standing rota covers in it, it covers every week
_SAMPLE = datetime(2026, 1, 5)


def always_held(data: RotaData, role: str, tz: ZoneInfo) -> bool:
    """Whether ``role``'s general schedule has an officer at every moment, dated cover
    (overrides, the old format's dated assignments) left out: the holder an escalation's last
    stage can count on, whoever rings from wherever (5.3.2, audit item 9). Read from the rota
    as the engine reads it (:func:`oohcore.rota.read_rota`, either format of ``rota.yaml``)."""
    standing = RotaData(data.officers, data.roles)
    start = _SAMPLE.replace(tzinfo=tz)
    segments = standing.timeline(role, start, start + _STEP, tz)
    return bool(segments) and all(s.answer.officer is not None for s in segments)
