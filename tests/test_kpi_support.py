"""Builders shared by the KPI, report and telephony tests: a store, and rows inserted directly
into the tables the engine writes (calls, referrals, outbox, events), as the engine would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection

from oohcore.audit.chain import append_event
from oohcore.calls import calls
from oohcore.clock import ManualClock
from oohcore.durable.outbox import outbox
from oohcore.referrals import referrals
from oohcore.rulesets.compiler import Organisation
from oohcore.rulesets.loader import load_organisation
from oohcore.store import Store
from oohcore.telephony import CdrRecord
from pg_support import postgres_database

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
REPAIRS_NUMBER = "0100 000 0002"  # org-a: repairs, Gold
NOISE_NUMBER = "0100 000 0003"  # org-a: noise, Silver


@cache
def org_a() -> Organisation:
    return load_organisation(FIXTURES / "org-a")


@cache
def org_b() -> Organisation:
    return load_organisation(FIXTURES / "org-b")


def open_store(tmp_path: Path, now: datetime | None = None) -> Store:
    clock = ManualClock(now or datetime(2027, 1, 15, 9, 0, tzinfo=UTC))
    return Store.open(f"sqlite:///{tmp_path / 'kpi.sqlite'}", clock=clock)


@contextmanager
def pg_store(now: datetime | None = None) -> Iterator[Store]:
    """A store in a fresh PostgreSQL database, so the KPI SQL is checked on both stores."""
    with postgres_database("oohcore_kpi") as url:
        clock = ManualClock(now or datetime(2027, 1, 15, 9, 0, tzinfo=UTC))
        with Store.open(url, clock=clock) as store:
            yield store


@contextmanager
def kpi_store(kind: str, tmp_path: Path, now: datetime | None = None) -> Iterator[Store]:
    """``kind`` "sqlite" or "postgresql": the same KPI test on either store."""
    if kind == "postgresql":
        with pg_store(now) as store:
            yield store
    else:
        with open_store(tmp_path, now) as store:
            yield store


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def cdr(
    cdr_id: str,
    offered: datetime,
    *,
    wait: float,
    answered: bool = True,
    queue: str = REPAIRS_NUMBER,
    talk: float = 0.0,
    wrap: float = 0.0,
    outbound_calls: int = 0,
    outbound_seconds: float = 0.0,
    reference: str | None = None,
    caller: str | None = None,
) -> CdrRecord:
    end = offered + timedelta(seconds=wait)
    return CdrRecord(
        cdr_id=cdr_id,
        queue=queue,
        access_number=queue,
        offered_at=offered,
        answered_at=end if answered else None,
        abandoned_at=None if answered else end,
        talk_seconds=talk if answered else 0.0,
        wrap_seconds=wrap if answered else 0.0,
        outbound_calls=outbound_calls,
        outbound_seconds=outbound_seconds,
        reference=reference,
        caller_number=caller,
    )


def insert_call(
    conn: Connection,
    *,
    reference: str,
    option: str,
    received_at: datetime,
    answered_at: datetime | None = None,
    access_number: str = REPAIRS_NUMBER,
    caller_number: str | None = "07700 900123",
    organisation_id: str = "org-a",
    action_kind: str | None = None,
    in_hours: bool = False,
) -> str:
    call_id = uuid4().hex
    conn.execute(
        calls.insert().values(
            id=call_id,
            organisation_id=organisation_id,
            seq=int(reference.rsplit("-", 1)[-1]) if reference[-1].isdigit() else 1,
            reference=reference,
            access_number=access_number,
            caller_number=caller_number,
            service_option=option,
            option_version="sha256:test",
            organisation_version="sha256:test",
            state="closed" if answered_at else "offered",
            priority=0,
            in_hours=int(in_hours),
            answers="{}",
            action_kind=action_kind,
            received_at=received_at,
            answered_at=answered_at,
            version=1,
        )
    )
    return call_id


def insert_referral(
    conn: Connection,
    *,
    call_id: str,
    call_ended_at: datetime,
    dispatched_after: float | None,
    limit_seconds: int = 600,
    late_reason: str | None = None,
    acknowledged: bool = True,
    organisation_id: str = "org-a",
) -> str:
    referral_id = uuid4().hex
    dispatched = (
        call_ended_at + timedelta(seconds=dispatched_after)
        if dispatched_after is not None
        else None
    )
    conn.execute(
        referrals.insert().values(
            id=referral_id,
            organisation_id=organisation_id,
            call_id=call_id,
            kind="refer",
            action_id="refer",
            option_version="sha256:test",
            run_id=uuid4().hex,
            state="acknowledged" if acknowledged and dispatched else "alerting",
            stage=0,
            alerts=1,
            snapshot="{}",
            started_at=call_ended_at,
            call_ended_at=call_ended_at,
            deadline_at=call_ended_at + timedelta(seconds=limit_seconds),
            limit_seconds=limit_seconds,
            dispatched_at=dispatched,
            acknowledged_at=dispatched + timedelta(minutes=1)
            if (dispatched and acknowledged)
            else None,
            late_reason=late_reason,
            version=1,
        )
    )
    return referral_id


def insert_message(
    conn: Connection,
    *,
    call_id: str | None,
    channel: str,
    at: datetime,
    sent: bool = True,
    purpose: str = "referral.alert",
    reference: str | None = None,
    organisation_id: str = "org-a",
) -> None:
    conn.execute(
        outbox.insert().values(
            organisation_id=organisation_id,
            call_id=call_id,
            channel=channel,
            recipient="duty@example.org",
            subject="",
            body="",
            meta="{}",
            idempotency_key=uuid4().hex,
            created_at=at,
            due_at=at,
            attempts=1,
            next_attempt_at=at,
            sent_at=at if sent else None,
            failed_at=None if sent else at,
            last_error=None if sent else "mailbox unavailable",
            purpose=purpose,
            reference=reference,
            fields="{}",
        )
    )


def insert_event(
    conn: Connection,
    *,
    call_id: str | None,
    kind: str,
    at: datetime,
    payload: dict[str, Any] | None = None,
    organisation_id: str = "org-a",
) -> None:
    append_event(
        conn,
        organisation_id=organisation_id,
        call_id=call_id,
        kind=kind,
        payload=json.loads(json.dumps(payload or {})),
        at=at,
    )
