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
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, String, and_, func, literal, select, type_coerce

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


def answer_fields(old: ServiceOption, new: ServiceOption) -> list[str]:
    """The answers (and ``variant``, ``duplicate``, time fields) the two decisions read."""
    return sorted(_read(old) | _read(new))


def _received(value: Any) -> datetime:
    """A stored ``received_at``: SQLite's naive UTC text, or a datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def replay(
    rows: Iterable[Any],
    old: ServiceOption,
    new: ServiceOption,
    *,
    timezone: str,
    nation: Any,
    report: ImpactReport,
) -> None:
    """Decide each stored call ``(id, reference, key, received_at, variant, duplicate)``
    under ``old`` and ``new``, where ``key`` is the JSON array of the call's answers to
    :func:`answer_fields` (as :func:`stored_calls` reads it); add the differences to
    ``report``. Calls with the same key, variant, flag (and minute, when the decisions read
    the time) are decided once."""
    fields = answer_fields(old, new)
    time_fields = [f for f in fields if f in _TIME_FIELDS]
    asked = [f for f in fields if f not in _TIME_FIELDS | {"variant", "duplicate"}]
    needs_time = bool(time_fields) or (
        "variant" in fields and old.definition.variants != new.definition.variants
    )
    old_contacts, new_contacts = old.contacts, new.contacts
    cache: dict[tuple[Any, ...], tuple[Any, Any] | None] = {}
    minutes: dict[Any, tuple[tuple[Any, ...], str | None]] = {}
    decide_old, decide_new = old.decide, new.decide
    settings_old, settings_new = dict(old.settings), dict(new.settings)
    loads = json.loads
    calls_seen = 0
    for call_id, reference, key_text, received_at, variant, duplicate in rows:
        calls_seen += 1
        time_key: tuple[Any, ...] = ()
        new_variant: str | None = None
        if needs_time:
            at = _received(received_at)
            minute = at.replace(second=0, microsecond=0)
            local = minutes.get(minute)
            if local is None:
                lf = local_fields(at, timezone=timezone, nation=nation)
                v = active_variant(new.definition.variants, at, timezone=timezone, nation=nation)
                local = (tuple(lf[f] for f in time_fields), v.id if v else "standard")
                minutes[minute] = local
            time_key, new_variant = local
        old_variant = variant or "standard"
        key = (key_text, time_key, old_variant, new_variant or old_variant, bool(duplicate))
        try:
            got = cache[key]
        except KeyError:
            values = dict(zip(asked, loads(key_text), strict=False)) if asked else {}
            base = {f: v for f, v in values.items() if v is not None}
            base.update(zip(time_fields, time_key, strict=True))
            dup = bool(duplicate)
            a = decide_old({**settings_old, **base, "variant": old_variant, "duplicate": dup})
            b = decide_new(
                {**settings_new, **base, "variant": new_variant or old_variant, "duplicate": dup}
            )
            ca, cb = old_contacts.get(a.action_id, ()), new_contacts.get(b.action_id, ())
            got = (a, b) if (a.action_id != b.action_id or ca != cb) else None
            cache[key] = got
        if got is None:
            continue
        a, b = got
        report.differences.append(
            Difference(
                call_id,
                reference,
                new.id,
                _received(received_at),
                a.action_id,
                b.action_id,
                a.rule,
                b.rule,
                old_contacts.get(a.action_id, ()),
                new_contacts.get(b.action_id, ()),
            )
        )
        report.per_rule[(new.id, _rule(a.rule), _rule(b.rule))] += 1
    report.calls += calls_seen


def stored_calls(
    conn: Connection, organisation_id: str, option_id: str, since: datetime, fields: list[str]
) -> Iterable[Any]:
    """The decided calls of one option since ``since``, as :func:`replay` reads them. On
    SQLite the answers the decisions read are taken out of the stored JSON by the database
    (``json_extract``, one JSON array per call); elsewhere the JSON is read here."""
    c = calls.c
    asked = [f for f in fields if f not in _TIME_FIELDS | {"variant", "duplicate"}]
    where = and_(
        c.organisation_id == organisation_id,
        c.service_option == option_id,
        c.received_at >= since,
        c.action_id.is_not(None),
    )
    received = type_coerce(c.received_at, String)
    flag = c.duplicate_of.is_not(None)
    if conn.dialect.name == "sqlite":
        # field names are [a-z][a-z0-9_]* (checked when the ruleset loads); two paths at
        # least, so json_extract always returns a JSON array (true stays true, not 1)
        paths = [f"$.{f}" for f in asked] + ["$.__none__"] * (2 - len(asked))
        key = func.json_extract(c.answers, *paths) if asked else literal("[]")
        query = select(c.id, c.reference, key, received, c.variant, flag).where(where)
        return conn.execute(query)
    query = select(c.id, c.reference, c.answers, c.received_at, c.variant, flag).where(where)
    rows = conn.execute(query)
    dumps = json.dumps
    return (
        (i, ref, dumps([json.loads(ans).get(f) for f in asked]), at, var, dup)
        for i, ref, ans, at, var, dup in rows
    )


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
            stored_calls(conn, new.id, option_id, since, answer_fields(before, after)),
            before,
            after,
            timezone=new.timezone,
            nation=new.nation,
            report=report,
        )
    report.differences.sort(key=lambda d: (d.received_at, d.call_id))
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
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        url = make_url(store_url)
    except (ArgumentError, ValueError):
        raise OohcoreError(f"--store {store_url!r} is not a database URL") from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        raise OohcoreError(f"no store at {shown} (no such file)")
    try:
        store = Store.open(store_url, clock=SystemClock(), migrate=False)
    except (SQLAlchemyError, ImportError) as exc:
        raise OohcoreError(f"cannot open {shown}: {str(exc).splitlines()[0]}") from None
    try:
        with store.read() as conn:
            # the date is the organisation's local date
            start = datetime(since.year, since.month, since.day, tzinfo=ZoneInfo(new.timezone))
            return impact_between(conn, old, new, start)
    except SQLAlchemyError as exc:
        raise OohcoreError(
            f"cannot read the calls of {shown}: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        store.close()
