"""The points ledger (append-only entries; a balance is always a sum over them) and the 爱心超市 it pays into."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow

POINTS_SOURCES = ("activity", "report", "redemption", "manual")
REDEMPTION_STATES = ("pending", "handed_over", "cancelled")


class PointsEntry(SQLModel, table=True):
    __tablename__ = "points_ledger"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="people.id", index=True)
    delta: int
    reason: str = Field(max_length=200)
    source: str = Field(max_length=16, description="activity | report | redemption | manual")
    source_ref: str | None = Field(default=None, max_length=64)
    # Makes every award idempotent: one activity or report can never pay twice.
    idempotency_key: str = Field(unique=True, max_length=200)
    actor_id: int | None = Field(default=None, foreign_key="people.id")
    # Where the points were earned or spent (activity's, case's or item's grid): the leaderboards count by it.
    grid_id: int | None = Field(default=None, foreign_key="grids.id", index=True)
    note: str = Field(default="", max_length=500, description="an admin's note on a manual adjustment")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class RedemptionItem(SQLModel, table=True):
    """Something the 爱心超市 of a grid (usually a community) gives for points."""

    __tablename__ = "redemption_items"

    id: int | None = Field(default=None, primary_key=True)
    grid_id: int = Field(foreign_key="grids.id", index=True)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    price: int = Field(description="points per piece")
    stock: int = Field(description="pieces left; never below zero")
    active: bool = Field(default=True)
    created_by: int | None = Field(default=None, foreign_key="people.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Redemption(SQLModel, table=True):
    __tablename__ = "redemptions"

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="redemption_items.id", index=True)
    person_id: int = Field(foreign_key="people.id", index=True)
    quantity: int
    points: int = Field(description="points debited: the price then, times the quantity")
    status: str = Field(default="pending", max_length=16, description="pending | handed_over | cancelled")
    # The client's key for this request (a double tap redeems once); unique per person.
    idempotency_key: str = Field(unique=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    handed_over_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    handed_over_by: int | None = Field(default=None, foreign_key="people.id")
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_by: int | None = Field(default=None, foreign_key="people.id")
    cancel_reason: str | None = Field(default=None, max_length=500)
