"""Cases (one per accepted report), their append-only event history and the daily number counter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import JSONType, UTCDateTime, empty_dict, empty_list, utcnow


class Case(SQLModel, table=True):
    __tablename__ = "cases"

    id: int | None = Field(default=None, primary_key=True)
    case_no: str = Field(unique=True, max_length=32, description="e.g. 20261122-0001, per Beijing day")
    report_id: int | None = Field(default=None, foreign_key="reports.id", index=True)
    reporter_id: int | None = Field(default=None, foreign_key="people.id", index=True)
    status: str = Field(default="reported", index=True, max_length=16)
    category: str | None = Field(default=None, max_length=4)
    subcategory: str | None = Field(default=None, index=True, max_length=8)
    urgency: str = Field(default="normal", max_length=8, description="normal | urgent")
    priority: int = Field(default=0, description="higher first; raised by urgency and co-signs")
    grid_id: int | None = Field(default=None, foreign_key="grids.id", index=True)
    assignee_id: int | None = Field(default=None, foreign_key="people.id", index=True)
    needs_review: bool = Field(default=False, description="waits in the operators' queue")
    review_reason: str | None = Field(default=None, max_length=200)
    escalation_level: int = Field(default=0)
    merged_into_id: int | None = Field(default=None, foreign_key="cases.id")
    cosign_count: int = Field(default=0)
    rating: int | None = Field(default=None, description="1..5 from the resident")
    reopen_count: int = Field(default=0)
    accept_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolve_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the group is reminded of a deadline (a share of the way to it); cleared once the reminder is owed.
    accept_remind_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    resolve_remind_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # Overdue resolution climbs the grid chain (督办): level reached and when the next level is told.
    supervision_level: int = Field(default=0)
    next_supervision_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # 挂起: while suspended the deadlines are cleared and what was left of them is kept here, in the minutes
    # that count for the case's urgency (working or clock time), to be given back on resumption.
    suspended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    accept_left_minutes: float | None = Field(default=None)
    resolve_left_minutes: float | None = Field(default=None)
    # One timestamp per state reached (the latest time it was reached).
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    taken_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    in_progress_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Head of the event hash chain, so appending needs no scan of the history.
    last_event_seq: int = Field(default=0)
    last_event_hash: str = Field(default="", max_length=64)


class CaseEvent(SQLModel, table=True):
    """One step in a case's history. Never updated or deleted; chained by hash for tamper evidence."""

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_case_events_case_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    seq: int
    action: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    actor_id: int | None = Field(default=None, foreign_key="people.id")
    actor_role: str = Field(max_length=16)
    note: str = Field(default="")
    attachments: list[Any] = Field(default_factory=empty_list, sa_type=JSONType)
    data: dict[str, Any] = Field(default_factory=empty_dict, sa_type=JSONType)
    created_at: datetime = Field(sa_type=UTCDateTime)
    prev_hash: str = Field(default="", max_length=64)
    hash: str = Field(max_length=64)


class CaseCounter(SQLModel, table=True):
    """Last case number handed out per Beijing calendar day; bumped by one atomic upsert."""

    __tablename__ = "case_counters"

    day: str = Field(primary_key=True, max_length=8)
    last: int = Field(default=0)
