"""``rota.yaml``: seed or replace an organisation's rota (2.1.3, 2.3.3, 14.4).

The old format (officers and assignments) still loads; the new one adds roles with stages,
layers and overrides (docs/rotas.md)::

    officers:
      - {id: j-patel, name: Jas Patel, phone: "07700 900123", email: j.patel@example.gov.uk,
         accepts: [sms, phone]}
    roles:
      - role: repairs-duty          # a rota role declared in organisation.yaml
        category: heating           # optional: this sub-category only (7.5)
        area: north                 # optional: this gazetteer ward or area only (7.5)
        stages:
          - layers:                 # stage 1; later layers over earlier ones
              - name: weeknights
                officers: [j-patel, a-khan]
                turn: 7d            # wall-clock turn length (d, h, m); absent: standing
                handoff: "2026-01-05T17:00"   # local time the first turn starts
                restrictions:
                  - {days: [weekdays], from: "17:00", to: "08:00"}
    overrides:
      - {role: repairs-duty, stage: 1, officer: a-khan, from: "2026-12-24T17:00",
         to: "2026-12-27T08:00", reason: "Christmas cover"}
    assignments:                    # the old format: standing (no from/to) or dated
      - {role: repairs-duty, officer: j-patel}

Local times are the organisation's wall clock; a time inside the spring-forward gap is refused
with its location and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from oohcore.errors import Problem, RulesetError
from oohcore.phones import e164
from oohcore.rota.model import OnCallAnswer, OnCallOfficer
from oohcore.rota.schedule import (
    Layer,
    Override,
    Restriction,
    RoleSchedule,
    RotaData,
    in_gap,
    parse_days,
)
from oohcore.rulesets.models import ID_PATTERN
from oohcore.rulesets.source import Source, read_yaml

ROTA_FILE = "rota.yaml"
_TURN = re.compile(r"^\s*(\d+)\s*([wdhm])\s*$")
_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Officer(_Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    name: str
    phone: str | None = None
    email: str | None = None
    pager: str | None = None
    accepts: list[str] = Field(default_factory=list)


class _Assignment(_Strict):
    role: Annotated[str, Field(pattern=ID_PATTERN)]
    officer: Annotated[str, Field(pattern=ID_PATTERN)]
    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")


class _Restriction(_Strict):
    days: list[str] = Field(default_factory=lambda: ["daily"])
    start: str = Field(alias="from")
    end: str = Field(alias="to")


class _Layer(_Strict):
    name: str
    officers: Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(min_length=1)]
    turn: str | None = None
    handoff: datetime | None = None
    restrictions: list[_Restriction] = Field(default_factory=list)


class _Stage(_Strict):
    layers: Annotated[list[_Layer], Field(min_length=1)]


class _Role(_Strict):
    role: Annotated[str, Field(pattern=ID_PATTERN)]
    category: str | None = None
    area: str | None = None
    stages: Annotated[list[_Stage], Field(min_length=1)]


class _Override(_Strict):
    role: Annotated[str, Field(pattern=ID_PATTERN)]
    officer: Annotated[str, Field(pattern=ID_PATTERN)]
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    stage: Annotated[int, Field(ge=1)] = 1
    reason: str = ""
    category: str | None = None
    area: str | None = None


class _RotaModel(_Strict):
    officers: list[_Officer]
    assignments: list[_Assignment] = Field(default_factory=list)
    roles: list[_Role] = Field(default_factory=list)
    overrides: list[_Override] = Field(default_factory=list)


class _Reader:
    def __init__(self, source: Source, tz: ZoneInfo, roles: Sequence[str] | Mapping[str, object]):
        self.source = source
        self.tz = tz
        self.roles = roles
        self.problems: list[Problem] = []

    def add(self, where: Sequence[str | int], message: str, code: str) -> None:
        self.problems.append(self.source.problem(where, message, code))

    def role(self, where: Sequence[str | int], role: str) -> None:
        if role not in self.roles:
            self.add(
                where,
                f"unknown rota role {role!r}; it must be declared in organisation.yaml",
                "unknown-role",
            )

    def officer(self, where: Sequence[str | int], oid: str, officers: Mapping[str, object]) -> bool:
        if oid not in officers:
            self.add(
                where, f"unknown officer {oid!r}; list them under 'officers'", "unknown-officer"
            )
            return False
        return True

    def local(self, where: Sequence[str | int], value: datetime) -> datetime | None:
        """``value`` as a UTC instant (a naive value is the organisation's wall clock)."""
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        if in_gap(value, self.tz):
            self.add(
                where,
                f"{value:%Y-%m-%d %H:%M} does not exist in {self.tz.key}: the clocks go forward "
                "over it (spring-forward gap); give a time before or after the gap",
                "rota-clock-gap",
            )
            return None
        return value.replace(tzinfo=self.tz, fold=0).astimezone(UTC)

    def naive(self, where: Sequence[str | int], value: datetime) -> datetime | None:
        if value.tzinfo is not None:
            value = value.astimezone(self.tz).replace(tzinfo=None)
        elif in_gap(value, self.tz):
            self.local(where, value)
            return None
        return value

    def clock_time(self, where: Sequence[str | int], text: str) -> time | None:
        try:
            return time.fromisoformat(text)
        except ValueError:
            self.add(where, f'{text!r} is not a time of day; write e.g. "17:00"', "rota-time")
            return None


def _located_pydantic(source: Source, exc: PydanticError) -> RulesetError:
    located: list[Problem] = []
    for err in exc.errors():
        msg = str(err["msg"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {err['loc'][-1]!r}"
        located.append(source.problem(tuple(err["loc"]), msg, "rota"))
    return RulesetError(located)


def read_rota(
    path: Path, *, timezone: str, roles: Sequence[str] | Mapping[str, object]
) -> RotaData:
    """Read ``path`` (either format) into a :class:`RotaData`; raise :class:`RulesetError`
    with located problems (file:line:col) when anything in it is wrong."""
    source = read_yaml(path)
    try:
        model = _RotaModel.model_validate(source.data)
    except PydanticError as exc:
        raise _located_pydantic(source, exc) from None
    r = _Reader(source, ZoneInfo(timezone), roles)
    officers: dict[str, OnCallOfficer] = {}
    for i, o in enumerate(model.officers):
        if o.id in officers:
            r.add(("officers", i, "id"), f"officer {o.id!r} is listed twice", "duplicate-id")
        if o.phone is not None and e164(o.phone) is None:  # replies are matched in E.164
            r.add(
                ("officers", i, "phone"),
                f"{o.phone[:40]!r} is not a telephone number; write it as dialled, "
                "e.g. '07700 900123'",
                "bad-number",
            )
        officers[o.id] = OnCallOfficer(o.id, o.name, o.phone, o.email, o.pager, tuple(o.accepts))
    schedules: dict[tuple[str, str | None, str | None], list[list[Layer]]] = {}
    for i, ro in enumerate(model.roles):
        r.role(("roles", i, "role"), ro.role)
        key = (ro.role, ro.category, ro.area)
        if key in schedules:
            r.add(
                ("roles", i),
                f"role {ro.role!r} is given twice for this category/area",
                "duplicate-id",
            )
        stages: list[list[Layer]] = []
        for s, st in enumerate(ro.stages):
            layers: list[Layer] = []
            for j, la in enumerate(st.layers):
                layer = _layer(r, ("roles", i, "stages", s, "layers", j), la, officers)
                if layer is not None:
                    layers.append(layer)
            stages.append(layers)
        schedules[key] = stages
    overrides: list[Override] = []
    dated: list[tuple[datetime, int, _Assignment]] = []
    for i, a in enumerate(model.assignments):
        where: tuple[str | int, ...] = ("assignments", i)
        r.role((*where, "role"), a.role)
        if not r.officer((*where, "officer"), a.officer, officers):
            continue
        if (a.start is None) != (a.end is None):
            r.add(
                where,
                "give both 'from' and 'to', or neither for a standing assignment",
                "rota-dates",
            )
            continue
        if a.start is None:
            stages = schedules.setdefault((a.role, None, None), [[]])
            stages[0].append(Layer(f"standing {a.officer}", (a.officer,)))
            continue
        assert a.end is not None
        start, end = r.local((*where, "from"), a.start), r.local((*where, "to"), a.end)
        if start is None or end is None:
            continue
        if end <= start:
            r.add((*where, "to"), "'to' must be after 'from'", "rota-dates")
            continue
        dated.append((start, i, a))
        overrides.append(Override(0, a.role, a.officer, start, end, 1, f"assignment {i + 1}"))
    # the old rule: the latest-starting dated assignment wins, so it gets the highest id
    overrides.sort(key=lambda o: o.start)
    for i, ov in enumerate(model.overrides):
        where = ("overrides", i)
        r.role((*where, "role"), ov.role)
        if not r.officer((*where, "officer"), ov.officer, officers):
            continue
        start, end = r.local((*where, "from"), ov.start), r.local((*where, "to"), ov.end)
        if start is None or end is None:
            continue
        if end <= start:
            r.add((*where, "to"), "'to' must be after 'from'", "rota-dates")
            continue
        overrides.append(
            Override(0, ov.role, ov.officer, start, end, ov.stage, ov.reason, ov.category, ov.area)
        )
    if r.problems:
        raise RulesetError(r.problems)
    data = RotaData(
        officers,
        tuple(
            RoleSchedule(role, tuple(tuple(s) for s in stages), cat, area)
            for (role, cat, area), stages in schedules.items()
        ),
    )
    for override in overrides:
        data = data.with_override(override)
    return data


def _layer(
    r: _Reader, where: tuple[str | int, ...], la: _Layer, officers: Mapping[str, object]
) -> Layer | None:
    ok = all([r.officer((*where, "officers", k), o, officers) for k, o in enumerate(la.officers)])
    turn: timedelta | None = None
    if la.turn is not None:
        m = _TURN.match(la.turn)
        if m is None or int(m.group(1)) == 0:
            r.add(
                (*where, "turn"),
                f"turn {la.turn!r}: write a length like 7d, 12h or 1w",
                "rota-turn",
            )
            ok = False
        else:
            turn = int(m.group(1)) * _UNITS[m.group(2)]
    handoff = r.naive((*where, "handoff"), la.handoff) if la.handoff is not None else None
    if turn is not None and la.handoff is None:
        r.add(
            where,
            "a layer with a 'turn' needs a 'handoff' (when the first turn starts)",
            "rota-turn",
        )
        ok = False
    if la.handoff is not None and handoff is None:
        ok = False
    restrictions: list[Restriction] = []
    for k, res in enumerate(la.restrictions):
        rw = (*where, "restrictions", k)
        try:
            days = parse_days(res.days)
        except ValueError as exc:
            r.add((*rw, "days"), str(exc), "rota-days")
            ok = False
            continue
        start = r.clock_time((*rw, "from"), res.start)
        end = r.clock_time((*rw, "to"), res.end)
        if start is None or end is None:
            ok = False
            continue
        restrictions.append(Restriction(days, start, end))
    if not ok:
        return None
    return Layer(la.name, tuple(la.officers), turn, handoff if turn else None, tuple(restrictions))


def check_rota_file(
    path: Path, *, timezone: str, roles: Sequence[str] | Mapping[str, object]
) -> None:
    """Check a ``rota.yaml`` alone (for ``oohcore validate``): raise :class:`RulesetError` with
    located problems when it is wrong; return None when it loads."""
    read_rota(path, timezone=timezone, roles=roles)


class RotaFile:
    """The rotas of one or more organisations held in memory, from their ``rota.yaml`` files
    (a :class:`~oohcore.rota.model.Rota`; the engine's own rota is :class:`StoreRota`)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[RotaData, ZoneInfo]] = {}

    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        return self.who_is_on_call(organisation_id, role, at).officer

    def who_is_on_call(
        self,
        organisation_id: str,
        role: str,
        at: datetime,
        *,
        category: str | None = None,
        area: str | None = None,
    ) -> OnCallAnswer:
        got = self._data.get(organisation_id)
        if got is None:
            return OnCallAnswer(role, at.astimezone(UTC))
        data, tz = got
        return data.answer(role, at, tz, category=category, area=area)

    def data(self, organisation_id: str) -> RotaData | None:
        got = self._data.get(organisation_id)
        return got[0] if got else None

    def add(
        self,
        organisation_id: str,
        path: Path,
        *,
        timezone: str,
        roles: Sequence[str] | Mapping[str, object],
    ) -> None:
        """Read ``path`` for ``organisation_id``; raise :class:`RulesetError` if it is wrong."""
        data = read_rota(path, timezone=timezone, roles=roles)
        self._data[organisation_id] = (data, ZoneInfo(timezone))
