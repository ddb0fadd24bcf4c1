"""Rotas in the store, changed at run time (2.1.3, 2.3.3, 13.3c, 14.4).

An organisation's rota is one row of ``rotas`` (its :class:`RotaData` as JSON and a version
that goes up with every change) and every change is a row of ``rota_changes``: what changed,
who made it, when it was requested and when it was applied, so the 4-working-hours target for
applying a rota update (2.1.3) is reportable (:meth:`RotaStore.changes`).

:class:`StoreRota` is the engine's :class:`~oohcore.rota.model.Rota`: it reads the store's
version on every question and re-reads the rota when it changed, so the next referral after a
change (made by any process: the API, the CLI) uses it; nothing is cached past a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)

from oohcore.audit.chain import append_event
from oohcore.errors import OohcoreError
from oohcore.rota.model import OnCallAnswer, OnCallOfficer
from oohcore.rota.schedule import Layer, Override, RoleSchedule, RotaData, Segment
from oohcore.store import NestedTransactionError, Store
from oohcore.store.columns import UTCDateTime
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared
from oohcore.vocabulary import EventKind

rotas = Table(
    "rotas",
    metadata,
    Column("organisation_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),  # 1 when first written, +1 per change
    Column("data", Text, nullable=False),  # RotaData.to_json()
    Column("updated_at", UTCDateTime, nullable=False),
)

rota_changes = Table(
    "rota_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organisation_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),  # the rota version the change made
    Column("kind", String(32), nullable=False),  # seed, replace, officer, role, override, ...
    Column("summary", Text, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("event_id", BigInteger, nullable=False),  # the audit event that proves it
    Index(None, "organisation_id", "applied_at"),
)


class RotaError(OohcoreError):
    """A rota change that cannot be made (an unknown officer, role or override)."""


@dataclass(frozen=True, slots=True)
class RotaChange:
    """One recorded change: requested at ``requested_at``, applied at ``applied_at`` (2.1.3)."""

    id: int
    organisation_id: str
    version: int
    kind: str
    summary: str
    changed_by: str
    requested_at: datetime
    applied_at: datetime
    event_id: int = 0

    @property
    def delay(self) -> float:
        """Seconds from request to application."""
        return (self.applied_at - self.requested_at).total_seconds()


def _read(conn: Connection, org: str) -> tuple[int, RotaData]:
    row = conn.execute(
        select(rotas.c.version, rotas.c.data).where(rotas.c.organisation_id == org)
    ).first()
    if row is None:
        return 0, RotaData()
    return int(row.version), RotaData.from_json(json.loads(row.data))


# asked at every referral: prepared, so that it costs one SQLite look-up and no more
_VERSION = Prepared(select(rotas.c.version).where(rotas.c.organisation_id == bindparam("org")))


def _version(conn: Connection, org: str) -> int:
    v = _VERSION.execute(conn, {"org": org}).scalar()
    return int(v) if v is not None else 0


class RotaStore:
    """One organisation's rota in the store: read it, change it (every change recorded)."""

    def __init__(self, store: Store, organisation_id: str, *, timezone: str, roles: Iterable[str]):
        self.store = store
        self.organisation_id = organisation_id
        self.tz = ZoneInfo(timezone)
        self.roles = frozenset(roles)

    # -- reading -----------------------------------------------------------------------------

    def data(self) -> RotaData:
        with self.store.read() as conn:
            return _read(conn, self.organisation_id)[1]

    def who_is_on_call(
        self, role: str, at: datetime, *, category: str | None = None, area: str | None = None
    ) -> OnCallAnswer:
        return self.data().answer(role, at, self.tz, category=category, area=area)

    def timeline(
        self,
        role: str,
        start: datetime,
        end: datetime,
        *,
        category: str | None = None,
        area: str | None = None,
    ) -> list[Segment]:
        return self.data().timeline(role, start, end, self.tz, category=category, area=area)

    def changes(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[RotaChange]:
        """Every change applied in [since, until), oldest first: requested_at -> applied_at."""
        q = select(rota_changes).where(rota_changes.c.organisation_id == self.organisation_id)
        if since is not None:
            q = q.where(rota_changes.c.applied_at >= since)
        if until is not None:
            q = q.where(rota_changes.c.applied_at < until)
        with self.store.read() as conn:
            rows = conn.execute(q.order_by(rota_changes.c.id)).all()
        return [
            RotaChange(
                r.id,
                r.organisation_id,
                r.version,
                r.kind,
                r.summary,
                r.changed_by,
                r.requested_at,
                r.applied_at,
                r.event_id,
            )
            for r in rows
        ]

    # -- changing ------------------------------------------------------------------------------

    def _change(
        self,
        kind: str,
        summary: str,
        fn: Callable[[RotaData], RotaData],
        *,
        by: str,
        requested_at: datetime | None,
        only_if_empty: bool = False,
    ) -> RotaData:
        now = self.store.clock.now()
        with self.store.transaction() as conn:
            version, data = _read(conn, self.organisation_id)
            if only_if_empty and version:
                return data
            new = fn(data)
            text = json.dumps(new.to_json(), sort_keys=True)
            if version:
                conn.execute(
                    update(rotas)
                    .where(rotas.c.organisation_id == self.organisation_id)
                    .values(version=version + 1, data=text, updated_at=now)
                )
            else:
                conn.execute(
                    insert(rotas).values(
                        organisation_id=self.organisation_id, version=1, data=text, updated_at=now
                    )
                )
            requested = (requested_at or now).astimezone(UTC)
            # the chain proves the change (who, when, when asked, a digest of the new rota);
            # the rota itself, with officers' contact points, stays out of what is kept for ever
            event_id = append_event(
                conn,
                organisation_id=self.organisation_id,
                call_id=None,
                kind=EventKind.ROTA_CHANGED,
                payload={
                    "version": version + 1,
                    "kind": kind,
                    "by": by,
                    "requested_at": requested,
                    "rota_sha256": hashlib.sha256(text.encode()).hexdigest(),
                },
                at=now,
            )
            conn.execute(
                insert(rota_changes).values(
                    organisation_id=self.organisation_id,
                    version=version + 1,
                    kind=kind,
                    summary=summary,
                    changed_by=by,
                    requested_at=requested,
                    applied_at=now,
                    event_id=event_id,
                )
            )
        return new

    def seed(self, data: RotaData, *, by: str = "rota.yaml") -> bool:
        """Write ``data`` when the store has no rota for the organisation yet (the store's own
        rota is the living one, as for the directory); True when it was written."""
        with self.store.read() as conn:
            if _version(conn, self.organisation_id):
                return False
        self._change(
            "seed",
            "seeded from rota.yaml",
            lambda _: data,
            by=by,
            requested_at=None,
            only_if_empty=True,
        )
        return True

    def replace(self, data: RotaData, *, by: str, requested_at: datetime | None = None) -> None:
        """Replace the whole rota (e.g. with a ``rota.yaml`` read by :func:`read_rota`)."""
        self._change("replace", "rota replaced", lambda _: data, by=by, requested_at=requested_at)

    def put_officer(
        self, officer: OnCallOfficer, *, by: str, requested_at: datetime | None = None
    ) -> None:
        """Add an officer or change one's contact points and accepted channels."""
        self._change(
            "officer",
            f"officer {officer.id}",
            lambda d: d.with_officer(officer),
            by=by,
            requested_at=requested_at,
        )

    def set_role(
        self, schedule: RoleSchedule, *, by: str, requested_at: datetime | None = None
    ) -> None:
        """Replace the stages and layers of a role (for its category and area)."""
        self._check_role(schedule.role)

        def fn(d: RotaData) -> RotaData:
            for layers in schedule.stages:
                for layer in layers:
                    self._check_officers(d, _layer_officers(layer))
            return d.with_role(schedule)

        scope = "".join(
            f" {k}={v}" for k, v in (("category", schedule.category), ("area", schedule.area)) if v
        )
        self._change("role", f"role {schedule.role}{scope}", fn, by=by, requested_at=requested_at)

    def add_override(
        self,
        role: str,
        officer: str,
        start: datetime,
        end: datetime,
        *,
        by: str,
        stage: int = 1,
        reason: str = "",
        category: str | None = None,
        area: str | None = None,
        requested_at: datetime | None = None,
    ) -> int:
        """Put ``officer`` on ``stage`` of ``role`` from ``start`` to ``end`` (now or pre-dated,
        14.4); returns the override's id."""
        self._check_role(role)
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            raise RotaError("an override's end must be after its start")
        if stage < 1:
            raise RotaError("stages are numbered from 1")
        made: list[int] = []

        def fn(d: RotaData) -> RotaData:
            self._check_officers(d, (officer,))
            new = d.with_override(
                Override(0, role, officer, start, end, stage, reason, category, area)
            )
            made.append(new.overrides[-1].id)
            return new

        self._change(
            "override",
            f"override {role} stage {stage}: {officer} {start.isoformat()} to {end.isoformat()}"
            + (f" ({reason})" if reason else ""),
            fn,
            by=by,
            requested_at=requested_at,
        )
        return made[0]

    def import_layer(
        self,
        role: str,
        layer: Layer,
        *,
        by: str,
        stage: int = 1,
        requested_at: datetime | None = None,
    ) -> None:
        """Put ``layer`` (e.g. an imported calendar's shifts) on top of ``stage`` of ``role``'s
        general schedule, replacing a layer of the same name; one change, all or nothing."""
        self._check_role(role)

        def fn(d: RotaData) -> RotaData:
            self._check_officers(d, _layer_officers(layer))
            sched = d.schedule(role) or RoleSchedule(role, ())
            if sched.category or sched.area:
                sched = RoleSchedule(role, ())
            stages = [list(s) for s in sched.stages]
            while len(stages) < stage:
                stages.append([])
            kept = [la for la in stages[stage - 1] if la.name != layer.name]
            stages[stage - 1] = [*kept, layer]
            return d.with_role(RoleSchedule(role, tuple(tuple(s) for s in stages)))

        self._change(
            "import",
            f"{layer.name} layer of {role} stage {stage}: {len(layer.shifts)} shifts",
            fn,
            by=by,
            requested_at=requested_at,
        )

    def remove_override(
        self, override_id: int, *, by: str, requested_at: datetime | None = None
    ) -> None:
        def fn(d: RotaData) -> RotaData:
            if not any(o.id == override_id for o in d.overrides):
                raise RotaError(f"no override #{override_id}")
            return d.without_override(override_id)

        self._change(
            "override-removed",
            f"override #{override_id} removed",
            fn,
            by=by,
            requested_at=requested_at,
        )

    def _check_role(self, role: str) -> None:
        if role not in self.roles:
            raise RotaError(
                f"unknown rota role {role!r}; the organisation declares: {', '.join(sorted(self.roles))}"
            )

    @staticmethod
    def _check_officers(d: RotaData, ids: Iterable[str]) -> None:
        missing = [i for i in ids if i not in d.officers]
        if missing:
            raise RotaError(f"unknown officer(s) {', '.join(missing)}; add them first")


def _layer_officers(layer: Layer) -> tuple[str, ...]:
    return (*layer.officers, *(s.officer for s in layer.shifts))


class StoreRota:
    """The engine's rota: every organisation's rota as the store holds it now.

    Each question reads the rota's version (one indexed look-up) and re-reads the rota only when
    the version changed, so a change made anywhere is used by the next question."""

    def __init__(self, store: Store, timezones: Mapping[str, str]) -> None:
        self.store = store
        self._tz = {org: ZoneInfo(tz) for org, tz in timezones.items()}
        self._cache: dict[str, tuple[int, RotaData]] = {}

    def data(self, organisation_id: str, conn: Connection | None = None) -> RotaData:
        """The organisation's rota now, read on ``conn`` (the caller's open transaction) or in
        a read transaction of its own."""
        if conn is not None:
            return self._data_on(conn, organisation_id)
        try:
            with self.store.read() as own:
                return self._data_on(own, organisation_id)
        except NestedTransactionError:
            # asked from inside a step's transaction on the store's one SQLite connection:
            # read in that transaction (it sees every committed change)
            inner = self.store._conn
            if inner is None:
                raise
            return self._data_on(inner, organisation_id)

    def _data_on(self, conn: Connection, organisation_id: str) -> RotaData:
        version = _version(conn, organisation_id)
        cached = self._cache.get(organisation_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        got = _read(conn, organisation_id)
        self._cache[organisation_id] = got
        return got[1]

    def who_is_on_call(
        self,
        organisation_id: str,
        role: str,
        at: datetime,
        *,
        category: str | None = None,
        area: str | None = None,
        conn: Connection | None = None,
    ) -> OnCallAnswer:
        tz = self._tz.get(organisation_id)
        if tz is None:
            return OnCallAnswer(role, at.astimezone(UTC))
        data = self.data(organisation_id, conn)
        return data.answer(role, at, tz, category=category, area=area)

    def on_call(
        self, organisation_id: str, role: str, at: datetime, conn: Connection | None = None
    ) -> OnCallOfficer | None:
        return self.who_is_on_call(organisation_id, role, at, conn=conn).officer
