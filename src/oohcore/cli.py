"""The ``oohcore`` command line.

``oohcore validate PATH…``   check ruleset files or folders (exit 0 valid, 1 problems, 2 usage)
``oohcore schema [KIND]``    print the published JSON Schema of a ruleset file
``oohcore versions PATH``    print each service option's version hash (for sign-off, 5.3.1)
``oohcore audit verify``     check the audit log's hash chain (exit 0 intact, 1 broken)
``oohcore directory show``   an organisation's directory of contacts in the store (2.3.3)
``oohcore directory set``    change a contact's number (or email, opening times …), recorded
``oohcore demo``             run the demonstration on the example borough
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


def _cmd_directory(args: argparse.Namespace) -> int:
    """Seed the store's directory from the organisation's files (the store's own entries win),
    then show it or change one entry (2.3.3: who, when, when requested)."""
    from datetime import datetime

    from oohcore import directory
    from oohcore.clock import SystemClock
    from oohcore.rulesets.loader import load_organisation
    from oohcore.store import Store

    org = load_organisation(args.organisation, catalogue=args.catalogue)
    requested = None
    if getattr(args, "requested_at", None):
        try:
            requested = datetime.fromisoformat(args.requested_at)
        except ValueError:
            print(
                f"oohcore: --requested-at {args.requested_at!r} is not a date and time; write "
                "e.g. 2026-12-02T08:30+00:00",
                file=sys.stderr,
            )
            return 1
    clock = SystemClock()
    store = Store.open(args.store, clock=clock)
    try:
        with store.transaction() as conn:
            report = directory.seed(conn, org.id, org.directory, at=clock.now())
            if args.directory_command == "set":
                # a field given as '' is cleared; one not given is left as it is
                fields: dict[str, Any] = {
                    name: getattr(args, name) or None
                    for name in directory.FIELDS
                    if getattr(args, name) is not None
                }
                before = directory.get(conn, org.id, args.contact)
                after = directory.change(
                    conn,
                    org.id,
                    args.contact,
                    by=args.by,
                    at=clock.now(),
                    requested_at=requested,
                    **fields,
                )
                changed = before is None or after.revision != before.revision
                print(f"{after.id}: {_contact_line(after)}")
                print("changed" if changed else "unchanged (it already had those values)")
                return 0
            contacts = directory.entries(conn, org.id)
    finally:
        store.close()
    for contact in contacts:
        print(f"{contact.id}: {_contact_line(contact)}")
        print(
            f"    revision {contact.revision}, by {contact.changed_by} at "
            f"{contact.changed_at.isoformat(timespec='seconds')}"
        )
    for contact_id in report.differs:
        print(
            f"note: {contact_id} differs from directory.yaml; the store's entry is the living one",
            file=sys.stderr,
        )
    return 0


def _contact_line(contact: object) -> str:
    parts = [
        getattr(contact, name)
        for name in ("name", "number", "email", "opening_times")
        if getattr(contact, name)
    ]
    return " | ".join(str(p) for p in parts)


def _cmd_demo(args: argparse.Namespace) -> int:
    from oohcore.demo import run_demo

    code: int = run_demo(Path(args.borough) if args.borough else None, out=sys.stdout)
    return code


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
        choices=["service-option", "organisation", "catalogue", "directory"],
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

    p = sub.add_parser("directory", help="the living directory of contacts (2.3.3)")
    dir_sub = p.add_subparsers(dest="directory_command", required=True)
    for name, text in (
        ("show", "show an organisation's contacts (seeding the store from its files)"),
        ("set", "change one contact; the change is recorded with who and when"),
    ):
        q = dir_sub.add_parser(name, help=text)
        q.add_argument("organisation", type=Path, help="the organisation folder")
        if name == "set":
            q.add_argument("contact", help="the contact id, e.g. daytime-repairs")
            q.add_argument("--number", help="the new telephone number")
            q.add_argument("--email", help="the new email address ('' clears it)")
            q.add_argument("--name", help="the new name")
            q.add_argument("--opening-times", dest="opening_times", help="the new opening times")
            q.add_argument("--notes", help="new notes for call handlers")
            q.add_argument("--by", required=True, help="who is making the change")
            q.add_argument(
                "--requested-at",
                dest="requested_at",
                help="when the organisation asked for it (ISO 8601; default: now)",
            )
        q.add_argument(
            "--store",
            default="sqlite:///oohcore.sqlite",
            help="the store's SQLAlchemy URL (default: sqlite:///oohcore.sqlite)",
        )
        q.add_argument("--catalogue", type=Path, default=None)
        q.set_defaults(func=_cmd_directory)

    p = sub.add_parser("demo", help="run the demonstration on the example borough")
    p.add_argument(
        "--borough", default=None, help="organisation folder (default: the example borough)"
    )
    p.set_defaults(func=_cmd_demo)
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
