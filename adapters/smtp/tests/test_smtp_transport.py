"""The connection to the relay: a man in the middle that strips STARTTLS from the relay's EHLO
gets nothing in clear; a relay that refuses STARTTLS after offering it gets nothing in clear;
a relay that never answers times out within send_timeout and is retried (8.14)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from smtp_peers import OFFICER, Pki, RecordingHandler, Relay, free_port, relay_config

from oohcore.channels import DeliveryStatus
from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore_smtp import SmtpChannel


class StrippingProxy:
    """A TCP proxy on 127.0.0.1 in front of the relay that deletes STARTTLS from its EHLO
    reply, as a downgrade attacker does."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.client_bytes = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(self.upstream)
        threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()
        self._pump(client, server, False)

    def _pump(self, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_server:
                    data = data.replace(b"250-STARTTLS\r\n", b"").replace(
                        b"250 STARTTLS\r\n", b"250 HELP\r\n"
                    )
                else:
                    self.client_bytes.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_a_man_in_the_middle_stripping_starttls_gets_nothing_in_clear(
    relay: Relay, pki: Pki, clock: ManualClock
) -> None:
    proxy = StrippingProxy((relay.host, relay.port))
    try:
        config = relay_config(relay, pki).model_copy(update={"port": proxy.port})
        result = SmtpChannel(config, clock=clock).send(sample_message(OFFICER, channel="email"))
    finally:
        proxy.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "does not offer STARTTLS" in (result.error or "")
    sent = bytes(proxy.client_bytes)
    assert b"EHLO" in sent
    for never in (b"AUTH", b"MAIL FROM", b"DATA", b"No heating"):
        assert never not in sent, f"{never!r} went out in clear"
    assert relay.handler.received == []


class _RefusingTls(SMTP):
    async def smtp_STARTTLS(self, arg: str) -> None:
        await self.push("454 4.7.0 TLS not available due to temporary reason")


class _RefusingController(Controller):
    def factory(self) -> SMTP:
        return _RefusingTls(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def refusing_relay(pki: Pki) -> Iterator[Relay]:
    import ssl

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki.server_cert, pki.server_key)
    handler = RecordingHandler()
    port = free_port()
    controller = _RefusingController(
        handler, hostname="127.0.0.1", port=port, tls_context=tls, ready_timeout=10
    )
    controller.start()
    yield Relay("127.0.0.1", port, handler, controller)
    controller.stop()


def test_a_relay_refusing_starttls_after_offering_it_gets_nothing(
    refusing_relay: Relay, pki: Pki, clock: ManualClock
) -> None:
    config = relay_config(refusing_relay, pki)
    result = SmtpChannel(config, clock=clock).send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.RETRY  # 454 is temporary: later, still never in clear
    assert "454" in (result.error or "")
    assert refusing_relay.handler.received == []


def test_a_relay_that_never_answers_times_out_and_is_retried(
    relay: Relay, pki: Pki, clock: ManualClock
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody ever speaks
    try:
        settings: dict[str, Any] = {
            "port": silent.getsockname()[1],
            "send_timeout": timedelta(seconds=1),
        }
        config = relay_config(relay, pki).model_copy(update=settings)
        result = SmtpChannel(config, clock=clock).send(sample_message(OFFICER, channel="email"))
    finally:
        silent.close()
    assert result.status is DeliveryStatus.RETRY
    assert "did not answer within 1 s" in (result.error or "")
