"""case SLA timers: reminders, supervision up the grid chain, suspension

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("accept_remind_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolve_remind_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("supervision_level", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_supervision_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("suspended_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("accept_left_minutes", sa.Float(), nullable=True))
        batch.add_column(sa.Column("resolve_left_minutes", sa.Float(), nullable=True))
        batch.create_index("ix_cases_accept_remind_at", ["accept_remind_at"])
        batch.create_index("ix_cases_resolve_remind_at", ["resolve_remind_at"])
        batch.create_index("ix_cases_next_supervision_at", ["next_supervision_at"])


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_next_supervision_at")
        batch.drop_index("ix_cases_resolve_remind_at")
        batch.drop_index("ix_cases_accept_remind_at")
        for column in (
            "resolve_left_minutes",
            "accept_left_minutes",
            "suspended_at",
            "next_supervision_at",
            "supervision_level",
            "resolve_remind_at",
            "accept_remind_at",
        ):
            batch.drop_column(column)
