"""Volunteer activities posted by grid leaders, and the sign-ups for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class Activity(SQLModel, table=True):
    __tablename__ = "activities"

    id: int | None = Field(default=None, primary_key=True)
    grid_id: int = Field(foreign_key="grids.id", index=True)
    title: str = Field(max_length=200)
    description: str = Field(default="")
    place: str = Field(default="", max_length=200)
    lng: float | None = Field(default=None)
    lat: float | None = Field(default=None)
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    signup_deadline: datetime = Field(sa_type=UTCDateTime)
    capacity: int
    points_per_hour: int = Field(default=2)
    status: str = Field(default="published", max_length=16, description="draft | published | cancelled")
    recurrence: str | None = Field(default=None, max_length=64, description="cron expression of a series")
    series_id: int | None = Field(default=None, foreign_key="activities.id")
    created_by: int | None = Field(default=None, foreign_key="people.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Signup(SQLModel, table=True):
    __tablename__ = "signups"
    __table_args__ = (UniqueConstraint("activity_id", "person_id", name="uq_signups_activity_person"),)

    id: int | None = Field(default=None, primary_key=True)
    activity_id: int = Field(foreign_key="activities.id", index=True)
    person_id: int = Field(foreign_key="people.id", index=True)
    status: str = Field(max_length=16, description="confirmed | waitlisted | cancelled | attended | no_show")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checkin_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checkout_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
