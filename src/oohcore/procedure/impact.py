"""Change impact: replay stored calls under a new version of the rulesets (2.3.1, 5.3.1).

``oohcore impact ORG --against OLD --store URL --since DATE`` takes every call of the
organisation received since ``DATE`` under an option whose version differs between ``OLD`` and
``ORG``, decides it again under both versions from its stored answers, time and flags, and lists
every call whose action or contacts would have been different, with counts per rule.

The replay is compiled, not a loop over the engine: only the fields the two decisions read are
taken from each call, calls with the same values of those fields are decided once, and the
local time fields are computed once per minute of arrival. Each decision is the option's own
compiled ``decide`` — the engine's, so the answer is the engine's (``bench/impact.py`` checks
it against the façade's ``next_step``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, select

from oohcore.calendar import active_variant, local_fields
from oohcore.calls import calls
from oohcore.rulesets.compiler import Organisation, ServiceOption
from oohcore.rulesets.loader import load_organisation

from .witness import names

__all__ = ["Difference", "ImpactReport", "impact_of", "replay"]

_TIME_FIELDS = frozenset({"hour", "minute", "weekday", "weekend", "bank_holiday"})


@dataclass(frozen=True, slots=True)
class Difference:
    call_id: str
    reference: str
    option: str
    received_at: datetime
    old_action: str
    new_action: str
    old_rule: int | None
    new_rule: int | None
    old_contacts: tuple[str, ...]
    new_contacts: tuple[str, ...]


@dataclass
class ImpactReport:
    calls: int = 0
    options: list[str] = field(default_factory=list)  # the options whose version changed
    differences: list[Difference] = field(default_factory=list)
    per_rule: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(option, old rule, new rule) -> calls, rules shown as 'rule 3' or 'default'."""

    def text(self, *, limit: int = 50) -> str:
        lines = [
            f"replayed {self.calls} call(s) under {len(self.options)} changed option(s)"
            + (f" ({', '.join(self.options)})" if self.options else ""),
            f"{len(self.differences)} call(s) would have been handled differently",
        ]
        for (option, old, new), n in sorted(self.per_rule.items()):
            lines.append(f"  {option}: {n} call(s) from {old} now go by {new}")
        for d in self.differences[:limit]:
            contacts = ""
            if d.old_contacts != d.new_contacts:
                contacts = f"; contacts {list(d.old_contacts)} -> {list(d.new_contacts)}"
            lines.append(
                f"  {d.reference} {d.received_at:%Y-%m-%d %H:%M} {d.option}: "
                f"{d.old_action} -> {d.new_action}{contacts}"
            )
        if len(self.differences) > limit:
            lines.append(f"  … and {len(self.differences) - limit} more")
        return "\n".join(lines)


def _rule(rule: int | None) -> str:
    return "the default" if rule is None else f"rule {rule + 1}"


def _read(option: ServiceOption) -> set[str]:
    from oohcore.rulesets.conditions import parse

    out: set[str] = set()
    for r in option.definition.decision.rules:
        out |= names(parse(r.when))
    return out - set(option.settings)


