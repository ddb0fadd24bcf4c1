"""What the façade returns to a host: plain, immutable views of a call and what to do next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from oohcore.rulesets.models import Question

__all__ = ["CallView", "Contact", "NextStep", "ReferralView", "ScriptView"]


@dataclass(frozen=True, slots=True)
class CallView:
    """A call as it stands."""

    id: str
    organisation_id: str
    reference: str
    state: str
    service_option: str | None
    option_version: str | None
    received_at: datetime
    caller_number: str | None
    in_hours: bool
    variant: str | None
    tell_caller: str | None
    answers: Mapping[str, Any]
    action_id: str | None
    handler: str | None
    duplicate_of: str | None
    ivr_prompt: str | None = None  # what the IVR says now (its menu, or the choice's words)


@dataclass(frozen=True, slots=True)
class ScriptView:
    """What the call handler works through now (5.3, 13.5.1b–d): the opening, the questions
    that apply to this call so far (``ask_if`` worked out on its answers), and which of the
    essential ones are still unanswered (5.3.3)."""

    call: CallView
    opening: str | None
    questions: tuple[Question, ...]
    unanswered_essential: tuple[str, ...]
    data_protection: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    """Whom the action reaches: an on-call officer, a signposted service or a transfer target."""

    name: str
    number: str | None = None
    email: str | None = None
    role: str | None = None
    opening_times: str | None = None


@dataclass(frozen=True, slots=True)
class NextStep:
    """What to do next with a call: the decided action and everything needed to carry it out."""

    call: CallView
    action_id: str
    kind: str
    say: str | None
    rule: int | None
    contact: Contact | None
    channels: tuple[str, ...] = ()
    time_limit: timedelta | None = None
    duplicate_of: str | None = None
    information: str | None = None
    fallback: str | None = None  # a transfer's fallback action, if the transfer fails (5.2.3.2)
    phone: bool = False  # the handler phones the officer and records the outcome (5.2.3.3)
    untaken: bool = False
    """Nobody on the rota holds any stage of the referral (issue 7 defect 1): completing it
    alerts the organisation's last resort (``contact``) at once and tells the caller so."""
    outside_area: bool = False
    """The address is outside the organisation's area by its gazetteer (4.1.5b): check it with
    the caller before acting; it may belong to a neighbouring borough (4.1.5c)."""
    property_owner: str | None = None
    """The gazetteer's owner of the property (7.11), e.g. ``council``: whether a repair order
    will be issued."""
    nobody_reachable: bool = False
    """Nobody on the rota and not the organisation's last resort can be reached either (5.3.2):
    completing it alerts the service provider's duty contact (``contact``; none when the
    installation has none, and then nobody is alerted), ``information`` says so, and the
    caller's text says what is true."""


@dataclass(frozen=True, slots=True)
class ReferralView:
    """A referral (5.2.3.3) or lone-worker watch (5.2.3.6) as it stands."""

    id: str
    call_id: str
    kind: str
    action_id: str
    option_version: str
    run_id: str
    state: str
    stage: int
    alerts: int
    started_at: datetime
    call_ended_at: datetime | None
    deadline_at: datetime | None
    dispatched_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    finished_at: datetime | None
    late_reason: str | None
    stages: tuple[tuple[str, tuple[str, ...], timedelta], ...]  # role, channels, wait
