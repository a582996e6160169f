"""Inbound WeChat messages and events, stored raw before anything else happens."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import JSONType, UTCDateTime, empty_list, utcnow


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
    # The passive reply we answered with; a WeChat retry of the same message gets exactly this again.
    reply: str | None = Field(default=None)


class ReportDraft(SQLModel, table=True):
    """What a resident has sent so far for one report: text, photos, voice, place. One open draft per person."""

    __tablename__ = "report_drafts"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="people.id", index=True)
    channel: str = Field(default="mp", max_length=16)
    status: str = Field(default="open", index=True, max_length=16, description="open | submitted | cancelled | expired")
    texts: list[str] = Field(default_factory=empty_list, sa_type=JSONType)
    voice_transcripts: list[str] = Field(default_factory=empty_list, sa_type=JSONType)
    media_ids: list[int] = Field(default_factory=empty_list, sa_type=JSONType)
    lng: float | None = Field(default=None)
    lat: float | None = Field(default=None)
    address: str | None = Field(default=None, max_length=500)
    case_id: int | None = Field(default=None, foreign_key="cases.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class ServiceToken(SQLModel, table=True):
    """Access tokens of outside APIs, shared by every worker so they do not invalidate each other's."""

    __tablename__ = "service_tokens"

    key: str = Field(primary_key=True, max_length=128)
    value: str = Field(max_length=1024)
    expires_at: datetime = Field(sa_type=UTCDateTime)
