"""The ``oohcore`` command line.

``oohcore validate PATH…``   check ruleset files or folders (exit 0 valid, 1 problems, 2 usage)
``oohcore schema [KIND]``    print the published JSON Schema of a ruleset file
``oohcore versions PATH``    print each service option's version hash (for sign-off, 5.3.1)
``oohcore audit verify``     check the audit log's hash chain (exit 0 intact, 1 broken)
``oohcore demo``             run the demonstration on the example borough
``oohcore channels [--json]`` list the installed channel adapters; ``--check FILE`` checks an
                             organisation's ``channels.yaml`` (exit 0 valid, 1 problems)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from oohcore.channels import ChannelConfigError
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


def _cmd_channels(args: argparse.Namespace) -> int:
    """List the installed channel adapters, or check a channels.yaml (builds nothing that sends:
    each channel is built from its settings, then closed at once)."""
    from oohcore.channels.registry import build_channels, describe_adapters

    if args.check is not None:
        from oohcore.rulesets.source import read_yaml

        source = read_yaml(args.check)
        data = source.data if isinstance(source.data, dict) else None
        if data is None or not isinstance(data.get("channels"), dict):
            pos = source.where(())
            print(
                f"{pos.file}:{pos.line}:{pos.col}: expected a mapping 'channels:' of channel "
                "names, each to an adapter and its settings",
                file=sys.stderr,
            )
            return 1
        for channel in build_channels(
            data["channels"], source=source, within=("channels",)
        ).values():
            channel.close()
        print(f"valid: {args.check}", file=sys.stderr)
        return 0
    adapters, problems = describe_adapters()
    if args.json:
        print(
            json.dumps(
                {"adapters": [a.as_dict() for a in adapters], "problems": problems}, indent=2
            )
        )
    else:
        for adapter in adapters:
            print(_adapter_text(adapter.as_dict()))
        for problem in problems:
            print(f"oohcore: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _adapter_text(a: dict[str, object]) -> str:
    def limit(value: object, unit: str) -> str:
        return "no limit" if value is None else f"{value} {unit}"

    requires = a["requires"]
    assert isinstance(requires, dict)
    needs = (
        ", ".join(f"{m} ({'ok' if ok else 'MISSING'})" for m, ok in requires.items()) or "nothing"
    )
    schema = a["config"]
    settings = "none"
    if isinstance(schema, dict):
        required = set(schema.get("required", ()))
        settings = ", ".join(
            f"{name}{'' if name in required else '?'}" for name in schema.get("properties", {})
        )
    carries = a["carries"]
    return "\n".join(
        [
            f"{a['name']}  ({a['factory']})",
            f"  carries:       {', '.join(carries) if isinstance(carries, list) else 'undeclared'}",
            f"  contact field: {a['contact_field'] or 'its own endpoint'}",
            f"  body / subject: {limit(a['max_body'], 'chars')} / {limit(a['max_subject'], 'chars')}",
            f"  rate limit:    {limit(a['rate_limit'], 'messages/s')}",
            f"  receipts:      {'yes' if a['receipts'] else 'no'}",
            f"  send timeout:  {a['send_timeout_seconds']} s",
            f"  requires:      {needs}",
            f"  settings:      {settings}  (? = optional; --json for the schema)",
        ]
    )


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

    p = sub.add_parser("channels", help="list the installed channel adapters")
    p.add_argument("--json", action="store_true", help="print them as JSON, with config schemas")
    p.add_argument(
        "--check",
        type=Path,
        default=None,
        metavar="FILE",
        help="check an organisation's channels.yaml instead (every setting of every channel)",
    )
    p.set_defaults(func=_cmd_channels)

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
    except (RulesetError, ChannelConfigError) as exc:
        for problem in exc.problems:
            print(_shown(problem), file=sys.stderr)
        return 1
    except OohcoreError as exc:
        print(f"oohcore: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
