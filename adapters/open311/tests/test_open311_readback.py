"""Reading a service request's status back from the CRM (GeoReport v2 ``GET requests.json``,
``GET requests/{id}.json``; spec 7.9) and keeping each change as a receipt of the message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from open311_server import API_KEY, Open311TestServer
from sqlalchemy import Connection

from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore.durable.outbox import enqueue, get_message
from oohcore.durable.receipts import receipts_for
from oohcore.durable.runner import Runner
from oohcore.durable.timers import TimerRow
from oohcore.store import Store
from oohcore_open311 import Open311Channel, Open311Error, ReadBackError, parse_requests

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)


def _channel(crm: Open311TestServer, clock: ManualClock, **kw: Any) -> Open311Channel:
    return Open311Channel(
        endpoint=crm.url,
        api_key=API_KEY,
        service_codes={"housing-repairs": "HR-OOH"},
        token_poll_interval=timedelta(0),
        send_timeout=timedelta(seconds=5),
        clock=clock,
        sleep=lambda s: None,
        **kw,
    )


def _noop(conn: Connection, timer: TimerRow, now: datetime) -> None:
    pass


def test_one_request_and_several_are_read_back(crm: Open311TestServer) -> None:
    clock = ManualClock(T0)
    crm.now = clock.now
    channel = _channel(crm, clock)
    first = channel.send(sample_message("housing-repairs", key="k1", channel="crm"))
    second = channel.send(sample_message("housing-repairs", key="k2", channel="crm"))
    assert (first.provider_ref, second.provider_ref) == ("SR-0001", "SR-0002")
    clock.advance(timedelta(minutes=40))
    crm.set_status("SR-0002", "closed", "Engineer attended; boiler reset")
    one = channel.request_status("SR-0001")
    assert one is not None and one.status == "open" and one.updated_at == T0
    both = channel.request_statuses(["SR-0001", "SR-0002"])
    assert [(s.service_request_id, s.status) for s in both] == [
        ("SR-0001", "open"),
        ("SR-0002", "closed"),
    ]
    assert both[1].status_notes == "Engineer attended; boiler reset"
    assert both[1].updated_at == T0 + timedelta(minutes=40)
    assert crm.gets[-2:] == ["requests/SR-0001.json", "requests.json"]
    with pytest.raises(Open311Error, match="SR-9999 not found"):
        channel.request_status("SR-9999")
    channel.close()


def test_status_changes_are_kept_once_each_as_receipts_of_the_message(
    crm: Open311TestServer, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    crm.now = clock.now
    crm.tokens_mode = True  # the CRM answers with a token first: the reference is token:...
    crm.token_pending_polls = 10
    channel = _channel(crm, clock, token_polls=1)
    store = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=clock)
    runner = Runner(store, {"crm": channel}, on_timer=_noop)
    with store.transaction() as conn:
        message_id, _ = enqueue(
            conn, sample_message("housing-repairs", key="k1", channel="crm"), at=T0
        )
    assert runner.tick(T0).sent == [message_id]
    with store.read() as conn:
        row = get_message(conn, "k1")
    assert row is not None and row.provider_ref == "token:tok-1"
    crm.token_pending_polls = 0  # the CRM has now named the request

    def read_back() -> list[bool]:
        return [runner.record_receipt(r).recorded for r in channel.status_receipts(["token:tok-1"])]

    assert read_back() == [True]  # open
    assert read_back() == [False]  # no change: nothing new kept
    clock.advance(timedelta(hours=2))
    crm.set_status("SR-0001", "closed", "Repaired")
    assert read_back() == [True]  # closed: a change
    with store.read() as conn:
        kept = receipts_for(conn, message_id)
    assert [r.detail for r in kept] == [
        "open311 service request SR-0001: open; agency: Housing repairs out-of-hours team",
        "open311 service request SR-0001: closed (Repaired); agency: Housing repairs "
        "out-of-hours team",
    ]
    assert [r.at for r in kept] == [T0, T0 + timedelta(hours=2)]
    runner.close()
    store.close()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"service_request_id": "1"}, "expected a list"),
        ([{"service_request_id": "1", "status": "pending"}], r"\[0\]\.status"),
        (
            [
                {
                    "service_request_id": "1",
                    "status": "open",
                    "updated_datetime": "9999-12-31T23:59:59-14:00",
                }
            ],
            r"\[0\]\.updated_datetime",
        ),
        (
            [{"service_request_id": "1", "status": "open", "updated_datetime": "2026-01-10 03:00"}],
            "time zone",
        ),
    ],
)
def test_a_list_not_in_georeport_shape_is_refused_naming_the_field(body: Any, words: str) -> None:
    with pytest.raises(ReadBackError, match=words):
        parse_requests(body)


def test_a_request_still_without_an_id_is_left_out() -> None:
    assert parse_requests([{"token": "t-1"}]) == []
