"""A local GOV.UK Notify for tests and benchmarks: a real HTTP server on 127.0.0.1.

:class:`FakeNotify` speaks the parts of Notify's ``/v2`` API that the channel uses, as Notify
documents them: ``POST /v2/notifications/sms`` and ``/email`` (201 with ``id``, ``reference``,
``content``, ``uri``, ``template``), ``GET /v2/notifications`` (filtered by ``reference``,
``status``, ``template_type``) and ``GET /v2/notifications/{id}``, each notification with every
key Notify always returns (:data:`STATUS_FIELDS`: the letter's ``line_1``-``line_6`` and
``postcode`` are null for texts and e-mails). Every request's JWT is checked with the client library's own authentication helpers (signature, issuer = service id,
``iat`` within 30 s); errors are Notify's documents (``{"status_code": …, "errors": [{"error":
…, "message": …}]}``): 400 ``ValidationError`` / ``BadRequestError``, 401/403 ``AuthError``,
404 ``NoResultFound``, 429 ``RateLimitError``, 500 ``Exception``.

Like a test key, it sends nothing: an accepted notification is ``delivered`` at once, except to
Notify's simulated numbers (07700900002: ``permanent-failure``, 07700900003:
``temporary-failure``). Switches for the failures a channel must survive:
:meth:`fail_next` (5xx), :meth:`limit_next` (429 with ``Retry-After``), :meth:`stall_next`
(accept and record, then hold the answer past the client's timeout until :meth:`release`),
:meth:`refuse_connections` / :meth:`accept_connections` (nothing listening on the port).

It serves at the root of ``base_url`` (the client joins ``/v2/...`` onto it and drops a path).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from notifications_python_client import authentication
from notifications_python_client.errors import TokenError

from oohcore.clock import Clock, SystemClock

__all__ = ["LETTER_ADDRESS_FIELDS", "STATUS_FIELDS", "FakeNotify", "Recorded"]

HOST = "127.0.0.1"  # never any other address
SMS_LIMIT = 918
PERMANENT_FAILURE_NUMBER = "07700900002"
TEMPORARY_FAILURE_NUMBER = "07700900003"
#: a letter's address, in every status look-up's answer (null for texts and e-mails)
LETTER_ADDRESS_FIELDS = ("line_1", "line_2", "line_3", "line_4", "line_5", "line_6", "postcode")
#: the keys Notify's status look-ups always return (its API documentation, "Get message status")
STATUS_FIELDS = frozenset(
    {
        "id",
        "reference",
        "email_address",
        "phone_number",
        *LETTER_ADDRESS_FIELDS,
        "type",
        "status",
        "template",
        "body",
        "subject",
        "created_at",
        "created_by_name",
        "sent_at",
        "completed_at",
        "scheduled_for",
    }
)

# the client library's own token checks (not annotated, hence Any)
_auth: Any = authentication

_PLACEHOLDER = re.compile(r"\(\(([^()]+)\)\)")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _uk_mobile(number: str) -> str | None:
    """``07…`` form of a UK mobile number, or None (as Notify's validation decides)."""
    digits = re.sub(r"[\s\-().]", "", number)
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.startswith("0044"):
        digits = digits[4:]
    elif digits.startswith("44"):
        digits = digits[2:]
    if digits.startswith("7"):
        digits = "0" + digits
    return digits if re.fullmatch(r"07\d{9}", digits) else None


@dataclass
class Recorded:
    """A notification the fake accepted."""

    id: str
    type: str  # "sms" or "email"
    to: str
    reference: str | None
    template_id: str
    personalisation: dict[str, Any]
    body: str
    subject: str | None
    status: str
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


class FakeNotify:
    """A GOV.UK Notify API on ``127.0.0.1`` in a thread (see the module doc)."""

    def __init__(
        self,
        *,
        sms_templates: Mapping[str, str] | None = None,
        email_templates: Mapping[str, tuple[str, str]] | None = None,
        clock: Clock | None = None,
        port: int = 0,
        service_id: str | None = None,
        secret: str | None = None,
    ) -> None:
        """``sms_templates``: template id → text; ``email_templates``: id → (subject, body).
        Placeholders are written ``((name))``. ``service_id`` and ``secret`` (UUIDs) make the
        API key; random ones by default."""
        self.service_id = service_id or str(uuid.uuid4())
        self.secret = secret or str(uuid.uuid4())
        self.sms_templates = dict(sms_templates or {str(uuid.uuid4()): "((body))"})
        self.email_templates = dict(
            email_templates or {str(uuid.uuid4()): ("((subject))", "((body))")}
        )
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._notifications: list[Recorded] = []
        self._requests: list[tuple[str, str]] = []
        self._fail: list[int] = []
        self._limit: list[int | None] = []
        self._stall = 0
        self._released = threading.Event()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what a test reads ---------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return f"oohcore-test-{self.service_id}-{self.secret}"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def sms_template_id(self) -> str:
        return next(iter(self.sms_templates))

    @property
    def email_template_id(self) -> str:
        return next(iter(self.email_templates))

    @property
    def notifications(self) -> list[Recorded]:
        """Everything accepted, in order."""
        with self._lock:
            return list(self._notifications)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request that reached the server: (method, path without the query)."""
        with self._lock:
            return list(self._requests)

    def received_keys(self) -> list[str]:
        """The reference of every accepted notification (the contract kit's ``Peer``)."""
        return [n.reference for n in self.notifications if n.reference is not None]

    def set_status(self, notification_id: str, status: str) -> None:
        with self._lock:
            self._find(notification_id).status = status

    def callback_body(self, notification_id: str) -> dict[str, Any]:
        """The JSON Notify would POST to the service's delivery-status callback."""
        with self._lock:
            n = self._find(notification_id)
            stamp = _iso(self.clock.now())
            return {
                "id": n.id,
                "reference": n.reference,
                "to": n.to,
                "status": n.status,
                "created_at": _iso(n.created_at),
                "completed_at": stamp,
                "sent_at": _iso(n.created_at),
                "notification_type": n.type,
                "template_id": n.template_id,
                "template_version": 1,
            }

    def inbound_body(self, source_number: str, message: str) -> dict[str, Any]:
        """The JSON Notify would POST to the service's received-text-message callback."""
        return {
            "id": str(uuid.uuid4()),
            "source_number": source_number,
            "destination_number": "07700900000",
            "message": message,
            "date_received": _iso(self.clock.now()),
        }

    # -- switches ------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` (a 5xx) without acting on them."""
        with self._lock:
            self._fail.extend([status] * count)

    def limit_next(self, count: int = 1, *, retry_after: int | None = 30) -> None:
        """Answer the next ``count`` requests with 429, with ``Retry-After`` when given."""
        with self._lock:
            self._limit.extend([retry_after] * count)

    def stall_next(self, count: int = 1) -> None:
        """Accept and record the next ``count`` sends, then hold each answer until
        :meth:`release` (or the server stops): the client times out after Notify accepted."""
        with self._lock:
            self._stall += count
            self._released.clear()

    def release(self) -> None:
        """Let stalled answers go (to a client that has long given up)."""
        self._released.set()

    def clear_switches(self) -> None:
        with self._lock:
            self._fail.clear()
            self._limit.clear()
            self._stall = 0
        self._released.set()

    def refuse_connections(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`accept_connections`."""
        self._stop_server()

    def accept_connections(self) -> None:
        self._start_server()

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> FakeNotify:
        self._start_server()
        return self

    def stop(self) -> None:
        self._released.set()
        self._stop_server()

    def __enter__(self) -> FakeNotify:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_server(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer((HOST, self._port), _handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _stop_server(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    # -- the API -------------------------------------------------------------------------------

    def _find(self, notification_id: str) -> Recorded:
        for n in self._notifications:
            if n.id == notification_id:
                return n
        raise KeyError(notification_id)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str], bool]:
        """(status, JSON document, extra headers, stall) for one request."""
        url = urlsplit(target)
        with self._lock:
            self._requests.append((method, url.path))
        problem = self._authenticate(headers.get("Authorization"))
        if problem is not None:
            return (*problem, {}, False)
        with self._lock:
            if self._limit:
                retry_after = self._limit.pop(0)
                extra = {} if retry_after is None else {"Retry-After": str(retry_after)}
                return (
                    *_error(
                        429,
                        "RateLimitError",
                        "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
                    ),
                    extra,
                    False,
                )
            if self._fail:
                return (*_error(self._fail.pop(0), "Exception", "Internal server error"), {}, False)
        if method == "POST" and url.path in ("/v2/notifications/sms", "/v2/notifications/email"):
            try:
                document = json.loads(body or b"null")
            except ValueError:
                return (*_error(400, "BadRequestError", "Invalid JSON supplied"), {}, False)
            if not isinstance(document, dict):
                return (*_error(400, "BadRequestError", "Invalid JSON supplied"), {}, False)
            kind = url.path.rsplit("/", 1)[1]
            status, answer = self._send(kind, document)
            stall = False
            if status == 201:
                with self._lock:
                    if self._stall:
                        self._stall -= 1
                        stall = True
            return status, answer, {}, stall
        if method == "GET" and url.path == "/v2/notifications":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            with self._lock:
                found = [
                    n
                    for n in reversed(self._notifications)
                    if ("reference" not in query or n.reference == query["reference"])
                    and ("status" not in query or n.status == query["status"])
                    and ("template_type" not in query or n.type == query["template_type"])
                ]
                documents = [self._document(n) for n in found]
            return 200, {"notifications": documents, "links": {"current": target}}, {}, False
        match = re.fullmatch(r"/v2/notifications/([0-9a-f-]{36})", url.path)
        if method == "GET" and match:
            with self._lock:
                try:
                    n = self._find(match.group(1))
                except KeyError:
                    return (*_error(404, "NoResultFound", "No result found"), {}, False)
                return 200, self._document(n), {}, False
        return (*_error(404, "NoResultFound", "No result found"), {}, False)

    def _authenticate(self, header: str | None) -> tuple[int, dict[str, Any]] | None:
        if not header or not header.startswith("Bearer "):
            return _error(401, "AuthError", "Unauthorized: authentication token must be provided")
        token = header[len("Bearer ") :]
        try:
            if _auth.get_token_issuer(token) != self.service_id:
                return _error(403, "AuthError", "Invalid token: service id not found")
            _auth.decode_jwt_token(token, self.secret)
        except TokenError as exc:
            return _error(403, "AuthError", exc.message)
        return None

    def _send(self, kind: str, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        templates: Mapping[str, Any] = self.sms_templates if kind == "sms" else self.email_templates
        address_field = "phone_number" if kind == "sms" else "email_address"
        to = document.get(address_field)
        template_id = document.get("template_id")
        if not isinstance(to, str):
            return _error(400, "ValidationError", f"{address_field} is a required property")
        if not isinstance(template_id, str):
            return _error(400, "ValidationError", "template_id is a required property")
        if kind == "sms" and _uk_mobile(to) is None:
            return _error(400, "ValidationError", "phone_number Not a UK mobile number")
        if kind == "email" and not _EMAIL.match(to):
            return _error(400, "ValidationError", "email_address Not a valid email address")
        template = templates.get(template_id)
        if template is None:
            return _error(400, "BadRequestError", "Template not found")
        personalisation = document.get("personalisation") or {}
        if not isinstance(personalisation, dict):
            return _error(400, "ValidationError", "personalisation is not of type object")
        reference = document.get("reference")
        if reference is not None and not isinstance(reference, str):
            return _error(400, "ValidationError", "reference is not of type string")
        texts = [template] if kind == "sms" else list(template)
        missing = sorted(
            {
                name
                for text in texts
                for name in _PLACEHOLDER.findall(text)
                if _lookup(personalisation, name) is None
            }
        )
        if missing:
            return _error(400, "BadRequestError", f"Missing personalisation: {', '.join(missing)}")
        rendered = [_render(text, personalisation) for text in texts]
        if kind == "sms" and len(rendered[0]) > SMS_LIMIT:
            return _error(
                400,
                "BadRequestError",
                f"Text messages cannot be longer than {SMS_LIMIT} characters. "
                f"Your message is {len(rendered[0])} characters long.",
            )
        status = "delivered"
        if kind == "sms" and _uk_mobile(to) == PERMANENT_FAILURE_NUMBER:
            status = "permanent-failure"
        elif kind == "sms" and _uk_mobile(to) == TEMPORARY_FAILURE_NUMBER:
            status = "temporary-failure"
        notification = Recorded(
            id=str(uuid.uuid4()),
            type=kind,
            to=to,
            reference=reference,
            template_id=template_id,
            personalisation=dict(personalisation),
            body=rendered[-1],
            subject=rendered[0] if kind == "email" else None,
            status=status,
            created_at=self.clock.now(),
        )
        with self._lock:
            self._notifications.append(notification)
        content: dict[str, Any] = {"body": notification.body}
        if kind == "sms":
            content["from_number"] = "OOHCORE"
        else:
            content.update(subject=notification.subject, from_email="ooh@notifications.example")
        return 201, {
            "id": notification.id,
            "reference": reference,
            "content": content,
            "uri": f"{self.base_url}/v2/notifications/{notification.id}",
            "template": {
                "id": template_id,
                "version": 1,
                "uri": f"{self.base_url}/services/{self.service_id}/templates/{template_id}",
            },
            "scheduled_for": None,
        }

    def _document(self, n: Recorded) -> dict[str, Any]:
        """A notification as Notify's status look-ups return it: every key always present (the
        letter's address lines and postcode are null for a text or an e-mail)."""
        return {
            "id": n.id,
            "reference": n.reference,
            "email_address": n.to if n.type == "email" else None,
            "phone_number": n.to if n.type == "sms" else None,
            **dict.fromkeys(LETTER_ADDRESS_FIELDS),
            "type": n.type,
            "status": n.status,
            "template": {
                "id": n.template_id,
                "version": 1,
                "uri": f"{self.base_url}/services/{self.service_id}/templates/{n.template_id}",
            },
            "body": n.body,
            "subject": n.subject,
            "created_at": _iso(n.created_at),
            "created_by_name": None,  # sent through the API, not by a person in Notify's pages
            "sent_at": _iso(n.created_at),
            "completed_at": _iso(n.created_at) if n.status != "created" else None,
            "scheduled_for": None,
        }

    def wait_for_release(self) -> None:
        """Hold a stalled answer until :meth:`release` or :meth:`stop` (a minute at most)."""
        self._released.wait(timeout=60)


def _lookup(personalisation: Mapping[str, Any], name: str) -> Any:
    # Notify matches placeholders without regard to case or spaces
    wanted = name.replace(" ", "").lower()
    for key, value in personalisation.items():
        if str(key).replace(" ", "").lower() == wanted:
            return value
    return None


def _render(text: str, personalisation: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(_lookup(personalisation, m.group(1))), text)


def _error(status: int, error: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"status_code": status, "errors": [{"error": error, "message": message}]}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _handler(fake: FakeNotify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Notify's own front end

        def setup(self) -> None:
            super().setup()
            # headers and body go out as two writes: without this, delayed ACKs cost ~40 ms each
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, document, extra, stall = fake.handle(
                self.command, self.path, dict(self.headers.items()), body
            )
            if stall:
                fake.wait_for_release()
            payload = json.dumps(document).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up waiting (a stalled answer)
                self.close_connection = True

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: recipients and texts stay out of test logs

    return Handler
