"""a caller's number (a SIP URI) and a person's name fit on every store

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-02 13:20:00

Issue 7 defect 6: on PostgreSQL a caller number over 32 characters or a handler over 128 made
offer()/answer() fail with a raw DataError and the call was never recorded (SQLite does not
enforce lengths). The façade now keeps 255 characters of a caller's number and refuses names
over 200 (oohcore.engine.inputs), the same on both stores; these columns hold them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column(
            "caller_number", existing_type=sa.String(length=32), type_=sa.String(length=255)
        )
        batch_op.alter_column(
            "handler", existing_type=sa.String(length=128), type_=sa.String(length=200)
        )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.alter_column(
            "acknowledged_by", existing_type=sa.String(length=128), type_=sa.String(length=200)
        )


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.alter_column(
            "acknowledged_by", existing_type=sa.String(length=200), type_=sa.String(length=128)
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column(
            "handler", existing_type=sa.String(length=200), type_=sa.String(length=128)
        )
        batch_op.alter_column(
            "caller_number", existing_type=sa.String(length=255), type_=sa.String(length=32)
        )
