"""Staff login with a password, logout, and who am I."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, status
from sqlmodel import select

from bot.api.presenters import user_public
from bot.api.schemas import ErrorBody, LoginRequest, TokenResponse, UserPublic
from bot.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from handlers.people import check_password, issue_token, revoke_token
from models import Person

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/login", response_model=TokenResponse, responses={401: {"model": ErrorBody}})
def login(body: LoginRequest, session: SessionDep, clock: ClockDep, settings: SettingsDep) -> TokenResponse:
    """Exchange a staff login and password for a bearer token."""
    person = session.exec(select(Person).where(Person.login == body.login)).first()
    if person is None or not person.active or not check_password(body.password, person.password_hash):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail={"error": "unauthorized", "message": "wrong login or password"}
        )
    token, expires_at = issue_token(
        session, person, clock(), timedelta(hours=settings.auth.token_ttl_hours), label="password"
    )
    session.commit()
    return TokenResponse(token=token, expires_at=expires_at, user=user_public(session, person))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(caller: CallerDep, session: SessionDep, clock: ClockDep) -> None:
    """Revoke the token used for this call."""
    revoke_token(session, caller.token, clock())
    session.commit()


@router.get("/me", response_model=UserPublic)
def me(caller: CallerDep, session: SessionDep) -> UserPublic:
    return user_public(session, caller.person)
