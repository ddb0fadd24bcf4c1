"""The GOV.UK Notify channel: SMS and email through ``notifications-python-client``.

Each message is sent with a Notify template (``((body))`` for the text; the email template also
has ``((subject))``) and the outbox's idempotency key as Notify's ``reference``. What the
provider answers becomes a :class:`~oohcore.channels.DeliveryResult`:

========================================  =========================================================
Notify's answer                           result
========================================  =========================================================
201                                       ``sent(id)``
400 (bad number, missing template …)      ``permanent``: the outbox fails it at once, the engine
                                          escalates (8.14)
401 / 403 (key revoked, clock skew)       ``permanent``, saying to check the key and the clock
429 (rate or daily limit)                 ``retry``, after ``Retry-After`` when Notify sends one
5xx, timeout, connection lost or refused  ``retry``; the key is *in doubt*
========================================  =========================================================

**At most one text per key, as far as Notify can tell.** Notify does not promise to deduplicate
on ``reference``. So a key whose last attempt is in doubt (no answer, or a 5xx: Notify may have
accepted it) is looked up by reference (``GET /v2/notifications?reference=…``) before it is
sent again, and a notification found there counts as sent (``duplicate=True``). The channel also
remembers the keys it has sent, so the outbox's at-least-once re-sends in the same process reach
Notify once. After a crash of the whole process between Notify's 201 and the outbox recording
it, the re-send is looked up only with ``reconcile="always"`` (one extra request per message)
or when the outbox passes the attempt number (an ``attempt`` attribute above 1 on the message).

The client is synchronous and not thread-safe: the channel keeps one per thread.
"""

from __future__ import annotations

import email.utils
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal

from notifications_python_client.errors import APIError
from notifications_python_client.notifications import NotificationsAPIClient
from pydantic import ValidationError

from oohcore.channels import (
    ChannelError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    Receipt,
)
from oohcore.channels.sms import (
    NOTIFY_MAX_CHARACTERS,
    REFERRAL_FIELDS,
    SmsCompositionError,
    compose_sms,
    measure,
    sanitise,
)
from oohcore.vocabulary import MessagePurpose
from oohcore_notify.callbacks import receipt_from_status
from oohcore_notify.config import NotifyConfig

__all__ = ["NotifyChannel", "NotifyEmailChannel"]

Kind = Literal["sms", "email"]
ClientFactory = Callable[[NotifyConfig], Any]

_REMEMBERED = 20_000  # keys sent by this channel that a re-send recognises without a request
_MAX_ERROR = 300


def _default_client(config: NotifyConfig) -> Any:
    client_class: Any = NotificationsAPIClient  # the library is not annotated
    return client_class(
        config.api_key.get_secret_value(),
        base_url=config.base_url,
        timeout=config.timeout_seconds,
    )


