"""What changed between two versions of a procedure, in a council officer's words (2.3.1
change control, 5.3.1): "rule 4 widened", "the wait before stage 2 shortened from 15m to 10m",
"contact changed from daytime-repairs to repairs-hub" — not a YAML diff.

A changed condition is classified by searching for witnesses (:mod:`.witness`): answers for
which the new condition holds and the old does not make it *wider*, the reverse *narrower*,
both *changed*, neither *reworded* (same meaning). The example answers are shown and were
checked with both compiled conditions.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oohcore.rulesets.compiler import ServiceOption
from oohcore.rulesets.conditions import ConditionError, compile_condition, parse
from oohcore.rulesets.loader import (
    CATALOGUE_FILE,
    OPTIONS_DIR,
    ORGANISATION_FILE,
    load_catalogue,
    load_organisation,
)
from oohcore.rulesets.models import Action, Hours, Rule, format_duration

from .witness import Search, names

__all__ = ["Change", "diff_options", "diff_paths", "widening"]


@dataclass(frozen=True)
class Change:
    option: str
    what: str  # rule-added, rule-removed, condition-widened, contact-changed, wait-shortened …
    text: str
    example: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        out = f"{self.option}: {self.text}"
        if self.example:
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.example.items()))
            out += f"\n    for example: {shown}"
        return out


def _examples(
    new: ServiceOption, holds: str, fails: str, fields: Any, fixed: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Answers for which ``holds`` is true and ``fails`` false (both checked compiled)."""
    search = Search(new)
    a, b = parse(holds), parse(fails)
    search.extend([a, b])
    ca = compile_condition(holds, fields, fixed)
    cb = compile_condition(fails, fields, fixed)
    for w in search.witnesses_for([a], [b], names(a) | names(b)):
        if ca.holds(w.values) and not cb.holds(w.values):
            return w.answers
    return None


def widening(
    old: ServiceOption, new: ServiceOption, old_when: str, new_when: str
) -> tuple[str, Mapping[str, Any] | None]:
    """``widened``, ``narrowed``, ``changed`` or ``reworded`` and an example, for a rule's
    condition from ``old_when`` to ``new_when`` (read against the new option's fields)."""
    fields, fixed = new.fields, dict(new.settings)
    try:
        wider = _examples(new, new_when, old_when, fields, fixed)
        narrower = _examples(new, old_when, new_when, fields, fixed)
    except ConditionError:  # the old condition reads a field the new option no longer has
        return "changed", None
    if wider and narrower:
        return "changed", wider
    if wider:
        return "widened", wider
    if narrower:
        return "narrowed", narrower
    return "reworded", None


def _rule(i: int) -> str:
    return f"rule {i + 1}"


def _hours(h: Hours | None) -> str:
    if h is None:
        return "the organisation's hours"
    parts = [f"{','.join(w.days)} {w.start}-{w.end}" for w in h.weekly]
    return "; ".join(parts) + f" (bank holidays: {h.bank_holidays.value})"


def _duration(value: Any) -> str:
    return format_duration(value) if value is not None else "the default"


def _action_changes(option: str, action_id: str, old: Action, new: Action) -> list[Change]:
    out: list[Change] = []
    if old.kind != new.kind:
        return [
            Change(
                option,
                "action-kind-changed",
                f"action {action_id!r} now {new.kind.replace('_', ' ')}s instead of "
                f"{old.kind.replace('_', ' ')}",
            )
        ]
    a, b = old.model_dump(), new.model_dump()
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if key == "escalation":
            out += _escalation_changes(option, action_id, getattr(old, key), getattr(new, key))
        elif key in ("time_limit", "acknowledge_within", "visit_length", "grace"):
            what = "shortened" if (vb is not None and (va is None or vb < va)) else "lengthened"
            out.append(
                Change(
                    option,
                    f"wait-{what}",
                    f"action {action_id!r}: {key.replace('_', ' ')} {what} from "
                    f"{_duration(va)} to {_duration(vb)}",
                )
            )
        elif key in ("contact", "number"):
            out.append(
                Change(
                    option,
                    "contact-changed",
                    f"action {action_id!r}: {key} changed from {va or 'none'} to {vb or 'none'}",
                )
            )
        elif key == "rota_role":
            out.append(
                Change(
                    option,
                    "contact-changed",
                    f"action {action_id!r}: referred to {vb} instead of {va}",
                )
            )
        elif key == "channels":
            out.append(
                Change(
                    option,
                    "channels-changed",
                    f"action {action_id!r}: sent by {', '.join(vb or [])} instead of "
                    f"{', '.join(va or [])}",
                )
            )
        elif key == "fallback":
            out.append(
                Change(
                    option,
                    "fallback-changed",
                    f"action {action_id!r}: if the transfer fails, {vb or 'nothing'} instead of "
                    f"{va or 'nothing'}",
                )
            )
        else:
            out.append(
                Change(
                    option,
                    "text-changed",
                    f"action {action_id!r}: the {key.replace('_', ' ')} text changed",
                )
            )
    return out


