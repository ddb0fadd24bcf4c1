"""Who is on call: the organisation's rota of On-call Duty Staff (2.1.3, 2.3.3, 7.5, 14.4).

A rota is Regularly Variable Data (2.3.3): it changes without a ruleset change. The engine asks
one question of it -- *who holds this rota role at this moment?* -- through the :class:`Rota`
protocol, so a host can answer from its own rota system.

* :mod:`oohcore.rota.model` -- the answer (:class:`OnCallAnswer`) and the protocol;
* :mod:`oohcore.rota.schedule` -- layers, overrides, the wall-clock arithmetic;
* :mod:`oohcore.rota.file` -- ``rota.yaml`` (seed or replace), :func:`check_rota_file`;
* :mod:`oohcore.rota.store` -- rotas in the store, changed at run time (:class:`RotaStore`,
  :class:`StoreRota`, the engine's rota);
* :mod:`oohcore.rota.exchange` -- iCalendar and CSV import/export;
* :mod:`oohcore.rota.gaps` -- coverage gaps inside the hours of service.

See docs/rotas.md.
"""

from oohcore.rota.file import ROTA_FILE, RotaFile, check_rota_file, read_rota
from oohcore.rota.model import OnCallAnswer, OnCallOfficer, OnCallStage, Rota
from oohcore.rota.schedule import (
    Layer,
    Override,
    Restriction,
    RoleSchedule,
    RotaData,
    Segment,
    Shift,
)
from oohcore.rota.store import RotaChange, RotaError, RotaStore, StoreRota

__all__ = [
    "ROTA_FILE",
    "Layer",
    "OnCallAnswer",
    "OnCallOfficer",
    "OnCallStage",
    "Override",
    "Restriction",
    "RoleSchedule",
    "Rota",
    "RotaChange",
    "RotaData",
    "RotaError",
    "RotaFile",
    "RotaStore",
    "Segment",
    "Shift",
    "StoreRota",
    "check_rota_file",
    "read_rota",
]
