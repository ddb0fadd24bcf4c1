"""fewer index pages a step: partial indexes for keys often absent, and one index dropped

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-02 15:10:00

Issue 12 (the SQLite lifecycle near the disk's floor): a commit costs about one page write per
index a step touches, so indexes that most rows do not need are narrowed to the rows that do:

* ``ix_events_kpi`` holds only the event kinds the KPI queries look up by kind (out of scope,
  no officer, message failed, untaken) instead of every event;
* the earlier-call search's key indexes hold only calls that have that key (a call with no
  UPRN or postcode writes no page of those two indexes);
* ``ix_outbox_provider_ref`` holds only messages the provider has given a reference (a message
  is queued without one);
* ``ix_personal_data_organisation_id_call_id`` is dropped: a purge finds a call's personal
  records through the events' call index (``ix_events_call_id``) instead.

Keep it portable (SQLite and PostgreSQL), and keep one line of history: ``down_revision`` is the
previous newest revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the same text as oohcore.kpi.measures.KPI_EVENT_KINDS_SQL (a migration keeps its own copy)
KPI_KINDS = (
    "kind IN ('action.out_of_scope', 'message.failed', 'referral.no_officer', 'referral.untaken')"
)
SEARCH_KEYS = ("name_key", "surname_key", "address_key", "uprn", "postcode")


def _search_index(key: str) -> str:
    return f"ix_call_search_organisation_id_{key}_received_at"


def upgrade() -> None:
    op.drop_index("ix_events_kpi", table_name="events")
    op.create_index(
        "ix_events_kpi",
        "events",
        ["organisation_id", "kind", "at"],
        sqlite_where=sa.text(KPI_KINDS),
        postgresql_where=sa.text(KPI_KINDS),
    )
    for key in SEARCH_KEYS:
        op.drop_index(_search_index(key), table_name="call_search")
        op.create_index(
            _search_index(key),
            "call_search",
            ["organisation_id", key, "received_at"],
            sqlite_where=sa.text(f"{key} IS NOT NULL"),
            postgresql_where=sa.text(f"{key} IS NOT NULL"),
        )
    op.drop_index("ix_outbox_provider_ref", table_name="outbox")
    op.create_index(
        "ix_outbox_provider_ref",
        "outbox",
        ["provider_ref"],
        sqlite_where=sa.text("provider_ref IS NOT NULL"),
        postgresql_where=sa.text("provider_ref IS NOT NULL"),
    )
    op.drop_index("ix_personal_data_organisation_id_call_id", table_name="personal_data")


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_ref", table_name="outbox")
    op.create_index("ix_outbox_provider_ref", "outbox", ["provider_ref"])
    op.create_index(
        "ix_personal_data_organisation_id_call_id",
        "personal_data",
        ["organisation_id", "call_id"],
    )
    for key in SEARCH_KEYS:
        op.drop_index(_search_index(key), table_name="call_search")
        op.create_index(_search_index(key), "call_search", ["organisation_id", key, "received_at"])
    op.drop_index("ix_events_kpi", table_name="events")
    op.create_index("ix_events_kpi", "events", ["organisation_id", "kind", "at"])
