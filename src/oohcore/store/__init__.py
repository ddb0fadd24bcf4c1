"""The durable store: the database and nothing about calls (the lowest floor above the root).

Hosts open a :class:`Store` and catch :class:`StoreError`; these names are the package's public
face. The rest is for the layers above:

* ``store.store`` — the engine: ``Store.open``, one transaction at a time, the store's errors;
* ``store.faults`` — which driver errors are faults of the machine (turned into ``StoreError``);
* ``store.columns`` — the shared column types and values (``UTCDateTime``, ``to_json``);
* ``store.statements`` — statements compiled once (``Prepared``) and the idempotent inserts;
* ``store.schema`` — the one ``MetaData``, the gathered tables and the Alembic configuration
  (revisions under ``store/migrations``);
* ``store.queue`` — the durable-queue mechanics timers and the outbox share.
"""

from __future__ import annotations

from oohcore.store.store import (
    NestedTransactionError,
    SchemaError,
    Store,
    StoreBusyError,
    StoreError,
)

__all__ = ["NestedTransactionError", "SchemaError", "Store", "StoreBusyError", "StoreError"]