class NotifyChannel:
    """Sends oohcore's messages through one organisation's GOV.UK Notify service.

    ``config`` is a :class:`NotifyConfig` or the mapping it is made from (a host's settings
    file); ``kind`` is ``"sms"`` (to the officer's ``phone``) or ``"email"`` (to ``email``).
    ``client_factory`` builds a Notify client from the configuration (tests, proxies).
    """

    name = "notify"

    def __init__(
        self,
        config: NotifyConfig | Mapping[str, Any],
        *,
        kind: Kind = "sms",
        client_factory: ClientFactory | None = None,
    ) -> None:
        if kind not in ("sms", "email"):
            raise ChannelError(f"a Notify channel carries 'sms' or 'email', not {kind!r}")
        self.config = _config(config)
        template = self.config.sms_template_id if kind == "sms" else self.config.email_template_id
        if template is None:
            raise ChannelError(
                f"the Notify channel for {kind} needs {kind}_template_id in its configuration"
            )
        self.kind: Kind = kind
        self._template_id = str(template)
        self.info = ChannelInfo(
            carries=frozenset({kind}),
            contact_field="phone" if kind == "sms" else "email",
            max_body=NOTIFY_MAX_CHARACTERS if kind == "sms" else None,
            max_subject=None,
            rate_limit=self.config.rate_limit,
            receipts=True,
            requires=("notifications_python_client",),
            config=NotifyConfig,
            # a look-up and a send, each within the client's timeout
            send_timeout=timedelta(seconds=2 * self.config.timeout_seconds + 1),
        )
        self._factory = client_factory or _default_client
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[Any] = []
        self._sent: OrderedDict[str, str] = OrderedDict()
        self._doubtful: set[str] = set()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, service_id={self.config.service_id!r}, "
            f"base_url={self.config.base_url!r})"
        )

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> DeliveryResult:
        key = message.idempotency_key
        with self._lock:
            if self._closed:
                raise ChannelError("this Notify channel is closed")
            known = self._sent.get(key)
            doubtful = key in self._doubtful
        if known is not None:
            return DeliveryResult.sent(known, duplicate=True)
        try:
            send = self._request(message)
        except SmsCompositionError as exc:
            return DeliveryResult.permanent(f"the text cannot be sent as configured: {exc}")
        client = self._client()
        attempt = getattr(message, "attempt", 1)
        if doubtful or self.config.reconcile == "always" or attempt > 1:
            try:
                found = self._find(client, key)
            except APIError as exc:
                return self._failure(exc, key, "looking up")
            if found is not None:
                self._accepted(key, found)
                return DeliveryResult.sent(found, duplicate=True)
        try:
            answer = send(client)
        except APIError as exc:
            return self._failure(exc, key, "sending")
        provider_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not isinstance(provider_id, str) or not provider_id:
            with self._lock:
                self._doubtful.add(key)
            return DeliveryResult.retry("Notify answered without a notification id")
        self._accepted(key, provider_id)
        return DeliveryResult.sent(provider_id)

    def _request(self, message: OutboundMessage) -> Callable[[Any], Any]:
        """The call that sends ``message``, its text composed and checked beforehand."""
        key = message.idempotency_key
        reference = message.reference or _str(message.fields.get("reference"))
        if self.kind == "email":
            personalisation = {
                "subject": message.subject,
                "body": message.body,
                "reference": reference or "",
            }
            reply_to = self.config.email_reply_to_id
            return lambda client: client.send_email_notification(
                message.recipient,
                self._template_id,
                personalisation=personalisation,
                reference=key,
                email_reply_to_id=str(reply_to) if reply_to else None,
            )
        body = self._sms_body(message, reference)
        sender = self.config.sms_sender_id
        sms_personalisation = {"body": body, "reference": reference or ""}
        return lambda client: client.send_sms_notification(
            message.recipient,
            self._template_id,
            personalisation=sms_personalisation,
            reference=key,
            sms_sender_id=str(sender) if sender else None,
        )

    def _sms_body(self, message: OutboundMessage, reference: str | None) -> str:
        """A referral alert is composed from its case fields to fit the fragment budget
        (5.2.5); any other text (a caller's follow-up SMS, 5.2.6) is sent as written."""
        config = self.config
        if message.purpose == MessagePurpose.REFERRAL_ALERT and any(
            message.fields.get(name) for name in REFERRAL_FIELDS
        ):
            return compose_sms(
                message.fields,
                reference=reference,
                max_fragments=config.max_fragments,
                template=config.sms_template,
                prefix=config.sms_prefix,
            ).body
        body = sanitise(message.body).strip()
        length = measure(config.sms_template.replace("((body))", body))
        if not body:
            raise SmsCompositionError("the message has no text")
        if not length.within_notify_limit:
            raise SmsCompositionError(
                f"the text is {length.characters} characters; Notify takes at most "
                f"{NOTIFY_MAX_CHARACTERS}"
            )
        return body

    def _find(self, client: Any, key: str) -> str | None:
        """The id of a notification Notify already has with reference ``key``, if any."""
        answer = client.get_all_notifications(reference=key, template_type=self.kind)
        notifications = answer.get("notifications") if isinstance(answer, Mapping) else None
        for notification in notifications or ():
            if isinstance(notification, Mapping) and notification.get("reference") == key:
                found = notification.get("id")
                if isinstance(found, str) and found:
                    return found
        return None

    def _accepted(self, key: str, provider_id: str) -> None:
        with self._lock:
            self._doubtful.discard(key)
            self._sent[key] = provider_id
            if len(self._sent) > _REMEMBERED:
                self._sent.popitem(last=False)

    def _failure(self, exc: APIError, key: str, doing: str) -> DeliveryResult:
        response = exc.response
        if response is None:
            # no answer: the request may have reached Notify (a read timeout, a dropped
            # connection) or not (refused); either way, look it up before sending again
            with self._lock:
                self._doubtful.add(key)
            cause = exc.__cause__
            why = type(cause).__name__ if cause is not None else "no response"
            return DeliveryResult.retry(f"no answer from Notify while {doing} ({why})")
        status = int(response.status_code)
        errors = _errors(response)
        if status == 429:
            return DeliveryResult.retry(
                f"Notify is limiting this service (429 {errors})", after=_retry_after(response)
            )
        if status >= 500:
            with self._lock:
                self._doubtful.add(key)
            return DeliveryResult.retry(f"Notify failed while {doing} ({status} {errors})")
        if status in (401, 403):
            return DeliveryResult.permanent(
                f"Notify refused the API key ({status} {errors}): check this organisation's "
                "Notify api_key, and that this machine's clock is right (Notify allows 30 s)"
            )
        return DeliveryResult.permanent(f"Notify refused the message ({status} {errors})")

    # -- receipts ------------------------------------------------------------------------------

    def status(self, provider_ref: str) -> Receipt:
        """What Notify says now about a notification it accepted (a status look-up)."""
        try:
            answer = self._client().get_notification_by_id(provider_ref)
        except APIError as exc:
            raise ChannelError(
                f"could not look up Notify notification {provider_ref!r}: {_describe(exc)}"
            ) from None
        return receipt_from_status(answer, channel=self.name)

    # -- life ----------------------------------------------------------------------------------

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._factory(self.config)
            with self._lock:
                self._clients.append(client)
            self._local.client = client
        return client

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            session = getattr(client, "request_session", None)
            if session is not None:
                session.close()

    def __enter__(self) -> NotifyChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NotifyEmailChannel(NotifyChannel):
    """The Notify channel for email (the ``notify-email`` entry point)."""

    name = "notify-email"

    def __init__(
        self,
        config: NotifyConfig | Mapping[str, Any],
        *,
        client_factory: ClientFactory | None = None,
    ) -> None:
        super().__init__(config, kind="email", client_factory=client_factory)


