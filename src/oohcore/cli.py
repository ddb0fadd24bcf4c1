"""The ``oohcore`` command line.

``oohcore validate PATH…``   check ruleset files or folders (exit 0 valid, 1 problems, 2 usage)
``oohcore schema [KIND]``    print the published JSON Schema of a ruleset file
``oohcore versions PATH``    print each service option's version hash (for sign-off, 5.3.1);
                             ``--store URL`` also warns of handed-out material older than it
``oohcore flowchart ORG OPTION --format svg|png|mermaid|dot``  an option's flowchart
``oohcore manual ORG --format html|pdf``  the procedures manual (audit item 1)
``oohcore audit verify``     check the audit log's hash chain and personal records (0 intact, 1 not)
``oohcore audit head``       print each organisation's chain head, to publish or pin it
``oohcore directory show``   an organisation's directory of contacts in the store (2.3.3)
``oohcore directory set``    change a contact's number (or email, opening times …), recorded
``oohcore demo``             run the demonstration on the example borough
``oohcore channels [--json]`` list the installed channel adapters; ``--check FILE`` checks an
                             organisation's ``channels.yaml`` (exit 0 valid, 1 problems)
``oohcore cdr import ORG FILE``  import call detail records (CSV) into the store (11.6.1)
``oohcore report ORG --period 2026-10 --kind monthly --format xlsx``  write a report (11.5-11.10)
``oohcore lint PATH``        ambiguity and dead ends, with witnesses (exit 0 clean, 1 findings)
``oohcore test PATH``        run the scenario tests (5.3.1); ``--junit FILE``, ``--coverage``
``oohcore diff OLD NEW``     what changed between two versions, in a council officer's words
``oohcore impact ORG --against OLD --store URL --since DATE``  calls a change would decide
                             differently
``oohcore health --store URL [--prometheus] [--max-lag S]``  the runners' lag (oohcore.durable.health)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oohcore.channels import ChannelConfigError
from oohcore.errors import OohcoreError, Problem, RulesetError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from oohcore.audit.model import ChainPin


def _cmd_validate(args: argparse.Namespace) -> int:
    from oohcore.folder_check import check_paths
    from oohcore.rulesets.loader import validate

    found = validate(args.paths, catalogue=args.catalogue)
    found += check_paths(args.paths, catalogue=args.catalogue)  # rota.yaml, gazetteer.csv …
    problems = [_shown(p) for p in found]
    errors = [p for p in problems if p.severity == "error"]
    if args.strict and not errors:
        from oohcore.procedure.lint import lint_path

        for path in args.paths:
            if Path(path).is_dir():
                for f in lint_path(path, catalogue=args.catalogue).open:
                    error = _shown(Problem(f.path, f.line, f.col, str(f).split(": ", 1)[1], f.kind))
                    # the same finding validate gave as a warning (nobody-holds) is now an error
                    problems = [p for p in problems if replace(p, severity="error") != error]
                    problems.append(error)
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
    from oohcore.procedure.materials import handed_out, versions_report
    from oohcore.rulesets.loader import load_organisation

    org = load_organisation(args.path, catalogue=args.catalogue)
    print(f"organisation {org.id}: {org.version}")
    for option in org.service_options.values():
        state = "signed off" if option.signed_off else "NOT signed off"
        print(f"  {option.id}: {option.version} ({state})")
    records = []
    if args.store is not None:
        store = _open_store(args.store)
        try:
            with store.read() as conn:
                records = handed_out(conn, org.id)
        finally:
            store.close()
    report = versions_report(org, records)
    print(
        f"live (signed off): {len(report.live)}; pending sign-off: {len(report.pending)}",
        file=sys.stderr,
    )
    for warning in report.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_flowchart(args: argparse.Namespace) -> int:
    """One service option's flowchart (audit items 8-9) as Mermaid, DOT, SVG or PNG."""
    from datetime import date

    from oohcore.procedure.flowchart import build_chart, render, to_dot, to_mermaid
    from oohcore.rulesets.loader import load_catalogue

    folder = Path(args.organisation)
    if (folder / "catalogue.yaml").is_file():
        source: Any = load_catalogue(folder)
    else:
        source, _ = _organisations(args)
    option = source.service_options.get(args.option)
    if option is None:
        known = ", ".join(sorted(source.service_options))
        raise OohcoreError(f"no service option {args.option!r} in {source.id} (it has: {known})")
    chart = build_chart(
        option,
        roles=source.rota_roles,
        directory=source.directory,
        generated=date.today(),
        policies=getattr(source, "escalation_policies", None),
    )
    data: bytes
    if args.format == "mermaid":
        data = to_mermaid(chart).encode()
    elif args.format == "dot":
        data = to_dot(chart).encode()
    else:
        data = render(chart, args.format)
    if args.out is None and args.format in ("mermaid", "dot"):
        sys.stdout.write(data.decode())
        return 0
    out = args.out or Path(f"{source.id}-{option.id}.{args.format}")
    out.write_bytes(data)
    print(out)
    return 0


