"""The example adapter's tests: the core's contract kit against a real local peer (a small
chat-room server on 127.0.0.1), plus what is particular to this adapter. A vendor's adapter
has the same three parts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from oohcore.channels import Channel, ChannelConfigError, DeliveryStatus
from oohcore.channels.registry import build_channels, describe_adapters
from oohcore.channels.testing import ChannelContract, sample_message
from oohcore_example import ChatChannel

TOKEN = "chat-token-R2d2-never-printed"


class ChatRoom:
    """The peer: takes ``POST {"text"}`` with the bearer token, once per Idempotency-Key."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []  # (idempotency key, text)
        self.answer: tuple[int, dict[str, str]] | None = None
        room = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                status, headers = room.answer or (200, {})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    status = 401
                elif status == 200 and key not in {k for k, _ in room.posts}:
                    room.posts.append((key, body["text"]))
                data = json.dumps({"id": f"m-{len(room.posts)}"}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ooh"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received_keys(self) -> Sequence[str]:  # what the contract kit asks the peer
        return [key for key, _ in self.posts]


@pytest.fixture
def room() -> Iterator[ChatRoom]:
    r = ChatRoom()
    yield r
    r.server.shutdown()
    r.server.server_close()


# 1. the contract kit: the promises the outbox relies on
class TestChatContract(ChannelContract):
    recipient = "duty-room"
    logical_channel = "email"
    secrets = (TOKEN,)

    @pytest.fixture
    def channel(self, room: ChatRoom) -> Iterator[Channel]:
        ch = ChatChannel(url=room.url, token=TOKEN)
        yield ch
        ch.close()

    @pytest.fixture
    def peer(self, room: ChatRoom) -> ChatRoom:
        return room


# 2. what is particular to this adapter: its answers
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, DeliveryStatus.RETRY),
        (503, DeliveryStatus.RETRY),
        (404, DeliveryStatus.PERMANENT_FAILURE),
    ],
)
def test_answers(room: ChatRoom, status: int, expected: DeliveryStatus) -> None:
    room.answer = (status, {"Retry-After": "7"})
    ch = ChatChannel(url=room.url, token=TOKEN)
    result = ch.send(sample_message("duty-room", channel="email"))
    ch.close()
    assert result.status is expected
    assert result.retry_after == (None if status == 404 else timedelta(seconds=7))


# 3. it is found by name, built from a configuration, and described by `oohcore channels`
def test_registered_built_and_described(room: ChatRoom) -> None:
    channels = build_channels(
        {"email": {"adapter": "example-chat", "url": room.url, "token": {"env": "ROOM_TOKEN"}}},
        environ={"ROOM_TOKEN": TOKEN},
    )
    assert (
        channels["email"].send(sample_message("x", channel="email")).status is DeliveryStatus.SENT
    )
    channels["email"].close()
    with pytest.raises(ChannelConfigError, match="needs the setting 'token'"):
        build_channels({"email": {"adapter": "example-chat", "url": room.url}})
    described, _ = describe_adapters()
    (example,) = [d.as_dict() for d in described if d.name == "example-chat"]
    assert example["config"]["properties"]["token"]["format"] == "password"
