"""How many call handlers each hour needs to meet a standard: Erlang C (7.1.10).

Beyond what the specification asks: from the calls offered in past weeks and their handling
time, the number of handlers per hour of the day that would answer the standard's share of
calls within its time (:class:`~oohcore.kpi.targets.ServiceLevelTarget`), shown in the staffing
report beside the service level each hour actually had.

With offered load ``A = λ · AHT`` (in Erlangs) and ``N`` handlers, Erlang B is found by its
recursion ``B₀ = 1, Bₙ = A·Bₙ₋₁ / (n + A·Bₙ₋₁)``, the chance a caller waits is
``C = N·B / (N − A·(1 − B))`` and the service level is ``1 − C · e^(−(N − A)·T / AHT)``.
The recursion is numerically stable for any load (no factorials).
"""

from __future__ import annotations

import math

__all__ = ["erlang_c", "handlers_needed", "service_level"]


def erlang_c(handlers: int, load: float) -> float:
    """The probability that a call waits, with ``handlers`` and ``load`` Erlangs offered."""
    if load <= 0:
        return 0.0
    if handlers <= load:
        return 1.0  # the queue grows without end: every caller waits
    b = 1.0
    for n in range(1, handlers + 1):
        b = load * b / (n + load * b)
    return handlers * b / (handlers - load * (1 - b))


def service_level(handlers: int, calls_per_hour: float, aht_seconds: float, within: float) -> float:
    """The share of calls answered within ``within`` seconds (1.0 when no call is offered)."""
    if calls_per_hour <= 0 or aht_seconds <= 0:
        return 1.0
    load = calls_per_hour * aht_seconds / 3600
    if handlers <= load:
        return 0.0
    wait = erlang_c(handlers, load)
    return max(0.0, 1 - wait * math.exp(-(handlers - load) * within / aht_seconds))


def handlers_needed(
    calls_per_hour: float, aht_seconds: float, within: float, share: float, *, limit: int = 1000
) -> int:
    """The fewest handlers whose service level reaches ``share`` (0 when no call is offered)."""
    if calls_per_hour <= 0 or aht_seconds <= 0:
        return 0
    load = calls_per_hour * aht_seconds / 3600
    n = max(1, math.floor(load) + 1)
    while n <= limit:
        if service_level(n, calls_per_hour, aht_seconds, within) >= share:
            return n
        n += 1
    raise ValueError(f"more than {limit} handlers would be needed for {calls_per_hour} calls/hour")
