"""Durable infrastructure: audit log (events + chain heads), timers, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Timestamps are ``DateTime(timezone=True)`` here; the tables declare them as
``oohcore.store.columns.UTCDateTime``, whose storage type this is.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def ts(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("organisation_id", sa.String(length=100), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("call_id", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        ts("at", nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("organisation_id", "seq", name=op.f("uq_events_organisation_id_seq")),
    )
    op.create_index(op.f("ix_events_call_id"), "events", ["call_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=100), nullable=False),
        sa.Column("call_id", sa.String(length=100), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        ts("created_at", nullable=False),
        ts("due_at", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        ts("next_attempt_at", nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        ts("sent_at", nullable=True),
        ts("failed_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(op.f("ix_outbox_call_id"), "outbox", ["call_id"], unique=False)
    op.create_index(
        op.f("ix_outbox_sent_at_failed_at_next_attempt_at"),
        "outbox",
        ["sent_at", "failed_at", "next_attempt_at"],
        unique=False,
    )

    op.create_table(
        "timers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=100), nullable=False),
        sa.Column("call_id", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=100), nullable=False),
        ts("due_at", nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        ts("fired_at", nullable=True),
        ts("cancelled_at", nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timers")),
        sa.UniqueConstraint("key", name=op.f("uq_timers_key")),
    )
    op.create_index(op.f("ix_timers_call_id"), "timers", ["call_id"], unique=False)
    op.create_index(
        op.f("ix_timers_fired_at_cancelled_at_due_at"),
        "timers",
        ["fired_at", "cancelled_at", "due_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_timers_fired_at_cancelled_at_due_at"), table_name="timers")
    op.drop_index(op.f("ix_timers_call_id"), table_name="timers")
    op.drop_table("timers")
    op.drop_index(op.f("ix_outbox_sent_at_failed_at_next_attempt_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_call_id"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_events_call_id"), table_name="events")
    op.drop_table("events")
    op.drop_table("audit_heads")
