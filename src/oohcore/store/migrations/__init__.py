"""Alembic migrations of the oohcore store (run by ``Store.open``; see ``env.py``)."""
