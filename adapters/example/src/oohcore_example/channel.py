"""The example channel, step by step. Every adapter does these five things:

1. declare a typed **configuration** (a :class:`~oohcore.channels.ChannelConfig`: frozen,
   unknown settings refused) whose secrets are ``SecretStr``, so they never print;
2. declare its :class:`~oohcore.channels.ChannelInfo` on the class (``oohcore channels`` shows
   it and the configuration's JSON schema without building a channel);
3. ``send`` one message and answer ``sent`` / ``retry`` / ``permanent``, never raising for the
   provider's answer (8.14: a permanent failure escalates at once, a retry waits);
4. pass the idempotency key to the provider, so a repeat after a crash is delivered once where
   the provider can tell (here the ``Idempotency-Key`` header);
5. ``close`` what it holds, safely twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from pydantic import ConfigDict, Field, SecretStr

from oohcore.channels import ChannelConfig, ChannelInfo, DeliveryResult, OutboundMessage

__all__ = ["ChatChannel", "ChatConfig"]


# 1. the configuration: one per organisation, read from its channels.yaml
class ChatConfig(ChannelConfig):
    """Where the room's messages go, and the token that lets us post there."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(description="the room's incoming-message URL")
    token: SecretStr = Field(description="the bearer token (write {env: NAME} in channels.yaml)")
    send_timeout: timedelta = Field(default=timedelta(seconds=10), gt=timedelta(0))


class ChatChannel:
    """Messages to a chat room. Built by ``build_channels`` from a :class:`ChatConfig`."""

    name = "example-chat"
    # 2. what it declares (on the class, so it is known before one is built)
    info = ChannelInfo(
        carries=frozenset({"email"}),  # what the engine's logical channel expects it to carry
        contact_field=None,  # it posts to its configured room, not to an officer's contact
        max_body=4000,
        rate_limit=1.0,  # the room takes one message a second
        receipts=False,
        requires=("httpx",),
        config=ChatConfig,
    )

    def __init__(self, config: ChatConfig | Mapping[str, Any] | None = None, **settings: Any):
        self.config = (
            config
            if isinstance(config, ChatConfig)
            else ChatConfig(**dict(config or {}), **settings)
        )
        self._http = httpx.Client(timeout=self.config.send_timeout.total_seconds())

    def __repr__(self) -> str:  # the token never appears here
        return f"ChatChannel(url={self.config.url!r})"

    # 3. send: every answer of the provider becomes sent / retry / permanent
    def send(self, message: OutboundMessage) -> DeliveryResult:
        text = f"{message.subject}\n{message.body}".strip()[: self.info.max_body or None]
        headers = {
            "Authorization": f"Bearer {self.config.token.get_secret_value()}",
            "Idempotency-Key": message.idempotency_key,  # 4. the key, for the provider
        }
        try:
            response = self._http.post(self.config.url, json={"text": text}, headers=headers)
        except httpx.HTTPError as exc:  # no connection, a time-out: try again later
            return DeliveryResult.retry(f"example-chat: {type(exc).__name__}")
        if response.is_success:
            return DeliveryResult.sent(response.json().get("id"))
        if response.status_code == 429 or response.status_code >= 500:
            wait = response.headers.get("Retry-After", "")
            after = timedelta(seconds=int(wait)) if wait.isdigit() else None
            return DeliveryResult.retry(f"example-chat: HTTP {response.status_code}", after=after)
        # any other answer will not change by waiting: fail now, so the engine escalates
        return DeliveryResult.permanent(f"example-chat: HTTP {response.status_code}")

    # 5. close
    def close(self) -> None:
        self._http.close()
