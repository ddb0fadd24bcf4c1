"""``oohcore rota ...``: show, change, exchange and check an organisation's rota in the store
(issue 8). ORG is an organisation folder (or its id with ``--rulesets``); the store is seeded
from the folder's ``rota.yaml`` when it has no rota for the organisation yet."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from oohcore.errors import OohcoreError
from oohcore.rota.file import ROTA_FILE, read_rota
from oohcore.rota.schedule import in_gap
from oohcore.rota.store import RotaStore

_STORE_DEFAULT = "sqlite:///oohcore.sqlite"


def _when(text: str, tz: ZoneInfo, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise OohcoreError(
            f"{flag} {text!r} is not a date and time; write e.g. 2026-11-20T17:00"
        ) from None
    if value.tzinfo is None:
        if in_gap(value, tz):
            raise OohcoreError(
                f"{flag} {text} does not exist in {tz.key}: the clocks go forward over it"
            )
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


@contextmanager
def _rota(args: argparse.Namespace) -> Iterator[tuple[Any, RotaStore]]:
    from oohcore.cli import _organisations
    from oohcore.clock import SystemClock
    from oohcore.store import Store

    org, _ = _organisations(args)
    store = Store.open(args.store, clock=SystemClock())
    try:
        rs = RotaStore(store, org.id, timezone=org.timezone, roles=org.rota_roles)
        if org.path is not None and (org.path / ROTA_FILE).is_file():
            path = org.path / ROTA_FILE
            rs.seed(read_rota(path, timezone=org.timezone, roles=org.rota_roles))
        yield org, rs
    finally:
        store.close()


def _fmt(t: datetime, tz: ZoneInfo) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _cmd_show(args: argparse.Namespace) -> int:
    with _rota(args) as (org, rs):
        tz = rs.tz
        start = _when(args.start, tz, "--from") if args.start else rs.store.clock.now()
        end = _when(args.end, tz, "--to") if args.end else start + timedelta(days=7)
        if end <= start:
            raise OohcoreError("--to must be after --from")
        segments = rs.timeline(args.role, start, end, category=args.category, area=args.area)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "start": s.start.isoformat(),
                        "end": s.end.isoformat(),
                        "stages": [
                            {
                                "stage": st.number,
                                "officers": [o.id for o in st.officers],
                                "because": st.because,
                            }
                            for st in s.answer.stages
                        ],
                    }
                    for s in segments
                ],
                indent=2,
            )
        )
        return 0
    print(f"{org.id} {args.role}: {_fmt(start, tz)} to {_fmt(end, tz)}")
    for s in segments:
        hours = (s.end - s.start).total_seconds() / 3600
        print(f"{_fmt(s.start, tz)} -> {_fmt(s.end, tz)}  ({hours:g} h)")
        if not s.answer.stages:
            print("    nobody: the role has no schedule")
        for st in s.answer.stages:
            who = ", ".join(f"{o.name} ({o.id})" for o in st.officers[:1]) or "NOBODY"
            print(f"    stage {st.number}: {who}  [{st.because}]")
    return 0


def _cmd_gaps(args: argparse.Namespace) -> int:
    from oohcore.rota.gaps import coverage_gaps

    with _rota(args) as (org, rs):
        start = rs.store.clock.now()
        gaps = coverage_gaps(org, rs.data(), start, start + timedelta(days=args.days))
        tz = rs.tz
    if args.json:
        print(
            json.dumps(
                {"organisation": org.id, "days": args.days, "gaps": [g.to_json() for g in gaps]},
                indent=2,
            )
        )
    elif not gaps:
        print(f"{org.id}: no coverage gaps in the next {args.days} days")
    for g in gaps if not args.json else ():
        print(
            f"GAP {g.role} stage {g.stage}: {_fmt(g.start, tz)} -> {_fmt(g.end, tz)} "
            f"(needed by {', '.join(g.options)})"
        )
    return 1 if gaps else 0


def _cmd_override(args: argparse.Namespace) -> int:
    with _rota(args) as (_org, rs):
        tz = rs.tz
        requested = _when(args.requested_at, tz, "--requested-at") if args.requested_at else None
        oid = rs.add_override(
            args.role,
            args.officer,
            _when(args.start, tz, "--from"),
            _when(args.end, tz, "--to"),
            by=args.by,
            stage=args.stage,
            reason=args.reason or "",
            requested_at=requested,
        )
    print(f"override #{oid} recorded")
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    with _rota(args) as (org, rs):
        path = args.file or (org.path / ROTA_FILE if org.path else None)
        if path is None:
            raise OohcoreError("give the rota file with --file")
        data = read_rota(Path(path), timezone=org.timezone, roles=org.rota_roles)
        rs.replace(data, by=args.by)
    print(f"{org.id}: rota replaced from {path}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from oohcore.rota import ical_checks
    from oohcore.rota.exchange import read_csv, read_ical

    path = Path(args.file)
    if not 1 <= args.days <= ical_checks.MAX_WINDOW.days:
        raise OohcoreError(f"--days must be from 1 to {ical_checks.MAX_WINDOW.days}")
    try:
        if not path.is_file():
            raise OohcoreError(f"{path} is not a file")
        with path.open("rb") as f:  # no more than the limit is read, whatever the file's size
            raw = f.read(ical_checks.MAX_BYTES + 1)
    except OSError as exc:
        raise OohcoreError(f"cannot read {path}: {exc.strerror}") from None
    with _rota(args) as (org, rs):
        data = rs.data()
        if path.suffix.lower() == ".csv":
            layer = read_csv(
                ical_checks.decode(raw, str(path)),
                data.officers,
                timezone=org.timezone,
                path=str(path),
            )
        else:
            start = rs.store.clock.now() - timedelta(days=1)
            layer = read_ical(
                raw,
                data.officers,
                start=start,
                end=start + timedelta(days=args.days),
                timezone=org.timezone,
                path=str(path),
            )
        rs.import_layer(args.role, layer, by=args.by, stage=args.stage)
    print(
        f"{len(layer.shifts)} shifts imported into {args.role} stage {args.stage} ({layer.name} layer)"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from oohcore.rota.exchange import write_csv, write_ical

    with _rota(args) as (org, rs):
        tz = rs.tz
        start = _when(args.start, tz, "--from") if args.start else rs.store.clock.now()
        end = _when(args.end, tz, "--to") if args.end else start + timedelta(days=28)
        data = rs.data()
    if args.format == "csv":
        sys.stdout.write(
            write_csv(data, args.role, start, end, timezone=org.timezone, stage=args.stage)
        )
    else:
        sys.stdout.buffer.write(
            write_ical(
                data,
                args.role,
                start,
                end,
                timezone=org.timezone,
                stage=args.stage,
                organisation=org.id,
            )
        )
    return 0


def _cmd_changes(args: argparse.Namespace) -> int:
    with _rota(args) as (_org, rs):
        changes = rs.changes()
        tz = rs.tz
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": c.id,
                        "kind": c.kind,
                        "summary": c.summary,
                        "by": c.changed_by,
                        "requested_at": c.requested_at.isoformat(),
                        "applied_at": c.applied_at.isoformat(),
                        "delay_s": c.delay,
                    }
                    for c in changes
                ],
                indent=2,
            )
        )
        return 0
    for c in changes:
        print(
            f"#{c.id} {c.kind}: {c.summary} -- by {c.changed_by}, requested {_fmt(c.requested_at, tz)}, "
            f"applied {_fmt(c.applied_at, tz)}"
        )
    return 0


def add_rota_parser(sub: Any) -> None:
    """Add ``oohcore rota ...`` to the CLI's sub-parsers."""
    p = sub.add_parser("rota", help="the rota in the store: show, gaps, override, import, export")
    rota_sub = p.add_subparsers(dest="rota_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("organisation", help="the organisation folder (or its id with --rulesets)")
        q.add_argument("--rulesets", type=Path, default=None)
        q.add_argument("--catalogue", type=Path, default=None)
        q.add_argument(
            "--store", default=_STORE_DEFAULT, help=f"the store's URL (default: {_STORE_DEFAULT})"
        )

    q = rota_sub.add_parser("show", help="who is on call for a role, as a timeline")
    common(q)
    q.add_argument("role")
    q.add_argument("--from", dest="start", help="local date and time (default: now)")
    q.add_argument("--to", dest="end", help="local date and time (default: a week on)")
    q.add_argument("--category", default=None, help="a sub-category (7.5)")
    q.add_argument("--area", default=None, help="a gazetteer ward or area (7.5)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_show)

    q = rota_sub.add_parser(
        "gaps", help="periods in the hours of service with nobody on a needed role"
    )
    common(q)
    q.add_argument("--days", type=int, default=30)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_gaps)

    q = rota_sub.add_parser(
        "override", help="put an officer on a role for a period (now or pre-dated)"
    )
    common(q)
    q.add_argument("role")
    q.add_argument("officer")
    q.add_argument("--from", dest="start", required=True)
    q.add_argument("--to", dest="end", required=True)
    q.add_argument("--stage", type=int, default=1)
    q.add_argument("--reason", default="")
    q.add_argument("--by", required=True, help="who is making the change")
    q.add_argument(
        "--requested-at", dest="requested_at", help="when it was asked for (default: now)"
    )
    q.set_defaults(func=_cmd_override)

    q = rota_sub.add_parser("load", help="replace the store's rota with a rota.yaml")
    common(q)
    q.add_argument("--file", type=Path, default=None, help="default: the folder's rota.yaml")
    q.add_argument("--by", required=True)
    q.set_defaults(func=_cmd_load)

    q = rota_sub.add_parser("import", help="import a role's shifts from an .ics or .csv file")
    common(q)
    q.add_argument("role")
    q.add_argument("file")
    q.add_argument("--stage", type=int, default=1)
    q.add_argument(
        "--days", type=int, default=366, help="how far ahead to expand recurrences (1-1096)"
    )
    q.add_argument("--by", required=True)
    q.set_defaults(func=_cmd_import)

    q = rota_sub.add_parser("export", help="export a role's stage as iCalendar or CSV")
    common(q)
    q.add_argument("role")
    q.add_argument("--from", dest="start")
    q.add_argument("--to", dest="end")
    q.add_argument("--stage", type=int, default=1)
    q.add_argument("--format", choices=("ics", "csv"), default="ics")
    q.set_defaults(func=_cmd_export)

    q = rota_sub.add_parser("changes", help="every rota change: who, requested and applied (2.1.3)")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_changes)
