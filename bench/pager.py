"""Pages per second through the pager channels, side by side with a bare standard-library client.

Against the same local peers (oohcore_pager.testing, 127.0.0.1 only):

* ``snpp``: SnppChannel.send (text composition, the page ledger with its rate-limit check, an
  event loop per send, one SNPP session per page) vs a bare blocking-socket client doing the
  same session (greeting, PAGE, MESS, SEND, QUIT) with nothing else;
* ``pager-http``: PagerHttpChannel.send (ledger, composition, httpx over plain HTTP on loopback)
  vs ``http.client`` POSTing the same JSON on a kept-alive connection.

The contenders are interleaved and the best of several passes is kept; the ratio (bare / oohcore,
so 1.0 means no overhead) is the figure to read. Bounded: a few hundred pages per pass.

    .venv/bin/python bench/pager.py
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Callable

from oohcore.channels import DeliveryStatus
from oohcore_pager import PagerHttpChannel, SnppChannel
from oohcore_pager.testing import GatewayTestServer, SnppTestServer, pager_message

PAGES = 300
PASSES = 3


def bare_snpp(port: int) -> Callable[[], None]:
    def page() -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            f = s.makefile("rwb")
            assert f.readline().startswith(b"220")
            for line in (b"PAGE 07623123456", b"MESS Ann Lee / 12 Heron Way / Ref K7Q2M4", b"SEND"):
                f.write(line + b"\r\n")
                f.flush()
                assert f.readline().startswith(b"250")
            f.write(b"QUIT\r\n")
            f.flush()
            f.readline()

    return page


def bare_http(port: int) -> Callable[[], None]:
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def page() -> None:
        key = uuid.uuid4().hex
        body = json.dumps({"pager_id": "07623123456", "text": "Ann Lee / Ref K7Q2M4",
                           "idempotency_key": key})  # fmt: skip
        conn.request("POST", "/v1/pages", body, {"Content-Type": "application/json",
                                                 "Idempotency-Key": key})  # fmt: skip
        response = conn.getresponse()
        response.read()
        assert response.status == 201

    return page


def channel_page(channel: SnppChannel | PagerHttpChannel) -> Callable[[], None]:
    def page() -> None:
        result = channel.send(pager_message())
        assert result.status is DeliveryStatus.SENT, result.error

    return page


def rate(page: Callable[[], None]) -> float:
    start = time.perf_counter()
    for _ in range(PAGES):
        page()
    return PAGES / (time.perf_counter() - start)


def compare(name: str, ours: Callable[[], None], bare: Callable[[], None]) -> None:
    best_ours = best_bare = 0.0
    for _ in range(PASSES):
        best_ours = max(best_ours, rate(ours))
        best_bare = max(best_bare, rate(bare))
    print(
        f"{name:11} oohcore {best_ours:8,.0f} pages/s   bare stdlib {best_bare:8,.0f} pages/s"
        f"   ratio bare/oohcore {best_bare / best_ours:5.2f}"
    )


def main() -> None:
    with SnppTestServer() as server:
        channel = SnppChannel(host="127.0.0.1", port=server.port, rate_limit=None)
        compare("snpp", channel_page(channel), bare_snpp(server.port))
        channel.close()
    with GatewayTestServer() as gateway:
        http_channel = PagerHttpChannel(url=gateway.url, rate_limit=None)
        compare("pager-http", channel_page(http_channel), bare_http(gateway.port))
        http_channel.close()


if __name__ == "__main__":
    main()
