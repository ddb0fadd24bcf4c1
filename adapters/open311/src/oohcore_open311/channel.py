"""The ``open311`` channel: a service request to the council's CRM over Open311 GeoReport v2
(spec 7.9: "pass service requests to the PO's CRM"; the standard FixMyStreet uses).

One ``send`` is, in GeoReport v2's terms (wiki.open311.org/GeoReport_v2):

1. **Discovery** (cached for the channel's life): ``GET services.json`` (is the service code
   offered?) and, for a service with ``metadata: true``, ``GET services/{code}.json`` (its
   attributes: which are required, which values a list takes). A request that lacks a required
   attribute is refused before it is posted, naming the attribute (a configuration fault:
   ``permanent``, so the engine escalates, 8.14).
2. **POST requests.json**, form-encoded: ``api_key``, ``jurisdiction_id``, ``service_code``, the
   location (``address_string``; else ``address_id`` = the UPRN; ``lat``/``long`` when known),
   ``description`` (the message body, at most 4,000 characters), ``first_name``/``last_name``/
   ``phone``/``email`` of the caller when given, and ``attribute[CODE]`` for each configured
   attribute, ``attribute[uprn]`` always when the UPRN is known (7.11).
3. The answer is ``[{"service_request_id": ...}]`` (sent) or ``[{"token": ...}]``: then
   ``GET tokens/{token}.json`` is polled until it names the ``service_request_id``; a CRM that
   has not named it after ``token_polls`` tries has still accepted the request, so it is sent
   with the reference ``token:<token>`` (:meth:`Open311Channel.resolve_token` reads it later).

Errors are GeoReport's error document, ``[{"code": 400, "description": "..."}]``: HTTP ``400``
(and every other ``4xx`` but those below, a redirect, ``401``/``403`` a refused API key,
``404`` an unknown service or jurisdiction) is ``permanent``; ``408``, ``425``, ``429`` and
every ``5xx`` are ``retry``, passing on ``Retry-After`` (capped at :data:`MAX_RETRY_AFTER`); no
connection or a time-out is ``retry``. The API key is a ``SecretStr``: it goes in the form body
only, never in a URL, a ``repr``, a log line or an error.

Bounds: one ``send`` (discovery, the POST, the token polls and the waits between them) is
over within ``send_timeout`` as a whole, whatever the CRM's pace (a CRM answering one byte a
second is cut off at the deadline: ``retry``), and no answer larger than :data:`MAX_ANSWER`
bytes (:data:`MAX_LIST_ANSWER` for discovery and read-back lists) is read into memory: a larger
one is refused unread (``retry``) (:mod:`oohcore.channels.deadline`).

At most once? Open311 has no idempotency key and no look-up by our reference, so the channel
keeps the keys it delivered (:class:`~oohcore_open311.ledger.SentLedger`) and does not post a key
twice. An answer lost after the CRM accepted (a time-out) cannot be told apart from a request
that never arrived: the outbox sends again, and the CRM may hold two. ``key_attribute`` names an
attribute the CRM defines to carry our key, so that such a CRM can drop the repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from oohcore.channels import (
    MAX_RETRY_AFTER,
    ChannelError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    Receipt,
    retry_after,
    tls_verify,
)
from oohcore.channels.deadline import (
    Answer,
    AnswerRefused,
    Deadline,
    DeadlineExceeded,
    exchange,
)
from oohcore.clock import Clock, SystemClock

from .config import Open311Config
from .ledger import SentLedger
from .readback import RequestStatus, parse_requests, status_receipt

__all__ = [
    "MAX_ANSWER",
    "MAX_DESCRIPTION",
    "MAX_LIST_ANSWER",
    "MAX_RETRY_AFTER",
    "Attribute",
    "Open311Channel",
    "Open311Error",
    "Service",
    "ServiceDefinition",
]

log = logging.getLogger("oohcore_open311")

#: GeoReport v2: "description ... may not exceed 4,000 characters"
MAX_DESCRIPTION = 4000
#: the largest answer to a POST or a token poll that is read (a request id is a few bytes)
MAX_ANSWER = 256 * 1024
#: the largest discovery or read-back list that is read
MAX_LIST_ANSWER = 4 * 1024 * 1024
_RETRY_STATUSES = frozenset({408, 425, 429})


class Open311Error(ChannelError):
    """The CRM's answer to a discovery or token request is an error or not GeoReport v2.

    ``retryable`` says whether trying again later may help (no connection, 429, 5xx)."""

    def __init__(self, message: str, *, retryable: bool, after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.after = after


@dataclass(frozen=True, slots=True)
class Service:
    """One entry of ``services.json``."""

    code: str
    name: str
    metadata: bool
    type: str
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of a service definition (``services/{code}.json``)."""

    code: str
    datatype: str
    required: bool
    variable: bool
    description: str = ""
    values: tuple[str, ...] = ()  # the keys a singlevaluelist / multivaluelist takes


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    service_code: str
    attributes: tuple[Attribute, ...]


