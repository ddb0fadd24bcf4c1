"""Flowcharts of a compiled service option (audit items 8-9; spec 5.3.1, 5.3.2).

A chart is built from the compiled :class:`~oohcore.rulesets.compiler.ServiceOption` alone (plus
the organisation's rota roles, for the names of the roles, and its directory, for the contacts'
numbers), so it shows exactly what the engine runs:

* the hours of service and each variant (5.4.3) with what the caller is told;
* the script's questions in order, each with the condition under which it is asked;
* the decision, rule by rule (first match wins, audit item 8), each condition written out in
  words, then the default;
* each action with its contacts (numbers from the directory, 2.3.3) and the texts said;
* each escalation step by step, to the named on-call officer who holds the call last (item 9).

Outputs are Mermaid text (docs, GitHub) and Graphviz DOT, laid out to SVG or PNG by
``pygraphviz`` (its wheel carries Graphviz). Both texts are deterministic: the same option and
the same generation date give byte-identical Mermaid and DOT, and the SVG is stripped of the
Graphviz version comment, so a diff of two versions' charts shows only what changed.
Every chart carries the option's version hash and its generation date (audit items 15-16).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, Protocol

from oohcore.rulesets import conditions as c
from oohcore.rulesets.compiler import ServiceOption
from oohcore.rulesets.models import (
    Action,
    EscalationPolicy,
    Hours,
    LoneWorker,
    OutOfScope,
    PolicyNotify,
    PolicyRepeat,
    PolicyWait,
    Refer,
    Resolve,
    RotaRole,
    Signpost,
    SpecialDays,
    Transfer,
    format_duration,
)

__all__ = [
    "Chart",
    "ContactDetails",
    "Edge",
    "EscalationStep",
    "Node",
    "action_lines",
    "build_chart",
    "contact_line",
    "describe_hours",
    "escalation_steps",
    "readable_condition",
    "render",
    "to_dot",
    "to_mermaid",
]

Shape = Literal["start", "step", "question", "decision", "action", "stage", "end"]
ImageFormat = Literal["svg", "png"]
WRAP = 44


class ContactDetails(Protocol):
    """A directory entry as the files give it, or the store's living one (2.3.3)."""

    @property
    def name(self) -> str: ...
    @property
    def number(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def opening_times(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    shape: Shape


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Chart:
    """A service option's procedure as nodes and edges, in a fixed order."""

    organisation_id: str
    option_id: str
    title: str
    version: str
    generated: date
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One step of an escalation as the chart and the manual show it."""

    role_id: str
    role_name: str
    role_kind: str
    channels: tuple[str, ...]
    wait: timedelta
    """How long this holder has to acknowledge before the next step starts."""
    say: str | None


def escalation_steps(
    action: Refer | LoneWorker,
    roles: Mapping[str, RotaRole],
    policies: Mapping[str, EscalationPolicy] | None = None,
) -> tuple[EscalationStep, ...]:
    """The chain an action's referral runs through, first holder first (5.3.2, 6.4e).

    A referral's chain is its own rota role (acknowledge within ``acknowledge_within``), then
    its escalation stages — or, for a refer action naming a ``policy``, that named escalation
    policy's steps (issue 8 item 5: notify a stage or a contact, wait, repeat); a lone
    worker's is its escalation stages (5.2.3.6). The last step's holder keeps the call (audit
    item 9), and after it the policy's re-alert backoff applies.
    """
    out: list[EscalationStep] = []

    def step(
        role_id: str, channels: Sequence[str], wait: timedelta, say: str | None, who: str = ""
    ) -> None:
        role = roles.get(role_id)
        kind = role.kind.value if role else "contact"
        out.append(
            EscalationStep(
                role_id,
                (role.name if role else role_id) + who,
                kind,
                tuple(channels),
                wait,
                say,
            )
        )

    policy = (
        (policies or {}).get(action.policy) if isinstance(action, Refer) and action.policy else None
    )
    if policy is not None:
        for item in policy.steps:
            if isinstance(item, PolicyNotify):
                target = item.notify or item.contact or ""
                who = (
                    f", stage {item.stage}, {'everyone on it' if item.who == 'everyone' else 'next in turn'}"
                    if item.notify
                    else ""
                )
                step(target, [ch.value for ch in item.channels], timedelta(0), None, who)
            elif isinstance(item, PolicyWait) and out:
                last = out[-1]
                out[-1] = EscalationStep(
                    last.role_id,
                    last.role_name,
                    last.role_kind,
                    last.channels,
                    last.wait + item.wait,
                    last.say,
                )
            elif isinstance(item, PolicyRepeat):
                out.append(
                    EscalationStep(
                        "repeat",
                        f"the steps above, {item.repeat} more time(s)",
                        "repeat",
                        (),
                        timedelta(0),
                        None,
                    )
                )
        return tuple(out)
    if isinstance(action, Refer) and action.rota_role is not None:
        step(
            action.rota_role,
            [ch.value for ch in action.channels or ()],
            action.acknowledge_within,
            None,
        )
    for stage in action.escalation:
        step(stage.rota_role, [ch.value for ch in stage.channels], stage.wait, stage.say)
    return tuple(out)


# -- readable conditions -----------------------------------------------------------------------

_CMP_WORDS = {
    "==": "is",
    "!=": "is not",
    "<": "is below",
    "<=": "is at most",
    ">": "is above",
    ">=": "is at least",
    "in": "is one of",
    "notin": "is none of",
}


def readable_condition(text: str, option: ServiceOption) -> str:
    """A rule's condition in words for a council officer: ``repair in ["a", "b"]`` becomes
    ``repair is one of "Label A", "Label B"`` (the labels read to the caller)."""
    labels = {q.field: dict(q.options or {}) for q in option.questions}
    return _words(c.parse(text), labels, top=True)


def _words(node: c.Node, labels: Mapping[str, Mapping[str, str]], *, top: bool = False) -> str:
    if isinstance(node, c.BoolOp):
        inner = f" {node.op} ".join(_words(n, labels) for n in node.operands)
        return inner if top else f"({inner})"
    if isinstance(node, c.Not):
        return f"not {_words(node.operand, labels)}"
    if isinstance(node, c.Compare):
        field = node.left.name if isinstance(node.left, c.Name) else None
        left = _words(node.left, labels)
        right = _value(node.right, labels.get(field or "", {}), labels)
        return f"{left} {_CMP_WORDS.get(node.op, node.op)} {right}"
    return _value(node, {}, labels)


def _value(
    node: c.Node, options: Mapping[str, str], labels: Mapping[str, Mapping[str, str]]
) -> str:
    if isinstance(node, c.Literal):
        if isinstance(node.value, bool):
            return "yes" if node.value else "no"
        if isinstance(node.value, str):
            return f'"{options.get(node.value, node.value)}"'
        return str(node.value)
    if isinstance(node, c.ListLiteral):
        return ", ".join(_value(item, options, labels) for item in node.items)
    if isinstance(node, c.Name):
        return node.name
    if isinstance(node, c.Call):
        return f"{node.function}({', '.join(_words(a, labels) for a in node.args)})"
    return _words(node, labels)


# -- hours ---------------------------------------------------------------------------------------

_DAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri"}
_DAY_NAMES |= {"sat": "Sat", "sun": "Sun"}


def describe_hours(hours: Hours) -> list[str]:
    """The hours of service as lines (2.1.5, 2.1.6, 5.4.2): each weekly window, then how bank
    holidays, the Christmas period and extra days are covered."""
    lines = []
    for w in hours.weekly:
        days = ", ".join(_DAY_NAMES[d.value] for d in w.days)
        past = " (to the next day)" if w.end.minutes <= w.start.minutes else ""
        lines.append(f"{days} {w.start}-{w.end}{past}")
    special = {SpecialDays.all_day: "all day", SpecialDays.as_weekly: "as the weekly hours"}
    lines.append(f"Bank holidays: {special[hours.bank_holidays]}")
    lines.append(f"Christmas period: {special[hours.christmas_period]}")
    if hours.extra_days:
        lines.append("Also all day on " + ", ".join(d.isoformat() for d in hours.extra_days))
    return lines


# -- building the chart ---------------------------------------------------------------------------


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(" ".join(text.split()), WRAP)) or text


def contact_line(contact_id: str, directory: Mapping[str, ContactDetails]) -> str:
    """``Name: number (opening times)`` of a directory contact, as the handler sees it."""
    entry = directory.get(contact_id)
    if entry is None:
        return f"{contact_id}: not in the directory"
    parts = [p for p in (entry.number, entry.email) if p]
    line = f"{entry.name}: {' / '.join(parts) or 'no number'}"
    return line + (f" ({entry.opening_times})" if entry.opening_times else "")


def action_lines(
    action: Action,
    directory: Mapping[str, ContactDetails],
    time_limit: timedelta | None = None,
) -> list[str]:
    """What an action does, its contact and what the handler says (5.2.3.x). ``time_limit``:
    the option's, for a referral that sets none of its own (6.4b)."""
    lines: list[str] = []
    if isinstance(action, Signpost):
        lines.append(f"Signpost to {action.service}")
    elif isinstance(action, Transfer):
        lines.append(f"Transfer to {action.to}")
        if action.fallback:
            lines.append(f"If it cannot be made: {action.fallback}")
    elif isinstance(action, Refer):
        limit = action.time_limit or time_limit
        within = f"within {format_duration(limit)}" if limit else "within the time limit"
        lines.append(f"Refer to the on-call {action.rota_role}, passed on {within}")
    elif isinstance(action, Resolve):
        lines.append(f"Resolve with information: {action.information}")
    elif isinstance(action, OutOfScope):
        lines.append(f"Out of scope ({action.category}): {action.response.value}")
    else:
        lines.append(
            f"Lone worker watch: visit {format_duration(action.visit_length)}, "
            f"grace {format_duration(action.grace)}"
        )
    contact = getattr(action, "contact", None)
    if contact:
        lines.append("Contact " + contact_line(contact, directory))
    number = getattr(action, "number", None)
    if number:
        lines.append(f"Number {number}")
    if action.say:
        lines.append(f'Say: "{action.say.strip()}"')
    return lines


def build_chart(
    option: ServiceOption,
    *,
    roles: Mapping[str, RotaRole],
    directory: Mapping[str, ContactDetails],
    generated: date,
    policies: Mapping[str, EscalationPolicy] | None = None,
) -> Chart:
    """The flowchart of ``option``: hours, script, decision, actions and escalations."""
    nodes: list[Node] = []
    edges: list[Edge] = []

    def node(nid: str, label: str, shape: Shape) -> str:
        nodes.append(Node(nid, label, shape))
        return nid

    short = option.version.removeprefix("sha256:")[:12]
    title = f"{option.name} ({option.id})"
    start = node(
        "start",
        f"Call for {option.name}\nversion {short}, generated {generated.isoformat()}",
        "start",
    )
    hours = node("hours", "In service:\n" + "\n".join(describe_hours(option.hours)), "step")
    edges.append(Edge(start, hours))
    prev = hours
    for i, variant in enumerate(option.definition.variants):
        vid = node(
            f"variant{i}",
            f"Variant {variant.name}\n"
            + "\n".join(describe_hours(variant.hours)[: len(variant.hours.weekly)])
            + "\n"
            + _wrap(f'Tell the caller: "{variant.tell_caller.strip()}"'),
            "step",
        )
        edges.append(Edge(prev, vid, "while its hours apply"))
        prev = vid
    for i, q in enumerate(option.questions):
        label = _wrap(q.ask) + (" [essential]" if q.essential else "")
        if q.ask_if:
            label += "\n" + _wrap(f"only if {readable_condition(q.ask_if, option)}")
        qid = node(f"q{i}", label, "question")
        edges.append(Edge(prev, qid))
        prev = qid

    rules = option.definition.decision.rules
    for i, rule in enumerate(rules):
        rid = node(
            f"rule{i + 1}",
            f"Rule {i + 1}: {_wrap(readable_condition(rule.when, option))}?",
            "decision",
        )
        edges.append(Edge(prev, rid, "" if i == 0 else "no"))
        edges.append(Edge(rid, f"action_{_safe(rule.then)}", "yes"))
        prev = rid
    default = option.definition.decision.default
    edges.append(Edge(prev, f"action_{_safe(default)}", "no: default" if rules else "always"))
    action_ids = sorted(set(option.actions))
    for aid in action_ids:
        action = option.actions[aid]
        head = f"{action.name or aid} [{aid}]"
        body = "\n".join(_wrap(line) for line in action_lines(action, directory, option.time_limit))
        node(f"action_{_safe(aid)}", f"{head}\n{body}", "action")
        if isinstance(action, Refer | LoneWorker):
            _escalation(option, aid, action, roles, node, edges, policies)
        if isinstance(action, Transfer) and action.fallback:
            edges.append(
                Edge(
                    f"action_{_safe(aid)}",
                    f"action_{_safe(action.fallback)}",
                    "transfer fails",
                )
            )

    edges.sort(key=lambda e: (_order(nodes, e.source), _order(nodes, e.target), e.label))
    return Chart(
        option.organisation_id,
        option.id,
        title,
        option.version,
        generated,
        tuple(nodes),
        tuple(edges),
    )


def _order(nodes: Sequence[Node], nid: str) -> int:
    for i, n in enumerate(nodes):
        if n.id == nid:
            return i
    return len(nodes)


def _escalation(
    option: ServiceOption,
    aid: str,
    action: Refer | LoneWorker,
    roles: Mapping[str, RotaRole],
    add: Callable[[str, str, Shape], str],
    edges: list[Edge],
    policies: Mapping[str, EscalationPolicy] | None = None,
) -> None:
    """The escalation of ``aid`` as stage nodes, ending at its last holder (audit item 9)."""
    steps = escalation_steps(action, roles, policies)
    prev = f"action_{_safe(aid)}"
    first_label = "refer to" if isinstance(action, Refer) else "no call-out in time"
    for j, s in enumerate(steps):
        sid = f"esc_{_safe(aid)}_{j}"
        text = f"{s.role_name} ({s.role_kind})\nvia {', '.join(s.channels)}"
        text += f"; acknowledge within {format_duration(s.wait)}"
        if s.say:
            text += "\n" + _wrap(f'Say: "{s.say.strip()}"')
        add(sid, f"Step {j + 1}: {text}", "stage")
        edges.append(Edge(prev, sid, first_label if j == 0 else "no acknowledgement"))
        prev = sid
    if steps:
        last = steps[-1]
        end = f"holder_{_safe(aid)}"
        add(
            end,
            f"{last.role_name} holds the call\nre-alerted until acknowledged (audit item 9)",
            "end",
        )
        edges.append(Edge(prev, end, "no acknowledgement"))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


# -- Mermaid -----------------------------------------------------------------------------------

_MERMAID_SHAPES: Mapping[Shape, tuple[str, str]] = {
    "start": ("([", "])"),
    "step": ("[", "]"),
    "question": ("[/", "/]"),
    "decision": ("{", "}"),
    "action": ("[", "]"),
    "stage": ("[[", "]]"),
    "end": ("(((", ")))"),
}


_CLASS: Mapping[str, str] = {"action": "action", "stage": "stage", "end": "holder"}


def _mermaid_text(text: str) -> str:
    escaped = text.replace('"', "#quot;").replace("\n", "<br/>")
    return f'"{escaped}"'


def to_mermaid(chart: Chart) -> str:
    """The chart as a Mermaid ``flowchart TD`` (deterministic: same chart, same bytes)."""
    lines = [
        f"%% {chart.title}: {chart.organisation_id}/{chart.option_id}",
        f"%% version {chart.version}",
        f"%% generated {chart.generated.isoformat()} from the compiled ruleset; do not edit",
        "flowchart TD",
    ]
    for n in chart.nodes:
        open_, close = _MERMAID_SHAPES[n.shape]
        lines.append(f"    {n.id}{open_}{_mermaid_text(n.label)}{close}")
    for e in chart.edges:
        arrow = f" -->|{_mermaid_text(e.label)}| " if e.label else " --> "
        lines.append(f"    {e.source}{arrow}{e.target}")
    for shape in ("action", "stage", "end"):  # "end" is a Mermaid keyword: class "holder"
        members = ",".join(n.id for n in chart.nodes if n.shape == shape)
        if members:
            lines.append(f"    class {members} {_CLASS[shape]}")
    lines.append("    classDef action fill:#e8f1fb,stroke:#1d4f91")
    lines.append("    classDef stage fill:#fff4e0,stroke:#a15c00")
    lines.append("    classDef holder fill:#e6f4ea,stroke:#1e7b34")
    return "\n".join(lines) + "\n"


# -- Graphviz ----------------------------------------------------------------------------------

_DOT_SHAPES: Mapping[Shape, str] = {
    "start": 'shape=box, style="rounded,filled", fillcolor="#dddddd"',
    "step": 'shape=box, style="filled", fillcolor="#f5f5f5"',
    "question": 'shape=parallelogram, style="filled", fillcolor="#ffffff"',
    "decision": 'shape=diamond, style="filled", fillcolor="#fffbe6"',
    "action": 'shape=box, style="filled", fillcolor="#e8f1fb", color="#1d4f91"',
    "stage": 'shape=box, style="filled,bold", fillcolor="#fff4e0", color="#a15c00"',
    "end": 'shape=doubleoctagon, style="filled", fillcolor="#e6f4ea", color="#1e7b34"',
}


def _dot_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l")
    return f'"{escaped}\\l"'


def to_dot(chart: Chart) -> str:
    """The chart as Graphviz DOT (deterministic: same chart, same bytes)."""
    lines = [
        f"// {chart.title}: version {chart.version}, generated {chart.generated.isoformat()}",
        f'digraph "{_safe(chart.organisation_id)}_{_safe(chart.option_id)}" {{',
        '    graph [rankdir=TB, fontname="Helvetica", fontsize=10, labelloc=t,',
        f"           label={_dot_text(chart.title + ' - version ' + chart.version)}];",
        '    node [fontname="Helvetica", fontsize=9];',
        '    edge [fontname="Helvetica", fontsize=8];',
    ]
    for n in chart.nodes:
        lines.append(f"    {n.id} [label={_dot_text(n.label)}, {_DOT_SHAPES[n.shape]}];")
    for e in chart.edges:
        label = f" [label={_dot_text(e.label)}]" if e.label else ""
        lines.append(f"    {e.source} -> {e.target}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_SVG_GENERATOR = re.compile(rb"<!-- Generated by graphviz[^>]*-->\n?")


def render(chart: Chart, fmt: ImageFormat) -> bytes:
    """The chart laid out by Graphviz's ``dot`` as SVG or PNG. The SVG carries no Graphviz
    version comment, so the same chart gives the same bytes on every machine with the same
    Graphviz."""
    import pygraphviz

    graph = pygraphviz.AGraph(string=to_dot(chart))
    data: bytes = graph.draw(format=fmt, prog="dot")
    if fmt == "svg":
        data = _SVG_GENERATOR.sub(b"", data)
    return data
