"""oohcore: compliant out-of-hours call-handling workflows for councils and housing providers.

The public surface is small:

* :class:`Engine` (``oohcore.engine``) — open it on a folder of organisations and a store, offer
  calls, and drive them through :meth:`Engine.organisation` (one organisation's desk);
* :func:`load_organisation`, :func:`load_catalogue`, :func:`validate` (``oohcore.rulesets``) —
  load or check rulesets without an engine;
* :class:`RulesetError`, :class:`OohcoreError` and :class:`Problem` (``oohcore.errors``).

Names are imported on first use, so ``import oohcore`` stays cheap for the command line.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Engine": "oohcore.engine",
    "OrganisationDesk": "oohcore.engine",
    "load_organisation": "oohcore.rulesets.loader",
    "load_catalogue": "oohcore.rulesets.loader",
    "validate": "oohcore.rulesets.loader",
    "OohcoreError": "oohcore.errors",
    "RulesetError": "oohcore.errors",
    "Problem": "oohcore.errors",
}
__all__ = [
    "Engine",
    "OohcoreError",
    "OrganisationDesk",
    "Problem",
    "RulesetError",
    "load_catalogue",
    "load_organisation",
    "validate",
]

if TYPE_CHECKING:
    from oohcore.engine import Engine, OrganisationDesk
    from oohcore.errors import OohcoreError, Problem, RulesetError
    from oohcore.rulesets.loader import load_catalogue, load_organisation, validate


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'oohcore' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
