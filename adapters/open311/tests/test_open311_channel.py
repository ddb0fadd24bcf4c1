"""The ``open311`` channel against a local Open311 GeoReport v2 server (spec 7.9, 7.11, 8.14)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from open311_server import API_KEY, Open311TestServer
from sqlalchemy import Connection

from oohcore.channels import Channel, DeliveryStatus, OutboundMessage
from oohcore.channels.registry import build_channels
from oohcore.channels.testing import ChannelContract, sample_message
from oohcore.clock import ManualClock
from oohcore.durable.outbox import RetryPolicy, enqueue, get_message
from oohcore.durable.runner import Runner
from oohcore.durable.timers import TimerRow
from oohcore.store import Store
from oohcore_open311 import Open311Channel, Open311Config

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)


def _channel(crm: Open311TestServer, **kw: Any) -> Open311Channel:
    kw.setdefault("api_key", API_KEY)
    kw.setdefault("service_codes", {"housing-repairs": "HR-OOH"})
    kw.setdefault("attributes", {"ooh_reference": "reference"})
    kw.setdefault("token_poll_interval", timedelta(0))
    kw.setdefault("send_timeout", timedelta(seconds=5))
    return Open311Channel(endpoint=crm.url, clock=ManualClock(T0), sleep=lambda s: None, **kw)


def _message(**kw: Any) -> OutboundMessage:
    return sample_message("housing-repairs", channel="crm", **kw)


class _CrmPeer:
    def __init__(self, crm: Open311TestServer) -> None:
        self.crm = crm

    def received_keys(self) -> Sequence[str]:
        return [r.attributes.get("ooh_key", "") for r in self.crm.requests]


class TestOpen311Contract(ChannelContract):
    recipient = "housing-repairs"
    logical_channel = "crm"
    secrets = (API_KEY,)

    @pytest.fixture
    def channel(self, crm: Open311TestServer) -> Iterator[Channel]:
        ch = _channel(crm, key_attribute="ooh_key")
        yield ch
        ch.close()

    @pytest.fixture
    def peer(self, crm: Open311TestServer) -> _CrmPeer:
        return _CrmPeer(crm)


def test_discovery_and_the_service_definition(crm: Open311TestServer) -> None:
    ch = _channel(crm)
    services = ch.services()
    assert set(services) == {"HR-OOH", "NOISE"}
    assert services["HR-OOH"].metadata and not services["NOISE"].metadata
    definition = ch.definition("HR-OOH")
    uprn = next(a for a in definition.attributes if a.code == "uprn")
    assert uprn.required and uprn.datatype == "string"
    priority = next(a for a in definition.attributes if a.code == "priority")
    assert priority.values == ("emergency", "urgent")
    ch.services()
    ch.definition("HR-OOH")
    assert crm.gets == ["services.json", "services/HR-OOH.json"]  # cached
    ch.close()


def test_a_request_carries_the_uprn_attribute_location_and_caller(crm: Open311TestServer) -> None:
    ch = _channel(crm, jurisdiction_id="example-borough.gov.uk")
    message = _message()
    result = ch.send(message)
    ch.close()
    assert result.status is DeliveryStatus.SENT, result.error
    assert result.provider_ref == "SR-0001"
    (request,) = crm.requests
    assert request.attributes == {"uprn": "100023336956", "ooh_reference": "K7Q2M4"}
    form = request.form
    assert form["service_code"] == "HR-OOH"
    assert form["jurisdiction_id"] == "example-borough.gov.uk"
    assert form["address_string"] == "12 Heron Way, Example Town EX1 2AB"
    assert form["first_name"] == "Ann" and form["last_name"] == "Lee"
    assert form["phone"] == "07700 900123"
    assert form["description"] == message.body
    assert form["api_key"] == API_KEY


def test_the_uprn_is_the_location_when_there_is_no_address(crm: Open311TestServer) -> None:
    ch = _channel(crm)
    message = _message()
    fields = {k: v for k, v in message.fields.items() if k != "address"}
    result = ch.send(OutboundMessage(**{**_fields_of(message), "fields": fields}))
    ch.close()
    assert result.status is DeliveryStatus.SENT, result.error
    (request,) = crm.requests
    assert request.form["address_id"] == "100023336956"
    assert request.attributes["uprn"] == "100023336956"


def _fields_of(message: OutboundMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in OutboundMessage.__dataclass_fields__}


def test_a_token_is_polled_until_it_names_the_service_request(crm: Open311TestServer) -> None:
    crm.tokens_mode = True
    crm.token_pending_polls = 2
    ch = _channel(crm)
    result = ch.send(_message())
    assert result.status is DeliveryStatus.SENT and result.provider_ref == "SR-0001"
    assert crm.gets.count("tokens/tok-1.json") == 3
    ch.close()


def test_a_token_not_resolved_in_time_is_still_sent_and_resolved_later(
    crm: Open311TestServer,
) -> None:
    crm.tokens_mode = True
    crm.token_pending_polls = 10
    ch = _channel(crm, token_polls=2)
    result = ch.send(_message())
    assert result.status is DeliveryStatus.SENT and result.provider_ref == "token:tok-1"
    crm.token_pending_polls = 0
    assert ch.resolve_token("tok-1") == "SR-0001"
    ch.close()


def test_a_400_error_document_is_permanent_and_names_the_crms_words(
    crm: Open311TestServer,
) -> None:
    crm.script.append((400, {}, [{"code": 400, "description": "Invalid address_string"}]))
    ch = _channel(crm)
    result = ch.send(_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "HTTP 400: 400 Invalid address_string" in (result.error or "")


def test_a_missing_required_attribute_is_refused_before_posting(crm: Open311TestServer) -> None:
    message = _message()
    fields = {k: v for k, v in message.fields.items() if k != "uprn"}
    ch = _channel(crm)
    result = ch.send(OutboundMessage(**{**_fields_of(message), "fields": fields}))
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "requires the attribute 'uprn'" in (result.error or "")
    assert crm.posts == 0


def test_without_definition_checks_the_crms_own_400_is_permanent(crm: Open311TestServer) -> None:
    message = _message()
    fields = {k: v for k, v in message.fields.items() if k != "uprn"}
    ch = _channel(crm, check_definitions=False)
    result = ch.send(OutboundMessage(**{**_fields_of(message), "fields": fields}))
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "Attribute uprn is required" in (result.error or "")
    assert crm.posts == 1


def test_an_unknown_service_code_is_permanent(crm: Open311TestServer) -> None:
    ch = _channel(crm, service_codes={"housing-repairs": "NOPE"})
    result = ch.send(_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "no service 'NOPE'" in (result.error or "") and "HR-OOH" in (result.error or "")


def test_a_singlevaluelist_value_is_checked(crm: Open311TestServer) -> None:
    ch = _channel(crm, attributes={"priority": "details"})
    result = ch.send(_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "takes one of emergency, urgent" in (result.error or "")


def test_a_wrong_api_key_is_permanent_and_never_shown(
    crm: Open311TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-Zq81-secret"
    ch = _channel(crm, api_key=wrong)
    result = ch.send(_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "403" in (result.error or "") and "api_key" in (result.error or "")
    shown = f"{result.error} {ch!r} {ch.config!r} {ch.config.model_dump_json()} {caplog.text}"
    assert wrong not in shown and API_KEY not in shown


@pytest.mark.parametrize(
    ("status", "headers", "after"),
    [
        (429, {"Retry-After": "120"}, timedelta(seconds=120)),
        (503, {}, None),
        (500, {"Retry-After": "Sat, 10 Jan 2026 03:05:00 GMT"}, timedelta(minutes=5)),
        (429, {"Retry-After": "86400"}, timedelta(hours=1)),  # capped
    ],
)
def test_429_and_5xx_are_retried_with_retry_after(
    crm: Open311TestServer, status: int, headers: dict[str, str], after: timedelta | None
) -> None:
    crm.script.append((status, headers, [{"code": status, "description": "busy"}]))
    ch = _channel(crm)
    result = ch.send(_message())
    ch.close()
    assert result.status is DeliveryStatus.RETRY
    assert result.retry_after == after
    assert crm.requests == []


def test_a_refused_connection_is_retried(crm: Open311TestServer) -> None:
    url = crm.url
    crm.stop()
    ch = Open311Channel(endpoint=url, api_key=API_KEY, check_definitions=False)
    result = ch.send(_message())
    ch.close()
    assert result.status is DeliveryStatus.RETRY
    assert API_KEY not in (result.error or "")


def test_a_key_already_delivered_is_not_posted_again_after_a_restart(
    crm: Open311TestServer, tmp_path: Path
) -> None:
    message = _message()
    first = _channel(crm, state_path=tmp_path / "open311.sqlite")
    assert first.send(message).status is DeliveryStatus.SENT
    first.close()
    again = _channel(crm, state_path=tmp_path / "open311.sqlite")
    result = again.send(message)
    again.close()
    assert result.status is DeliveryStatus.SENT and result.duplicate
    assert result.provider_ref == "SR-0001" and len(crm.requests) == 1


def test_the_config_refuses_clear_http_to_another_machine() -> None:
    with pytest.raises(ValueError, match="https"):
        Open311Config(endpoint="http://crm.example.gov.uk/open311/v2/")


def test_built_from_a_channels_mapping_with_the_key_from_the_environment(
    crm: Open311TestServer,
) -> None:
    channels = build_channels(
        {
            "crm": {
                "adapter": "open311",
                "endpoint": crm.url,
                "api_key": {"env": "CRM_KEY"},
                "service_codes": {"housing-repairs": "HR-OOH"},
            }
        },
        environ={"CRM_KEY": API_KEY},
    )
    ch = channels["crm"]
    assert isinstance(ch, Open311Channel)
    assert ch.send(_message()).status is DeliveryStatus.SENT
    ch.close()


# -- through the core's outbox (8.14) -----------------------------------------------------------

POLICY = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=10), multiplier=1)


def _no_timers(conn: Connection, timer: TimerRow, now: Any) -> None:
    raise AssertionError("no timers in these tests")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


def test_a_failing_crm_is_retried_then_dead_lettered_and_escalated(
    store: Store, crm: Open311TestServer
) -> None:
    crm.script.extend([(503, {}, []), (429, {"Retry-After": "5"}, []), (500, {}, [])])
    failed: list[str] = []
    ch = _channel(crm, check_definitions=False)
    runner = Runner(
        store,
        {"crm": ch},
        on_timer=_no_timers,
        on_failed=lambda conn, row, now: failed.append(row.last_error or ""),
        retry_policy=POLICY,
    )
    message = _message()
    with store.transaction() as conn:
        enqueue(conn, message, at=T0)
    assert runner.tick(T0).retried
    assert runner.tick(T0 + timedelta(seconds=10)).retried
    report = runner.tick(T0 + timedelta(seconds=20))
    assert report.failed
    assert failed and "HTTP 500" in failed[0]
    ch.close()
    with store.transaction() as conn:
        row = get_message(conn, message.idempotency_key)
    assert row is not None and row.attempts == 3 and row.sent_at is None
    assert crm.requests == []


def test_a_400_is_not_retried_through_the_outbox(store: Store, crm: Open311TestServer) -> None:
    crm.script.append((400, {}, [{"code": 400, "description": "Bad request"}]))
    failed: list[str] = []
    ch = _channel(crm)
    runner = Runner(
        store,
        {"crm": ch},
        on_timer=_no_timers,
        on_failed=lambda conn, row, now: failed.append(row.last_error or ""),
        retry_policy=POLICY,
    )
    with store.transaction() as conn:
        enqueue(conn, _message(), at=T0)
    report = runner.tick(T0)
    assert report.failed and not report.retried
    assert runner.tick(T0 + timedelta(hours=1)).idle
    ch.close()
    assert crm.posts == 1 and "400" in failed[0]


def test_a_bad_setting_never_repeats_the_key() -> None:
    with pytest.raises(ValueError) as info:
        Open311Config(endpoint="https://crm.example.gov.uk/", api_key=["k-Zz91-secret"])  # type: ignore[arg-type]
    assert "k-Zz91-secret" not in str(info.value) and "api_key" in str(info.value)


def test_oohcore_channels_lists_open311_with_its_schema(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from oohcore.cli import main

    assert main(["channels", "--json"]) == 0
    listed = {a["name"]: a for a in json.loads(capsys.readouterr().out)["adapters"]}
    entry = listed["open311"]
    assert entry["factory"] == "oohcore_open311.channel:Open311Channel"
    assert entry["carries"] == ["crm"] and entry["contact_field"] is None
    assert entry["max_body"] == 4000 and entry["requires"] == {"httpx": True, "sqlite3": True}
    schema = entry["config"]
    assert schema["required"] == ["endpoint"]
    assert schema["properties"]["api_key"]["anyOf"][0]["format"] == "password"
    bad = tmp_path / "channels.yaml"
    bad.write_text("channels:\n  crm:\n    adapter: open311\n    endpoint: http://crm.example/\n")
    assert main(["channels", "--check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4:15: channel 'crm': setting 'endpoint'" in err and "Traceback" not in err