class Open311Channel:
    """Service requests to a CRM over Open311 GeoReport v2.

    ``Open311Channel(Open311Config(...))``, a mapping of its fields, or the fields as keywords;
    ``clock`` reads ``Retry-After`` dates; ``sleep`` waits between token polls (tests pass a
    no-op)."""

    name = "open311"
    info = ChannelInfo(
        carries=frozenset({"crm"}),
        contact_field=None,
        max_body=MAX_DESCRIPTION,
        max_subject=None,
        rate_limit=None,
        receipts=False,
        requires=("httpx", "sqlite3"),
        config=Open311Config,
        send_timeout=timedelta(seconds=20),
    )

    def __init__(
        self,
        config: Open311Config | Mapping[str, Any] | None = None,
        /,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **settings: Any,
    ) -> None:
        if config is None:
            config = Open311Config(**settings)
        elif not isinstance(config, Open311Config):
            config = Open311Config(**{**dict(config), **settings})
        elif settings:
            config = config.model_copy(update=settings)
        self.config: Open311Config = config
        self.info = ChannelInfo(
            carries=frozenset({"crm"}),
            contact_field=None,
            max_body=MAX_DESCRIPTION,
            receipts=False,
            requires=("httpx", "sqlite3"),
            config=Open311Config,
            send_timeout=config.send_timeout,
        )
        self._clock = clock or SystemClock()
        self._sleep = sleep
        parts = urlsplit(config.endpoint)
        self._where = f"{parts.scheme}://{parts.netloc}{parts.path}"
        verify = tls_verify("open311", config.ca_file, "the CRM")
        self._http = httpx.Client(
            base_url=config.endpoint,
            verify=verify,
            timeout=httpx.Timeout(config.send_timeout.total_seconds()),
            follow_redirects=False,
            headers={"User-Agent": "oohcore-open311", "Accept": "application/json"},
            # a connection per request, so that the deadline's watchdog can always cut it
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._ledger = SentLedger(config.state_path)
        self._services: dict[str, Service] | None = None
        self._definitions: dict[str, ServiceDefinition] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"Open311Channel(endpoint={self._where!r})"

    # -- discovery ------------------------------------------------------------------------------

    def services(self, *, deadline: Deadline | None = None) -> dict[str, Service]:
        """``GET services.json``, by service code (read once, then cached)."""
        with self._lock:
            if self._services is not None:
                return self._services
        body = self._get("services.json", self._jurisdiction(), deadline, MAX_LIST_ANSWER)
        if not isinstance(body, list):
            raise Open311Error(f"open311 {self._where}services.json: not a list", retryable=False)
        found: dict[str, Service] = {}
        for item in body:
            if isinstance(item, Mapping) and item.get("service_code") is not None:
                code = str(item["service_code"])
                found[code] = Service(
                    code=code,
                    name=str(item.get("service_name", code)),
                    metadata=_truthy(item.get("metadata")),
                    type=str(item.get("type", "realtime")),
                    group=str(item["group"]) if item.get("group") is not None else None,
                )
        with self._lock:
            self._services = found
        return found

    def definition(
        self, service_code: str, *, deadline: Deadline | None = None
    ) -> ServiceDefinition:
        """``GET services/{code}.json``: the service's attributes (cached)."""
        with self._lock:
            if service_code in self._definitions:
                return self._definitions[service_code]
        path = f"services/{quote(service_code, safe='')}.json"
        body = self._get(path, self._jurisdiction(), deadline, MAX_LIST_ANSWER)
        if not isinstance(body, Mapping) or not isinstance(body.get("attributes", []), list):
            raise Open311Error(
                f"open311 {self._where}services/{service_code}.json: not a service definition",
                retryable=False,
            )
        attributes = []
        for item in body.get("attributes", []):
            if not isinstance(item, Mapping) or item.get("code") is None:
                continue
            values = tuple(
                str(v.get("key"))
                for v in item.get("values") or []
                if isinstance(v, Mapping) and v.get("key") is not None
            )
            attributes.append(
                Attribute(
                    code=str(item["code"]),
                    datatype=str(item.get("datatype", "string")),
                    required=_truthy(item.get("required")),
                    variable=_truthy(item.get("variable", True)),
                    description=str(item.get("description", "")),
                    values=values,
                )
            )
        definition = ServiceDefinition(service_code, tuple(attributes))
        with self._lock:
            self._definitions[service_code] = definition
        return definition

    def resolve_token(self, token: str, *, deadline: Deadline | None = None) -> str | None:
        """``GET tokens/{token}.json``: the service_request_id the token now names, or None."""
        path = f"tokens/{quote(token, safe='')}.json"
        body = self._get(path, self._jurisdiction(), deadline, MAX_ANSWER)
        items = body if isinstance(body, list) else [body]
        for item in items:
            if isinstance(item, Mapping) and item.get("service_request_id") not in (None, ""):
                return str(item["service_request_id"])
        return None

    # -- reading a request back ----------------------------------------------------------------

    def request_status(self, service_request_id: str) -> RequestStatus | None:
        """``GET requests/{id}.json``: the request's status now, or None when the CRM does not
        name it yet. Raises :class:`Open311Error` (the CRM's error, or not GeoReport v2)."""
        path = f"requests/{quote(service_request_id, safe='')}.json"
        found = self._statuses(path, self._jurisdiction())
        return next((s for s in found if s.service_request_id == service_request_id), None)

    def request_statuses(self, service_request_ids: list[str]) -> list[RequestStatus]:
        """``GET requests.json?service_request_id=a,b,…``: the statuses of several requests at
        once (those the CRM names)."""
        if not service_request_ids:
            return []
        params = {**self._jurisdiction(), "service_request_id": ",".join(service_request_ids)}
        wanted = set(service_request_ids)
        return [
            s for s in self._statuses("requests.json", params) if s.service_request_id in wanted
        ]

    def status_receipts(self, provider_refs: list[str]) -> list[Receipt]:
        """The receipts of the requests these messages became (their provider references: a
        service_request_id, or ``token:<t>``, resolved first), read back in one
        ``GET requests.json``. Record each with ``Runner.record_receipt``: the outbox keeps a
        status once, so only changes are added. A token the CRM has not resolved yet gives
        nothing."""
        ids: dict[str, str] = {}  # service_request_id -> the message's reference
        for ref in provider_refs:
            if ref.startswith("token:"):
                found = self.resolve_token(ref[len("token:") :])
                if found is not None:
                    ids[found] = ref
            elif ref:
                ids[ref] = ref
        now = self._clock.now()
        return [
            status_receipt(s, provider_ref=ids[s.service_request_id], at=now, channel=self.name)
            for s in self.request_statuses(list(ids))
        ]

    def _statuses(self, path: str, params: dict[str, str]) -> list[RequestStatus]:
        body = self._get(path, params, None, MAX_LIST_ANSWER)
        try:
            return parse_requests(body, source=f"open311 {self._where}{path}")
        except ChannelError as exc:
            raise Open311Error(str(exc), retryable=False) from None

    # -- sending --------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Post ``message`` as a service request; never raises for the CRM's answer."""
        if self._closed:
            raise ChannelError("Open311Channel: send after close")
        earlier = self._ledger.get(message.idempotency_key)
        if earlier is not None:
            return DeliveryResult.sent(earlier, duplicate=True)
        code = self.config.service_codes.get(message.recipient, message.recipient).strip()
        if not code:
            return DeliveryResult.permanent(
                "open311: the message names no service: set the recipient to a service_code or "
                "an alias in service_codes"
            )
        deadline = Deadline(self.config.send_timeout.total_seconds())
        try:
            form = self._form(message, code, deadline)
        except Open311Error as exc:
            return self._failure(exc)
        if isinstance(form, DeliveryResult):
            return form
        result = self._post(form, deadline)
        if result.status.value == "sent" and result.provider_ref is not None:
            self._ledger.record(message.idempotency_key, result.provider_ref)
        log.info(
            "open311 %s (service %s): %s%s",
            message.idempotency_key,
            code,
            result.status.value,
            f" ({result.error})" if result.error else "",
        )
        return result

    def _form(
        self, message: OutboundMessage, code: str, deadline: Deadline
    ) -> dict[str, str] | DeliveryResult:
        cfg = self.config
        fields = message.fields
        form: dict[str, str] = {"service_code": code}
        if cfg.api_key is not None:
            form["api_key"] = cfg.api_key.get_secret_value()
        if cfg.jurisdiction_id is not None:
            form["jurisdiction_id"] = cfg.jurisdiction_id
        uprn = _text(fields.get("uprn"))
        address = _text(fields.get("address"))
        if address:
            form["address_string"] = address
        elif uprn:
            form["address_id"] = uprn
        for ours, theirs in (("lat", "lat"), ("latitude", "lat"), ("long", "long")):
            if _text(fields.get(ours)):
                form[theirs] = _text(fields.get(ours))
        if _text(fields.get("longitude")):
            form["long"] = _text(fields.get("longitude"))
        if not ({"address_string", "address_id"} & form.keys() or {"lat", "long"} <= form.keys()):
            return DeliveryResult.permanent(
                "open311: GeoReport v2 needs a location and the message has no address, UPRN or "
                "lat/long"
            )
        description = message.body.strip() or _text(fields.get("details"))
        form["description"] = description[:MAX_DESCRIPTION]
        name = _text(fields.get("caller_name"))
        if name:
            first, _, last = name.partition(" ")
            form["first_name"] = first
            if last:
                form["last_name"] = last
        for ours, theirs in (("phone", "phone"), ("email", "email")):
            if _text(fields.get(ours)):
                form[theirs] = _text(fields.get(ours))
        attributes: dict[str, str] = {}
        for attr_code, field_name in cfg.attributes.items():
            value = message.reference if field_name == "reference" else fields.get(field_name)
            if _text(value):
                attributes[attr_code] = _text(value)
        if uprn:
            attributes["uprn"] = uprn  # always when known (7.9, 7.11)
        if cfg.key_attribute:
            attributes[cfg.key_attribute] = message.idempotency_key
        if cfg.check_definitions:
            problem = self._check(code, attributes, deadline)
            if problem is not None:
                return problem
        for attr_code, value in attributes.items():
            form[f"attribute[{attr_code}]"] = value
        return form

    def _check(
        self, code: str, attributes: dict[str, str], deadline: Deadline
    ) -> DeliveryResult | None:
        services = self.services(deadline=deadline)
        service = services.get(code)
        if service is None:
            known = ", ".join(sorted(services)) or "none"
            return DeliveryResult.permanent(
                f"open311 {self._where}: the CRM offers no service {code!r} (services.json "
                f"lists: {known}); correct service_codes"
            )
        if not service.metadata:
            return None
        definition = self.definition(code, deadline=deadline)
        for attribute in definition.attributes:
            if attribute.required and attribute.variable and attribute.code not in attributes:
                return DeliveryResult.permanent(
                    f"open311 {self._where}: service {code!r} requires the attribute "
                    f"{attribute.code!r} ({attribute.description or attribute.datatype}); map it "
                    "to a case field in 'attributes'"
                )
            value = attributes.get(attribute.code)
            if (
                value is not None
                and attribute.values
                and attribute.datatype == "singlevaluelist"
                and value not in attribute.values
            ):
                return DeliveryResult.permanent(
                    f"open311 {self._where}: service {code!r} attribute {attribute.code!r} "
                    f"takes one of {', '.join(attribute.values)}, not {value[:40]!r}"
                )
        return None

    def _post(self, form: dict[str, str], deadline: Deadline) -> DeliveryResult:
        try:
            response = exchange(
                self._http, "POST", "requests.json", deadline=deadline, cap=MAX_ANSWER, data=form
            )
        except AnswerRefused as exc:
            return DeliveryResult.retry(
                f"open311 {self._where}requests.json: HTTP {exc.status} with {exc} (not read; "
                "the CRM may have the request: Open311 cannot tell us)"
            )
        except (httpx.TimeoutException, DeadlineExceeded):
            return DeliveryResult.retry(
                f"open311 {self._where}requests.json: no answer within "
                f"{self.config.send_timeout.total_seconds():g} s (the CRM may have the request: "
                "Open311 cannot tell us)"
            )
        except httpx.HTTPError as exc:
            return DeliveryResult.retry(f"open311 {self._where}requests.json: {self._reason(exc)}")
        if response.status not in (200, 201):
            return self._failure(self._error(response, "requests.json"))
        body = response.json()
        items = body if isinstance(body, list) else [body]
        first = items[0] if items and isinstance(items[0], Mapping) else {}
        if first.get("service_request_id") not in (None, ""):
            return DeliveryResult.sent(str(first["service_request_id"]))
        token = first.get("token")
        if token in (None, ""):
            return DeliveryResult.retry(
                f"open311 {self._where}requests.json: HTTP {response.status} without a "
                "service_request_id or token"
            )
        return self._await_token(str(token), deadline)

    def _await_token(self, token: str, deadline: Deadline) -> DeliveryResult:
        cfg = self.config
        interval = cfg.token_poll_interval.total_seconds()
        for attempt in range(cfg.token_polls):
            if attempt:
                if deadline.remaining() <= interval:
                    break  # no time left for another poll within the send's deadline
                self._sleep(interval)
            try:
                found = self.resolve_token(token, deadline=deadline)
            except Open311Error as exc:
                log.info("open311 token %s: %s", token, exc)
                break
            if found is not None:
                return DeliveryResult.sent(found)
        # accepted: the CRM gave a token; its service_request_id comes later
        return DeliveryResult.sent(f"token:{token}")

    # -- answers --------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str], deadline: Deadline | None, cap: int) -> Any:
        if deadline is None:
            deadline = Deadline(self.config.send_timeout.total_seconds())
        try:
            response = exchange(self._http, "GET", path, deadline=deadline, cap=cap, params=params)
        except (httpx.HTTPError, DeadlineExceeded, AnswerRefused) as exc:
            raise Open311Error(
                f"open311 {self._where}{path}: {self._reason(exc)}", retryable=True
            ) from None
        if response.status != 200:
            raise self._error(response, path)
        body = response.json()
        if body is None:
            raise Open311Error(f"open311 {self._where}{path}: not JSON", retryable=True)
        return body

    def _error(self, response: Answer, path: str) -> Open311Error:
        status = response.status
        said = _error_document(response)
        text = f"open311 {self._where}{path}: HTTP {status}{said}"
        if status in _RETRY_STATUSES or status >= 500:
            after = retry_after(response.headers.get("retry-after"), self._clock.now())
            return Open311Error(self._scrub(text), retryable=True, after=after)
        if status in (401, 403):
            text += ": the CRM refused the API key; check api_key"
        elif 300 <= status < 400:
            text += ": the CRM redirects; set endpoint to the address it names"
        return Open311Error(self._scrub(text), retryable=False)

    def _failure(self, exc: Open311Error) -> DeliveryResult:
        if exc.retryable:
            return DeliveryResult.retry(str(exc), after=exc.after)
        return DeliveryResult.permanent(str(exc))

    def _reason(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__} ({str(exc)[:200] or 'no detail'})")

    def _scrub(self, text: str) -> str:
        key = self.config.api_key
        if key is not None and key.get_secret_value():
            text = text.replace(key.get_secret_value(), "**********")
        return text

    def _jurisdiction(self) -> dict[str, str]:
        jid = self.config.jurisdiction_id
        return {"jurisdiction_id": jid} if jid is not None else {}

    def close(self) -> None:
        """Close the HTTP connections and the ledger; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._http.close()
            self._ledger.close()


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _error_document(response: Answer) -> str:
    """GeoReport's error document ``[{"code", "description"}]`` in words, or nothing."""
    body = response.json()
    items = body if isinstance(body, list) else [body]
    said = [
        f"{item.get('code', '')} {item.get('description', '')}".strip()
        for item in items
        if isinstance(item, Mapping) and (item.get("description") or item.get("code"))
    ]
    return f": {'; '.join(said)[:300]}" if said else ""
