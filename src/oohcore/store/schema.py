"""The one SQLAlchemy ``MetaData`` every store table is declared on.

Each module that persists something declares its own tables here (one concern per module),
and Alembic migrations in ``oohcore/store/migrations`` are checked against this metadata by a test.
Only portable SQLAlchemy Core is used, so SQLite (the default) and PostgreSQL both work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData

__all__ = ["MIGRATIONS_DIR", "TABLE_MODULES", "alembic_config", "load_all_tables", "metadata"]

# the Alembic revisions, shipped inside the package (found next to this file in a wheel)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Modules that declare tables on ``metadata``. Importing them all gives the complete schema
# (Alembic's env.py and the migration drift test call ``load_all_tables``).
TABLE_MODULES: tuple[str, ...] = (
    "oohcore.audit.chain",
    "oohcore.audit.personal",
    "oohcore.durable.timers",
    "oohcore.durable.outbox",
    "oohcore.durable.receipts",
    "oohcore.search.index",
    "oohcore.calls",
    "oohcore.referrals",
    "oohcore.directory",
    "oohcore.rota.store",
    "oohcore.telephony",
    "oohcore.kpi.outages",
    "oohcore.procedure.materials",
    "oohcore.kpi.measures",  # the KPI queries' indexes on the tables above
    "oohcore.durable.health",
)


def load_all_tables() -> MetaData:
    """Import every table-declaring module and return the complete ``metadata``."""
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` for oohcore's migrations, without any ``alembic.ini``.

    For developers adding a table (declare it on ``oohcore.store.schema.metadata``, add the module to
    ``TABLE_MODULES``), then generate a revision against a database at head::

        from alembic import command
        from oohcore.store import Store
        from oohcore.store.schema import alembic_config
        Store.open("sqlite:///dev.sqlite", clock=SystemClock()).close()
        command.revision(alembic_config("sqlite:///dev.sqlite"), "add rota tables",
                         autogenerate=True, rev_id="0002")

    Review the generated file (keep it portable) and keep one head: set ``down_revision`` to
    the previous newest revision.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg
