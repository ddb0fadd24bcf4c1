"""The built-in channels pass the contract kit that every adapter runs (oohcore.channels.testing)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from oohcore.channels import Channel, DeliveryResult, DeliveryStatus
from oohcore.channels.local import LocalChannel, MemoryChannel
from oohcore.channels.testing import ChannelContract, sample_message


class _FilePeer:
    def __init__(self, path: Path) -> None:
        self.path = path

    def received_keys(self) -> Sequence[str]:
        if not self.path.exists():
            return []
        return [json.loads(line)["idempotency_key"] for line in self.path.read_text().splitlines()]


class TestLocalChannelContract(ChannelContract):
    recipient = "07700900123"

    @pytest.fixture
    def channel(self, tmp_path: Path) -> Iterator[Channel]:
        ch = LocalChannel(tmp_path / "out.jsonl", fsync=False, contact_field="phone")
        yield ch
        ch.close()

    @pytest.fixture
    def peer(self, tmp_path: Path) -> _FilePeer:
        return _FilePeer(tmp_path / "out.jsonl")


class _MemoryPeer:
    def __init__(self, channel: MemoryChannel) -> None:
        self.channel = channel

    def received_keys(self) -> Sequence[str]:
        return [m.idempotency_key for m in self.channel.messages]


class TestMemoryChannelContract(ChannelContract):
    @pytest.fixture
    def channel(self) -> MemoryChannel:
        return MemoryChannel(contact_field="phone")

    @pytest.fixture
    def peer(self, channel: MemoryChannel) -> _MemoryPeer:
        return _MemoryPeer(channel)


def test_memory_channel_answers_with_a_scripted_failure() -> None:
    ch = MemoryChannel()
    ch.fail = DeliveryResult.permanent("no such number")
    result = ch.send(sample_message("07700900999"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert ch.messages == []


def test_the_protocol_imports_nothing_of_the_store() -> None:
    """An adapter importing the protocol must not load SQLAlchemy (issue: channels stand alone)."""
    import subprocess
    import sys

    code = (
        "import sys, oohcore.channels, oohcore.channels.testing, oohcore.channels.local;"
        "bad = [m for m in sys.modules if m.startswith(('sqlalchemy', 'oohcore.store',"
        " 'oohcore.durable', 'oohcore.engine', 'oohcore.rulesets'))];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
