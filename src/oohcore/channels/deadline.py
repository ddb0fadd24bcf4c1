"""An overall deadline and an answer cap for one send over HTTP (8.14: a referral must not wait
on a peer that never finishes answering).

Per-read time-outs alone do not bound a send: a peer that answers one byte a second never lets
a read time out, and one that claims a 300 MB answer fills memory. An HTTP adapter therefore
makes each request through :func:`exchange`:

* a :class:`Deadline` for the whole send (every request of it, and any waiting between them),
  measured on the monotonic clock because it bounds real I/O. A watchdog cuts the connection's
  socket when it passes, so a trickling peer is stopped mid-header; the adapter gets
  :class:`DeadlineExceeded` and answers ``retry`` (the outbox's policy decides when to try
  again, and when to give up so that the engine escalates);
* an answer cap: an answer whose ``Content-Length`` claims more than the cap is refused before
  a byte of it is read, and one that streams past the cap is refused as soon as it does
  (:class:`AnswerRefused`). Compressed answers are refused too (``Accept-Encoding: identity``
  is asked for): a few kilobytes of gzip can inflate past any cap.

The helper works on an ``httpx.Client`` (the adapters' dependency, not the core's) by duck
typing: ``client.stream(...)`` with httpx's documented ``trace`` request extension, which hands
over the network stream as the connection opens. Give the client
``limits=httpx.Limits(max_keepalive_connections=0)`` so that every request opens its own
connection and the watchdog always has the socket to cut.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from oohcore.channels import ChannelError

__all__ = [
    "MAX_ANSWER_BYTES",
    "Answer",
    "AnswerRefused",
    "Deadline",
    "DeadlineExceeded",
    "exchange",
]

#: the largest answer an adapter reads by default: far above any provider's acknowledgement
MAX_ANSWER_BYTES = 1 << 20


class DeadlineExceeded(ChannelError):
    """The send's overall deadline passed before the peer had answered in full."""


class AnswerRefused(ChannelError):
    """The peer's answer was larger than the cap, or compressed: its body was not read.
    ``status`` and ``headers`` are those of the answer (its head was read)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status = 0
        self.headers: Mapping[str, str] = {}

    @property
    def head(self) -> Answer:
        """The answer without its body."""
        return Answer(self.status, self.headers, b"")


class Deadline:
    """The moment by which one send must be over, ``seconds`` from now on ``clock``."""

    __slots__ = ("_clock", "at", "seconds")

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds = seconds
        self.at = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True, slots=True)
class Answer:
    """A peer's answer, read in full within the deadline and the cap."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Watchdog:
    """Cuts the request's socket when the deadline passes (wakes a blocked read or write)."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cut = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        # httpx's "trace" extension: the stream of a new connection (TCP, then TLS over it)
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                    cut = self.cut
                if cut:
                    self._shutdown(sock)

    def _cut(self) -> None:
        with self._lock:
            self.cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def exchange(
    client: Any,
    method: str,
    url: str,
    *,
    deadline: Deadline,
    cap: int = MAX_ANSWER_BYTES,
    **request: Any,
) -> Answer:
    """One HTTP request on ``client`` (an ``httpx.Client``), over by ``deadline``, its answer at
    most ``cap`` bytes (``cap=0``: the status and headers only; the body is not read).

    Raises :class:`DeadlineExceeded` when the deadline passes first, :class:`AnswerRefused`
    for an answer over the cap or compressed, and the client's own errors (no connection …)."""
    remaining = deadline.remaining()
    if remaining <= 0:
        raise DeadlineExceeded(f"the send's {deadline.seconds:g} s had passed before {method}")
    headers = {**dict(request.pop("headers", None) or {}), "Accept-Encoding": "identity"}
    extensions = {**dict(request.pop("extensions", None) or {})}
    watchdog = _Watchdog(remaining)
    extensions["trace"] = watchdog.trace
    answer: Answer | None = None
    try:
        with (
            watchdog,
            client.stream(
                method,
                url,
                headers=headers,
                extensions=extensions,
                timeout=remaining,
                **request,
            ) as response,
        ):
            status = int(response.status_code)
            answer_headers = {k.lower(): v for k, v in response.headers.items()}
            try:
                body = _read(response, answer_headers, cap) if cap > 0 else b""
            except AnswerRefused as exc:
                exc.status, exc.headers = status, answer_headers
                raise
            answer = Answer(status, answer_headers, body)
    except AnswerRefused:
        raise
    except Exception:
        if answer is not None:
            return answer  # read in full; only closing the connection failed
        if watchdog.cut or deadline.expired:
            raise DeadlineExceeded(
                f"no complete answer within the send's {deadline.seconds:g} s"
            ) from None
        raise
    return answer


def _read(response: Any, headers: Mapping[str, str], cap: int) -> bytes:
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise AnswerRefused(f"a {encoding!r}-encoded answer although identity was asked for")
    declared = headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > cap:
        raise AnswerRefused(f"an answer of {int(declared):,} bytes, over the cap of {cap:,}")
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > cap:
            raise AnswerRefused(f"an answer longer than the cap of {cap:,} bytes")
    return bytes(body)
