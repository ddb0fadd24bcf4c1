"""The Notify adapter's peer: a fake GOV.UK Notify on 127.0.0.1, started and stopped per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from oohcore_notify import NotifyChannel, NotifyConfig
from oohcore_notify.testing import FakeNotify

SERVICE_ID = "2a6b3c4d-1111-4e5f-9a8b-0c1d2e3f4a5b"
SECRET = "9f8e7d6c-2222-4b3a-8c9d-1e2f3a4b5c6d"
API_KEY = f"oohcore-test-{SERVICE_ID}-{SECRET}"


@pytest.fixture
def fake_notify() -> Iterator[FakeNotify]:
    with FakeNotify(service_id=SERVICE_ID, secret=SECRET) as fake:
        yield fake


def _config(fake: FakeNotify, **overrides: Any) -> NotifyConfig:
    settings: dict[str, Any] = {
        "api_key": fake.api_key,
        "base_url": fake.base_url,
        "sms_template_id": fake.sms_template_id,
        "email_template_id": fake.email_template_id,
        "timeout_seconds": 5.0,
    }
    settings.update(overrides)
    return NotifyConfig.model_validate(settings)


@pytest.fixture
def make_config(fake_notify: FakeNotify) -> Callable[..., NotifyConfig]:
    """The channel configuration for the fake server, with ``overrides``."""
    return lambda **overrides: _config(fake_notify, **overrides)


@pytest.fixture
def sms_channel(fake_notify: FakeNotify) -> Iterator[NotifyChannel]:
    channel = NotifyChannel(_config(fake_notify))
    yield channel
    channel.close()
