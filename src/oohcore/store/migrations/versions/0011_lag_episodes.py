"""lag episodes: when the runners fell behind the threshold (oohcore.durable.health)

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02 13:10:00

Keep it portable (SQLite and PostgreSQL), and keep one line of history: ``down_revision`` is the
previous newest revision (the integrator re-chains it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lag_episodes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("open_slot", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("threshold_seconds", sa.Float(), nullable=False),
        sa.Column("lag_seconds", sa.Float(), nullable=False),
        sa.Column("worst_seconds", sa.Float(), nullable=False),
        sa.Column("what", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lag_episodes")),
        sa.UniqueConstraint("open_slot", name=op.f("uq_lag_episodes_open_slot")),
    )


def downgrade() -> None:
    op.drop_table("lag_episodes")
