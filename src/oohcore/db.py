"""The one SQLAlchemy ``MetaData`` every store table is declared on.

Each module that persists something declares its own tables here (one concern per module),
and Alembic migrations in ``oohcore/migrations`` are checked against this metadata by a test.
Only portable SQLAlchemy Core is used, so SQLite (the default) and PostgreSQL both work.
"""

from __future__ import annotations

from sqlalchemy import MetaData

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
    "oohcore.audit",
    "oohcore.personal_data",
    "oohcore.timers",
    "oohcore.outbox",
    "oohcore.search",
    "oohcore.calls",
    "oohcore.referrals",
    "oohcore.directory",
    "oohcore.rota.store",
    "oohcore.telephony",
    "oohcore.kpi.outages",
    "oohcore.procedure.materials",
    "oohcore.kpi.measures",  # the KPI queries' indexes on the tables above
    "oohcore.health",
)


def load_all_tables() -> MetaData:
    """Import every table-declaring module and return the complete ``metadata``."""
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata
