"""The ``snpp`` channel against a local SNPP server written to RFC 1861 (levels 1-2)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from oohcore.channels import Channel, DeliveryStatus, OutboundMessage
from oohcore.channels.testing import ChannelContract, sample_message
from oohcore.clock import ManualClock
from oohcore_pager import PageRateLimit, PagerConfigError, SnppChannel
from oohcore_pager.testing import SnppTestServer, keys_in, pager_message

PAGER = "07623123456"


def _channel(server: SnppTestServer, **kw: object) -> SnppChannel:
    kw.setdefault("send_timeout", timedelta(seconds=5))
    return SnppChannel(host="127.0.0.1", port=server.port, **kw)


class _SnppPeer:
    """SNPP carries no message id: the contract's messages carry their key in the text."""

    def __init__(self, server: SnppTestServer) -> None:
        self.server = server

    def received_keys(self) -> Sequence[str]:
        return keys_in((p.text for p in self.server.pages), "contract:")


class TestSnppContract(ChannelContract):
    recipient = PAGER
    logical_channel = "pager"
    secrets = ("s3cret-pw",)

    def message(self, key: str | None = None, body: str | None = None) -> OutboundMessage:
        base = sample_message(self.recipient, key=key, channel=self.logical_channel)
        text = f"Ann Lee / 12 Heron Way / {base.idempotency_key} / Ref K7Q2M4"
        return pager_message(body=text, key=base.idempotency_key)

    @pytest.fixture
    def channel(self, snpp_server: SnppTestServer) -> Iterator[Channel]:
        snpp_server.logins = {"desk": "s3cret-pw"}
        ch = _channel(snpp_server, login="desk", password="s3cret-pw")
        yield ch
        ch.close()

    @pytest.fixture
    def peer(self, snpp_server: SnppTestServer) -> _SnppPeer:
        return _SnppPeer(snpp_server)


def test_a_page_goes_through_every_level_2_step_in_order(snpp_server: SnppTestServer) -> None:
    snpp_server.logins = {"desk": "pw1"}
    ch = _channel(
        snpp_server,
        login="desk",
        password="pw1",
        service_level=1,
        alert_override=True,
        caller_id="02079460000",
        send_subject=True,
    )
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.SENT, result.error
    assert [c.split(" ")[0] for c in snpp_server.commands] == [
        "LOGI", "PAGE", "LEVE", "ALER", "CALL", "SUBJ", "MESS", "SEND", "QUIT",
    ]  # fmt: skip
    assert "LOGI desk ***" in snpp_server.commands  # the server's transcript hides it too
    (page,) = snpp_server.pages
    assert page.pagers == (PAGER,)
    assert page.login == "desk" and page.service_level == 1 and page.alert is True
    assert page.caller_id == "02079460000" and page.subject == "Housing repairs: K7Q2M4"
    assert page.text.endswith("Ref K7Q2M4") and "Ann Lee" in page.text


def test_several_lines_go_by_data_with_dot_stuffing(snpp_server: SnppTestServer) -> None:
    body = "Ann Lee\n.hidden line\n.\n12 Heron Way\nRef K7Q2M4"
    ch = _channel(snpp_server)
    assert ch.send(pager_message(body=body)).status is DeliveryStatus.SENT
    ch.close()
    assert "DATA" in snpp_server.commands
    (page,) = snpp_server.pages
    assert page.by_data and page.text == body  # the lone "." did not end the DATA early


def test_a_level_1_gateway_gets_one_line_by_mess(snpp_server: SnppTestServer) -> None:
    snpp_server.level = 1
    ch = _channel(snpp_server)
    assert ch.send(pager_message(body="Ann Lee\n12 Heron Way\nRef K7Q2M4")).status is (
        DeliveryStatus.SENT
    )
    assert ch.send(pager_message(body="Bob\nRef K7Q2M4")).status is DeliveryStatus.SENT
    ch.close()
    texts = [p.text for p in snpp_server.pages]
    assert texts == ["Ann Lee / 12 Heron Way / Ref K7Q2M4", "Bob / Ref K7Q2M4"]
    assert snpp_server.commands.count("DATA") == 1  # learnt once, not asked again


