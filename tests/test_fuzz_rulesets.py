"""The ruleset fuzzer (tests/hostile/fuzz.py) for a bounded time: mutated catalogue files through
``oohcore validate`` give exit 0 or 1 with ``path:line:col:`` messages, never a traceback or a
hang, and the run stays under 200 MB (issue 7, "Must show").

Seeded and reproducible: the seed is new on each run (or ``OOHCORE_FUZZ_SEED``) and printed on
failure with the command that replays the failing case; ``OOHCORE_FUZZ_SECONDS`` sets the time
(20 s by default).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).parent / "hostile" / "fuzz.py"
MAX_MEMORY_MB = 200


def test_mutated_catalogue_files_always_give_located_answers() -> None:
    seed = int(os.environ.get("OOHCORE_FUZZ_SEED") or random.SystemRandom().randrange(10**9))
    seconds = float(os.environ.get("OOHCORE_FUZZ_SECONDS") or 20)
    # its own process, so that its peak memory is the fuzzing's alone
    done = subprocess.run(
        [sys.executable, str(FUZZ), "--seed", str(seed), "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    replay = f".venv/bin/python tests/hostile/fuzz.py --seed {seed}"
    assert done.stdout.strip(), f"seed {seed}: the fuzzer printed nothing\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout)
    failures = result["failures"]
    assert not failures, (
        f"seed {seed}: {len(failures)} failing case(s); replay one with "
        f"{replay} --case {failures[0]['case']} (--show prints the file)\n"
        + json.dumps(failures, indent=2)[:6000]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert result["cases"] >= 50, f"seed {seed}: only {result['cases']} cases in {seconds} s"
    assert result["peak_mb"] <= MAX_MEMORY_MB, f"seed {seed}: {result['peak_mb']} MB"