def _cmd_manual(args: argparse.Namespace) -> int:
    """The procedures manual (audit item 1) with the store's living directory if given."""
    from datetime import date

    from oohcore.procedure.manual import write_manual

    org, _ = _organisations(args)
    contacts: Any = None
    if args.store is not None:
        from oohcore import directory

        store = _open_store(args.store)
        try:
            with store.read() as conn:
                contacts = {c.id: c for c in directory.entries(conn, org.id)} or None
        finally:
            store.close()
    out = args.out or Path(f"{org.id}-manual.{args.format}")
    print(write_manual(org, out, args.format, generated=date.today(), directory=contacts))
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the hash chain of every organisation's events (or one's) and their personal-data
    records, that each pinned head is still on its chain, and that each call row and message
    agrees with what the chain recorded of it (oohcore.engine.records): exit 0 intact, 1 not."""
    from oohcore.engine.records import verify

    with _audit_store(args.store) as (conn, shown):
        _check_organisation(conn, args.organisation)
        pins = list(args.expect_head or ())
        if args.organisation is not None:
            stray = sorted({p.organisation_id for p in pins} - {args.organisation})
            if stray:
                print(
                    f"oohcore: --expect-head names {', '.join(stray)} but --organisation is "
                    f"{args.organisation!r}; drop one or the other",
                    file=sys.stderr,
                )
                return 1
        report = verify(conn, args.organisation, expect=pins)
    if report.ok:
        print(f"audit chain intact: {args.organisation or 'every organisation'} in {shown}")
        print(f"  {report}")
        return 0
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(f"oohcore: {report}".splitlines()[0], file=sys.stderr)
    return 1


def _cmd_audit_head(args: argparse.Namespace) -> int:
    """Print each organisation's chain head (``ORG:SEQ:HASH`` and the time of that event)."""
    from oohcore.audit.read import chain_heads

    with _audit_store(args.store) as (conn, shown):
        _check_organisation(conn, args.organisation)
        heads = chain_heads(conn, args.organisation)
    if args.json:
        print(
            json.dumps(
                {
                    "store": shown,
                    "heads": [
                        {
                            "organisation": h.organisation_id,
                            "seq": h.seq,
                            "hash": h.hash,
                            "at": h.at.isoformat() if h.at is not None else None,
                            "pin": str(h.pin),
                        }
                        for h in heads
                    ],
                },
                indent=2,
            )
        )
    else:
        for h in heads:
            at = h.at.isoformat() if h.at is not None else "(that event is missing: run verify)"
            print(f"{h.pin}  {at}")
    return 0


class _Unusable(OohcoreError):
    """The --store given cannot be read as an oohcore store."""


