"""The procedures manual of an organisation (audit item 1; spec 13.x, 11.11.1h, 14.3h, 5.3.1).

One self-contained, printable HTML page (no script, no external file) generated from the
compiled rulesets: a front page listing every service option with its version hash and its
sign-off (who, when), then per option its hours and variants, the script as the call handler
sees it (opening, questions with their guidance and conditions, the data-protection text:
the same fields the engine's :class:`~oohcore.engine.views.ScriptView` shows), the flowchart
(inline SVG), the decision table (first match wins), the actions with their contacts'
numbers from the directory (2.3.3), and each escalation step by step to its last holder.

Every page carries the version hash and the generation date (audit items 15-16): the manual is
regenerated from the rulesets, never edited. :func:`write_pdf` prints it with headless Chromium
where it is installed.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from oohcore.errors import OohcoreError
from oohcore.procedure.flowchart import (
    ContactDetails,
    action_lines,
    build_chart,
    describe_hours,
    escalation_steps,
    readable_condition,
    render,
)
from oohcore.rulesets.compiler import Organisation, ServiceOption
from oohcore.rulesets.models import LoneWorker, Refer, format_duration

__all__ = ["ManualError", "manual_html", "write_manual", "write_pdf"]

FORMATS = ("html", "pdf")


class ManualError(OohcoreError):
    """The manual cannot be written in the format asked (no PDF renderer, …)."""


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#1d2733}
header{background:#16324f;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;opacity:.85}
main{padding:12px 32px 48px}
section.option{page-break-before:always;break-before:page;margin-top:28px}
h2{font-size:20px;border-bottom:3px solid #16324f;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px;color:#16324f}
table{border-collapse:collapse;font-size:13px;margin:4px 0 10px}
th{background:#e4ebf3;text-align:left;padding:5px 8px;vertical-align:bottom}
td{padding:4px 8px;border-bottom:1px solid #e6e9ee;vertical-align:top}
code{font-size:12px;word-break:break-all}
.stamp{font-size:12px;color:#52606d}
.pending{color:#c62828;font-weight:700}.signed{color:#2e7d32;font-weight:600}
figure{margin:8px 0}figure svg{max-width:100%;height:auto}
blockquote{margin:4px 0 8px;padding:4px 12px;border-left:4px solid #9aa5b1;background:#f4f6f9}
@media print{header{background:none;color:#000}section.option{margin-top:0}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _sign_off(option: ServiceOption) -> str:
    so = option.definition.sign_off
    if option.signed_off and so is not None:
        return f'<span class="signed">signed off by {_e(so.by)} on {so.on.isoformat()}</span>'
    if so is not None:
        return (
            f'<span class="pending">NOT signed off</span> (the sign-off of {_e(so.by)} on '
            f"{so.on.isoformat()} is for version <code>{_e(so.version)}</code>)"
        )
    return '<span class="pending">NOT signed off</span>'


def _inline_svg(option: ServiceOption, organisation: Organisation, generated: date) -> str:
    chart = build_chart(
        option,
        roles=organisation.rota_roles,
        directory=organisation.directory,
        generated=generated,
        policies=organisation.escalation_policies,
    )
    svg = render(chart, "svg").decode("utf-8")
    return svg[svg.index("<svg") :]


def _option_section(
    option: ServiceOption,
    organisation: Organisation,
    directory: Mapping[str, ContactDetails],
    generated: date,
) -> str:
    d = option.definition
    stamp = (
        f'<p class="stamp">Version <code>{_e(option.version)}</code> · {_sign_off(option)} · '
        f"generated {generated.isoformat()} from the rulesets; regenerate, never edit</p>"
    )
    out = [f'<section class="option" id="{_e(option.id)}">']
    out.append(f"<h2>{_e(option.name)} <small>({_e(option.id)})</small></h2>{stamp}")
    if d.description:
        out.append(f"<p>{_e(d.description)}</p>")
    out.append(f"<p>Standard: {_e(option.standard.value)}; time limit to pass on a request: ")
    out.append(f"{format_duration(option.time_limit)}.</p>")
    out.append("<h3>Hours of service</h3><ul>")
    out.extend(f"<li>{_e(line)}</li>" for line in describe_hours(option.hours))
    out.append("</ul>")
    for v in d.variants:
        out.append(
            f"<p><b>Variant: {_e(v.name)}</b> ({'; '.join(map(_e, describe_hours(v.hours)))})"
        )
        out.append(f"</p><blockquote>Tell the caller: {_e(v.tell_caller)}</blockquote>")

    script = d.script
    out.append("<h3>Script</h3>")
    if script.opening:
        out.append(f"<blockquote>{_e(script.opening)}</blockquote>")
    out.append(
        "<table><tr><th>#</th><th>Ask</th><th>Answer</th><th>When</th><th>Guidance</th></tr>"
    )
    for i, q in enumerate(option.questions, 1):
        answer = q.type.value + (" (essential)" if q.essential else "")
        if q.options:
            answer += ": " + "; ".join(q.options.values())
        when = readable_condition(q.ask_if, option) if q.ask_if else "always"
        out.append(
            f"<tr><td>{i}</td><td>{_e(q.ask)}</td><td>{_e(answer)}</td><td>{_e(when)}</td>"
            f"<td>{_e(q.help or '')}</td></tr>"
        )
    out.append("</table>")
    if script.data_protection:
        out.append(f"<p><b>Data protection:</b> {_e(script.data_protection)}</p>")

    out.append("<h3>Flowchart</h3>")
    out.append(f"<figure>{_inline_svg(option, organisation, generated)}</figure>")

    out.append("<h3>Decision (the first rule that holds is taken)</h3>")
    out.append("<table><tr><th>Rule</th><th>When</th><th>Action</th><th>Note</th></tr>")
    for i, rule in enumerate(d.decision.rules, 1):
        out.append(
            f"<tr><td>{i}</td><td>{_e(readable_condition(rule.when, option))}</td>"
            f"<td>{_e(rule.then)}</td><td>{_e(rule.note or '')}</td></tr>"
        )
    out.append(
        f"<tr><td>default</td><td>no rule holds</td><td>{_e(d.decision.default)}</td><td></td></tr>"
    )
    out.append("</table>")

    out.append("<h3>Actions</h3>")
    for aid in sorted(option.actions):
        action = option.actions[aid]
        out.append(f"<p><b>{_e(action.name or aid)}</b> <code>{_e(aid)}</code></p><ul>")
        out.extend(
            f"<li>{_e(line)}</li>" for line in action_lines(action, directory, option.time_limit)
        )
        out.append("</ul>")
        if isinstance(action, Refer | LoneWorker):
            steps = escalation_steps(
                action, organisation.rota_roles, organisation.escalation_policies
            )
            out.append(
                "<table><tr><th>Step</th><th>Who</th><th>How</th><th>Acknowledge within</th>"
            )
            out.append("<th>Say</th></tr>")
            for j, s in enumerate(steps, 1):
                out.append(
                    f"<tr><td>{j}</td><td>{_e(s.role_name)} ({_e(s.role_kind)})</td>"
                    f"<td>{_e(', '.join(s.channels))}</td><td>{format_duration(s.wait)}</td>"
                    f"<td>{_e(s.say or '')}</td></tr>"
                )
            out.append("</table>")
            if steps:
                out.append(
                    f"<p>If nobody acknowledges, {_e(steps[-1].role_name)} holds the call and is "
                    "alerted again until they acknowledge (audit item 9).</p>"
                )
    out.append(stamp)
    out.append("</section>")
    return "".join(out)


def manual_html(
    organisation: Organisation,
    *,
    generated: date,
    directory: Mapping[str, ContactDetails] | None = None,
) -> str:
    """The procedures manual as one HTML page. ``directory``: the living contacts (the store's
    entries, 2.3.3); the organisation's files when None."""
    contacts: Mapping[str, ContactDetails] = (
        directory if directory is not None else organisation.directory
    )
    options = sorted(organisation.service_options.values(), key=lambda o: o.name)
    front = [
        "<section><h2>Service options</h2>",
        "<table><tr><th>Service option</th><th>Version</th><th>Sign-off</th></tr>",
    ]
    for o in options:
        front.append(
            f'<tr><td><a href="#{_e(o.id)}">{_e(o.name)}</a></td><td><code>{_e(o.version)}'
            f"</code></td><td>{_sign_off(o)}</td></tr>"
        )
    front.append("</table></section>")
    body = "".join(_option_section(o, organisation, contacts, generated) for o in options)
    title = f"Procedures manual: {organisation.name}"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p>Organisation version <code>{_e(organisation.version)}"
        f"</code> · generated {generated.isoformat()} from the rulesets; regenerated, never "
        "edited</p></header><main>" + "".join(front) + body + "</main></body></html>\n"
    )


def write_manual(
    organisation: Organisation,
    path: Path,
    fmt: str,
    *,
    generated: date,
    directory: Mapping[str, ContactDetails] | None = None,
) -> Path:
    """Write the manual as ``html`` or ``pdf`` to ``path``."""
    if fmt not in FORMATS:
        raise ManualError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    text = manual_html(organisation, generated=generated, directory=directory)
    if fmt == "html":
        path.write_text(text, encoding="utf-8")
        return path
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "manual.html"
        page.write_text(text, encoding="utf-8")
        return write_pdf(page, path, profile=Path(tmp) / "profile")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def write_pdf(page: Path, path: Path, *, profile: Path) -> Path:
    """Print an HTML page to PDF with headless Chromium."""
    browser = chromium()
    if browser is None:
        raise ManualError(
            "no PDF renderer: install Chromium (scripts/ensure-debian-packages chromium=chromium) "
            "or write --format html and print it from a browser"
        )
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={path.resolve()}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0 or not path.is_file():
        raise ManualError(f"Chromium could not print the manual: {done.stderr.decode()[-500:]}")
    return path
