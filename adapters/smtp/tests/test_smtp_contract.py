"""The SMTP channel passes the core's contract kit against aiosmtpd on loopback (STARTTLS, AUTH)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from smtp_peers import OFFICER, PASSWORD, Pki, Relay, relay_config

from oohcore.channels.testing import ChannelContract
from oohcore.clock import ManualClock
from oohcore_smtp import SmtpChannel


class _RelayPeer:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def received_keys(self) -> Sequence[str]:
        return self.relay.keys()


class TestSmtpChannelContract(ChannelContract):
    recipient = OFFICER
    logical_channel = "email"
    secrets = (PASSWORD,)
    dedupes = False  # SMTP cannot tell: the same Message-ID lets the receiver drop the copy

    @pytest.fixture
    def channel(self, relay: Relay, pki: Pki, clock: ManualClock) -> Iterator[SmtpChannel]:
        ch = SmtpChannel(relay_config(relay, pki), clock=clock)
        yield ch
        ch.close()

    @pytest.fixture
    def peer(self, relay: Relay) -> _RelayPeer:
        return _RelayPeer(relay)
