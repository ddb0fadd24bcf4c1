"""The contract test kit every channel adapter's tests run (pytest).

Subclass :class:`ChannelContract` in an adapter's tests, with a name starting ``Test``, and
provide two fixtures: ``channel`` (a channel connected to a *real local peer* — an SMTP server on
loopback, a fake provider's HTTP server …) and ``peer`` (a :class:`Peer`: what that peer really
received, by idempotency key). The kit then checks the promises the outbox relies on::

    class TestNotifyContract(ChannelContract):
        recipient = "07700900123"

        @pytest.fixture
        def channel(self, notify_server): ...
        @pytest.fixture
        def peer(self, notify_server): ...

It imports only the protocol (not even pytest: pytest collects the subclass); nothing of the
store.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from oohcore.channels import (
    Channel,
    ChannelInfo,
    DeliveryResult,
    DeliveryStatus,
    OutboundMessage,
)
from oohcore.vocabulary import MessagePurpose

__all__ = ["KNOWN_CARRIES", "KNOWN_CONTACT_FIELDS", "ChannelContract", "Peer", "sample_message"]

KNOWN_CARRIES = frozenset({"sms", "email", "pager", "phone", "feed", "crm"})
KNOWN_CONTACT_FIELDS = frozenset({"phone", "email", "pager"})


class Peer(Protocol):
    """What the real peer received."""

    def received_keys(self) -> Sequence[str]:
        """The idempotency key (or the provider reference carrying it) of every delivery the
        peer accepted, once per delivery, in order."""
        ...


def sample_message(
    recipient: str, *, key: str | None = None, channel: str = "sms", body: str | None = None
) -> OutboundMessage:
    """A referral alert like the engine enqueues (5.2.5 fields, a reference, a UPRN)."""
    reference = "K7Q2M4"
    fields = {
        "caller_name": "Ann Lee",
        "address": "12 Heron Way, Example Town EX1 2AB",
        "phone": "07700 900123",
        "details": "No heating, elderly resident, boiler showing fault E119",
        "uprn": 100023336956,
        "reference": reference,
    }
    return OutboundMessage(
        organisation_id="example-borough",
        call_id=uuid.uuid4().hex,
        channel=channel,
        recipient=recipient,
        body=body
        or "Ann Lee / 12 Heron Way, Example Town EX1 2AB (UPRN 100023336956) / 07700 900123 / "
        f"No heating / Ref {reference}",
        idempotency_key=key or f"contract:{uuid.uuid4().hex}",
        subject=f"Housing repairs: {reference}",
        purpose=MessagePurpose.REFERRAL_ALERT,
        reference=reference,
        fields=fields,
        meta={"officer": "j-patel", "stage": 0},
    )


class ChannelContract:
    """The promises of :mod:`oohcore.channels`, checked against a channel and its real peer."""

    #: the contact point (or endpoint) messages go to in these tests
    recipient: ClassVar[str] = "recipient"
    #: the logical channel name the messages are sent through
    logical_channel: ClassVar[str] = "sms"
    #: strings that must never appear in the channel's repr/str (API keys, passwords)
    secrets: ClassVar[tuple[str, ...]] = ()

    def message(self, key: str | None = None, body: str | None = None) -> OutboundMessage:
        return sample_message(self.recipient, key=key, channel=self.logical_channel, body=body)

    def test_declares_what_it_carries(self, channel: Channel) -> None:
        assert isinstance(channel, Channel)
        assert isinstance(channel.name, str) and channel.name
        info = channel.info
        assert isinstance(info, ChannelInfo)
        assert info.carries and info.carries <= KNOWN_CARRIES, info.carries
        assert info.contact_field is None or info.contact_field in KNOWN_CONTACT_FIELDS
        for limit in (info.max_body, info.max_subject):
            assert limit is None or limit > 0
        assert info.rate_limit is None or info.rate_limit > 0
        assert info.send_timeout.total_seconds() > 0

    def test_a_message_reaches_the_peer(self, channel: Channel, peer: Peer) -> None:
        message = self.message()
        result = channel.send(message)
        assert isinstance(result, DeliveryResult)
        assert result.status is DeliveryStatus.SENT, result.error
        assert _count(peer, message.idempotency_key) == 1

    def test_sending_a_key_again_delivers_it_once_where_the_provider_can_tell(
        self, channel: Channel, peer: Peer
    ) -> None:
        """At least once from the outbox; the adapter uses the key to avoid a second delivery
        where its provider lets it (a look-up by reference, a dedupe header). An adapter whose
        provider cannot tell sets ``dedupes = False`` on its contract class and documents it."""
        message = self.message()
        first = channel.send(message)
        second = channel.send(message)
        assert first.status is DeliveryStatus.SENT
        assert second.status is DeliveryStatus.SENT
        expected = 1 if getattr(self, "dedupes", True) else 2
        assert _count(peer, message.idempotency_key) == expected

    def test_secrets_never_print(self, channel: Channel) -> None:
        shown = f"{channel!r} {channel!s} {getattr(channel, 'config', '')!r}"
        config = getattr(channel, "config", None)
        if config is not None and hasattr(config, "model_dump_json"):
            shown += config.model_dump_json()
        for secret in self.secrets:
            assert secret not in shown, "a secret appears in the channel's repr or config"

    def test_close_is_safe_to_call_twice(self, channel: Channel) -> None:
        channel.close()
        channel.close()


def _count(peer: Peer, key: str) -> int:
    keys: list[Any] = list(peer.received_keys())
    return sum(1 for k in keys if k == key)
