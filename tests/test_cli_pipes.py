"""A reader that stops early (``oohcore lint | head``): the command stops quietly, as a Unix
tool does, with no ``BrokenPipeError`` traceback, whichever command was writing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from oohcore.cli import EXIT_CLOSED_PIPE

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "example-borough"


@pytest.mark.parametrize(
    "argv",
    [
        ["lint", str(EXAMPLE)],
        ["schema"],
        ["schema", "organisation"],
        ["test", str(EXAMPLE)],
        ["channels", "--json"],
        ["validate", "--json", str(EXAMPLE)],
    ],
    ids=["lint", "schema", "schema-organisation", "test", "channels-json", "validate"],
)
def test_a_closed_pipe_ends_the_command_quietly(argv: list[str]) -> None:
    # the reader has gone before the first write: every write the command makes meets EPIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "oohcore.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert "Exception ignored" not in err, err
    assert code == EXIT_CLOSED_PIPE, err