def replay(
    rows: Iterable[Any],
    old: ServiceOption,
    new: ServiceOption,
    *,
    timezone: str,
    nation: Any,
    report: ImpactReport,
) -> None:
    """Decide each stored call ``(id, reference, answers_json, received_at, variant,
    duplicate_of)`` under ``old`` and ``new``; add the differences to ``report``."""
    fields = sorted(_read(old) | _read(new))
    time_fields = [f for f in fields if f in _TIME_FIELDS]
    answer_fields = [f for f in fields if f not in _TIME_FIELDS | {"variant", "duplicate"}]
    same_variants = old.definition.variants == new.definition.variants
    wants_variant = "variant" in fields
    old_contacts = old.contacts
    new_contacts = new.contacts
    cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}
    minutes: dict[Any, tuple[Any, ...]] = {}
    decide_old, decide_new = old.decide, new.decide
    settings_old, settings_new = dict(old.settings), dict(new.settings)
    loads = json.loads
    for call_id, reference, answers_text, received_at, variant, duplicate_of in rows:
        report.calls += 1
        answers = loads(answers_text) if answer_fields else {}
        key_answers = tuple(
            tuple(v) if isinstance(v := answers.get(f), list) else v for f in answer_fields
        )
        if time_fields or (wants_variant and not same_variants):
            minute = received_at.replace(second=0, microsecond=0)
            local = minutes.get(minute)
            if local is None:
                lf = local_fields(received_at, timezone=timezone, nation=nation)
                nv = None
                if wants_variant and not same_variants:
                    v = active_variant(
                        new.definition.variants, received_at, timezone=timezone, nation=nation
                    )
                    nv = v.id if v else "standard"
                local = (tuple(lf[f] for f in time_fields), nv)
                minutes[minute] = local
            time_key, new_variant = local
        else:
            time_key, new_variant = (), None
        old_variant = variant or "standard"
        if new_variant is None:
            new_variant = old_variant
        key = (key_answers, time_key, old_variant, new_variant, duplicate_of is not None)
        got = cache.get(key)
        if got is None:
            base = {f: v for f, v in zip(answer_fields, key_answers, strict=True) if v is not None}
            for f, v in zip(time_fields, time_key, strict=True):
                base[f] = v
            dup = duplicate_of is not None
            got = (
                decide_old({**settings_old, **base, "variant": old_variant, "duplicate": dup}),
                decide_new({**settings_new, **base, "variant": new_variant, "duplicate": dup}),
            )
            cache[key] = got
        a, b = got
        ca = old_contacts.get(a.action_id, ())
        cb = new_contacts.get(b.action_id, ())
        if a.action_id != b.action_id or ca != cb:
            report.differences.append(
                Difference(
                    call_id,
                    reference,
                    new.id,
                    received_at,
                    a.action_id,
                    b.action_id,
                    a.rule,
                    b.rule,
                    ca,
                    cb,
                )
            )
            report.per_rule[(new.id, _rule(a.rule), _rule(b.rule))] += 1


def stored_calls(
    conn: Connection, organisation_id: str, option_id: str, since: datetime
) -> Iterable[Any]:
    """The decided calls of one option since ``since``: the columns :func:`replay` reads."""
    c = calls.c
    query = (
        select(c.id, c.reference, c.answers, c.received_at, c.variant, c.duplicate_of)
        .where(
            and_(
                c.organisation_id == organisation_id,
                c.service_option == option_id,
                c.received_at >= since,
                c.action_id.is_not(None),
            )
        )
        .order_by(c.received_at, c.id)
    )
    return conn.execute(query)


def impact_between(
    conn: Connection, old: Organisation, new: Organisation, since: datetime
) -> ImpactReport:
    """Replay the calls of ``new``'s organisation since ``since`` under both versions."""
    report = ImpactReport()
    for option_id in sorted(new.service_options):
        after = new.service_options[option_id]
        before = old.service_options.get(option_id)
        if before is None or before.version == after.version:
            continue
        report.options.append(option_id)
        replay(
            stored_calls(conn, new.id, option_id, since),
            before,
            after,
            timezone=new.timezone,
            nation=new.nation,
            report=report,
        )
    return report


def impact_of(
    organisation: str | Path,
    *,
    against: str | Path,
    store_url: str,
    since: date,
    catalogue: str | Path | None = None,
) -> ImpactReport:
    """``oohcore impact``: the organisation folder (new) against ``against`` (old)."""
    from oohcore.clock import SystemClock
    from oohcore.errors import OohcoreError
    from oohcore.store import Store

    new = load_organisation(organisation, catalogue=catalogue)
    old = load_organisation(against, catalogue=catalogue)
    if old.id != new.id:
        raise OohcoreError(f"--against is organisation {old.id!r}, not {new.id!r}")
    store = Store.open(store_url, clock=SystemClock(), migrate=False)
    try:
        with store.read() as conn:
            # the date is the organisation's local date
            start = datetime(since.year, since.month, since.day, tzinfo=ZoneInfo(new.timezone))
            return impact_between(conn, old, new, start)
    finally:
        store.close()
