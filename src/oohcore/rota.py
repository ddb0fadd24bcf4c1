"""Who is on call: the organisation's rota of On-call Duty Staff (2.1.3, 7.5, 14.4).

A rota is Regularly Variable Data (2.3.3): it changes without a ruleset change. The engine asks
one question of it — *who holds this rota role at this moment?* — through the :class:`Rota`
protocol, so a host can answer from its own rota system. :class:`RotaFile` is the reference
implementation, read from ``rota.yaml`` beside ``organisation.yaml``::

    officers:
      - id: j-patel
        name: Jas Patel
        phone: "07700 900123"
        email: j.patel@example-borough.gov.uk
        pager: "1234567"
    assignments:
      - role: repairs-duty          # a rota role declared in organisation.yaml
        officer: j-patel            # standing assignment: no from/to
      - role: repairs-duty
        officer: a-khan
        from: "2026-11-20T17:00"    # local time (the organisation's time zone)
        to: "2026-11-23T08:00"

A dated assignment covering the moment wins over a standing one (the latest-starting if several
overlap), so pre-dated changes (14.4) take effect on time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from oohcore.clock import as_utc
from oohcore.errors import Problem, RulesetError
from oohcore.rulesets.models import ID_PATTERN
from oohcore.rulesets.source import read_yaml

ROTA_FILE = "rota.yaml"
_CONTACT_FIELDS = frozenset({"phone", "email", "pager"})


@dataclass(frozen=True, slots=True)
class OnCallOfficer:
    """A member of the organisation's On-call Duty Staff and how to reach them."""

    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    pager: str | None = None

    def contact(self, field: str) -> str | None:
        """The officer's contact point named ``field`` (``phone``, ``email``, ``pager``): the
        field a channel declares it sends to (``ChannelInfo.contact_field``)."""
        value = getattr(self, field, None) if field in _CONTACT_FIELDS else None
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class OnCallStage:
    """One stage of a rota role at a moment: the officers on it, the one in turn first, and why
    they hold it (the layer or override that put them there), for "who is on call" answers."""

    number: int
    officers: tuple[OnCallOfficer, ...]
    because: str = ""


@dataclass(frozen=True, slots=True)
class OnCallAnswer:
    """Who is on call for a rota role at a moment: its ordered stages (stage 1 first)."""

    role: str
    at: datetime
    stages: tuple[OnCallStage, ...] = ()

    @property
    def officer(self) -> OnCallOfficer | None:
        """The officer in turn on the first stage that has anyone, or None."""
        for stage in self.stages:
            if stage.officers:
                return stage.officers[0]
        return None

    def stage(self, number: int) -> OnCallStage | None:
        """Stage ``number`` (1-based), or None when the role has no such stage."""
        for stage in self.stages:
            if stage.number == number:
                return stage
        return None


class Rota(Protocol):
    """The question the engine asks of a rota. A host may answer it from its own rota system."""

    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        """Who holds ``role`` for the organisation at ``at``, or None when nobody does."""
        ...

    def who_is_on_call(
        self,
        organisation_id: str,
        role: str,
        at: datetime,
        *,
        category: str | None = None,
        area: str | None = None,
    ) -> OnCallAnswer:
        """The ordered stages of ``role`` at ``at`` (optionally for a sub-category or area)."""
        ...


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Officer(_Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    name: str
    phone: str | None = None
    email: str | None = None
    pager: str | None = None


class _Assignment(_Strict):
    role: Annotated[str, Field(pattern=ID_PATTERN)]
    officer: Annotated[str, Field(pattern=ID_PATTERN)]
    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")


class _RotaModel(_Strict):
    officers: list[_Officer]
    assignments: list[_Assignment] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Slot:
    officer: OnCallOfficer
    start: datetime | None
    end: datetime | None


class RotaFile:
    """The rotas of one or more organisations, from their ``rota.yaml`` files."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], list[_Slot]] = {}

    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        at = as_utc(at)
        standing: OnCallOfficer | None = None
        best: _Slot | None = None
        for slot in self._slots.get((organisation_id, role), ()):
            if slot.start is None:
                standing = slot.officer
            elif (
                slot.end is not None
                and slot.start <= at < slot.end
                and (best is None or (best.start is not None and slot.start > best.start))
            ):
                best = slot
        return best.officer if best else standing

    def who_is_on_call(
        self,
        organisation_id: str,
        role: str,
        at: datetime,
        *,
        category: str | None = None,
        area: str | None = None,
    ) -> OnCallAnswer:
        officer = self.on_call(organisation_id, role, at)
        stages = (OnCallStage(1, (officer,), "rota.yaml"),) if officer else ()
        return OnCallAnswer(role, as_utc(at), stages)

    def add(
        self,
        organisation_id: str,
        path: Path,
        *,
        timezone: str,
        roles: Sequence[str] | Mapping[str, object],
    ) -> None:
        """Read ``path`` for ``organisation_id``; raise :class:`RulesetError` if it is wrong."""
        source = read_yaml(path)
        try:
            model = _RotaModel.model_validate(source.data)
        except PydanticError as exc:
            located: list[Problem] = []
            for err in exc.errors():
                msg = str(err["msg"])
                if err["type"] == "extra_forbidden":
                    msg = f"unknown key {err['loc'][-1]!r}"
                located.append(source.problem(tuple(err["loc"]), msg, "rota"))
            raise RulesetError(located) from None
        tz = ZoneInfo(timezone)
        problems: list[Problem] = []
        officers: dict[str, OnCallOfficer] = {}
        for i, o in enumerate(model.officers):
            if o.id in officers:
                problems.append(
                    source.problem(
                        ("officers", i, "id"), f"officer {o.id!r} is listed twice", "duplicate-id"
                    )
                )
            officers[o.id] = OnCallOfficer(o.id, o.name, o.phone, o.email, o.pager)
        slots: dict[tuple[str, str], list[_Slot]] = {}
        for i, a in enumerate(model.assignments):
            where = ("assignments", i)
            if a.role not in roles:
                problems.append(
                    source.problem(
                        (*where, "role"),
                        f"unknown rota role {a.role!r}; it must be declared in organisation.yaml",
                        "unknown-role",
                    )
                )
            officer = officers.get(a.officer)
            if officer is None:
                problems.append(
                    source.problem(
                        (*where, "officer"),
                        f"unknown officer {a.officer!r}; list them under 'officers'",
                        "unknown-officer",
                    )
                )
                continue
            if (a.start is None) != (a.end is None):
                problems.append(
                    source.problem(
                        where,
                        "give both 'from' and 'to', or neither for a standing assignment",
                        "rota-dates",
                    )
                )
                continue
            start = _local(a.start, tz)
            end = _local(a.end, tz)
            if start is not None and end is not None and end <= start:
                problems.append(
                    source.problem((*where, "to"), "'to' must be after 'from'", "rota-dates")
                )
                continue
            slots.setdefault((organisation_id, a.role), []).append(_Slot(officer, start, end))
        if problems:
            raise RulesetError(problems)
        for key in [k for k in self._slots if k[0] == organisation_id]:
            del self._slots[key]
        self._slots.update(slots)


def _local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return as_utc(value)
