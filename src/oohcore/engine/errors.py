"""The exceptions a host's request to the engine can raise (documented in docs/integration.md).

Every one of them means *nothing was changed*: a step that cannot be taken is refused before its
result is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from oohcore.calls import allowed_triggers
from oohcore.errors import OohcoreError

__all__ = [
    "AnswerProblem",
    "CallNotFound",
    "ConcurrentChange",
    "DeclineRefused",
    "EngineError",
    "InvalidAnswers",
    "InvalidArgument",
    "InvalidChoice",
    "InvalidTransition",
    "MissingEssentialFields",
    "NotSignedOff",
    "UnknownNumber",
    "UnknownOrganisation",
    "WrongStaffMember",
]


class EngineError(OohcoreError):
    """Base class of the errors a host's request to the engine can raise."""


class UnknownNumber(EngineError):
    """No organisation has this access number (7.1.2)."""


class UnknownOrganisation(EngineError):
    """No organisation with this id is loaded."""


class CallNotFound(EngineError):
    """No such call in this organisation (a call of another organisation is not found either)."""


class InvalidTransition(EngineError):
    """The call's (or its referral's) state does not allow this step; nothing was changed."""

    def __init__(
        self, call_id: str, state: str, step: str, allowed: Sequence[str] | None = None
    ) -> None:
        names = allowed if allowed is not None else allowed_triggers(state)
        listed = ", ".join(names) or "nothing (the call is finished)"
        super().__init__(f"call {call_id} is {state}: cannot {step} now (allowed: {listed})")
        self.call_id = call_id
        self.state = state
        self.step = step


class ConcurrentChange(EngineError):
    """Another desk or runner changed the call between this request's read and its commit;
    nothing was written. Read the call again and retry the step if it still applies."""


class InvalidArgument(EngineError):
    """An argument of a façade call has the wrong type or form (a naive or non-datetime
    ``at=``, a name that is not text, text with a NUL or a lone surrogate, a caller number or
    name longer than the documented limit); nothing was changed. ``.argument`` names it."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class NotSignedOff(EngineError):
    """Live service was asked for, and this service option's version is not signed off (5.3.1):
    a call for it is not served (the caller should be handled by the fallback procedure)."""


class DeclineRefused(EngineError):
    """A decline from someone who may not decline the referral now (5.3.2): only an officer
    alerted at its current stage, or a holder of a manager role, may decline, and each once a
    stage; nothing was changed."""


class InvalidChoice(EngineError):
    """The IVR key is not one of the menu's choices (7.1.4)."""


class WrongStaffMember(EngineError):
    """A lone worker's check-out names someone other than who checked in (5.2.3.6)."""


@dataclass(frozen=True, slots=True)
class AnswerProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidAnswers(EngineError):
    """One or more captured answers are not acceptable; none of them was recorded."""

    def __init__(self, problems: Sequence[AnswerProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class MissingEssentialFields(EngineError):
    """A decision needs the essential fields (5.3.3); these are still unanswered."""

    def __init__(self, call_id: str, fields: Sequence[str]) -> None:
        self.fields = list(fields)
        super().__init__(
            f"call {call_id}: essential field(s) not yet captured: {', '.join(fields)}"
        )
