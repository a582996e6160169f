"""Reports (what a resident said, with media and place) and the media files attached to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.types import JSONType, UTCDateTime, empty_list, utcnow


class Report(SQLModel, table=True):
    __tablename__ = "reports"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int | None = Field(default=None, foreign_key="people.id", index=True)
    channel: str = Field(max_length=16, description="mp | wxa | console | api")
    text: str = Field(default="")
    voice_transcript: str | None = Field(default=None)
    # The point as the client gave it, and its CRS (WeChat and the mini-program give GCJ-02).
    lng: float | None = Field(default=None)
    lat: float | None = Field(default=None)
    crs: str = Field(default="gcj02", max_length=8)
    address: str | None = Field(default=None, max_length=500)
    place_hint: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    # Classifier result, kept as it was at submission time.
    is_report: bool = Field(default=True)
    category: str | None = Field(default=None, max_length=4)
    subcategory: str | None = Field(default=None, max_length=8)
    confidence: float | None = Field(default=None)
    urgent: bool = Field(default=False)
    keywords: list[str] = Field(default_factory=empty_list, sa_type=JSONType)
    alternatives: list[dict[str, Any]] = Field(default_factory=empty_list, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Media(SQLModel, table=True):
    __tablename__ = "media"

    id: int | None = Field(default=None, primary_key=True)
    report_id: int | None = Field(default=None, foreign_key="reports.id", index=True)
    case_event_id: int | None = Field(default=None, foreign_key="case_events.id", index=True)
    kind: str = Field(max_length=16, description="image | voice | video")
    source: str = Field(default="upload", max_length=16, description="wechat | upload")
    wechat_media_id: str | None = Field(default=None, max_length=128)
    path: str | None = Field(default=None, max_length=500, description="key in the media store")
    content_type: str | None = Field(default=None, max_length=64)
    size_bytes: int | None = Field(default=None)
    sha256: str | None = Field(default=None, max_length=64)
    width: int | None = Field(default=None)
    height: int | None = Field(default=None)
    status: str = Field(default="pending", max_length=16, description="pending | stored | missing")
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_error: str | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
