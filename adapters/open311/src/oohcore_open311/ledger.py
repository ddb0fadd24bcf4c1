"""The keys this channel has already delivered, and the CRM's reference for each.

Open311 GeoReport v2 has no idempotency key and no look-up by the client's reference, so the
channel remembers what it sent: a second ``send`` of a key the CRM accepted answers ``sent``
(duplicate) without posting again. With a ``state_path`` the ledger is a SQLite file that
survives restarts and is shared by runner processes on one machine; without one it lives in
memory. It holds keys and references only, no case data (7.14.7).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

__all__ = ["SentLedger"]


class SentLedger:
    """Idempotency key → the CRM's reference (a service_request_id, or ``token:<t>``)."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:", check_same_thread=False, timeout=10
        )
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY, ref TEXT NOT NULL)"
            )

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT ref FROM sent WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def record(self, key: str, ref: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO sent (key, ref) VALUES (?, ?)", (key, ref))

    def close(self) -> None:
        with self._lock:
            self._db.close()
