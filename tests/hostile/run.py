"""Running ``oohcore validate`` on hostile input, in-process or in a measured subprocess.

What every run must give (issue 7, "Must show"): exit 0 or 1; every line of output a
``path:line:col:`` message (or the ``valid:`` summary); no traceback; no hang (a timeout); at
most ``MAX_MEMORY_MB`` of memory (measured in the subprocess as its peak resident size).
"""

from __future__ import annotations

import contextlib
import io
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

MAX_MEMORY_MB = 200
TIMEOUT_S = 20.0
LOCATED = re.compile(r"^.+:\d+:\d+: \S")

# the child: the CLI's main(), then its own peak resident size on the last line of stderr
_CHILD = """
import resource, sys
# a safety net only (the peak below is what the test checks): a runaway case stops here
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from oohcore.cli import main
try:
    code = main(sys.argv[1:])
finally:
    # VmHWM is this process image's own peak; ru_maxrss would also count the parent's pages
    # before exec (Linux keeps the larger of the two across exec), i.e. the pytest worker's
    try:
        with open('/proc/self/status', encoding='ascii') as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))
    except (OSError, StopIteration, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\\npeak-kb={peak}", file=sys.stderr)
sys.exit(code)
"""


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str
    peak_mb: float | None = None

    def failures(self, expect: str | None = None) -> list[str]:
        """What is wrong with this outcome (empty: it is what the issue asks)."""
        text = self.out + self.err
        found: list[str] = []
        if self.code not in (0, 1):
            found.append(f"exit {self.code}")
        if "Traceback" in text:
            found.append("a traceback")
        lines = [line for line in text.splitlines() if line.strip()]
        for line in lines:
            if not (LOCATED.match(line) or line.startswith(("valid: ", "peak-kb="))):
                found.append(f"an unlocated line: {line[:200]!r}")
        if self.code == 1 and not any(LOCATED.match(line) for line in lines):
            found.append("exit 1 with no located message")
        if any(len(line) > 2_000 for line in lines):
            found.append("a line of more than 2,000 characters (a file printed back?)")
        if self.peak_mb is not None and self.peak_mb > MAX_MEMORY_MB:
            found.append(f"{self.peak_mb:.0f} MB of memory (at most {MAX_MEMORY_MB})")
        if expect is not None and expect not in text:
            found.append(f"no {expect!r} in the output")
        return found


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in this (main) thread after ``seconds`` of wall time."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def validate_in_process(argv: Sequence[str], timeout: float = TIMEOUT_S) -> Outcome:
    from oohcore.cli import main

    out, err = io.StringIO(), io.StringIO()
    with time_limit(timeout), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", *argv])
    return Outcome(code, out.getvalue(), err.getvalue())


def validate_in_subprocess(argv: Sequence[str], cwd: Path, timeout: float = TIMEOUT_S) -> Outcome:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, "validate", *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        return Outcome(-1, "", f"a hang: no answer after {timeout} s")
    err, _, peak = done.stderr.rpartition("peak-kb=")
    peak_mb = int(peak.strip()) / 1024 if peak.strip().isdigit() else None
    return Outcome(
        done.returncode, done.stdout, err if peak_mb is not None else done.stderr, peak_mb
    )
