"""Transfer: put the caller through to a duty team or agency (5.2.3.2).

If the host reports that the transfer failed, the option's ``fallback`` action is carried out
at once (:func:`oohcore.engine.steps.transfer_failed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oohcore.engine.actions.base import Description
from oohcore.engine.context import CallContext
from oohcore.engine.result import StepResult
from oohcore.engine.views import Contact
from oohcore.rulesets.models import Transfer

kind = "transfer"


def describe(ctx: CallContext, action_id: str, action: Transfer) -> Description:
    entry = ctx.contact_of(action)  # the living directory (2.3.3) before the file's text
    number = (entry.number if entry else None) or action.number
    return Description(contact=Contact(name=action.to, number=number), fallback=action.fallback)


def carry_out(
    ctx: CallContext,
    action_id: str,
    action: Transfer,
    values: Mapping[str, Any],
    result: StepResult,
) -> dict[str, Any]:
    return {"to": action.to, "fallback": action.fallback}
