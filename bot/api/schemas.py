"""What the API shows: public shapes of cases, events and people, never raw table rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from handlers.lifecycle import ACTIONS


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. invalid_transition")
    message: str = Field(description="precise English description")


class TransitionRefused(ErrorBody):
    current_state: str
    allowed: list[dict[str, str]] = Field(description="actions possible from the current state: {action, to}")


class LoginRequest(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class UserPublic(BaseModel):
    id: int
    name: str
    login: str | None
    roles: list[str]
    grids: list[str] = Field(description="codes of the grids this person serves")
    phone: str | None = Field(description="masked, e.g. 138****1234")


class TokenResponse(BaseModel):
    token: str
    expires_at: datetime
    user: UserPublic


class GridPublic(BaseModel):
    code: str
    name: str
    level: str
    kind: str
    parent: str | None


class ReportPublic(BaseModel):
    channel: str
    text: str
    voice_transcript: str | None
    address: str | None
    lng: float | None
    lat: float | None
    crs: str
    is_report: bool
    category: str | None
    subcategory: str | None
    confidence: float | None
    urgent: bool
    keywords: list[str]
    alternatives: list[dict[str, Any]]
    created_at: datetime


class CasePublic(BaseModel):
    case_no: str
    status: str
    category: str | None
    subcategory: str | None
    urgency: str
    priority: int
    grid: GridPublic | None
    assignee: str | None = Field(description="name of the grid worker who took the case")
    needs_review: bool
    review_reason: str | None
    escalation_level: int
    cosign_count: int
    merged_into: str | None
    rating: int | None
    reopen_count: int
    accept_deadline: datetime | None
    resolve_deadline: datetime | None
    overdue: bool
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None
    dispatched_at: datetime | None
    taken_at: datetime | None
    in_progress_at: datetime | None
    resolved_at: datetime | None
    rated_at: datetime | None
    closed_at: datetime | None


class CaseEventPublic(BaseModel):
    seq: int
    action: str
    from_status: str | None
    to_status: str
    actor: str | None = Field(description="the actor's name; hidden from residents")
    actor_role: str
    note: str
    attachments: list[Any]
    data: dict[str, Any]
    created_at: datetime
    hash: str


class CaseDetail(BaseModel):
    case: CasePublic
    report: ReportPublic | None
    events: list[CaseEventPublic]
    actions: list[str] = Field(description="actions the caller may take now")


class CaseList(BaseModel):
    items: list[CasePublic]
    total: int
    limit: int
    offset: int


class CaseCreate(BaseModel):
    """A case registered at the desk (a phone call, a walk-in), by an operator."""

    text: str = Field(min_length=2, max_length=2000)
    subcategory: str | None = Field(default=None, pattern=r"^[A-H]\d{2}$")
    urgency: str = Field(default="normal", pattern="^(normal|urgent)$")
    address: str | None = Field(default=None, max_length=500)
    lng: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)


class ActionRequest(BaseModel):
    note: str = Field(default="", max_length=2000)
    attachments: list[str] = Field(default_factory=list, max_length=9, description="media keys or URLs")
    grid_code: str | None = Field(default=None, description="dispatch / transfer: the grid the case goes to")
    assignee_login: str | None = Field(default=None, description="dispatch: a specific grid worker")
    rating: int | None = Field(default=None, ge=1, le=5, description="rate: 1 (very unhappy) … 5 (very happy)")
    merge_into: str | None = Field(default=None, description="merge: the case this one duplicates")


class NoteRequest(BaseModel):
    note: str = Field(default="", max_length=2000)
    attachments: list[str] = Field(default_factory=list, max_length=9)


ACTION_DOC = ", ".join(ACTIONS)
