"""People: residents, grid staff, operators, volunteers and admins, and how they authenticate."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import JSONType, UTCDateTime, empty_list, utcnow

ROLES = ("resident", "grid_worker", "grid_leader", "operator", "volunteer", "admin")


class Person(SQLModel, table=True):
    __tablename__ = "people"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=100)
    login: str | None = Field(default=None, unique=True, max_length=64)
    password_hash: str | None = Field(default=None, max_length=256)
    phone: str | None = Field(default=None, max_length=32)
    openid: str | None = Field(default=None, unique=True, max_length=64, description="official account openid")
    wxa_openid: str | None = Field(default=None, unique=True, max_length=64, description="mini-program openid")
    unionid: str | None = Field(default=None, index=True, max_length=64)
    roles: list[str] = Field(default_factory=empty_list, sa_type=JSONType)
    home_grid_id: int | None = Field(default=None, foreign_key="grids.id")
    active: bool = Field(default=True)
    subscribed: bool = Field(default=False, description="follows the official account now")
    # Customer-service messages may only be sent within 48 hours of the person's last message to us.
    last_interaction_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PersonGrid(SQLModel, table=True):
    """The grids a staff member serves, and in which capacity."""

    __tablename__ = "person_grids"

    person_id: int = Field(foreign_key="people.id", primary_key=True)
    grid_id: int = Field(foreign_key="grids.id", primary_key=True, index=True)
    role: str = Field(max_length=16, description="grid_worker | grid_leader")


class ApiToken(SQLModel, table=True):
    """Bearer tokens for the staff and mini-program API. Only a SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    person_id: int = Field(foreign_key="people.id", index=True)
    label: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
