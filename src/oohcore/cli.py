"""The ``oohcore`` command line.

``oohcore validate PATH…``   check ruleset files or folders (exit 0 valid, 1 problems, 2 usage)
``oohcore schema [KIND]``    print the published JSON Schema of a ruleset file
``oohcore versions PATH``    print each service option's version hash (for sign-off, 5.3.1)
``oohcore demo``             run the demonstration on the example borough
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oohcore.errors import OohcoreError, RulesetError


def _cmd_validate(args: argparse.Namespace) -> int:
    from oohcore.rulesets.loader import validate

    problems = validate(args.paths, catalogue=args.catalogue)
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
        choices=["service-option", "organisation", "catalogue"],
    )
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("versions", help="print the version hash of each service option")
    p.add_argument("path", type=Path)
    p.add_argument("--catalogue", type=Path, default=None)
    p.set_defaults(func=_cmd_versions)

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
