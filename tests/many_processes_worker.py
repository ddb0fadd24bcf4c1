"""Helper processes for ``test_many_processes.py``: a desk worker or a runner on one store.

``python many_processes_worker.py desk URL RULESETS ORG FIRST COUNT OUT``
    drives ``COUNT`` call lifecycles of organisation ``ORG`` through the façade (offer, answer,
    capture, next_step, complete — a referral — close, and every other call an acknowledgement),
    retrying a step that meets :class:`~oohcore.engine.errors.ConcurrentChange` (a runner
    escalating the same referral meanwhile); writes ``{"calls": [...], "conflicts": n, ...}``
    as JSON to ``OUT`` when done.

``python many_processes_worker.py runner URL RULESETS RECEIVER_URL NOW LEASE_S``
    ticks a :class:`~oohcore.durable.runner.Runner` at the logical time ``NOW`` until SIGTERM, sending
    every message by HTTP POST to the receiving peer (``RECEIVER_URL``), with claim leases of
    ``LEASE_S`` seconds on the real clock. The test SIGKILLs one of these mid-dispatch.
"""

from __future__ import annotations

import signal

# A stop request (SIGTERM) is honoured from the first moment, even while the imports run.
STOP = [False]


def _on_term(signum: int, frame: object) -> None:
    STOP[0] = True


signal.signal(signal.SIGTERM, _on_term)

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from oohcore.channels import ChannelInfo, DeliveryResult, OutboundMessage  # noqa: E402
from oohcore.clock import ManualClock, SystemClock  # noqa: E402
from oohcore.durable.runner import Runner  # noqa: E402
from oohcore.engine import Engine  # noqa: E402
from oohcore.engine.errors import ConcurrentChange, InvalidTransition  # noqa: E402

NUMBERS = {"org-a": "0300 000 0001", "org-b": "0300 000 0002", "org-c": "0300 000 0003"}
T0 = datetime.fromisoformat("2026-11-20T18:00:00+00:00")
# the runners' logical time while the desks work: every acknowledgement wait of the desks'
# calls is due, so the runners escalate referrals while the desks acknowledge them
T_RUN = T0 + timedelta(hours=3)
# ... and once the desks are done (the test creates the ``drain`` file): a step recorded after a
# runner's event at T_RUN is recorded at T_RUN (a call's steps keep their order, 6.4 b), so its
# pass-on deadline falls after T_RUN; the drain fires those
T_DRAIN = T_RUN + timedelta(hours=1)
SEND_TIMEOUT = timedelta(seconds=0.25)  # a loopback peer; a claim holds ~0.9 * lease / this


class HttpChannel:
    """An SMS channel whose provider is the test's loopback HTTP peer (it dedupes on the key)."""

    name = "sms"
    info = ChannelInfo(carries=frozenset({"sms"}), contact_field="phone", send_timeout=SEND_TIMEOUT)

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, message: OutboundMessage) -> DeliveryResult:
        body = json.dumps(
            {"key": message.idempotency_key, "to": message.recipient, "pid": os.getpid()}
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT.total_seconds()) as response:
            answer = json.loads(response.read())
        return DeliveryResult.sent(answer["ref"], duplicate=bool(answer["duplicate"]))

    def close(self) -> None:
        pass


def _retrying(step: Any, conflicts: list[int]) -> Any:
    for _ in range(50):
        try:
            return step()
        except ConcurrentChange:
            conflicts[0] += 1
    raise RuntimeError("50 conflicts in a row")


def desk(url: str, rulesets: str, org: str, first: int, count: int, out: str) -> None:
    engine = Engine.open(
        rulesets, url, clock=ManualClock(T0), channels={"sms": HttpChannel("http://unused")}
    )
    d = engine.organisation(org)
    conflicts = [0]
    calls: list[str] = []
    acknowledged: list[str] = []
    refused = 0
    latencies: list[float] = []
    for i in range(first, first + count):
        started = time.perf_counter()
        cid = engine.offer(NUMBERS[org], caller_number="07700900123").id
        answers = {
            "caller_name": f"Caller {i}",
            "address": f"{i % 240 + 1} Mill Road",
            "phone": f"07700 9{i % 100000:05d}",
            "repair": ("no_heating", "leak", "no_power")[i % 3],
            "vulnerable": i % 2 == 0,
        }
        _retrying(lambda c=cid: d.answer(c, handler=f"desk{first}"), conflicts)
        _retrying(lambda c=cid, a=answers: d.capture(c, a), conflicts)  # type: ignore[misc]
        _retrying(lambda c=cid: d.next_step(c), conflicts)
        _retrying(lambda c=cid: d.complete(c), conflicts)
        _retrying(lambda c=cid: d.close(c), conflicts)
        if i % 2 == 0:
            try:
                _retrying(lambda c=cid: d.acknowledge(c, by="rita", at=T_RUN), conflicts)
                acknowledged.append(cid)
            except InvalidTransition:
                refused += 1  # the escalation had already run out: nothing to acknowledge
        latencies.append(time.perf_counter() - started)
        calls.append(cid)
    engine.close()
    Path(out).write_text(
        json.dumps(
            {
                "calls": calls,
                "acknowledged": acknowledged,
                "refused": refused,
                "conflicts": conflicts[0],
                "latencies": latencies,
            }
        )
    )


class RunnerClock:
    """The runners' one logical clock: T_RUN, then T_DRAIN once the ``drain`` file exists."""

    def __init__(self, drain: str) -> None:
        self.drain = Path(drain)

    def now(self) -> datetime:
        return T_DRAIN if self.drain.exists() else T_RUN


def runner(url: str, rulesets: str, receiver: str, drain: str, lease_s: str) -> None:
    clock = RunnerClock(drain)
    channel = HttpChannel(receiver)
    engine = Engine.open(rulesets, url, clock=clock, channels={"sms": channel})
    # a deployment's runner: short leases on the real clock (docs/deployment.md)
    engine.runner = Runner(
        engine.store,
        {"sms": channel},
        on_timer=engine._on_timer,
        on_sent=engine._on_sent,
        on_failed=engine._on_failed,
        on_receipt=engine._on_receipt,
        claim_lease=timedelta(seconds=float(lease_s)),
        lease_clock=SystemClock(),
        message_batch=20,
        timer_batch=50,
        max_rounds=5,  # a tick ends every few rounds even under a steady inflow: SIGTERM is seen
    )
    print("ready", flush=True)
    while not STOP[0]:
        report = engine.runner.tick(clock.now())
        if report.idle:
            time.sleep(0.02)  # an idle runner's poll interval (real time, not the test's)
    engine.close()


def main(argv: list[str]) -> int:
    if argv[1] == "desk":
        desk(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), argv[7])
    elif argv[1] == "runner":
        runner(*argv[2:7])
    else:
        raise SystemExit(f"unknown mode {argv[1]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
