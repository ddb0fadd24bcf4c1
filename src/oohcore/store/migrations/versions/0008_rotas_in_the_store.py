"""rotas in the store and their change log (issue 8)

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-02 13:05:00

Keep it portable (SQLite and PostgreSQL), and keep one line of history: ``down_revision`` is the
previous newest revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oohcore.store.columns

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rotas",
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", oohcore.store.columns.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_rotas")),
    )
    op.create_table(
        "rota_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", oohcore.store.columns.UTCDateTime(), nullable=False),
        sa.Column("applied_at", oohcore.store.columns.UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rota_changes")),
    )
    with op.batch_alter_table("rota_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rota_changes_organisation_id_applied_at"),
            ["organisation_id", "applied_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("rota_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rota_changes_organisation_id_applied_at"))
    op.drop_table("rota_changes")
    op.drop_table("rotas")
