"""Messages owed to WeChat, WeCom or a person, written in the same transaction as their cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.types import JSONType, UTCDateTime, empty_dict, utcnow


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32, description="wecom_robot | wechat_custom | wechat_template | ...")
    target: str = Field(max_length=200, description="robot key, openid, chat id …")
    payload: dict[str, Any] = Field(default_factory=empty_dict, sa_type=JSONType)
    # Makes enqueueing idempotent: a retried handler cannot owe the same message twice.
    dedupe_key: str = Field(unique=True, max_length=200)
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    status: str = Field(default="pending", index=True, max_length=16, description="pending | sent | failed")
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    last_error: str | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SchedulerLease(SQLModel, table=True):
    """Who runs the timers now. Held for a short time and renewed; a dead holder's lease simply expires."""

    __tablename__ = "scheduler_leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime = Field(sa_type=UTCDateTime)
