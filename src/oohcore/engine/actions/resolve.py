"""Resolve: the caller's need is met with information (5.2.3.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oohcore.engine.actions.base import Description
from oohcore.engine.context import CallContext
from oohcore.engine.result import StepResult
from oohcore.rulesets.models import Resolve

kind = "resolve"


def describe(ctx: CallContext, action_id: str, action: Resolve) -> Description:
    return Description(information=action.information)


def carry_out(
    ctx: CallContext,
    action_id: str,
    action: Resolve,
    values: Mapping[str, Any],
    result: StepResult,
) -> dict[str, Any]:
    return {}
