"""One handler per action kind (5.2.3.1-5.2.3.6), registered in one table.

A new action kind is one new module here, its line in :data:`HANDLERS`, its ruleset model in
:mod:`oohcore.rulesets.models` and its call state in :data:`oohcore.calls.ACTION_STATES` (a test
checks that the table and the lifecycle name the same kinds).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

from oohcore.engine.actions import lone_worker, out_of_scope, refer, resolve, signpost, transfer
from oohcore.engine.actions.base import ActionHandler, Description

__all__ = ["HANDLERS", "ActionHandler", "Description", "handler"]

HANDLERS: Mapping[str, ActionHandler] = MappingProxyType(
    {
        m.kind: cast(ActionHandler, m)
        for m in (signpost, transfer, refer, resolve, out_of_scope, lone_worker)
    }
)


def handler(kind: str) -> ActionHandler:
    return HANDLERS[kind]