def test_the_gateways_stated_maximum_length_is_kept(snpp_server: SnppTestServer) -> None:
    snpp_server.max_length = 60
    ch = _channel(snpp_server)
    result = ch.send(pager_message(body="x" * 200))
    ch.close()
    assert result.status is DeliveryStatus.SENT, result.error
    (page,) = snpp_server.pages
    assert len(page.text) <= 60
    assert page.text.startswith("Ann Lee") and page.text.endswith("Ref K7Q2M4")


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        ({"greeting": "421 Gateway Service Unavailable"}, DeliveryStatus.RETRY),
        ({"replies": {"SEND": "421 Too Many Errors, Goodbye"}}, DeliveryStatus.RETRY),
        ({"replies": {"SEND": "554 Message Failed (paging terminal down)"}}, DeliveryStatus.RETRY),
        ({"replies": {"PAGE": "554 Error, failed (technical reason)"}}, DeliveryStatus.RETRY),
        ({"replies": {"MESS": "503 ERROR, Message Already Entered"}}, DeliveryStatus.RETRY),
        ({"replies": {"SEND": "550 Failed, Illegal Pager ID"}}, DeliveryStatus.PERMANENT_FAILURE),
        ({"replies": {"PAGE": "552 Maximum Entries Exceeded"}}, DeliveryStatus.PERMANENT_FAILURE),
        ({"replies": {"PAGE": "500 Command Not Implemented"}}, DeliveryStatus.PERMANENT_FAILURE),
        ({"replies": {"MESS": "550 ERROR, Invalid Message"}}, DeliveryStatus.PERMANENT_FAILURE),
        ({"replies": {"SEND": "999 what"}}, DeliveryStatus.RETRY),
    ],
)
def test_every_reply_code_maps_to_sent_retry_or_permanent(
    snpp_server: SnppTestServer, switch: dict[str, object], expected: DeliveryStatus
) -> None:
    for name, value in switch.items():
        setattr(snpp_server, name, value)
    ch = _channel(snpp_server)
    result = ch.send(pager_message())
    ch.close()
    assert result.status is expected, result.error
    assert snpp_server.pages == []
    assert result.error and "SNPP 127.0.0.1" in result.error


def test_an_invalid_pager_id_is_permanent_and_says_what_to_fix(
    snpp_server: SnppTestServer,
) -> None:
    snpp_server.valid_pagers = {"0000"}
    ch = _channel(snpp_server)
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "550" in (result.error or "") and "pager id" in (result.error or "")


def test_a_refused_connection_is_retried(free_port: int) -> None:
    ch = SnppChannel(host="127.0.0.1", port=free_port, send_timeout=timedelta(seconds=5))
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.RETRY
    assert "cannot connect" in (result.error or "")


def test_a_gateway_that_stops_is_retried_and_the_next_session_pages() -> None:
    first = SnppTestServer().start()
    port = first.port
    first.stop()
    ch = SnppChannel(host="127.0.0.1", port=port, send_timeout=timedelta(seconds=5))
    message = pager_message()
    assert ch.send(message).status is DeliveryStatus.RETRY
    ch.close()
    with SnppTestServer() as second:
        ch = _channel(second)
        assert ch.send(message).status is DeliveryStatus.SENT  # a failed attempt is no "sent"
        ch.close()
        assert len(second.pages) == 1


def test_a_slow_gateway_is_given_up_within_send_timeout(snpp_server: SnppTestServer) -> None:
    snpp_server.hang_on = "SEND"
    ch = _channel(snpp_server, send_timeout=timedelta(seconds=0.3))
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.RETRY
    assert "may have gone out" in (result.error or "")