@contextmanager
def _audit_store(url_text: str) -> Iterator[tuple[Connection, str]]:
    """A read-only snapshot of the store at ``url_text`` and its URL as shown (password hidden).

    Every way it can fail (not a URL, no such file, an unknown database or missing driver, an
    unreachable server, no oohcore tables, an older schema, no events at all) is one line.
    """
    from sqlalchemy import inspect, select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from oohcore.audit.chain import events
    from oohcore.clock import SystemClock
    from oohcore.store import Store, StoreError

    try:
        url = make_url(url_text)
    except (ArgumentError, ValueError):
        raise _Unusable(
            f"--store {_redacted(url_text)!r} is not a database URL; give one like "
            "sqlite:///path/to/oohcore.sqlite or postgresql+psycopg://user@host/database"
        ) from None
    shown = url.render_as_string(hide_password=True)
    secret = url.password

    def clean(text: str) -> str:
        line = text.strip().splitlines()[0] if text.strip() else text
        return line.replace(str(secret), "***") if secret else line

    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        raise _Unusable(f"no store at {shown} (no such file)")
    try:
        store = Store.open(url_text, clock=SystemClock(), migrate=False)
    except NoSuchModuleError:
        raise _Unusable(
            f"cannot open {shown}: {url.drivername!r} is not a database this installation "
            "can reach; oohcore stores are sqlite:///… or postgresql+psycopg://… (install "
            "psycopg for PostgreSQL)"
        ) from None
    except (SQLAlchemyError, ImportError) as exc:
        raise _Unusable(f"cannot open {shown}: {clean(str(exc))}") from None
    try:
        with store.read() as conn:
            tables = set(inspect(conn).get_table_names())
            if not {"events", "audit_heads"} <= tables:
                raise _Unusable(
                    f"{shown} holds no oohcore store (it has no audit tables): check --store"
                )
            if "personal_data" not in tables:
                raise _Unusable(
                    f"the store at {shown} has an older schema than this oohcore (no "
                    "personal_data table); open it once with this version (Store.open upgrades "
                    "it), then verify"
                )
            if conn.execute(select(events.c.id).limit(1)).first() is None:
                raise _Unusable(
                    f"the store at {shown} holds no audit events (nothing to verify or "
                    "pin); if it should have some, they were deleted (compare with a "
                    "published head: --expect-head)"
                )
            yield conn, shown
    except (SQLAlchemyError, StoreError) as exc:
        # a fault of the machine is the store's StoreError; its cause is the driver's error
        orig = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None)
        raise _Unusable(f"cannot read {shown}: {clean(str(orig or exc))}") from None
    finally:
        store.close()


def _check_organisation(conn: Connection, organisation_id: str | None) -> None:
    from oohcore.audit.read import organisations

    if organisation_id is None:
        return
    known = organisations(conn)
    if organisation_id not in known:
        raise _Unusable(
            f"organisation {organisation_id!r} has no audit events in this store; it holds: "
            + (", ".join(known) or "none")
        )


