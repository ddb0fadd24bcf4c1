"""Reading a service request's status back from the CRM (GeoReport v2 ``GET requests.json`` and
``GET requests/{id}.json``), as receipts the outbox keeps (7.9: the CRM's case is followed up).

GeoReport v2 answers both with a list of service requests; each has ``service_request_id``,
``status`` (``open`` or ``closed``), ``status_notes`` (optional), ``agency_responsible``,
``service_notice``, ``requested_datetime`` and ``updated_datetime`` (ISO 8601 with a time zone;
for a closed request, when it was closed), and its location and description.

A status becomes a :class:`~oohcore.channels.Receipt` (state ``delivered``: the CRM holds the
request; the detail says ``open`` or ``closed`` and the notes, the time is the CRM's
``updated_datetime``) matched to the message by its provider reference. The outbox keeps a
receipt once, however often it is read back (``oohcore.durable.receipts.record_receipt``), so recording
each look-up's receipts keeps exactly the status *changes*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oohcore.channels import ChannelError, Receipt, ReceiptState

__all__ = ["STATUSES", "ReadBackError", "RequestStatus", "parse_requests", "status_receipt"]

STATUSES = frozenset({"open", "closed"})


class ReadBackError(ChannelError):
    """A CRM's list of service requests is not GeoReport v2 (the message names the item and
    field at fault)."""


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """One service request as the CRM reports it now."""

    service_request_id: str
    status: str  # "open" or "closed"
    updated_at: datetime | None
    status_notes: str | None = None
    agency_responsible: str | None = None
    service_notice: str | None = None
    requested_at: datetime | None = None


def _time(item: Mapping[str, Any], name: str, where: str) -> datetime | None:
    value = item.get(name)
    if value in (None, ""):
        return None
    text = str(value).replace("Z", "+00:00") if isinstance(value, str) else None
    try:
        when = datetime.fromisoformat(text) if text is not None and len(text) <= 40 else None
        when = when.astimezone(UTC) if when is not None and when.tzinfo is not None else None
    except (ValueError, OverflowError):
        when = None
    if when is None:
        raise ReadBackError(
            f"{where}.{name}: expected an ISO 8601 time with a time zone "
            "(e.g. 2026-01-10T03:00:00Z)"
        )
    return when


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value in (None, "") else str(value)[:500]


def parse_requests(body: Any, *, source: str = "requests.json") -> list[RequestStatus]:
    """A GeoReport v2 list of service requests; raises :class:`ReadBackError` naming the item
    and field at fault. Items without a ``service_request_id`` (a CRM still processing a
    token's request) are left out, as GeoReport v2 says clients should."""
    if not isinstance(body, list):
        raise ReadBackError(f"{source}: expected a list of service requests")
    found: list[RequestStatus] = []
    for n, item in enumerate(body):
        where = f"{source}[{n}]"
        if not isinstance(item, Mapping):
            raise ReadBackError(f"{where}: expected a service request object")
        request_id = _text(item, "service_request_id")
        if request_id is None:
            continue
        status = item.get("status")
        if not isinstance(status, str) or status.lower() not in STATUSES:
            raise ReadBackError(f"{where}.status: expected 'open' or 'closed'")
        found.append(
            RequestStatus(
                service_request_id=request_id,
                status=status.lower(),
                updated_at=_time(item, "updated_datetime", where),
                status_notes=_text(item, "status_notes"),
                agency_responsible=_text(item, "agency_responsible"),
                service_notice=_text(item, "service_notice"),
                requested_at=_time(item, "requested_datetime", where),
            )
        )
    return found


def status_receipt(
    status: RequestStatus, *, provider_ref: str, at: datetime, channel: str = "open311"
) -> Receipt:
    """The receipt of one read-back status; ``provider_ref`` is the message's reference (the
    service_request_id, or ``token:<t>``), ``at`` the time used when the CRM gave none."""
    detail = f"open311 service request {status.service_request_id}: {status.status}"
    if status.status_notes:
        detail += f" ({status.status_notes})"
    if status.agency_responsible:
        detail += f"; agency: {status.agency_responsible}"
    return Receipt(
        channel=channel,
        state=ReceiptState.DELIVERED,
        at=status.updated_at or status.requested_at or at,
        provider_ref=provider_ref,
        detail=detail,
    )
