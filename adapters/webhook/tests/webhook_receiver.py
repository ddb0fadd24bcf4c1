"""A local webhook receiver for the tests: an HTTP server on 127.0.0.1 that checks each request
with :func:`oohcore_webhook.verify` (signature, replay window, ids seen) against the injected
clock, records what it accepted, answers a repeat of an accepted id with 200 without recording
it again, and a bad signature with 401. ``script`` answers the next requests with given
statuses first (410, 429 …)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from oohcore_webhook import ReplayedWebhookError, ReplayGuard, WebhookVerificationError, verify

#: the Standard Webhooks test vector's secret
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass(frozen=True)
class Delivery:
    msg_id: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, secret: str, now: Callable[[], datetime]) -> None:
        self.secret = secret
        self.now = now
        self.guard = ReplayGuard()
        self.script: list[tuple[int, dict[str, str]]] = []
        self.refusals: list[str] = []
        self.repeats = 0
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ooh"

    def __enter__(self) -> WebhookReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        try:
            msg_id = verify(self.secret, headers, body, now=self.now(), replay_guard=self.guard)
        except ReplayedWebhookError:
            with self._lock:
                self.repeats += 1
            return 200, {}
        except WebhookVerificationError as exc:
            with self._lock:
                self.refusals.append(str(exc))
            return 401, {}
        with self._lock:
            self._deliveries.append(Delivery(msg_id, headers, body))
        return 204, {}


def _handler(app: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers = app.receive({k: v for k, v in self.headers.items()}, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
