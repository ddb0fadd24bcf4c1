"""call-handling materials handed out (audit items 15-16)

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-02 13:05:00

Keep it portable (SQLite and PostgreSQL), and keep one line of history: ``down_revision`` is the
previous newest revision (the integrator re-chains it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "materials_handed_out",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("option_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("generated_on", sa.Date(), nullable=False),
        sa.Column("handed_to", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("handed_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_materials_handed_out")),
    )
    with op.batch_alter_table("materials_handed_out", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_materials_handed_out_organisation_id_option_id_handed_out_at"),
            ["organisation_id", "option_id", "handed_out_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("materials_handed_out", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_materials_handed_out_organisation_id_option_id_handed_out_at")
        )
    op.drop_table("materials_handed_out")
