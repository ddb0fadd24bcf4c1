"""Alembic revisions, one file per schema change, in a single line of history."""
