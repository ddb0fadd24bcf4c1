"""The Open311 adapter's peer: a local GeoReport v2 server (``open311_server``), per test."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from open311_server import Open311TestServer


@pytest.fixture
def crm() -> Iterator[Open311TestServer]:
    with Open311TestServer() as server:
        yield server
