"""The ``oohcore`` command line.

``oohcore validate PATH…``   check ruleset files or folders (exit 0 valid, 1 problems, 2 usage)
``oohcore schema [KIND]``    print the published JSON Schema of a ruleset file
``oohcore versions PATH``    print each service option's version hash (for sign-off, 5.3.1)
``oohcore audit verify``     check the audit log's hash chain (exit 0 intact, 1 broken)
``oohcore demo``             run the demonstration on the example borough
``oohcore cdr import ORG FILE``  import call detail records (CSV) into the store (11.6.1)
``oohcore report ORG --period 2026-10 --kind monthly --format xlsx``  write a report (11.5-11.10)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from oohcore.errors import OohcoreError, Problem, RulesetError


def _cmd_validate(args: argparse.Namespace) -> int:
    from oohcore.rulesets.loader import validate

    problems = [_shown(p) for p in validate(args.paths, catalogue=args.catalogue)]
    errors = [p for p in problems if p.severity == "error"]
    if args.json:
        print(
            json.dumps({"valid": not errors, "problems": [p.as_dict() for p in problems]}, indent=2)
        )
    else:
        for p in problems:
            print(p)
        if not errors:
            warned = f" ({len(problems)} warning(s))" if problems else ""
            print(f"valid: {', '.join(str(p) for p in args.paths)}{warned}", file=sys.stderr)
    return 1 if errors else 0


def _shown(problem: Problem) -> Problem:
    """The problem with its path relative to the current folder when it is inside it, as the
    user typed it (editors and terminals open ``path:line:col`` either way)."""
    path = Path(problem.path)
    if path.is_absolute():
        try:
            return replace(problem, path=str(path.relative_to(Path.cwd())))
        except ValueError:
            return problem
    return problem


def _cmd_schema(args: argparse.Namespace) -> int:
    from oohcore.rulesets.schema import published

    print(json.dumps(published(args.kind), indent=2, sort_keys=True))
    return 0


def _cmd_versions(args: argparse.Namespace) -> int:
    from oohcore.rulesets.loader import load_organisation

    org = load_organisation(args.path, catalogue=args.catalogue)
    print(f"organisation {org.id}: {org.version}")
    for option in org.service_options.values():
        state = "signed off" if option.signed_off else "NOT signed off"
        print(f"  {option.id}: {option.version} ({state})")
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the hash chain of every organisation's events (or one's): exit 0 intact, 1 broken."""
    from sqlalchemy.engine import make_url

    from oohcore.audit import verify
    from oohcore.clock import SystemClock
    from oohcore.store import Store

    url = make_url(args.store)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        print(f"oohcore: no store at {args.store} (no such file)", file=sys.stderr)
        return 1
    store = Store.open(args.store, clock=SystemClock(), migrate=False)
    try:
        report = verify(store, args.organisation)
    finally:
        store.close()
    if report.ok:
        print(f"audit chain intact: {args.organisation or 'every organisation'} in {args.store}")
        return 0
    for problem in report.problems:
        print(problem, file=sys.stderr)
    return 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from oohcore.demo import run_demo

    code: int = run_demo(Path(args.borough) if args.borough else None, out=sys.stdout)
    return code


