"""FastAPI dependencies: settings, clock, a database session per request, the authenticated actor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from bot.config import Settings
from handlers.access import Actor, load_actor
from handlers.people import person_for_token
from models import Person
from models.db import new_session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock


def get_session(request: Request) -> Iterator[Session]:
    """One session per request. Routes commit explicitly; anything not committed is rolled back here."""
    session = new_session(request.app.state.engine)
    try:
        yield session
    finally:
        session.rollback()
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Callable[[], datetime], Depends(get_clock)]
SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/login or auth/wxa-login")


@dataclass(frozen=True)
class Caller:
    person: Person
    actor: Actor
    token: str


def get_caller(
    session: SessionDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail={"error": "unauthorized", "message": "missing bearer token"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    person = person_for_token(session, credentials.credentials, clock())
    if person is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail={"error": "unauthorized", "message": "token is unknown, expired or revoked"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Caller(person=person, actor=load_actor(session, person), token=credentials.credentials)


CallerDep = Annotated[Caller, Depends(get_caller)]
