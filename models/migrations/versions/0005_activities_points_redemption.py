"""activities: series slots, points rules, check-in radius, settlement; sign-up queue and attendance; the
ledger's grid and note; the 爱心超市 (redemption items and redemptions)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00

`activities` is referenced by `signups`, so it only gets columns and indexes (SQLite adds those in place):
rebuilding a referenced table inside the migration's transaction would fail SQLite's foreign-key check.
`signups` and `points_ledger` are referenced by nothing and are rebuilt (batch mode) for their new foreign keys.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        batch.add_column(sa.Column("points_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("checkin_radius_m", sa.Integer(), nullable=False, server_default="300"))
        batch.add_column(sa.Column("series_slot", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cancel_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch.add_column(sa.Column("cancelled_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("settled_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.create_index("ix_activities_ends_at", ["ends_at"])
        batch.create_index("uq_activities_series_slot", ["series_id", "series_slot"], unique=True)

    with op.batch_alter_table("signups") as batch:
        batch.add_column(sa.Column("queued_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("promoted_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("checkin_distance_m", sa.Float(), nullable=True))
        batch.add_column(sa.Column("checkout_distance_m", sa.Float(), nullable=True))
        batch.add_column(sa.Column("attended_minutes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("attendance_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.create_foreign_key("fk_signups_attendance_by_people", "people", ["attendance_by"], ["id"])
    op.execute("UPDATE signups SET queued_at = created_at")
    with op.batch_alter_table("signups") as batch:
        batch.alter_column("queued_at", existing_type=models.types.UTCDateTime(timezone=True), nullable=False)

    with op.batch_alter_table("points_ledger") as batch:
        batch.add_column(sa.Column("grid_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False, server_default="")
        )
        batch.create_foreign_key("fk_points_ledger_grid_id_grids", "grids", ["grid_id"], ["id"])
        batch.create_index("ix_points_ledger_grid_id", ["grid_id"])
        batch.create_index("ix_points_ledger_created_at", ["created_at"])

    op.create_table(
        "redemption_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["people.id"]),
        sa.ForeignKeyConstraint(["grid_id"], ["grids.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("redemption_items") as batch:
        batch.create_index("ix_redemption_items_grid_id", ["grid_id"])

    op.create_table(
        "redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handed_over_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("handed_over_by", sa.Integer(), nullable=True),
        sa.Column("cancelled_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.Integer(), nullable=True),
        sa.Column("cancel_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(["cancelled_by"], ["people.id"]),
        sa.ForeignKeyConstraint(["handed_over_by"], ["people.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["redemption_items.id"]),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("redemptions") as batch:
        batch.create_index("ix_redemptions_item_id", ["item_id"])
        batch.create_index("ix_redemptions_person_id", ["person_id"])


def downgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_index("ix_redemptions_person_id")
        batch.drop_index("ix_redemptions_item_id")
    op.drop_table("redemptions")
    with op.batch_alter_table("redemption_items") as batch:
        batch.drop_index("ix_redemption_items_grid_id")
    op.drop_table("redemption_items")

    with op.batch_alter_table("points_ledger") as batch:
        batch.drop_index("ix_points_ledger_created_at")
        batch.drop_index("ix_points_ledger_grid_id")
        batch.drop_constraint("fk_points_ledger_grid_id_grids", type_="foreignkey")
        batch.drop_column("note")
        batch.drop_column("grid_id")

    with op.batch_alter_table("signups") as batch:
        batch.drop_constraint("fk_signups_attendance_by_people", type_="foreignkey")
        for column in (
            "updated_at",
            "attendance_by",
            "attended_minutes",
            "checkout_distance_m",
            "checkin_distance_m",
            "promoted_at",
            "queued_at",
        ):
            batch.drop_column(column)

    with op.batch_alter_table("activities") as batch:
        batch.drop_index("uq_activities_series_slot")
        batch.drop_index("ix_activities_ends_at")
    # Dropping the columns of a referenced table would rebuild it on SQLite (see above); each goes on its own.
    for column in (
        "updated_at",
        "settled_at",
        "cancelled_at",
        "cancel_reason",
        "revision",
        "series_slot",
        "checkin_radius_m",
        "points_cap",
    ):
        op.drop_column("activities", column)
