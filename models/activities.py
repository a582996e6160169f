"""Volunteer activities posted by grid leaders, the series they repeat in, and the sign-ups for them.

One table holds both: an occurrence has `recurrence` NULL; a series is a row with a cron expression in
`recurrence` whose fields are the template of every occurrence it generates (its `starts_at` is its first slot,
`ends_at - starts_at` the length of each occurrence, `starts_at - signup_deadline` how long before each start
sign-up closes). Occurrences point at their series by `series_id` and keep the slot they were generated for in
`series_slot` (unchanged when a leader moves one): (series_id, series_slot) is unique, so generating twice
creates nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow

ACTIVITY_STATES = ("published", "cancelled")  # a series: published = generating, cancelled = stopped
SIGNUP_STATES = ("confirmed", "waitlisted", "cancelled", "attended", "no_show")


class Activity(SQLModel, table=True):
    __tablename__ = "activities"
    __table_args__ = (Index("uq_activities_series_slot", "series_id", "series_slot", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    grid_id: int = Field(foreign_key="grids.id", index=True)
    title: str = Field(max_length=200)
    description: str = Field(default="")
    place: str = Field(default="", max_length=200)
    # The meeting point, GCJ-02 (what the mini-program's map and wx.getLocation give); the check-in geofence.
    lng: float | None = Field(default=None)
    lat: float | None = Field(default=None)
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime, index=True)
    signup_deadline: datetime = Field(sa_type=UTCDateTime)
    capacity: int
    # Points rule: points_per_hour for the minutes attended inside the time window, at most points_cap.
    points_per_hour: int = Field(default=2)
    points_cap: int | None = Field(default=None)
    checkin_radius_m: int = Field(default=300)
    status: str = Field(default="published", max_length=16, description="published | cancelled")
    recurrence: str | None = Field(default=None, max_length=64, description="cron expression of a series")
    series_id: int | None = Field(default=None, foreign_key="activities.id")
    series_slot: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revision: int = Field(default=0, description="bumped by every change; names the change's group post")
    cancel_reason: str | None = Field(default=None, max_length=500)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the no-shows were recorded and open attendances paid, after the end and its grace period.
    settled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: int | None = Field(default=None, foreign_key="people.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Signup(SQLModel, table=True):
    """One person on one activity. Cancelling and signing up again reuses the row (back of the queue)."""

    __tablename__ = "signups"
    __table_args__ = (UniqueConstraint("activity_id", "person_id", name="uq_signups_activity_person"),)

    id: int | None = Field(default=None, primary_key=True)
    activity_id: int = Field(foreign_key="activities.id", index=True)
    person_id: int = Field(foreign_key="people.id", index=True)
    status: str = Field(max_length=16, description="confirmed | waitlisted | cancelled | attended | no_show")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Waiting lists are served oldest first by this (then id): the moment of the latest sign-up.
    queued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    promoted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checkin_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checkout_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checkin_distance_m: float | None = Field(default=None)
    checkout_distance_m: float | None = Field(default=None)
    attended_minutes: int | None = Field(default=None)
    attendance_by: int | None = Field(default=None, foreign_key="people.id", description="leader who confirmed")
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
