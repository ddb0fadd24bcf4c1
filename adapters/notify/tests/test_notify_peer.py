"""The local Notify answers status look-ups as Notify documents them: every key always present,
read through the official client (``get_notification_by_id``, ``get_all_notifications``)."""

from __future__ import annotations

from typing import Any

from notifications_python_client.notifications import NotificationsAPIClient

from oohcore.channels import DeliveryStatus
from oohcore.channels.testing import sample_message
from oohcore_notify import NotifyChannel
from oohcore_notify.testing import LETTER_ADDRESS_FIELDS, STATUS_FIELDS, FakeNotify


def _check(document: dict[str, Any], kind: str) -> None:
    assert document.keys() >= STATUS_FIELDS, sorted(STATUS_FIELDS - document.keys())
    assert all(document[name] is None for name in LETTER_ADDRESS_FIELDS)
    assert document["type"] == kind
    assert set(document["template"]) == {"id", "version", "uri"}
    assert document["template"]["uri"].startswith("http://127.0.0.1:")


def test_status_look_ups_carry_every_field_notify_returns(
    fake_notify: FakeNotify, sms_channel: NotifyChannel
) -> None:
    result = sms_channel.send(sample_message("07700900123", key="k-1"))
    assert result.status is DeliveryStatus.SENT and result.provider_ref is not None
    client: Any = NotificationsAPIClient(fake_notify.api_key, base_url=fake_notify.base_url)
    one = client.get_notification_by_id(result.provider_ref)
    _check(one, "sms")
    assert one["phone_number"] == "07700900123" and one["email_address"] is None
    (listed,) = client.get_all_notifications(reference="k-1")["notifications"]
    _check(listed, "sms")
    assert listed == one
