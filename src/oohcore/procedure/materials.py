"""Call-handling materials and their versions (audit items 15-16; spec 5.3.1, 2.3.1).

Every manual, flowchart and script oohcore generates carries the option's version hash and its
generation date. A host that prints or hands out such material records it with
:func:`record_handed_out` (which option, which kind of material, which version, generated when,
handed to whom, by whom). :func:`versions_report` then says, for each service option of an
organisation, which version is live, whether it is signed off (5.3.1), which are pending, and
warns when the newest material handed out for an option is of an older version than the live
one: the paper on the desk no longer matches what the engine runs (audit item 16).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Date, Index, Integer, String, Table, Text, select

from oohcore.clock import as_utc
from oohcore.errors import OohcoreError
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata

if TYPE_CHECKING:
    from oohcore.rulesets.compiler import Organisation

__all__ = [
    "HandedOut",
    "MaterialKind",
    "MaterialsError",
    "OptionVersionStatus",
    "VersionsReport",
    "handed_out",
    "materials_handed_out",
    "record_handed_out",
    "versions_report",
]


class MaterialKind(StrEnum):
    manual = "manual"
    flowchart = "flowchart"
    script = "script"


class MaterialsError(OohcoreError):
    """A record of handed-out material that cannot be kept (bad version, unknown option …)."""


materials_handed_out = Table(
    "materials_handed_out",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organisation_id", String(64), nullable=False),
    Column("option_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # MaterialKind
    Column("version", String(80), nullable=False),  # sha256:<hex> of the option version
    Column("generated_on", Date(), nullable=False),
    Column("handed_to", Text(), nullable=False),
    Column("recorded_by", Text(), nullable=False),
    Column("handed_out_at", UTCDateTime(), nullable=False),
    Index(None, "organisation_id", "option_id", "handed_out_at"),
)


@dataclass(frozen=True, slots=True)
class HandedOut:
    organisation_id: str
    option_id: str
    kind: MaterialKind
    version: str
    generated_on: date
    handed_to: str
    recorded_by: str
    handed_out_at: datetime


def record_handed_out(
    conn: Connection,
    organisation: Organisation,
    option_id: str,
    *,
    kind: MaterialKind | str,
    version: str,
    generated_on: date,
    handed_to: str,
    by: str,
    at: datetime,
) -> HandedOut:
    """Record that material of ``option_id`` at ``version`` was printed or handed out."""
    if option_id not in organisation.service_options:
        known = ", ".join(sorted(organisation.service_options))
        raise MaterialsError(
            f"organisation {organisation.id!r} has no service option {option_id!r} (it has: {known})"
        )
    try:
        kind = MaterialKind(kind)
    except ValueError:
        raise MaterialsError(
            f"kind {kind!r} is not one of {', '.join(k.value for k in MaterialKind)}"
        ) from None
    if not version.startswith("sha256:") or len(version) != 71:
        raise MaterialsError(
            f"version {version!r} is not a version hash; copy it from the material (sha256:…)"
        )
    for name, value in (("handed_to", handed_to), ("by", by)):
        if not value.strip():
            raise MaterialsError(f"'{name}' is blank; say who")
    row = HandedOut(
        organisation.id, option_id, kind, version, generated_on, handed_to, by, as_utc(at)
    )
    conn.execute(
        materials_handed_out.insert().values(
            organisation_id=row.organisation_id,
            option_id=row.option_id,
            kind=row.kind.value,
            version=row.version,
            generated_on=row.generated_on,
            handed_to=row.handed_to,
            recorded_by=row.recorded_by,
            handed_out_at=row.handed_out_at,
        )
    )
    return row


def handed_out(conn: Connection, organisation_id: str) -> list[HandedOut]:
    """Everything recorded as handed out for one organisation, oldest first."""
    t = materials_handed_out
    rows = conn.execute(
        select(t).where(t.c.organisation_id == organisation_id).order_by(t.c.handed_out_at, t.c.id)
    ).all()
    return [
        HandedOut(
            r.organisation_id,
            r.option_id,
            MaterialKind(r.kind),
            r.version,
            r.generated_on,
            r.handed_to,
            r.recorded_by,
            r.handed_out_at,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class OptionVersionStatus:
    """One service option: its loaded version and where it stands."""

    option_id: str
    name: str
    version: str
    signed_off: bool
    """The loaded version is the one signed off: it is live (5.3.1)."""
    signed_off_version: str | None
    """The version named by the file's sign-off (an older one while a change is pending)."""
    signed_off_by: str | None
    signed_off_on: date | None
    stale: tuple[HandedOut, ...]
    """The newest handed-out material of each kind, where it is of another version."""

    @property
    def state(self) -> str:
        return "live, signed off" if self.signed_off else "pending sign-off"


@dataclass(frozen=True, slots=True)
class VersionsReport:
    organisation_id: str
    organisation_version: str
    options: tuple[OptionVersionStatus, ...]

    @property
    def live(self) -> list[OptionVersionStatus]:
        return [o for o in self.options if o.signed_off]

    @property
    def pending(self) -> list[OptionVersionStatus]:
        return [o for o in self.options if not o.signed_off]

    def warnings(self) -> list[str]:
        """One line per handed-out material older than its option's live version (item 16)."""
        out: list[str] = []
        for o in self.options:
            for h in o.stale:
                out.append(
                    f"{o.option_id}: the {h.kind.value} handed to {h.handed_to} on "
                    f"{h.handed_out_at.date().isoformat()} is version {_short(h.version)} "
                    f"(generated {h.generated_on.isoformat()}); the loaded version is "
                    f"{_short(o.version)}: replace it"
                )
        return out


def _short(version: str) -> str:
    return version.removeprefix("sha256:")[:12]


def versions_report(
    organisation: Organisation, records: Sequence[HandedOut] = ()
) -> VersionsReport:
    """Live, signed-off and pending versions of ``organisation``'s options, with the handed-out
    material (from :func:`handed_out`) that is older than the loaded version."""
    newest: dict[tuple[str, MaterialKind], HandedOut] = {}
    for h in sorted(records, key=lambda r: r.handed_out_at):
        newest[(h.option_id, h.kind)] = h
    grouped: dict[str, list[HandedOut]] = {}
    for (option_id, _), h in sorted(newest.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
        grouped.setdefault(option_id, []).append(h)
    by_option: Mapping[str, list[HandedOut]] = grouped
    statuses = []
    for option in sorted(organisation.service_options.values(), key=lambda o: o.id):
        so = option.definition.sign_off
        statuses.append(
            OptionVersionStatus(
                option.id,
                option.name,
                option.version,
                option.signed_off,
                so.version if so else None,
                so.by if so else None,
                so.on if so else None,
                tuple(h for h in by_option.get(option.id, []) if h.version != option.version),
            )
        )
    return VersionsReport(organisation.id, organisation.version, tuple(statuses))
