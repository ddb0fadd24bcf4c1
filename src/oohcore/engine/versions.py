"""Every service option version a call started under, kept so the call finishes on it.

A call records the version (content hash) of the option it runs under (5.3.1). When the rulesets
change and the engine restarts, calls already in progress must finish on the version they began
with (DESIGN principle 4). So the first time a version serves a call, its whole definition (the
merged option and what it inherits from its organisation: exactly what its hash covers) is
written to ``option_versions``; an engine that meets a call of a version it has not loaded
compiles it again from there, and checks that the hash still matches.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select

from oohcore.calls import option_versions
from oohcore.engine.errors import EngineError
from oohcore.rulesets import models
from oohcore.rulesets.compiler import (
    Organisation,
    ServiceOption,
    compile_service_option,
    version_hash,
)
from oohcore.rulesets.source import Source
from oohcore.store.columns import to_json
from oohcore.store.statements import Prepared

__all__ = ["OptionVersions", "definition_of"]

_SELECT = Prepared(
    select(option_versions.c.definition).where(
        and_(
            option_versions.c.organisation_id == bindparam("org"),
            option_versions.c.option_id == bindparam("option"),
            option_versions.c.version == bindparam("version"),
        )
    )
)


def definition_of(option: ServiceOption, organisation: Organisation) -> dict[str, Any]:
    """What ``option``'s version hash covers, plus its sign-off: enough to compile it again."""
    return {
        "option": option.definition.model_dump(mode="json", by_alias=True, exclude={"extends"}),
        "inherited": {
            "hours": None
            if option.definition.hours
            else option.hours.model_dump(mode="json", by_alias=True),
            "referral_time_limit": models.format_duration(organisation.referral_time_limit),
        },
    }


class OptionVersions:
    """The compiled option versions of one engine, by (organisation, option, version)."""

    def __init__(self, organisations: dict[str, Organisation]) -> None:
        self._orgs = organisations
        self._compiled: dict[tuple[str, str, str], ServiceOption] = {}
        self._recorded: set[tuple[str, str, str]] = set()
        for org in organisations.values():
            for option in org.service_options.values():
                self._compiled[(org.id, option.id, option.version)] = option

    def remember(
        self, conn: Connection, option: ServiceOption, now: datetime
    ) -> tuple[str, str, str] | None:
        """Record ``option``'s definition in the step's transaction, unless this engine knows it
        is recorded already; pass the key returned to :meth:`confirm` once the transaction has
        committed."""
        key = (option.organisation_id, option.id, option.version)
        if key in self._recorded:
            return None
        org = self._orgs[option.organisation_id]
        values = {
            "organisation_id": key[0],
            "option_id": key[1],
            "version": key[2],
            "definition": to_json(definition_of(option, org)),
            "first_used_at": now,
        }
        stmt: Any
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(option_versions).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(option_versions).on_conflict_do_nothing()
        conn.execute(stmt, values)
        return key

    def confirm(self, key: tuple[str, str, str] | None) -> None:
        if key is not None:
            self._recorded.add(key)

    def loaded(self, organisation_id: str, option_id: str, version: str) -> ServiceOption | None:
        """The compiled option of this version if this engine has it, without the store."""
        return self._compiled.get((organisation_id, option_id, version))

    def get(
        self, conn: Connection, organisation_id: str, option_id: str, version: str
    ) -> ServiceOption:
        """The compiled option of this exact version: loaded now, or compiled again from the
        definition recorded when a call first ran under it."""
        key = (organisation_id, option_id, version)
        option = self._compiled.get(key)
        if option is not None:
            return option
        row = _SELECT.execute(
            conn, {"org": organisation_id, "option": option_id, "version": version}
        ).first()
        if row is None:
            raise EngineError(
                f"service option {organisation_id}/{option_id} version {version} is neither "
                "loaded nor recorded in the store: load the rulesets it ran under"
            )
        option = self._compile(organisation_id, version, json.loads(row[0]))
        self._compiled[key] = option
        self._recorded.add(key)
        return option

    def _compile(self, organisation_id: str, version: str, data: dict[str, Any]) -> ServiceOption:
        org = self._orgs[organisation_id]
        option_data = data["option"]
        hashed = {
            "option": {k: v for k, v in option_data.items() if k != "sign_off"},
            "inherited": data["inherited"],
        }
        if version_hash(hashed) != version:
            raise EngineError(
                f"the recorded definition of {organisation_id}/{option_data.get('id')} does not "
                f"hash to {version}: the store was altered"
            )
        model = models.ServiceOptionFile.model_validate(option_data)
        inherited = data["inherited"]
        hours = (
            models.Hours.model_validate(inherited["hours"])
            if inherited["hours"] is not None
            else org.hours
        )
        limit = models.parse_duration(inherited["referral_time_limit"])
        option, problems = compile_service_option(
            Source(path=f"<{organisation_id}/{model.id} {version}>", data=option_data),
            model,
            organisation_id=organisation_id,
            roles=org.rota_roles,
            out_of_scope_categories=org.out_of_scope_categories,
            default_hours=hours,
            default_time_limit=limit,
            version=version,
        )
        if option is None:
            listed = "; ".join(p.message for p in problems)
            raise EngineError(
                f"{organisation_id}/{model.id} version {version} no longer compiles against "
                f"the organisation as loaded now: {listed}"
            )
        return option