def _organisations(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The organisation ORG names (an organisation folder, or an id under --rulesets), and
    every organisation under --rulesets (for the reports across organisations)."""
    from oohcore.rulesets.loader import load_organisation, load_organisations

    folder = Path(args.organisation)
    if (folder / "organisation.yaml").is_file():
        org = load_organisation(folder, catalogue=args.catalogue)
        everyone = [org]
        if args.rulesets is not None:
            everyone = load_organisations(args.rulesets, catalogue=args.catalogue)
        return org, everyone
    everyone = load_organisations(args.rulesets or Path("."), catalogue=args.catalogue)
    for org in everyone:
        if org.id == args.organisation:
            return org, everyone
    known = ", ".join(sorted(o.id for o in everyone)) or "none"
    raise OohcoreError(
        f"no organisation {args.organisation!r} under {args.rulesets or '.'} (found: {known}); "
        "give an organisation folder or its id with --rulesets FOLDER"
    )


def _open_store(url: str) -> Any:
    from sqlalchemy.engine import make_url

    from oohcore.clock import SystemClock
    from oohcore.store import Store

    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database
        and not Path(parsed.database).is_file()
    ):
        raise OohcoreError(f"no store at {url} (no such file)")
    return Store.open(url, clock=SystemClock())


def _cmd_cdr_import(args: argparse.Namespace) -> int:
    from oohcore.telephony import CdrError, import_cdrs, read_cdr_csv

    org, _ = _organisations(args)
    try:
        records = read_cdr_csv(args.file)
    except CdrError as exc:
        for problem in exc.problems:
            print(_shown(problem), file=sys.stderr)
        print(f"oohcore: {len(exc.problems)} problem(s); nothing was imported", file=sys.stderr)
        return 1
    store = _open_store(args.store)
    try:
        print(import_cdrs(store, org, records, where=str(args.file)))
    finally:
        store.close()
    return 0


class _Bar:
    """A one-line progress bar on a terminal's standard error; silent elsewhere."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.on = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, step: str, done: int, of: int) -> None:
        if not self.on:
            return
        width = 30
        filled = width * done // max(of, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{of} {step[:40]:<40}")
        if done >= of and step == "done":
            self.stream.write("\n")
        self.stream.flush()


def _cmd_report(args: argparse.Namespace) -> int:
    from oohcore.kpi.targets import load_targets
    from oohcore.reports import build_report, write_report

    org, everyone = _organisations(args)
    targets = load_targets(args.targets) if args.targets else None
    store = _open_store(args.store)
    try:
        report = build_report(
            store,
            org,
            args.kind,
            args.period,
            targets=targets,
            organisations=everyone,
            progress=_Bar(sys.stderr),
        )
    finally:
        store.close()
    out = args.out or Path(f"{org.id}-{args.kind}-{report.period.label}.{args.format}")
    print(write_report(report, out, args.format))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oohcore", description="Out-of-hours call handling rulesets and engine."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check ruleset files or folders")
    p.add_argument(
        "paths", nargs="+", type=Path, help="organisation or catalogue folders, or files"
    )
    p.add_argument("--json", action="store_true", help="print the problems as JSON")
    p.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="catalogue folder for 'extends: catalogue:<id>' (default: the packaged catalogue)",
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of a ruleset file")
    p.add_argument(
        "kind",
        nargs="?",
        default="service-option",
        choices=["service-option", "organisation", "catalogue"],
    )
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("versions", help="print the version hash of each service option")
    p.add_argument("path", type=Path)
    p.add_argument("--catalogue", type=Path, default=None)
    p.set_defaults(func=_cmd_versions)

    p = sub.add_parser("audit", help="work with the audit log")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser(
        "verify", help="check that no event has been edited or deleted (hash chain)"
    )
    p.add_argument(
        "--store",
        default="sqlite:///oohcore.sqlite",
        help="the store's SQLAlchemy URL (default: sqlite:///oohcore.sqlite)",
    )
    p.add_argument("--organisation", default=None, help="check one organisation's chain only")
    p.set_defaults(func=_cmd_audit_verify)

    p = sub.add_parser("demo", help="run the demonstration on the example borough")
    p.add_argument(
        "--borough", default=None, help="organisation folder (default: the example borough)"
    )
    p.set_defaults(func=_cmd_demo)

    from oohcore.reports.kinds import KINDS
    from oohcore.reports.render import FORMATS

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("organisation", help="an organisation folder, or an id under --rulesets")
        p.add_argument("--rulesets", type=Path, default=None, help="folder of organisation folders")
        p.add_argument("--catalogue", type=Path, default=None)
        p.add_argument(
            "--store",
            default="sqlite:///oohcore.sqlite",
            help="the store's SQLAlchemy URL (default: sqlite:///oohcore.sqlite)",
        )

    p = sub.add_parser("cdr", help="call detail records from the telephone network")
    cdr_sub = p.add_subparsers(dest="cdr_command", required=True)
    p = cdr_sub.add_parser("import", help="import a CDR CSV file: all rows or none, each once")
    common(p)
    p.add_argument("file", type=Path, help="the CSV file (columns in docs/kpis.md)")
    p.set_defaults(func=_cmd_cdr_import)

    p = sub.add_parser("report", help="write a performance report (11.5-11.10)")
    common(p)
    p.add_argument("--period", required=True, help="2026-10-03, 2026-W41, 2026-10 or 2026")
    p.add_argument("--kind", default="monthly", choices=list(KINDS))
    p.add_argument("--format", default="xlsx", choices=list(FORMATS))
    p.add_argument("--out", type=Path, default=None, help="the file to write")
    p.add_argument("--targets", type=Path, default=None, help="a targets file (docs/kpis.md)")
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except RulesetError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except OohcoreError as exc:
        print(f"oohcore: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