def test_a_bad_recipient_is_permanent_and_never_reaches_the_gateway(
    snpp_server: SnppTestServer,
) -> None:
    ch = _channel(snpp_server)
    result = ch.send(pager_message(recipient="123\r\nSEND"))
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert snpp_server.sessions == 0


def test_a_refused_login_is_permanent_and_the_password_never_shows(
    snpp_server: SnppTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    snpp_server.logins = {"desk": "right"}
    caplog.set_level(logging.DEBUG)
    ch = _channel(snpp_server, login="desk", password="wrong-pw-77")
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "LOGI" in (result.error or "") and "login" in (result.error or "")
    shown = f"{result.error} {ch!r} {ch.config!r} {ch.config.model_dump_json()} {caplog.text}"
    assert "wrong-pw-77" not in shown


def test_the_rate_limit_holds_a_page_until_the_window_frees(
    snpp_server: SnppTestServer, clock: ManualClock, tmp_path: Path
) -> None:
    limit = PageRateLimit(pages=2, per=timedelta(minutes=1))
    state = tmp_path / "ledger.sqlite"
    ch = SnppChannel(
        host="127.0.0.1", port=snpp_server.port, rate_limit=limit, state_path=state, clock=clock
    )
    assert ch.send(pager_message(key="k1")).status is DeliveryStatus.SENT
    clock.advance(timedelta(seconds=20))
    assert ch.send(pager_message(key="k2")).status is DeliveryStatus.SENT
    held = ch.send(pager_message(key="k3"))
    assert held.status is DeliveryStatus.RETRY and "rate limit" in (held.error or "")
    assert held.retry_after == timedelta(seconds=40)  # when k1 leaves the window
    ch.close()
    # a restart keeps the ledger: still limited, and k1 is not paged twice
    ch = SnppChannel(
        host="127.0.0.1", port=snpp_server.port, rate_limit=limit, state_path=state, clock=clock
    )
    assert ch.send(pager_message(key="k3")).status is DeliveryStatus.RETRY
    again = ch.send(pager_message(key="k1"))
    assert again.status is DeliveryStatus.SENT and again.duplicate
    clock.advance(timedelta(seconds=40))
    assert ch.send(pager_message(key="k3")).status is DeliveryStatus.SENT
    # another pager has its own window
    assert ch.send(pager_message(key="k4", recipient="07623000000")).status is (DeliveryStatus.SENT)
    ch.close()
    assert [p.pagers[0] for p in snpp_server.pages] == [PAGER, PAGER, PAGER, "07623000000"]


def test_tls_to_a_gateway_signed_by_the_configured_ca(certificates: Any) -> None:
    with SnppTestServer(tls=certificates.server_context()) as server:
        good = _channel(server, tls=True, ca_file=certificates.ca)
        assert good.send(pager_message()).status is DeliveryStatus.SENT
        good.close()
        untrusted = _channel(server, tls=True)
        result = untrusted.send(pager_message(key="other"))
        untrusted.close()
        assert result.status is DeliveryStatus.PERMANENT_FAILURE
        assert "ca_file" in (result.error or "")
        assert len(server.pages) == 1


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"host": "a b"}, "host"),
        ({"host": "x", "port": 70000}, "port"),
        ({"host": "x", "password": "pw"}, "password needs a login"),
        ({"host": "x", "login": "a", "password": "two words"}, "password"),
        ({"host": "x", "send_timeout": 0}, "send_timeout"),
        ({"host": "x", "colour": "red"}, "colour"),
        ({"host": "x", "rate_limit": {"pages": 0}}, "rate_limit.pages"),
    ],
)
def test_a_configuration_mistake_names_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(PagerConfigError) as caught:
        SnppChannel(fields)
    text = str(caught.value)
    assert named in text and "nothing was sent" in text
    assert "two words" not in text  # values are never echoed (one may be a secret)
