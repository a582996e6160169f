"""chat drafts, replies, shared tokens, media retries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 08:06:32.960517
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_tokens",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("expires_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "report_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("voice_transcripts", sa.JSON(), nullable=False),
        sa.Column("media_ids", sa.JSON(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("report_drafts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_drafts_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_drafts_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_drafts_updated_at"), ["updated_at"], unique=False)

    with op.batch_alter_table("grids", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "updated_at",
                models.types.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            )
        )

    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply", sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f("ix_media_next_attempt_at"), ["next_attempt_at"], unique=False)

    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subscribed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("last_interaction_at", models.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("last_interaction_at")
        batch_op.drop_column("subscribed")

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_next_attempt_at"))
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_attempt_at")

    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("reply")

    with op.batch_alter_table("grids", schema=None) as batch_op:
        batch_op.drop_column("updated_at")

    with op.batch_alter_table("report_drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_drafts_updated_at"))
        batch_op.drop_index(batch_op.f("ix_report_drafts_status"))
        batch_op.drop_index(batch_op.f("ix_report_drafts_person_id"))

    op.drop_table("report_drafts")
    op.drop_table("service_tokens")
