"""oohcore: compliant out-of-hours call-handling workflows for councils and housing providers."""

from __future__ import annotations

__version__ = "0.1.0"
