"""Channel workers: each channel sends on a thread of its own, so one slow or hung channel never
holds back another channel's messages (5.2.3.3, 8.14: a referral's SMS must not wait on a CRM).

The runner groups a claim's messages by channel and gives each group to that channel's
:class:`ChannelWorker` (one daemon thread per channel object: a channel still sees one send at a
time, in order, as before). The runner's own thread keeps the store: it records each answer as
it arrives, and waits for a send no longer than the channel's ``send_timeout`` plus a grace
(:func:`wait_for`, on the monotonic clock: it bounds real I/O). A send still running then is
**abandoned**: the message is recorded as a failed attempt (a retry on the outbox's schedule, or
a failure for good that the engine escalates) and the rest of that channel's group is handed
back unsent. The channel counts as *busy* until its thread comes back; messages due for a busy
channel are recorded as failed attempts at once, without waiting, so they too reach the
retry policy's end and escalate instead of waiting on a channel that may never return.

Workers never touch the store; they only call ``channel.send`` and report through a queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from oohcore.channels import Channel, DeliveryResult
from oohcore.durable.outbox import OutboxRow

__all__ = ["Abandoned", "ChannelWorker", "Done", "Event", "Finished", "Handback", "Job", "wait_for"]

logger = logging.getLogger("oohcore.runner")

Send = Callable[[OutboxRow], DeliveryResult]


@dataclass(frozen=True, slots=True)
class Done:
    """A send came back with the channel's answer; ``started`` is its real start."""

    row: OutboxRow
    result: DeliveryResult
    started: datetime


@dataclass(frozen=True, slots=True)
class Handback:
    """A row not sent: hand it back, claimable from real time ``until`` (None: at once)."""

    row: OutboxRow
    until: datetime | None


@dataclass(frozen=True, slots=True)
class Finished:
    job: Job


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A send outlived its deadline: the job is cancelled; ``row`` is the send's message."""

    job: Job
    row: OutboxRow
    started: datetime


Event = Done | Handback | Finished


@dataclass(eq=False)
class Job:
    """One channel's share of a claim. ``current`` is the send in progress:
    (row, its monotonic start, its real start)."""

    rows: list[OutboxRow]
    events: queue.Queue[Event]
    send_timeout: timedelta
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: bool = False
    current: tuple[OutboxRow, float, datetime] | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    handled: set[int] = field(default_factory=set)  # rows the runner has an event for

    def unstarted(self) -> list[OutboxRow]:
        busy = self.current[0].id if self.current is not None else None
        return [r for r in self.rows if r.id not in self.handled and r.id != busy]


Gate = Callable[[OutboxRow], datetime | bool | None]
"""Before each send, in the worker: True to send, or a real time to hand the row back until
(``None``: at once, because the lease no longer covers a send)."""


class ChannelWorker:
    """A daemon thread that sends one channel's jobs, one message after another."""

    def __init__(
        self,
        name: str,
        channel: Channel,
        send: Send,
        gate: Gate,
        real_now: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.channel = channel
        self._send = send
        self._gate = gate
        self._real_now = real_now
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self.job: Job | None = None
        self._thread = threading.Thread(
            target=self._loop, name=f"oohcore-channel-{name}", daemon=True
        )
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A send given to this worker has not come back."""
        job = self.job
        return job is not None and not job.finished.is_set()

    def submit(self, job: Job) -> None:
        self.job = job
        self._inbox.put(job)

    def stop(self) -> None:
        """Let the thread end after its current job (a hung send keeps it; it is a daemon)."""
        self._inbox.put(None)

    def _loop(self) -> None:
        while True:
            job = self._inbox.get()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                job.finished.set()
                job.events.put(Finished(job))

    def _run(self, job: Job) -> None:
        for row in job.rows:
            with job.lock:
                if job.cancelled:
                    return
                gate = self._gate(row)
                if gate is not True:
                    job.events.put(Handback(row, gate if isinstance(gate, datetime) else None))
                    continue
                started = (row, time.monotonic(), self._real_now())
                job.current = started
            result = self._send(row)
            with job.lock:
                job.current = None
                if job.cancelled:
                    return  # the runner has recorded this send as abandoned
                job.events.put(Done(row, result, started[2]))


#: how long answers already in are held for more to record with them (one transaction)
BATCH_WINDOW = 0.05


def wait_for(
    jobs: set[Job], events: queue.Queue[Event], grace: float, *, holding: bool = False
) -> Event | Abandoned | None:
    """The next event of ``jobs``; or a job whose send has passed its ``send_timeout`` plus
    ``grace``, with that send's row and real start (abandoned: the job is marked cancelled,
    under its lock, so its thread reports nothing more); or None when nothing came for a while
    (the caller then records what it holds and asks again). ``holding``: the caller holds
    answers not yet recorded, so "a while" is at most :data:`BATCH_WINDOW`."""
    now = time.monotonic()
    waits = []
    for job in jobs:
        current = job.current
        if current is not None:
            waits.append(current[1] + job.send_timeout.total_seconds() + grace - now)
    timeout = max(0.0, min(waits)) if waits else 0.5
    if holding:
        timeout = min(timeout, BATCH_WINDOW)
    try:
        return events.get(timeout=timeout)
    except queue.Empty:
        pass
    now = time.monotonic()
    for job in jobs:
        with job.lock:
            current = job.current
            if current is not None and now >= current[1] + job.send_timeout.total_seconds() + grace:
                job.cancelled = True
                return Abandoned(job, current[0], current[2])
    return None
