"""A call's context: everything a step is decided on (row, option version, field values, now).

:class:`CallContext` is built by the façade from what it read in the step's transaction; the
step functions (:mod:`.steps`) and the action handlers (:mod:`.actions`) read it and nothing
else, so they are testable without a database. ``on_call`` answers "who holds this rota role
at this moment" (the rota is living data, 2.3.3) and ``contact_field`` says which of an
officer's contact points a logical channel sends to (each channel declares it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from oohcore.calendar import ServiceCalendar, active_variant, local_fields
from oohcore.directory import Contact as DirectoryContact
from oohcore.directory import placeholders
from oohcore.engine.rows import CallRow
from oohcore.rota import OnCallOfficer
from oohcore.rulesets.compiler import Organisation, ServiceOption
from oohcore.rulesets.models import Hours, UkNation, format_duration

__all__ = ["DEFAULT_CONTACT_FIELDS", "CallContext", "OnCall", "hours_at"]

OnCall = Callable[[str, datetime], OnCallOfficer | None]
"""``on_call(role, at)``: the officer holding ``role`` at ``at``, or None."""

OnCallStageOf = Callable[[str, int, datetime], tuple[OnCallOfficer, ...]]
"""``on_call_stage(role, number, at)``: the officers on rota stage ``number`` of ``role``, the
one in turn first (an escalation policy's notify step, issue 8 item 5)."""

Directory = Callable[[str], DirectoryContact | None]
"""``directory(contact_id)``: the organisation's directory entry as it stands now (2.3.3)."""

DEFAULT_CONTACT_FIELDS: Mapping[str, str | None] = {
    "sms": "phone",
    "phone": "phone",
    "email": "email",
    "pager": "pager",
    "feed": None,  # a feed and a CRM go to their own configured endpoint
    "crm": None,
}


def _nobody(role: str, at: datetime) -> OnCallOfficer | None:
    return None


def _no_stages(role: str, number: int, at: datetime) -> tuple[OnCallOfficer, ...]:
    return ()


def _no_directory(contact_id: str) -> DirectoryContact | None:
    return None


@dataclass(frozen=True, slots=True)
class CallContext:
    """One call as a step sees it."""

    organisation: Organisation
    option: ServiceOption | None
    row: CallRow
    now: datetime
    on_call: OnCall = field(default=_nobody)
    contact_fields: Mapping[str, str | None] = field(default_factory=lambda: DEFAULT_CONTACT_FIELDS)
    directory: Directory = field(default=_no_directory)
    on_call_stage: OnCallStageOf = field(default=_no_stages)
    attendance_overdue: bool = False  # the earlier call's attendance target passed (audit 7)
    # the service provider's duty contact, alerted when nobody of the organisation can be
    # (not on the rota, not its last resort): configured once for the installation (5.3.2)
    provider_duty: OnCallOfficer | None = None

    @property
    def call_id(self) -> str:
        return self.row.id

    def require_option(self) -> ServiceOption:
        if self.option is None:
            from oohcore.engine.errors import EngineError

            raise EngineError(f"call {self.row.id} has no service option (IVR choice not made)")
        return self.option

    def values(self, *, duplicate: bool | None = None) -> dict[str, Any]:
        """What conditions and templates see: the option's settings, the local time fields,
        the answers, and the built-ins (variant, duplicate, reference, …)."""
        org, row = self.organisation, self.row
        option = self.require_option()
        local = local_fields(row.received_at, timezone=org.timezone, nation=org.nation)
        when = row.received_at.astimezone(ZoneInfo(org.timezone))
        values: dict[str, Any] = {**option.settings, **local, **row.answers}
        values.update(
            variant=row.variant or "standard",
            caller_number=row.caller_number,
            duplicate=row.duplicate_of is not None if duplicate is None else duplicate,
            reference=row.reference,
            organisation=org.name,
            service_option=option.name,
            received_at=when.strftime("%H:%M %a %d %b %Y"),
            time_limit=format_duration(option.time_limit),
            handler=row.handler,
            attendance_overdue=self.attendance_overdue,
        )
        return values

    def contact_of(self, action: Any) -> DirectoryContact | None:
        """The directory entry the action names (``contact:``), as it stands now: numbers live
        outside the signed option (2.3.3, DESIGN principle 10)."""
        contact_id = getattr(action, "contact", None)
        return self.directory(contact_id) if isinstance(contact_id, str) else None

    def action_values(self, action: Any, *, duplicate: bool | None = None) -> dict[str, Any]:
        """:meth:`values` and the ``contact_*`` values of the action's directory entry."""
        values = self.values(duplicate=duplicate)
        contact = self.contact_of(action)
        if contact is not None:
            values.update(placeholders(contact))
        return values

    def contact_field(self, channel: str) -> str | None:
        return self.contact_fields.get(channel, DEFAULT_CONTACT_FIELDS.get(channel))


_CALENDARS: dict[tuple[int, str, UkNation], tuple[Hours, ServiceCalendar]] = {}


def _calendar(hours: Hours, timezone: str, nation: UkNation) -> ServiceCalendar:
    """One calendar per set of hours (compiled options are immutable and live as long as the
    engine; the entry keeps ``hours`` alive so its id is not reused)."""
    key = (id(hours), timezone, nation)
    entry = _CALENDARS.get(key)
    if entry is None or entry[0] is not hours:
        entry = (hours, ServiceCalendar(hours, timezone=timezone, nation=nation))
        _CALENDARS[key] = entry
    return entry[1]


def hours_at(
    organisation: Organisation, option: ServiceOption | None, when: datetime
) -> tuple[bool, str | None]:
    """Whether the option (or, before an IVR choice, the organisation) is in service at
    ``when`` (2.1.5), and the variant that applies (5.4.3)."""
    hours = option.hours if option is not None else organisation.hours
    cal = _calendar(hours, organisation.timezone, organisation.nation)
    in_hours = cal.is_open(when)
    if option is None:
        return in_hours, None
    variant = active_variant(
        option.definition.variants, when, timezone=organisation.timezone, nation=organisation.nation
    )
    return in_hours, variant.id if variant else None
