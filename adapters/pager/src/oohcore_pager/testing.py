"""Local peers for tests: an SNPP server written to RFC 1861 (levels 1-2) and an HTTP pager
gateway speaking the shape :mod:`oohcore_pager.http_channel` documents. Both listen on
127.0.0.1 only, on a port the system picks, and run in a thread of their own; both record what
they accepted and have switches for a provider's failures. Standard library only.

    with SnppTestServer() as server:
        channel = SnppChannel(host="127.0.0.1", port=server.port)
        ...
        assert server.pages[0].text == "..."
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from oohcore.channels import OutboundMessage
from oohcore.channels.testing import sample_message

__all__ = [
    "GatewayDelivery",
    "GatewayTestServer",
    "Page",
    "SnppTestServer",
    "keys_in",
    "pager_message",
]

_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Page:
    """A page the SNPP server accepted (SEND answered 250)."""

    pagers: tuple[str, ...]
    text: str
    login: str | None = None
    subject: str | None = None
    service_level: int | None = None
    alert: bool | None = None
    caller_id: str | None = None
    coverage: str | None = None
    hold_until: str | None = None
    by_data: bool = False


@dataclass
class _Session:
    pagers: list[str] = field(default_factory=list)
    text: str | None = None
    by_data: bool = False
    login: str | None = None
    subject: str | None = None
    service_level: int | None = None
    alert: bool | None = None
    caller_id: str | None = None
    coverage: str | None = None
    hold_until: str | None = None
    errors: int = 0

    def reset(self) -> None:
        """RESE, or after SEND: a fresh transaction (the login stays)."""
        self.pagers = []
        self.text, self.by_data, self.subject = None, False, None
        self.service_level, self.alert = None, None
        self.caller_id, self.coverage, self.hold_until = None, None, None


class SnppTestServer:
    """An SNPP gateway on 127.0.0.1 (RFC 1861 levels 1-2) that records the pages it accepts.

    Switches (set them before or between sends):

    * ``greeting``: the greeting reply (``"220 SNPP Gateway Ready"``; ``"421 ..."`` to refuse
      sessions as a gateway that is down does);
    * ``replies``: ``{"SEND": "554 Message failed (paging terminal down)"}`` answers that
      command so (once per entry of ``replies_once``, or every time in ``replies``);
    * ``valid_pagers``: when set, ``PAGE`` of any other id is ``550 Error, Invalid Pager ID``;
    * ``max_length``: a longer MESS or DATA text is ``554 Error, Message Too Long (max N)``;
    * ``level``: 1 answers the level-2 commands with ``500``;
    * ``logins``: ``{login: password}`` the gateway accepts for LOGI (others: ``550``);
    * ``hang_on``: a command the server never answers (a slow gateway).

    ``stop()`` closes the listening socket, so a later connection is refused.
    """

    def __init__(self, *, tls: ssl.SSLContext | None = None, max_pagers: int = 16) -> None:
        self.greeting = "220 SNPP (V3) Gateway Ready"
        self.replies: dict[str, str] = {}
        self.replies_once: dict[str, list[str]] = {}
        self.valid_pagers: set[str] | None = None
        self.max_length: int | None = None
        self.level = 2
        self.logins: dict[str, str] | None = None
        self.hang_on: str | None = None
        self.max_pagers = max_pagers
        self._tls = tls
        self._lock = threading.Lock()
        self._pages: list[Page] = []
        self._commands: list[str] = []
        self._sessions = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._release: asyncio.Event | None = None
        self.port = 0

    # -- what it saw ----------------------------------------------------------------------------

    @property
    def pages(self) -> list[Page]:
        with self._lock:
            return list(self._pages)

    @property
    def commands(self) -> list[str]:
        """Every command line received, in order (a LOGI password shown as ``***``)."""
        with self._lock:
            return list(self._commands)

    @property
    def sessions(self) -> int:
        with self._lock:
            return self._sessions

    # -- life -----------------------------------------------------------------------------------

    def start(self) -> SnppTestServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._release = asyncio.Event()
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, _HOST, 0, ssl=self._tls)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="snpp-test-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop listening (later connections are refused) and end open sessions."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            assert self._server is not None and self._release is not None
            self._release.set()
            self._server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)

    def __enter__(self) -> SnppTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one session ----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._sessions += 1
        session = _Session()

        async def say(line: str) -> None:
            writer.write(line.encode("ascii") + b"\r\n")
            await writer.drain()

        try:
            await say(self.greeting)
            if self.greeting.startswith("4"):
                return
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode("ascii", "replace").rstrip("\r\n")
                verb, _, argument = line.partition(" ")
                verb = verb[:4].upper()
                argument = argument.strip()
                self._note(verb, argument)
                if self.hang_on == verb:
                    assert self._release is not None
                    await self._release.wait()
                    return
                scripted = self._scripted(verb)
                if scripted is not None:
                    await say(scripted)
                    if scripted.startswith("4"):
                        return
                    continue
                if verb == "QUIT":
                    await say("221 OK, Goodbye")
                    return
                reply = await self._command(session, verb, argument, reader, say)
                if reply.startswith("5"):
                    session.errors += 1
                if session.errors >= 10:
                    await say("421 Too Many Errors, Goodbye")
                    return
                await say(reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _note(self, verb: str, argument: str) -> None:
        shown = argument
        if verb == "LOGI" and " " in argument:
            shown = argument.split(" ", 1)[0] + " ***"
        with self._lock:
            self._commands.append(f"{verb} {shown}".strip())

    def _scripted(self, verb: str) -> str | None:
        with self._lock:
            queue = self.replies_once.get(verb)
            if queue:
                return queue.pop(0)
            return self.replies.get(verb)

    async def _command(
        self,
        s: _Session,
        verb: str,
        arg: str,
        reader: asyncio.StreamReader,
        say: Any,
    ) -> str:
        level2 = {"DATA", "LOGI", "LEVE", "ALER", "COVE", "HOLD", "CALL", "SUBJ"}
        if verb in level2 and self.level < 2:
            return "500 Command Not Implemented"
        if verb == "HELP":
            for text in ("Level 1: PAGE MESS RESE SEND QUIT HELP", "Level 2: DATA LOGI LEVE"):
                await say(f"214 {text}")
            return "250 End of Help Information"
        if verb == "RESE":
            s.reset()
            return "250 RESET OK"
        if verb == "LOGI":
            login, _, password = arg.partition(" ")
            if not login or (self.logins is not None and self.logins.get(login) != password):
                return "550 Error, Invalid Login"
            s.login = login
            return "250 Login Accepted"
        if verb == "PAGE":
            pager = arg.split(" ", 1)[0]
            if not pager:
                return "550 Error, Invalid Pager ID"
            if self.logins is not None and s.login is None:
                return "550 Error, Login Required"
            if self.valid_pagers is not None and pager not in self.valid_pagers:
                return "550 Error, Invalid Pager ID"
            if len(s.pagers) >= self.max_pagers:
                return "552 Maximum Entries Exceeded"
            s.pagers.append(pager)
            return "250 Pager ID Accepted"
        if verb == "MESS":
            if s.text is not None:
                return "503 ERROR, Message Already Entered"
            if not arg:
                return "550 ERROR, Invalid Message"
            if self.max_length is not None and len(arg) > self.max_length:
                return f"554 Error, Message Too Long (max {self.max_length} characters)"
            s.text, s.by_data = arg, False
            return "250 Message OK"
        if verb == "DATA":
            if s.text is not None:
                return "503 ERROR, Message Already Entered"
            await say("354 Begin Input; End with <CRLF>'.'<CRLF>")
            lines: list[str] = []
            while True:
                raw = await reader.readline()
                if not raw:
                    raise ConnectionError("closed during DATA")
                line = raw.decode("ascii", "replace").rstrip("\r\n")
                if line == ".":
                    break
                lines.append(line[1:] if line.startswith(".") else line)
            text = "\n".join(lines)
            if not text.strip():
                return "550 ERROR, Invalid Message"
            if self.max_length is not None and len(text) > self.max_length:
                return f"554 Error, Message Too Long (max {self.max_length} characters)"
            s.text, s.by_data = text, True
            return "250 Message OK"
        if verb == "LEVE":
            if not arg.isdigit() or not 0 <= int(arg) <= 11:
                return "550 Error, Invalid Service Level"
            s.service_level = int(arg)
            return "250 OK, Service Level Accepted"
        if verb == "ALER":
            if arg not in ("0", "1"):
                return "550 Error, Invalid Alert Parameter"
            s.alert = arg == "1"
            return "250 OK, Alert Override Accepted"
        if verb == "COVE":
            if not arg:
                return "550 Error, Invalid Alternate Region"
            s.coverage = arg
            return "250 Alternate Coverage Selected"
        if verb == "HOLD":
            stamp = arg.split(" ", 1)[0]
            try:
                datetime.strptime(stamp, "%y%m%d%H%M%S")
            except ValueError:
                return "550 Error, Invalid Delivery Date/Time"
            s.hold_until = arg
            return "250 Delayed Messaging Selected"
        if verb == "CALL":
            s.caller_id = arg
            return "250 Caller ID Accepted"
        if verb == "SUBJ":
            s.subject = arg
            return "250 Message Subject OK"
        if verb == "SEND":
            if not s.pagers or s.text is None:
                return "503 Error, Pager ID or Message Incomplete"
            page = Page(
                pagers=tuple(s.pagers),
                text=s.text,
                login=s.login,
                subject=s.subject,
                service_level=s.service_level,
                alert=s.alert,
                caller_id=s.caller_id,
                coverage=s.coverage,
                hold_until=s.hold_until,
                by_data=s.by_data,
            )
            with self._lock:
                self._pages.append(page)
            s.reset()
            return "250 Message Sent Successfully"
        return "500 Command Not Implemented"


# -- the HTTP gateway ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayDelivery:
    """A page the HTTP gateway accepted."""

    id: str
    pager_id: str
    text: str
    idempotency_key: str
    body: dict[str, Any]
    headers: dict[str, str]


class GatewayTestServer:
    """An HTTPS (or, without ``tls``, HTTP) pager gateway on 127.0.0.1 speaking the shape of
    :mod:`oohcore_pager.http_channel`: it checks the auth header, pages each Idempotency-Key
    once (a repeat gets the first answer), and records what it accepted.

    Switches: ``token`` (the ``Authorization`` value required; 401 otherwise); ``script``: a
    list of ``(status, headers, body)`` answers given to the next requests before any normal
    handling; ``valid_pagers`` (others: 422); ``hang``: never answer.
    """

    def __init__(self, *, tls: ssl.SSLContext | None = None, token: str | None = None) -> None:
        self.token = token
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.valid_pagers: set[str] | None = None
        self.hang = False
        self._tls = tls
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._deliveries: list[GatewayDelivery] = []
        self._by_key: dict[str, str] = {}
        self.requests = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def deliveries(self) -> list[GatewayDelivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{_HOST}:{self.port}/v1/pages"

    def start(self) -> GatewayTestServer:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                gateway._post(self)

        httpd = ThreadingHTTPServer((_HOST, 0), Handler)
        httpd.daemon_threads = True
        if self._tls is not None:
            httpd.socket = self._tls.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> GatewayTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        with self._lock:
            self.requests += 1
            scripted = self.script.pop(0) if self.script else None
        if self.hang:
            self._release.wait(60)
            return
        if scripted is not None:
            self._answer(request, *scripted)
            return
        if request.path != "/v1/pages":
            self._answer(request, 404, {}, {"error": "not_found", "message": "no such path"})
            return
        if self.token is not None and request.headers.get("Authorization") != self.token:
            self._answer(request, 401, {}, {"error": "unauthorised", "message": "bad key"})
            return
        try:
            body = json.loads(raw)
            pager, text = str(body["pager_id"]), str(body["text"])
        except (ValueError, KeyError, TypeError):
            self._answer(request, 400, {}, {"error": "bad_request", "message": "bad JSON"})
            return
        key = request.headers.get("Idempotency-Key") or str(body.get("idempotency_key", ""))
        if self.valid_pagers is not None and pager not in self.valid_pagers:
            self._answer(request, 422, {}, {"error": "invalid_pager", "message": "no such pager"})
            return
        with self._lock:
            known = self._by_key.get(key)
            if known is None:
                known = f"pg-{len(self._deliveries) + 1}"
                self._by_key[key] = known
                headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
                self._deliveries.append(GatewayDelivery(known, pager, text, key, body, headers))
                status = 201
            else:
                status = 200
        self._answer(request, status, {}, {"id": known, "status": "accepted"})

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)


def keys_in(texts: Iterable[str], prefix: str) -> list[str]:
    """Every ``<prefix><hex>`` token in ``texts`` (tests put the key in a page's text, since
    SNPP has no field to carry it)."""
    pattern = re.compile(re.escape(prefix) + r"[0-9a-f]{8,64}")
    return [m for text in texts for m in pattern.findall(text)]


def pager_message(
    *,
    key: str | None = None,
    body: str | None = None,
    recipient: str = "07623123456",
    fields: dict[str, Any] | None = None,
) -> OutboundMessage:
    """A referral alert for a pager, like the engine enqueues (5.2.5 fields, a reference)."""
    base = sample_message(recipient, key=key or f"page:{uuid.uuid4().hex}", channel="pager")
    return replace(
        base,
        body=base.body if body is None else body,
        fields=base.fields if fields is None else fields,
    )
