"""The service-level targets each KPI is judged against, per standard, organisation and option.

The specification states the answer-time targets twice, and not identically: 2.1.2c-e
(Gold 80% within 20 s and the rest within 30 s; Silver 80% within 40 s, the rest within 60 s;
Bronze 80% within 60 s, the rest within 80 s) and 6.2-6.3 (Gold 80% within 20 s and under 5%
abandoned; Silver 80% within 60 s and under 10% abandoned). The defaults below take the
answer times of 2.1.2 and the abandoned limits of 6.2b/6.3b; a contract that follows 6.3a
sets Silver's ``within_seconds`` to 60 in a targets file (:func:`load_targets`), for every
organisation, for one, or for one of its service options.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oohcore.errors import RulesetError

__all__ = ["DEFAULT_TARGETS", "ServiceLevelTarget", "Targets", "load_targets"]


@dataclass(frozen=True, slots=True)
class ServiceLevelTarget:
    """What "in SLA" means for one standard (2.1.2, 6.2, 6.3), and the limits judged.

    ``within_seconds``: a call answered no later than this after the recorded greeting is
    in SLA (6.2a); ``share``: the fraction of offered calls that must be (0.8);
    ``all_within_seconds``: every answered call by then ("the remaining 20%", 2.1.2), None
    when not judged; ``abandoned_below``: the abandoned fraction must stay under this (6.2b,
    6.3b), None when not judged.
    """

    within_seconds: float
    share: float = 0.8
    all_within_seconds: float | None = None
    abandoned_below: float | None = None


DEFAULT_TARGETS: dict[str, ServiceLevelTarget] = {
    # 2.1.2b sets no answer time for the team leader's direct line: Gold's is used
    "platinum": ServiceLevelTarget(20, 0.8, 30, 0.05),
    "gold": ServiceLevelTarget(20, 0.8, 30, 0.05),  # 2.1.2c, 6.2a-b
    "silver": ServiceLevelTarget(40, 0.8, 60, 0.10),  # 2.1.2d, 6.3b (6.3a: 60 s)
    "bronze": ServiceLevelTarget(60, 0.8, 80, None),  # 2.1.2e
}
UNASSIGNED = "unassigned"
"""The standard of CDRs whose service option could not be established (11.7.3a)."""


class _Override(BaseModel):
    model_config = ConfigDict(extra="forbid")
    within_seconds: float | None = Field(default=None, gt=0)
    share_percent: float | None = Field(default=None, gt=0, le=100)
    all_within_seconds: float | None = Field(default=None, gt=0)
    abandoned_below_percent: float | None = Field(default=None, gt=0, le=100)

    def apply(self, target: ServiceLevelTarget) -> ServiceLevelTarget:
        changes: dict[str, Any] = {}
        if self.within_seconds is not None:
            changes["within_seconds"] = self.within_seconds
        if self.share_percent is not None:
            changes["share"] = self.share_percent / 100
        if self.all_within_seconds is not None:
            changes["all_within_seconds"] = self.all_within_seconds
        if self.abandoned_below_percent is not None:
            changes["abandoned_below"] = self.abandoned_below_percent / 100
        return replace(target, **changes)


_StandardKey = str


class _OrganisationTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    standards: dict[_StandardKey, _Override] = Field(default_factory=dict)
    options: dict[str, _Override] = Field(default_factory=dict)


class _TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    standards: dict[_StandardKey, _Override] = Field(default_factory=dict)
    organisations: dict[str, _OrganisationTargets] = Field(default_factory=dict)


@dataclass(frozen=True)
class Targets:
    """Resolves the target for (organisation, service option, standard).

    The most specific setting wins, field by field: the option's, then the organisation's for
    that standard, then the file's for that standard, then :data:`DEFAULT_TARGETS`.
    """

    _file: _TargetsFile = field(default_factory=_TargetsFile)

    def for_call(
        self, organisation_id: str, option: str | None, standard: str
    ) -> ServiceLevelTarget:
        target = DEFAULT_TARGETS.get(standard, DEFAULT_TARGETS["silver"])
        if standard in self._file.standards:
            target = self._file.standards[standard].apply(target)
        org = self._file.organisations.get(organisation_id)
        if org is not None:
            if standard in org.standards:
                target = org.standards[standard].apply(target)
            if option is not None and option in org.options:
                target = org.options[option].apply(target)
        return target


def load_targets(path: str | Path) -> Targets:
    """Targets from a YAML file (format in ``docs/kpis.md``); located problems if it is wrong."""
    from oohcore.rulesets.source import read_yaml

    source = read_yaml(Path(path))
    try:
        parsed = _TargetsFile.model_validate(source.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            name = ".".join(str(p) for p in loc) or "(top)"
            allowed = ", ".join(_Override.model_fields)
            hint = (
                f" (a target's fields are {allowed})" if error["type"] == "extra_forbidden" else ""
            )
            problems.append(source.problem(loc, f"{name}: {error['msg']}{hint}", "targets"))
        raise RulesetError(problems) from None
    known = set(DEFAULT_TARGETS)
    problems = []
    for where, standards in [(("standards",), parsed.standards)] + [
        (("organisations", org_id, "standards"), org.standards)
        for org_id, org in parsed.organisations.items()
    ]:
        for name in standards:
            if name not in known:
                problems.append(
                    source.problem(
                        (*where, name),
                        f"unknown standard {name!r}; use one of {', '.join(sorted(known))}",
                        "targets",
                        at_key=True,
                    )
                )
    if problems:
        raise RulesetError(problems)
    return Targets(parsed)
