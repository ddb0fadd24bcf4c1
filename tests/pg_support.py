"""A fresh database on the PostgreSQL server `make test` starts (scripts/postgres-for-tests),
for tests that run the same checks on both stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


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
