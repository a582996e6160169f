"""The points ledger: append-only entries; a balance is always a sum over them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


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
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
