"""What every action handler provides (one module per action kind, 5.2.3.x)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from oohcore.engine.context import CallContext
from oohcore.engine.result import StepResult
from oohcore.engine.views import Contact

__all__ = ["ActionHandler", "Description"]


@dataclass(frozen=True, slots=True)
class Description:
    """How an action is shown to the call handler before it is carried out (``NextStep``)."""

    contact: Contact | None = None
    channels: tuple[str, ...] = ()
    time_limit: timedelta | None = None
    information: str | None = None
    fallback: str | None = None
    phone: bool = False
    untaken: bool = False  # nobody on the rota can take it: the last resort is the contact
    nobody_reachable: bool = False  # nor the last resort: the provider's duty contact, if any


class ActionHandler(Protocol):
    """One action kind: how it is described to the handler and what carrying it out produces.

    Its load-time checks are the function for its kind in
    :data:`oohcore.rulesets.compiler.ACTION_CHECKS` (the ruleset layer cannot import the
    engine). Both functions are pure: they read the :class:`CallContext` and add to the
    :class:`StepResult`.
    """

    kind: str

    def describe(self, ctx: CallContext, action_id: str, action: Any) -> Description: ...

    def carry_out(
        self,
        ctx: CallContext,
        action_id: str,
        action: Any,
        values: Mapping[str, Any],
        result: StepResult,
    ) -> dict[str, Any]:
        """Add the action's messages, timers and records to ``result``; return what the
        ``action.<kind>`` event records of it."""
        ...
