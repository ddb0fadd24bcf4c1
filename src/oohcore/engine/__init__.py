"""The public façade: the few calls a host application makes to run out-of-hours calls.

::

    engine = Engine.open("examples/example-borough", "sqlite:///ooh.sqlite")
    call = engine.offer("020 7946 0000", caller_number="07700 900001")   # 7.1.2 routing
    desk = engine.organisation(call.organisation_id)                      # tenant scope (7.10)
    desk.choose(call.id, "1")                                             # IVR (7.1.4)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {"caller_name": "Ann Lee", "repair": "no_heating", ...})
    step = desk.next_step(call.id)        # the decision: action, what to say, whom to contact
    desk.complete(call.id)                # carries the action out: referral, messages, timers
    desk.close(call.id)                   # reference number given (5.2.2); 6.4b clock starts
    engine.tick()                         # fire due timers, send due messages

The package follows the path of a call (DESIGN principle 8, *decide, then commit*):

* :mod:`.facade` — :class:`Engine` and :class:`OrganisationDesk`: read what a step needs,
  decide it, commit the result, all in one transaction;
* :mod:`.context` — the call's context (row, option version, field values, now, the rota);
* :mod:`.steps` — each step as a pure function of the context and its input;
* :mod:`.actions` — one handler per action kind, in one table;
* :mod:`.escalation` — a referral's frozen procedure and each alert along it;
* :mod:`.result` — the step's result and the one function that writes it;
* :mod:`.rows`, :mod:`.versions` — the stored forms, and every option version a call ran under;
* :mod:`.inputs` — the host's arguments, checked on entry;
* :mod:`.views`, :mod:`.errors` — what the host gets back, and the documented exceptions.

Every exception in :mod:`.errors` means nothing was changed. Everything about a call is
reached through an :class:`OrganisationDesk`, scoped to one organisation: another
organisation's call is simply not found there (7.10).
"""

from __future__ import annotations

from oohcore.engine.errors import (
    AnswerProblem,
    CallNotFound,
    ConcurrentChange,
    DeclineRefused,
    EngineError,
    InvalidAnswers,
    InvalidArgument,
    InvalidChoice,
    InvalidTransition,
    MissingEssentialFields,
    NotSignedOff,
    UnknownNumber,
    UnknownOrganisation,
    WrongStaffMember,
)
from oohcore.engine.facade import Engine, OrganisationDesk
from oohcore.engine.views import CallView, Contact, NextStep, ReferralView, ScriptView

__all__ = [
    "AnswerProblem",
    "CallNotFound",
    "CallView",
    "ConcurrentChange",
    "Contact",
    "DeclineRefused",
    "Engine",
    "EngineError",
    "InvalidAnswers",
    "InvalidArgument",
    "InvalidChoice",
    "InvalidTransition",
    "MissingEssentialFields",
    "NextStep",
    "NotSignedOff",
    "OrganisationDesk",
    "ReferralView",
    "ScriptView",
    "UnknownNumber",
    "UnknownOrganisation",
    "WrongStaffMember",
]
