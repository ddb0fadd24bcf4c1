"""A local Open311 GeoReport v2 server (wiki.open311.org/GeoReport_v2) for the adapter's tests.

It listens on 127.0.0.1 on a port the system picks, in a thread of its own, speaks the JSON
format of GeoReport v2 and records what it accepted:

* ``GET services.json`` (and ``?jurisdiction_id=``): the services it offers;
* ``GET services/{code}.json``: a service definition with its attributes;
* ``POST requests.json`` (form-encoded): checks ``api_key`` (403 with an error document),
  ``service_code`` (404), the location and the required attributes (400), then answers
  ``[{"service_request_id", "service_notice"}]``, or ``[{"token", "service_notice"}]`` when
  ``tokens`` is on; ``script`` answers the next POSTs with given statuses first;
* ``GET tokens/{token}.json``: ``[{"token"}]`` for the first ``token_pending_polls`` polls, then
  ``[{"token", "service_request_id"}]``;
* ``GET requests.json`` (``service_request_id`` comma-delimited, ``service_code``, ``status``,
  ``start_date``/``end_date`` on ``requested_datetime``) and ``GET requests/{id}.json`` (a list of
  one; 404 with an error document for an unknown id): the requests it holds, each with
  ``status`` (``open`` until :meth:`Open311TestServer.set_status` changes it), ``status_notes``,
  ``agency_responsible``, ``service_notice``, ``requested_datetime``, ``updated_datetime``,
  ``expected_datetime``, the address, ``address_id``, ``zipcode``, ``lat``/``long``,
  ``media_url``, as GeoReport v2 lists them. Times come from ``clock``.

Errors are GeoReport's error documents: ``[{"code": 400, "description": "..."}]``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_KEY = "o311-key-4d8F2x-never-printed"

SERVICES: list[dict[str, Any]] = [
    {
        "service_code": "HR-OOH",
        "service_name": "Housing repairs (out of hours)",
        "description": "Emergency repairs reported out of hours",
        "metadata": True,
        "type": "realtime",
        "keywords": "repair, heating, leak",
        "group": "housing",
    },
    {
        "service_code": "NOISE",
        "service_name": "Noise nuisance",
        "description": "",
        "metadata": False,
        "type": "batch",
        "keywords": "",
        "group": "environment",
    },
]

DEFINITIONS: dict[str, dict[str, Any]] = {
    "HR-OOH": {
        "service_code": "HR-OOH",
        "attributes": [
            {
                "variable": True,
                "code": "uprn",
                "datatype": "string",
                "required": True,
                "datatype_description": "Unique Property Reference Number",
                "order": 1,
                "description": "UPRN of the property",
            },
            {
                "variable": True,
                "code": "priority",
                "datatype": "singlevaluelist",
                "required": False,
                "order": 2,
                "description": "How urgent",
                "values": [
                    {"key": "emergency", "name": "Emergency"},
                    {"key": "urgent", "name": "Urgent"},
                ],
            },
            {
                "variable": True,
                "code": "ooh_reference",
                "datatype": "string",
                "required": False,
                "order": 3,
                "description": "The out-of-hours call's reference",
            },
        ],
    }
}


@dataclass(frozen=True)
class ServiceRequest:
    """A request the server accepted."""

    service_request_id: str
    form: Mapping[str, str]

    @property
    def attributes(self) -> dict[str, str]:
        return {k[10:-1]: v for k, v in self.form.items() if k.startswith("attribute[")}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Open311TestServer:
    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self.now = now or (lambda: datetime(2026, 1, 10, 3, 0, tzinfo=UTC))
        self._states: dict[str, dict[str, Any]] = {}  # id -> the fields that change
        self.api_key: str | None = API_KEY
        self.services = [dict(s) for s in SERVICES]
        self.definitions = {k: json.loads(json.dumps(v)) for k, v in DEFINITIONS.items()}
        self.tokens_mode = False
        self.token_pending_polls = 0
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        self._requests: list[ServiceRequest] = []
        self._tokens: dict[str, list[Any]] = {}  # token -> [polls so far, service_request_id]
        self.gets: list[str] = []
        self.posts = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def requests(self) -> list[ServiceRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/open311/v2/"

    def __enter__(self) -> Open311TestServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- the API --------------------------------------------------------------------------------

    def handle_get(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.gets.append(path)
        if path == "services.json":
            return 200, {}, self.services
        if path.startswith("services/") and path.endswith(".json"):
            code = unquote(path[len("services/") : -len(".json")])
            if code not in self.definitions:
                return 404, {}, [{"code": 404, "description": f"service_code {code} not found"}]
            return 200, {}, self.definitions[code]
        if path.startswith("tokens/") and path.endswith(".json"):
            token = unquote(path[len("tokens/") : -len(".json")])
            with self._lock:
                state = self._tokens.get(token)
                if state is None:
                    return 404, {}, [{"code": 404, "description": "token not found"}]
                state[0] += 1
                if state[0] <= self.token_pending_polls:
                    return 200, {}, [{"token": token}]
                return 200, {}, [{"token": token, "service_request_id": state[1]}]
        if path == "requests.json":
            return 200, {}, self._list(query)
        if path.startswith("requests/") and path.endswith(".json"):
            request_id = unquote(path[len("requests/") : -len(".json")])
            found = self._list({"service_request_id": request_id})
            if not found:
                return 404, {}, [{"code": 404, "description": f"{request_id} not found"}]
            return 200, {}, found
        return 404, {}, [{"code": 404, "description": f"no resource {path}"}]

    def set_status(self, request_id: str, status: str, notes: str | None = None) -> None:
        """The council's back office moves the request on (``open`` / ``closed``)."""
        with self._lock:
            state = self._states[request_id]
            state.update(status=status, status_notes=notes, updated_datetime=_iso(self.now()))

    def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        ids = set(query["service_request_id"].split(",")) if "service_request_id" in query else None
        codes = set(query["service_code"].split(",")) if "service_code" in query else None
        statuses = set(query["status"].split(",")) if "status" in query else None
        with self._lock:
            found = []
            for request in self._requests:
                form, state = request.form, self._states[request.service_request_id]
                if ids is not None and request.service_request_id not in ids:
                    continue
                if codes is not None and form.get("service_code") not in codes:
                    continue
                if statuses is not None and state["status"] not in statuses:
                    continue
                requested = state["requested_datetime"]
                if query.get("start_date", "") > requested:
                    continue
                if "end_date" in query and requested > query["end_date"]:
                    continue
                found.append(
                    {
                        "service_request_id": request.service_request_id,
                        "status": state["status"],
                        "status_notes": state["status_notes"],
                        "service_name": next(
                            (
                                s["service_name"]
                                for s in self.services
                                if s["service_code"] == form.get("service_code")
                            ),
                            "",
                        ),
                        "service_code": form.get("service_code"),
                        "description": form.get("description", ""),
                        "agency_responsible": "Housing repairs out-of-hours team",
                        "service_notice": "",
                        "requested_datetime": requested,
                        "updated_datetime": state["updated_datetime"],
                        "expected_datetime": None,
                        "address": form.get("address_string", ""),
                        "address_id": form.get("address_id", ""),
                        "zipcode": "",
                        "lat": form.get("lat"),
                        "long": form.get("long"),
                        "media_url": "",
                    }
                )
            return found

    def handle_post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.posts += 1
            if self.script:
                return self.script.pop(0)
        if path != "requests.json":
            return 404, {}, [{"code": 404, "description": f"no resource {path}"}]
        if self.api_key is not None and form.get("api_key") != self.api_key:
            return 403, {}, [{"code": 403, "description": "Invalid api_key received"}]
        code = form.get("service_code", "")
        if code not in {s["service_code"] for s in self.services}:
            return 404, {}, [{"code": 404, "description": f"Service code {code} not found"}]
        if not (
            form.get("address_string")
            or form.get("address_id")
            or (form.get("lat") and form.get("long"))
        ):
            return 400, {}, [{"code": 400, "description": "A location is required"}]
        for attribute in self.definitions.get(code, {}).get("attributes", []):
            if attribute["required"] and not form.get(f"attribute[{attribute['code']}]"):
                return (
                    400,
                    {},
                    [{"code": 400, "description": f"Attribute {attribute['code']} is required"}],
                )
        if len(form.get("description", "")) > 4000:
            return 400, {}, [{"code": 400, "description": "description is too long"}]
        with self._lock:
            request_id = f"SR-{len(self._requests) + 1:04d}"
            self._requests.append(ServiceRequest(request_id, dict(form)))
            stamp = _iso(self.now())
            self._states[request_id] = {
                "status": "open",
                "status_notes": None,
                "requested_datetime": stamp,
                "updated_datetime": stamp,
            }
            if self.tokens_mode:
                token = f"tok-{len(self._requests)}"
                self._tokens[token] = [0, request_id]
                return 200, {}, [{"token": token, "service_notice": ""}]
        return 201, {}, [{"service_request_id": request_id, "service_notice": "Logged"}]


def _handler(app: Open311TestServer) -> type[BaseHTTPRequestHandler]:
    prefix = "/open311/v2/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _path(self) -> tuple[str, dict[str, str]] | None:
            parts = urlsplit(self.path)
            if not parts.path.startswith(prefix):
                self._reply(404, {}, [{"code": 404, "description": "not an Open311 path"}])
                return None
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            return parts.path[len(prefix) :], query

        def do_GET(self) -> None:
            found = self._path()
            if found is not None:
                self._reply(*app.handle_get(*found))

        def do_POST(self) -> None:
            found = self._path()
            if found is None:
                return
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length).decode("utf-8")
            if (
                self.headers.get("Content-Type", "").split(";")[0]
                != "application/x-www-form-urlencoded"
            ):
                self._reply(400, {}, [{"code": 400, "description": "expected a form"}])
                return
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            self._reply(*app.handle_post(found[0], form))

        def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
