"""a caller number may be a SIP URI; a handler's or officer's name may be long

Revision ID: 0010
Revises: 0013
Create Date: 2026-12-02 13:05:00

Issue 7, defect 6: on PostgreSQL a caller number over 32 characters (a SIP URI) or a handler
over 128 failed ``offer()``/``answer()`` with a raw ``DataError`` and the call was never recorded,
while SQLite (which does not enforce ``VARCHAR`` lengths) took it. The façade now checks the same
documented limits on both stores (``oohcore.engine.inputs``: 256 characters) and these columns
are wide enough for them. ``batch_alter_table`` keeps it portable (SQLite recreates the table).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WIDE = 320  # the façade's limit (256) with room; an e-mail address's maximum length


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("caller_number", existing_type=sa.String(32), type_=sa.String(_WIDE))
        batch.alter_column("handler", existing_type=sa.String(128), type_=sa.String(_WIDE))
    with op.batch_alter_table("referrals") as batch:
        batch.alter_column("acknowledged_by", existing_type=sa.String(128), type_=sa.String(_WIDE))


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.alter_column("acknowledged_by", existing_type=sa.String(_WIDE), type_=sa.String(128))
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("handler", existing_type=sa.String(_WIDE), type_=sa.String(128))
        batch.alter_column("caller_number", existing_type=sa.String(_WIDE), type_=sa.String(32))
