"""The contract's KPIs, computed in SQL from what happened (spec 6, 11.5-11.10).

Definitions, each with its paragraph, are in ``docs/kpis.md``. :mod:`.periods` says which local
days a report covers, :mod:`.targets` what each standard must meet, :mod:`.measures` holds the
queries, :mod:`.outages` records unavailability.
"""

from oohcore.kpi.measures import QueueFigures, telephony, total
from oohcore.kpi.periods import Period, PeriodError, PeriodKind
from oohcore.kpi.targets import DEFAULT_TARGETS, ServiceLevelTarget, Targets, load_targets

__all__ = [
    "DEFAULT_TARGETS",
    "Period",
    "PeriodError",
    "PeriodKind",
    "QueueFigures",
    "ServiceLevelTarget",
    "Targets",
    "load_targets",
    "telephony",
    "total",
]
