"""A hostile HTTP peer for adapters' tests: a real server on 127.0.0.1 that answers too slowly
or too much, the faults an HTTP adapter's deadline and answer cap exist for (8.14).

Modes (``HostileHttpPeer.mode``, changeable between requests):

* ``"trickle"``: reads the request, then writes a valid answer one byte every ``interval``
  seconds, so that no single read ever times out;
* ``"huge"``: a ``200`` whose ``Content-Length`` claims ``claimed`` bytes (300 MB by default),
  then zeros for as long as the client reads;
* ``"endless"``: a ``200`` without ``Content-Length`` (the body ends when the connection
  does), zeros for as long as the client reads;
* ``"ok"``: ``status`` with ``body`` at once.

``written`` says how many bytes of answers it managed to write: a client that stops reading
at its cap leaves it near the cap, not near the claim. Standard library only.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from typing import Any

__all__ = ["HostileHttpPeer"]

_CHUNK = b"\x00" * 65536


class HostileHttpPeer:
    """See the module doc. Use as a context manager; ``url`` is its address."""

    def __init__(
        self,
        mode: str = "trickle",
        *,
        interval: float = 0.2,
        claimed: int = 300 * 1024 * 1024,
        status: int = 200,
        body: bytes = b"{}",
        content_type: str = "application/json",
    ) -> None:
        self.mode = mode
        self.interval = interval
        self.claimed = claimed
        self.status = status
        self.body = body
        self.content_type = content_type
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request read
        self.written = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> HostileHttpPeer:
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                peer._serve(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _count(self, n: int) -> None:
        with self._lock:
            self.written += n

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            head = self._read_request(conn)
            if head is None:
                return
            with self._lock:
                self.requests.append(head)
            mode = self.mode
            if mode == "trickle":
                answer = self._head(len(self.body)) + self.body
                for i in range(len(answer)):
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(answer[i : i + 1])
                    self._count(1)
            elif mode in ("huge", "endless"):
                length = self.claimed if mode == "huge" else None
                conn.sendall(self._head(length))
                while not self._stop.is_set():
                    conn.sendall(_CHUNK)
                    self._count(len(_CHUNK))
            else:
                conn.sendall(self._head(len(self.body)) + self.body)
                self._count(len(self.body))
        except OSError:
            pass  # the client cut the connection: what a deadline or a cap does

    def _head(self, length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {self.status} Answer", f"Content-Type: {self.content_type}"]
        lines.append(f"Content-Length: {length}" if length is not None else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    @staticmethod
    def _read_request(conn: socket.socket) -> tuple[str, str] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            part = conn.recv(65536)
            if not part or len(data) > 1 << 20:
                return None
            data += part
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, *_ = [*lines[0].split(" "), "", ""]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        while len(rest) < length:
            part = conn.recv(65536)
            if not part:
                break
            rest += part
        return method, path

    def __repr__(self) -> str:
        info: dict[str, Any] = {"mode": self.mode, "written": self.written}
        return f"HostileHttpPeer({info})"
