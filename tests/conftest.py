"""Fixtures most engine tests share: the evening's manual clock and one in-memory channel per
kind the fixture organisations use (``engine_support``). A test file that needs another clock
or other channels defines its own fixture of the same name, which takes precedence."""

from __future__ import annotations

import pytest

from engine_support import CHANNELS, FRIDAY_EVENING
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FRIDAY_EVENING)


@pytest.fixture
def channels() -> dict[str, MemoryChannel]:
    return {name: MemoryChannel() for name in CHANNELS}