def _escalation_changes(option: str, action_id: str, old: Any, new: Any) -> list[Change]:
    out: list[Change] = []
    for i in range(max(len(old), len(new))):
        so = old[i] if i < len(old) else None
        sn = new[i] if i < len(new) else None
        stage = f"action {action_id!r}: escalation stage {i + 1}"
        if so is None:
            assert sn is not None
            out.append(
                Change(option, "stage-added", f"{stage} added: {sn.rota_role} after {sn.wait}")
            )
        elif sn is None:
            out.append(Change(option, "stage-removed", f"{stage} ({so.rota_role}) removed"))
        else:
            if so.rota_role != sn.rota_role:
                out.append(
                    Change(
                        option,
                        "contact-changed",
                        f"{stage} now goes to {sn.rota_role} instead of {so.rota_role}",
                    )
                )
            if so.wait != sn.wait:
                what = "shortened" if sn.wait < so.wait else "lengthened"
                out.append(
                    Change(
                        option,
                        f"wait-{what}",
                        f"{stage}: the wait {what} from {format_duration(so.wait)} to "
                        f"{format_duration(sn.wait)}",
                    )
                )
            if so.channels != sn.channels:
                out.append(
                    Change(
                        option,
                        "channels-changed",
                        f"{stage}: sent by {', '.join(sn.channels)} instead of "
                        f"{', '.join(so.channels)}",
                    )
                )
    return out


