"""Out of scope: logged with its category (11.7.3f), and either forwarded to the daytime service
(5.2.3.5 (i), through the feed, 5.2.4) or the caller is advised to call back in hours (ii)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oohcore.channels import OutboundMessage
from oohcore.engine.actions.base import Description
from oohcore.engine.context import CallContext
from oohcore.engine.escalation import case_fields, summary
from oohcore.engine.result import StepResult
from oohcore.rulesets.models import OutOfScope, OutOfScopeResponse
from oohcore.vocabulary import MessagePurpose

kind = "out_of_scope"


def _forward_to(ctx: CallContext, action: OutOfScope) -> str:
    """Where the forward goes: the directory entry's email (or name), else the file's text."""
    entry = ctx.contact_of(action)
    if entry is not None:
        return entry.email or entry.name
    return action.forward_to or "daytime"


def describe(ctx: CallContext, action_id: str, action: OutOfScope) -> Description:
    entry = ctx.contact_of(action)
    return Description(information=entry.name if entry else action.forward_to)


def carry_out(
    ctx: CallContext,
    action_id: str,
    action: OutOfScope,
    values: Mapping[str, Any],
    result: StepResult,
) -> dict[str, Any]:
    if action.response is OutOfScopeResponse.forward_to_daytime:
        option = ctx.require_option()
        body_tpl = option.template("actions", action_id, "message", "body")
        row = ctx.row
        fields = case_fields(values)
        result.message(
            OutboundMessage(
                organisation_id=row.organisation_id,
                call_id=row.id,
                channel="feed",
                recipient=_forward_to(ctx, action),
                body=body_tpl.render(values) if body_tpl else summary(values),
                idempotency_key=f"{row.id}:daytime",
                subject=f"Out of hours: {action.category} {row.reference}",
                purpose=MessagePurpose.DAYTIME_FORWARD,
                reference=row.reference,
                fields=fields,
                # 7.11: the UPRN goes with the forward as with a referral
                meta={
                    "category": action.category,
                    "reference": row.reference,
                    "uprn": fields.get("uprn"),
                },
            )
        )
    return {"category": action.category, "response": action.response.value}
