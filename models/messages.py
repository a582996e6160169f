"""Inbound WeChat messages and events, stored raw before anything else happens."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class InboundMessage(SQLModel, table=True):
    __tablename__ = "inbound_messages"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(default="mp", max_length=16)
    # MsgId for messages; sender + CreateTime + event for events. WeChat retries reuse it.
    dedupe_key: str = Field(unique=True, max_length=160)
    openid: str = Field(index=True, max_length=64)
    msg_type: str = Field(max_length=32)
    event: str | None = Field(default=None, max_length=64)
    msg_id: str | None = Field(default=None, max_length=64)
    wx_create_time: int = Field(default=0)
    raw: str
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: str = Field(default="new", max_length=16, description="new | processed | failed")
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None)