def _redacted(url_text: str) -> str:
    """A URL as typed, with anything between ``user:`` and ``@`` hidden."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url_text)


def _pin(text: str) -> ChainPin:
    from oohcore.audit.model import ChainPin

    try:
        return ChainPin.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def _cmd_channels(args: argparse.Namespace) -> int:
    """List the installed channel adapters, or check a channels.yaml (builds nothing that sends:
    each channel is built from its settings, then closed at once)."""
    from oohcore.channels.registry import build_channels, check_channels, describe_adapters

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
        built = build_channels(data["channels"], source=source, within=("channels",))
        try:
            # the files the settings name (S/MIME recipients' certificates), read now
            found = check_channels(built, data["channels"], source=source, within=("channels",))
        finally:
            for channel in built.values():
                channel.close()
        if found:
            raise ChannelConfigError(found)
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
    from oohcore.cdr_csv import import_cdr_file
    from oohcore.telephony import CdrError

    org, _ = _organisations(args)
    store = _open_store(args.store)
    try:  # read as a stream and imported in one transaction: all or nothing (11.6.1)
        print(import_cdr_file(store, org, args.file))
    except CdrError as exc:
        for problem in exc.problems:
            print(_shown(problem), file=sys.stderr)
        print(f"oohcore: {len(exc.problems)} problem(s); nothing was imported", file=sys.stderr)
        return 1
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


def _cmd_lint(args: argparse.Namespace) -> int:
    from oohcore.procedure.lint import lint_path

    report = lint_path(args.path, catalogue=args.catalogue)
    if args.json:
        print(json.dumps([f.as_dict() for f in report.findings], indent=2, default=str))
    else:
        for f in report.findings:
            print(replace(f, path=_shown(Problem(f.path, f.line, f.col, "")).path))
    explained = len(report.findings) - len(report.open)
    print(
        f"lint: {report.options} option(s), {len(report.open)} finding(s)"
        + (f", {explained} explained in the ruleset" if explained else ""),
        file=sys.stderr,
    )
    return 1 if report.open else 0


def _cmd_test(args: argparse.Namespace) -> int:
    from oohcore.procedure.scenarios import draft_file, junit_xml, run_path

    if args.draft is not None:
        print(draft_file(args.path, args.draft, catalogue=args.catalogue), end="")
        return 0
    run = run_path(args.path, catalogue=args.catalogue)
    for r in run.results:
        mark = "ok  " if r.passed else "FAIL"
        print(f"{mark} {r.option}: {r.name}")
        for failure in r.failures:
            print(f"       {_shown(Problem(r.path, r.line, 1, '')).path}:{r.line}: {failure}")
    passed = len(run.results) - len(run.failed)
    print(f"{passed} passed, {len(run.failed)} failed", file=sys.stderr)
    failing = {r.option for r in run.failed}
    for option, version in sorted(run.versions.items()):
        if option not in failing and any(r.option == option for r in run.results):
            print(f"ready for sign-off (5.3.1): {option} {version}")
    if args.coverage:
        for option, missing in run.uncovered().items():
            shown = ", ".join("the default" if m is None else f"rule {m + 1}" for m in missing)
            print(f"not exercised: {option}: {shown}")
        print(f"rule coverage: {run.coverage():.1%}")
    if args.junit is not None:
        args.junit.write_text(junit_xml(run), encoding="utf-8")
    return 1 if run.failed else 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from oohcore.procedure.diff import diff_paths

    changes = diff_paths(args.old, args.new, catalogue=args.catalogue)
    for change in changes:
        print(change)
    if not changes:
        print("no change in behaviour", file=sys.stderr)
    return 0


def _cmd_impact(args: argparse.Namespace) -> int:
    from oohcore.procedure.impact import impact_of

    report = impact_of(
        args.organisation,
        against=args.against,
        store_url=args.store,
        since=args.since,
        catalogue=args.catalogue,
    )
    print(report.text(limit=args.limit))
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
    p.add_argument(
        "--strict", action="store_true", help="also run lint; its open findings are errors"
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("lint", help="find ambiguity and dead ends, with witnesses")
    p.add_argument("path", type=Path, help="an organisation or catalogue folder")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--catalogue", type=Path, default=None)
    p.set_defaults(func=_cmd_lint)

    p = sub.add_parser("test", help="run the scenario tests of the options (5.3.1)")
    p.add_argument("path", type=Path, help="an organisation or catalogue folder")
    p.add_argument("--junit", type=Path, default=None, metavar="FILE", help="write JUnit XML")
    p.add_argument("--coverage", action="store_true", help="list the rules no scenario exercises")
    p.add_argument(
        "--draft",
        metavar="OPTION",
        default=None,
        help="print draft scenarios for OPTION (one per rule and the default, from lint's "
        "witnesses) to review and save as scenarios/OPTION.yaml",
    )
    p.add_argument("--catalogue", type=Path, default=None)
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser("diff", help="what changed between two versions, in plain words")
    p.add_argument("old", type=Path, help="the old folder or option file")
    p.add_argument("new", type=Path, help="the new folder or option file")
    p.add_argument("--catalogue", type=Path, default=None)
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("impact", help="replay stored calls under a changed ruleset")
    p.add_argument("organisation", type=Path, help="the organisation folder (the new version)")
    p.add_argument("--against", type=Path, required=True, help="the old organisation folder")
    p.add_argument("--store", default="sqlite:///oohcore.sqlite")
    p.add_argument("--since", type=_since, required=True, help="a date, e.g. 2026-10-01")
    p.add_argument("--limit", type=int, default=50, help="calls to list (default 50)")
    p.add_argument("--catalogue", type=Path, default=None)
    p.set_defaults(func=_cmd_impact)

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
    p.add_argument(
        "--store",
        default=None,
        help="the store's SQLAlchemy URL: warn of handed-out material older than the live version",
    )
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
    p.add_argument(
        "--expect-head",
        metavar="ORG:SEQ:HASH",
        type=_pin,
        action="append",
        help="fail unless this event (as 'audit head' printed it) is still on the chain; "
        "repeatable",
    )
    p.set_defaults(func=_cmd_audit_verify)
    p = audit_sub.add_parser(
        "head", help="print each organisation's chain head (ORG:SEQ:HASH), to publish or pin"
    )
    p.add_argument(
        "--store",
        default="sqlite:///oohcore.sqlite",
        help="the store's SQLAlchemy URL (default: sqlite:///oohcore.sqlite)",
    )
    p.add_argument("--organisation", default=None, help="one organisation's head only")
    p.add_argument("--json", action="store_true", help="print the heads as JSON")
    p.set_defaults(func=_cmd_audit_head)

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

    from oohcore.rota.cli import add_rota_parser  # oohcore rota show|gaps|override|... (issue 8)

    add_rota_parser(sub)

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

    p = sub.add_parser("flowchart", help="a service option's flowchart (audit items 8-9)")
    p.add_argument("organisation", help="an organisation or catalogue folder, or an id")
    p.add_argument("option", help="the service option id, e.g. housing-repairs")
    p.add_argument("--rulesets", type=Path, default=None, help="folder of organisation folders")
    p.add_argument("--catalogue", type=Path, default=None)
    p.add_argument("--format", default="svg", choices=["svg", "png", "mermaid", "dot"])
    p.add_argument("--out", type=Path, default=None, help="the file to write")
    p.set_defaults(func=_cmd_flowchart)

    p = sub.add_parser("manual", help="the procedures manual of an organisation (audit item 1)")
    p.add_argument("organisation", help="an organisation folder, or an id under --rulesets")
    p.add_argument("--rulesets", type=Path, default=None, help="folder of organisation folders")
    p.add_argument("--catalogue", type=Path, default=None)
    p.add_argument("--format", default="html", choices=["html", "pdf"])
    p.add_argument("--out", type=Path, default=None, help="the file to write")
    p.add_argument(
        "--store", default=None, help="take the contacts' numbers from this store (2.3.3)"
    )
    p.set_defaults(func=_cmd_manual)
    p = sub.add_parser("health", help="the runners' lag: oldest due timer and message not handled")
    p.add_argument(
        "--store",
        default="sqlite:///oohcore.sqlite",
        help="the store's SQLAlchemy URL (default: sqlite:///oohcore.sqlite)",
    )
    p.add_argument("--prometheus", action="store_true", help="Prometheus text format")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.add_argument(
        "--max-lag", type=float, default=None, metavar="SECONDS", help="exit 1 when lag is over it"
    )
    p.set_defaults(func=_cmd_health)
    return parser


def _cmd_health(args: argparse.Namespace) -> int:
    """Print the runners' lag (oldest due timer and message not handled): exit 0, or 1 when
    ``--max-lag`` is given and the lag is over it (for a monitoring check)."""
    from sqlalchemy.exc import SQLAlchemyError

    from oohcore.clock import SystemClock
    from oohcore.durable.health import prometheus, read_lag
    from oohcore.store import Store, StoreError

    shown = _redacted(args.store)
    try:
        store = Store.open(args.store, clock=SystemClock(), migrate=False)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise _Unusable(f"cannot open {shown}: {str(exc).strip().splitlines()[0]}") from None
    try:
        seen = read_lag(store)
    except (SQLAlchemyError, StoreError) as exc:
        orig = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None)
        line = str(orig or exc).strip().splitlines()[0]
        raise _Unusable(
            f"cannot read the lag from {shown} (is it an oohcore store?): {line}"
        ) from None
    finally:
        store.close()
    if args.prometheus:
        sys.stdout.write(prometheus(seen))
    elif args.json:
        print(json.dumps(seen.as_dict(), indent=2))
    else:
        print(
            f"lag {seen.lag.total_seconds():.1f} s: {seen.timers_due} timer(s) due, oldest "
            f"{seen.timer_lag.total_seconds():.1f} s; {seen.messages_due} message(s) due, oldest "
            f"{seen.message_lag.total_seconds():.1f} s"
            + (
                f"; lag episode open since {seen.open_episode_since.isoformat()}"
                if seen.open_episode_since
                else ""
            )
        )
    if args.max_lag is not None and seen.lag.total_seconds() > args.max_lag:
        print(f"oohcore: lag over {args.max_lag:g} s", file=sys.stderr)
        return 1
    return 0


def _since(text: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write e.g. 2026-10-01") from None


EXIT_CLOSED_PIPE = 141
"""The exit status of a command whose reader went away (``oohcore lint | head``): 128 + SIGPIPE,
what a Unix tool killed by the signal reports, and no message (the reader wanted no more)."""


def _closed_pipe() -> int:
    """Stop writing quietly once the reader of standard output has gone: point the stream at
    /dev/null so the interpreter's last flush at exit cannot raise again."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue  # not a real file (a test's StringIO): nothing will flush into a pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return EXIT_CLOSED_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return _closed_pipe()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, or a usage error: its text is flushed here, not at exit
        sys.stdout.flush()
        raise
    try:
        code: int = args.func(args)
        # what is still buffered goes out now, where a closed pipe is caught (not at exit)
        sys.stdout.flush()
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
