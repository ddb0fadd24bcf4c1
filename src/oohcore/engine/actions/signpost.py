"""Signpost: advise the caller of another service, its number and opening times (5.2.3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oohcore.engine.actions.base import Description
from oohcore.engine.context import CallContext
from oohcore.engine.result import StepResult
from oohcore.engine.views import Contact
from oohcore.rulesets.models import Signpost

kind = "signpost"


def describe(ctx: CallContext, action_id: str, action: Signpost) -> Description:
    entry = ctx.contact_of(action)  # the living directory (2.3.3) before the file's text
    return Description(
        contact=Contact(
            name=entry.name if entry else action.service,
            number=entry.number if entry else action.number,
            email=entry.email if entry else None,
            opening_times=(entry.opening_times if entry else None) or action.opening_times,
        )
    )


def carry_out(
    ctx: CallContext,
    action_id: str,
    action: Signpost,
    values: Mapping[str, Any],
    result: StepResult,
) -> dict[str, Any]:
    return {"service": action.service}
