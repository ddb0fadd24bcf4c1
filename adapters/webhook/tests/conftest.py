"""The webhook adapter's peer: a local receiver that verifies signatures (``webhook_receiver``)."""

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from webhook_receiver import SECRET, WebhookReceiver

from oohcore.clock import ManualClock

T0 = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def receiver(clock: ManualClock) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, clock.now) as server:
        yield server
