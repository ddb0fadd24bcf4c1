"""oohcore-open311: service requests to a council CRM over Open311 GeoReport v2 (spec 7.9).

Registered as the ``open311`` channel in the entry-point group ``oohcore.channels``::

    from oohcore_open311 import Open311Channel

    crm = Open311Channel(endpoint="https://crm.example.gov.uk/open311/v2/", api_key="…",
                         service_codes={"housing-repairs": "HR-OOH"})

See the distribution's README for configuration, answers and delivery guarantees.
"""

from .channel import (
    MAX_DESCRIPTION,
    MAX_RETRY_AFTER,
    Attribute,
    Open311Channel,
    Open311Error,
    Service,
    ServiceDefinition,
)
from .config import Open311Config
from .ledger import SentLedger
from .readback import ReadBackError, RequestStatus, parse_requests, status_receipt

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_RETRY_AFTER",
    "Attribute",
    "Open311Channel",
    "Open311Config",
    "Open311Error",
    "ReadBackError",
    "RequestStatus",
    "SentLedger",
    "Service",
    "ServiceDefinition",
    "parse_requests",
    "status_receipt",
]