def _config(config: NotifyConfig | Mapping[str, Any]) -> NotifyConfig:
    if isinstance(config, NotifyConfig):
        return config
    try:
        return NotifyConfig.model_validate(dict(config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'configuration'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ChannelError(f"the Notify channel's configuration is not valid: {problems}") from None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _errors(response: Any) -> str:
    """Notify's error document as one short line: ``BadRequestError: ...; ...``."""
    try:
        document = response.json()
    except ValueError:
        return "no error document"
    items = document.get("errors") if isinstance(document, Mapping) else None
    if not isinstance(items, list) or not items:
        return "no error document"
    parts = [
        f"{item.get('error', 'Error')}: {item.get('message', '')}"
        for item in items
        if isinstance(item, Mapping)
    ]
    return "; ".join(parts)[:_MAX_ERROR]


def _retry_after(response: Any) -> timedelta | None:
    """``Retry-After`` as a wait: seconds, or an HTTP date measured from the answer's ``Date``
    (so the channel reads no clock)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    sent = response.headers.get("Date")
    try:
        until = email.utils.parsedate_to_datetime(value)
        now = email.utils.parsedate_to_datetime(sent) if sent else None
    except (TypeError, ValueError):
        return None
    if now is None:
        return None
    return max(timedelta(0), until - now)


def _describe(exc: APIError) -> str:
    if exc.response is None:
        return "no answer from Notify"
    return f"{exc.response.status_code} {_errors(exc.response)}"
