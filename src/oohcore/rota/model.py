"""The rota's answer: officers, the stages of a role at a moment, and the :class:`Rota` protocol
the engine asks (2.1.3, 7.5, 14.4). No storage here: see :mod:`oohcore.rota.store`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

CONTACT_FIELDS = frozenset({"phone", "email", "pager"})


@dataclass(frozen=True, slots=True)
class OnCallOfficer:
    """A member of the organisation's On-call Duty Staff and how to reach them.

    ``accepts`` names the channels the officer accepts alerts on (e.g. ``("sms", "phone")``);
    empty means every channel they have a contact point for."""

    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    pager: str | None = None
    accepts: tuple[str, ...] = ()

    def contact(self, field: str) -> str | None:
        """The officer's contact point named ``field`` (``phone``, ``email``, ``pager``): the
        field a channel declares it sends to (``ChannelInfo.contact_field``)."""
        value = getattr(self, field, None) if field in CONTACT_FIELDS else None
        return value if isinstance(value, str) else None

    def accepts_channel(self, channel: str) -> bool:
        """True when the officer accepts alerts on ``channel`` (all, when ``accepts`` is empty)."""
        return not self.accepts or channel in self.accepts


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
