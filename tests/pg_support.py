"""A fresh database on the PostgreSQL server `make test` starts (scripts/postgres-for-tests),
for tests that run the same checks on both stores; and a server of a test's own, to stop and
start again (an outage)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres-for-tests"


@contextmanager
def postgres_database(prefix: str = "oohcore_test") -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards. Without a server the test skips,
    or fails under OOHCORE_REQUIRE_POSTGRES=1 (as in CI)."""
    base = os.environ.get("OOHCORE_TEST_POSTGRES_URL")
    if not base:
        why = (
            os.environ.get("OOHCORE_TEST_POSTGRES_UNAVAILABLE") or "OOHCORE_TEST_POSTGRES_URL unset"
        )
        required = os.environ.get("OOHCORE_REQUIRE_POSTGRES", "0") != "0"
        (pytest.fail if required else pytest.skip)(f"no PostgreSQL server: {why} (make test)")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class OwnServer:
    """A PostgreSQL server of the test's own (scripts/postgres-for-tests in a new directory),
    which the test may stop and start again to make an outage without disturbing the server
    the rest of the suite shares. It keeps its port, so the URL stays valid across restarts."""

    def __init__(self, directory: Path, url: str) -> None:
        self.directory = directory
        self.url = url
        self.port = (directory / "port").read_text().strip()

    def _pg_ctl(self, *args: str) -> None:
        command = [_pg_ctl(), *args, "-D", str(self.directory / "data")]
        if os.geteuid() == 0:  # PostgreSQL does not run as root: the script runs it as postgres
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        """Stop the server (fast shutdown: its sessions are ended, as in a restart)."""
        self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")

    def start(self) -> None:
        """Start it again on the same port, with the same data."""
        log = str(self.directory / "log")
        self._pg_ctl("start", "-w", "-t", "60", "-l", log, "-o", f"-p {self.port}")


def _pg_ctl() -> str:
    found = shutil.which("pg_ctl")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if not candidates:
        pytest.fail("pg_ctl not found, although scripts/postgres-for-tests started a server")
    return candidates[-1]


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


@contextmanager
def own_postgres_server() -> Iterator[OwnServer]:
    """A throwaway server of the test's own (see :class:`OwnServer`), stopped and deleted
    afterwards. Where the suite runs without PostgreSQL (no OOHCORE_TEST_POSTGRES_URL) the test
    skips, or fails under OOHCORE_REQUIRE_POSTGRES=1, as with :func:`postgres_database`."""
    required = os.environ.get("OOHCORE_REQUIRE_POSTGRES", "0") != "0"
    if not os.environ.get("OOHCORE_TEST_POSTGRES_URL"):
        why = (
            os.environ.get("OOHCORE_TEST_POSTGRES_UNAVAILABLE") or "OOHCORE_TEST_POSTGRES_URL unset"
        )
        (pytest.fail if required else pytest.skip)(f"no PostgreSQL server: {why} (make test)")
    # As root the server runs as postgres, who must reach the directory: not under root's TMPDIR.
    directory = Path(tempfile.mkdtemp(prefix="oohcore-pg-", dir="/tmp"))
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", str(directory)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if started.returncode != 0:
            (pytest.fail if required else pytest.skip)(
                f"could not start a PostgreSQL server of the test's own: {started.stderr.strip()}"
            )
        yield OwnServer(directory, started.stdout.strip())
    finally:
        subprocess.run([str(SCRIPT), "stop", str(directory)], capture_output=True, timeout=120)
