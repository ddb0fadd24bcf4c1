"""Any ``oohcore`` command in a measured subprocess, as tests/hostile/run.py runs ``validate``
(its child and :class:`~hostile.run.Outcome`): the exit code, the output, the peak memory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hostile.run import _CHILD, Outcome

TIMEOUT_S = 60.0  # the second hostile round's limit: no command answers later than this


def cli_in_subprocess(argv: Sequence[str], cwd: Path, timeout: float = TIMEOUT_S) -> Outcome:
    """``oohcore ARGV`` in a child measured as tests/hostile/run.py measures ``validate``."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv],
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