def _rule_changes(old: ServiceOption, new: ServiceOption) -> list[Change]:
    oid = new.id
    a: Sequence[Rule] = old.definition.decision.rules
    b: Sequence[Rule] = new.definition.decision.rules
    out: list[Change] = []
    matcher = difflib.SequenceMatcher(
        a=[(r.when, r.then) for r in a], b=[(r.when, r.then) for r in b], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            ro, rn, i, j = a[i1 + k], b[j1 + k], i1 + k, j1 + k
            where = _rule(j) + (f" (was {_rule(i)})" if i != j else "")
            if ro.when != rn.when:
                kind, example = widening(old, new, ro.when, rn.when)
                text = {
                    "widened": "now applies to more calls",
                    "narrowed": "now applies to fewer calls",
                    "changed": "now applies to different calls",
                    "reworded": "was reworded (it applies to the same calls)",
                }[kind]
                out.append(
                    Change(
                        oid,
                        f"condition-{kind}",
                        f"{where} {text}: {ro.when!r} became {rn.when!r}",
                        example,
                    )
                )
            if ro.then != rn.then:
                out.append(
                    Change(
                        oid,
                        "rule-action-changed",
                        f"{where} now chooses {rn.then} instead of {ro.then}",
                    )
                )
        for i in range(i1 + paired, i2):
            out.append(
                Change(
                    oid, "rule-removed", f"{_rule(i)} removed: when {a[i].when} then {a[i].then}"
                )
            )
        for j in range(j1 + paired, j2):
            out.append(
                Change(oid, "rule-added", f"{_rule(j)} added: when {b[j].when} then {b[j].then}")
            )
    if old.definition.decision.default != new.definition.decision.default:
        out.append(
            Change(
                oid,
                "default-changed",
                f"when no rule applies, the call now goes to {new.definition.decision.default} "
                f"instead of {old.definition.decision.default}",
            )
        )
    return out


def diff_options(old: ServiceOption, new: ServiceOption) -> list[Change]:
    """The changes from ``old`` to ``new`` (two versions of one option)."""
    oid = new.id
    out: list[Change] = []
    if old.version == new.version:
        return out
    if old.name != new.name:
        out.append(Change(oid, "renamed", f"renamed from {old.name!r} to {new.name!r}"))
    if old.standard != new.standard:
        out.append(
            Change(
                oid,
                "standard-changed",
                f"performance standard {old.standard.value} became {new.standard.value}",
            )
        )
    if old.hours != new.hours:
        out.append(
            Change(
                oid,
                "hours-changed",
                f"hours changed from {_hours(old.hours)} to {_hours(new.hours)}",
            )
        )
    if dict(old.settings) != dict(new.settings):
        for k in sorted(set(old.settings) | set(new.settings)):
            if old.settings.get(k) != new.settings.get(k):
                out.append(
                    Change(
                        oid,
                        "setting-changed",
                        f"setting {k}: {old.settings.get(k)} became {new.settings.get(k)}",
                    )
                )
    qa = {q.field: q for q in old.questions}
    qb = {q.field: q for q in new.questions}
    for f in qb.keys() - qa.keys():
        out.append(Change(oid, "question-added", f"new question {f!r}: {qb[f].ask!r}"))
    for f in qa.keys() - qb.keys():
        out.append(Change(oid, "question-removed", f"question {f!r} is no longer asked"))
    for f in sorted(qa.keys() & qb.keys()):
        x, y = qa[f], qb[f]
        if x.essential != y.essential:
            state = "essential" if y.essential else "optional"
            out.append(Change(oid, "question-changed", f"question {f!r} is now {state}"))
        if x.ask != y.ask:
            out.append(Change(oid, "question-changed", f"question {f!r} is worded differently"))
        if x.ask_if != y.ask_if:
            out.append(
                Change(
                    oid,
                    "question-changed",
                    f"question {f!r} is now asked {('when ' + y.ask_if) if y.ask_if else 'always'}"
                    f" (was {('when ' + x.ask_if) if x.ask_if else 'always'})",
                )
            )
        added = set(y.options or {}) - set(x.options or {})
        removed = set(x.options or {}) - set(y.options or {})
        if added:
            out.append(
                Change(oid, "question-changed", f"question {f!r} gains {', '.join(sorted(added))}")
            )
        if removed:
            out.append(
                Change(
                    oid, "question-changed", f"question {f!r} loses {', '.join(sorted(removed))}"
                )
            )
    out += _rule_changes(old, new)
    aa, ab = old.actions, new.actions
    for k in sorted(ab.keys() - aa.keys()):
        out.append(Change(oid, "action-added", f"new action {k!r} ({ab[k].kind})"))
    for k in sorted(aa.keys() - ab.keys()):
        out.append(Change(oid, "action-removed", f"action {k!r} removed"))
    for k in sorted(aa.keys() & ab.keys()):
        out += _action_changes(oid, k, aa[k], ab[k])
    return out


def _options(path: Path, catalogue: str | Path | None) -> dict[str, ServiceOption]:
    if path.is_file():
        folder = path.parent.parent if path.parent.name == OPTIONS_DIR else path.parent
        opts = _options(folder, catalogue)
        return {path.stem: opts[path.stem]} if path.stem in opts else {}
    if (path / ORGANISATION_FILE).is_file():
        return dict(load_organisation(path, catalogue=catalogue).service_options)
    if (path / CATALOGUE_FILE).is_file():
        return dict(load_catalogue(path).service_options)
    from oohcore.errors import RulesetError

    raise RulesetError.single(
        path, 0, 0, "not an organisation or catalogue folder, nor an option file", "not-found"
    )


def diff_paths(
    old: str | Path, new: str | Path, *, catalogue: str | Path | None = None
) -> list[Change]:
    """The changes between two folders (organisation or catalogue) or two option files."""
    a, b = _options(Path(old), catalogue), _options(Path(new), catalogue)
    if Path(old).is_file() and Path(new).is_file() and len(a) == len(b) == 1:
        (ka, va), (kb, _) = next(iter(a.items())), next(iter(b.items()))
        if ka != kb:
            a = {kb: va}
    out: list[Change] = []
    for k in sorted(b.keys() - a.keys()):
        out.append(Change(k, "option-added", f"new service option {b[k].name!r}"))
    for k in sorted(a.keys() - b.keys()):
        out.append(Change(k, "option-removed", "service option removed"))
    for k in sorted(a.keys() & b.keys()):
        out += diff_options(a[k], b[k])
    return out
