"""Hostile CDR files (tests/hostile/cdr_corpus.py): ``oohcore cdr import`` answers each with exit 0
or 1, every message at ``file:line:col:``, no traceback, within 60 s and 200 MB (the file read
as a stream), and imports nothing from a file with any bad row. The API refuses the same values
with :class:`CdrError`, never a database error."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))  # tests/hostile (pytest imports by path)
from hostile.cdr_corpus import CDR_CASES, CdrCase
from hostile.run import _CHILD, LOCATED, MAX_MEMORY_MB
from oohcore.telephony import CdrError, CdrRecord, cdrs, import_cdrs
from test_kpi_support import FIXTURES, open_store, org_a

TIMEOUT_S = 60.0
SUMMARY = "oohcore: "  # the one unlocated line: how many problems, and that nothing was imported


def _import(file: Path, store_url: str, cwd: Path) -> tuple[int, str, float | None, float]:
    argv = ["cdr", "import", str(FIXTURES / "org-a"), str(file), "--store", store_url]
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"no answer after {TIMEOUT_S} s")
    took = time.monotonic() - began
    err, _, peak = done.stderr.rpartition("peak-kb=")
    peak_mb = int(peak.strip()) / 1024 if peak.strip().isdigit() else None
    return done.returncode, done.stdout + err, peak_mb, took


@pytest.mark.parametrize("case", CDR_CASES, ids=[c.name for c in CDR_CASES])
def test_every_hostile_cdr_file_gets_a_located_answer(case: CdrCase, tmp_path: Path) -> None:
    file = tmp_path / "cdrs.csv"
    case.write(file)
    url = f"sqlite:///{tmp_path / 'kpi.sqlite'}"
    open_store(tmp_path).close()  # an empty store, migrated
    code, text, peak_mb, took = _import(file, url, tmp_path)
    assert "Traceback" not in text, text[-3000:]
    assert code == (0 if case.imported or case.expect is None else 1), text[-3000:]
    lines = [line for line in text.splitlines() if line.strip()]
    if code == 1:
        unlocated = [x for x in lines if not LOCATED.match(x) and not x.startswith(SUMMARY)]
        assert unlocated == [], unlocated[:5]
        assert any(LOCATED.match(x) for x in lines)
        assert all(len(x) < 2_000 for x in lines)  # no file printed back
    if case.expect is not None:
        assert case.expect in text, text[-3000:]
    assert peak_mb is not None and peak_mb <= MAX_MEMORY_MB, f"{peak_mb} MB"
    assert took < TIMEOUT_S
    with open_store(tmp_path) as store, store.read() as conn:
        assert conn.execute(select(func.count()).select_from(cdrs)).scalar_one() == case.imported


def test_the_location_names_the_row_and_the_column(tmp_path: Path) -> None:
    [case] = [c for c in CDR_CASES if c.name == "a good row, then a bad one: nothing imported"]
    file = tmp_path / "cdrs.csv"
    case.write(file)
    url = f"sqlite:///{tmp_path / 'kpi.sqlite'}"
    open_store(tmp_path).close()
    _, text, _, _ = _import(file, url, tmp_path)
    assert "cdrs.csv:3:9: talk_seconds: is nan" in text  # line 3, the 9th column


BASE = datetime(2026, 10, 3, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"talk_seconds": float("nan")}, "talk_seconds"),
        ({"talk_seconds": 1e308}, "talk_seconds"),
        ({"wrap_seconds": float("-inf")}, "wrap_seconds"),
        ({"outbound_seconds": float("inf")}, "outbound_seconds"),
        ({"outbound_calls": 10**12}, "outbound_calls"),
        ({"offered_at": datetime.fromisoformat("9999-12-31T23:59:59-14:00")}, "offered_at"),
        ({"answered_at": datetime.fromisoformat("9999-12-31T23:59:59-14:00")}, "answered_at"),
        ({"abandoned_at": BASE + timedelta(days=3), "answered_at": None}, "abandoned_at"),
        ({"caller_number": "0" * 100}, "caller_number"),
    ],
)
def test_the_api_refuses_what_the_file_refuses(
    tmp_path: Path, changes: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {
        "cdr_id": "a1",
        "queue": "0100 000 0002",
        "offered_at": BASE,
        "answered_at": BASE + timedelta(seconds=5),
        "talk_seconds": 100.0,
    }
    values.update(changes)
    store = open_store(tmp_path)
    with pytest.raises(CdrError) as caught:
        import_cdrs(store, org_a(), [CdrRecord(**values)])  # type: ignore[arg-type]
    assert any(p.message.startswith(f"{field}:") for p in caught.value.problems), caught.value
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(cdrs)).scalar_one() == 0
    store.close()
