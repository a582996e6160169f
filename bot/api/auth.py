"""Logging in: staff with a password, residents through the mini-program's wx.login code; logout; who am I."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlmodel import select

from bot.api.presenters import user_public
from bot.api.schemas import ErrorBody, LoginRequest, TokenResponse, UserPublic
from bot.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from bot.gateway import WXA_CODE_REFUSED, WXA_USER_BLOCKED, Gateway, GatewayError
from handlers import texts
from handlers.people import check_password, issue_token, person_for_wxa, revoke_token
from models import Person

log = logging.getLogger("gridbot.api.auth")

router = APIRouter(prefix="/api/v1", tags=["auth"])


class WxaLoginRequest(BaseModel):
    code: str = Field(
        min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$", description="the code from wx.login() (used once)"
    )


class LoginRefused(ErrorBody):
    user_message: str = Field(description="what to show the resident, in Chinese")


def get_gateway(request: Request) -> Gateway:
    """The process's gateway to Tencent, made on first use (its HTTP connections are then reused)."""
    state = request.app.state
    gateway: Gateway | None = getattr(state, "gateway", None)
    if gateway is None:
        gateway = state.gateway = Gateway(state.settings, state.engine)
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


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


@router.post(
    "/auth/wxa-login",
    response_model=TokenResponse,
    responses={
        401: {"model": LoginRefused, "description": "WeChat refused the code (invalid, expired or already used)"},
        403: {"model": LoginRefused, "description": "the account is disabled, or WeChat blocks this user"},
        502: {"model": LoginRefused, "description": "WeChat refused our credentials (wxa.appid / wxa.secret)"},
        503: {
            "model": LoginRefused,
            "description": "WeChat is busy or did not answer (retry after Retry-After), "
            "or mini-program login is not configured",
        },
    },
)
def wxa_login(
    body: WxaLoginRequest, session: SessionDep, clock: ClockDep, settings: SettingsDep, gateway: GatewayDep
) -> TokenResponse:
    """Exchange a mini-program `wx.login()` code for a bearer token (jscode2session). The person is found by the
    mini-program openid, or by the unionid an official-account or staff account already has; otherwise a new
    resident. Roles are the account's own."""
    # No transaction is open during the call to WeChat: the session has not been used yet.
    try:
        identity = gateway.code_to_session(body.code)
    except GatewayError as exc:
        raise _login_refused(exc) from None
    now = clock()
    found = person_for_wxa(session, identity.openid, identity.unionid, now)
    person = found.person
    if not person.active:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail={
                "error": "forbidden",
                "message": "this account is disabled",
                "user_message": texts.WXA_ACCOUNT_DISABLED,
            },
        )
    token, expires_at = issue_token(session, person, now, timedelta(hours=settings.auth.token_ttl_hours), label="wxa")
    session.commit()
    log.info("mini-program login: person %s (%s)", person.id, found.outcome)
    return TokenResponse(token=token, expires_at=expires_at, user=user_public(session, person))


def _login_refused(exc: GatewayError) -> HTTPException:
    if exc.errcode in WXA_CODE_REFUSED:
        log.info("mini-program login refused: %s", exc)
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail={
                "error": "invalid_code",
                "message": f"WeChat refused the login code (errcode {exc.errcode}): it is invalid, expired or "
                "already used; call wx.login() for a new one",
                "user_message": texts.WXA_LOGIN_FAILED,
            },
        )
    if exc.errcode == WXA_USER_BLOCKED:
        log.info("mini-program login refused: %s", exc)
        return HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail={
                "error": "wechat_blocked_user",
                "message": "WeChat blocks this user as high-risk (errcode 40226)",
                "user_message": texts.WXA_ACCOUNT_BLOCKED,
            },
        )
    if exc.retryable:
        log.warning("mini-program login: WeChat unavailable: %s", exc)
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={
                "error": "wechat_unavailable",
                "message": f"WeChat could not check the code now ({exc}); retry later",
                "user_message": texts.WXA_LOGIN_BUSY,
            },
            headers={"Retry-After": "60" if exc.errcode == 45011 else "5"},  # 45011: per-minute quota
        )
    log.error("mini-program login impossible: %s", exc)  # our appid/secret or configuration: operators must act
    return HTTPException(
        status.HTTP_502_BAD_GATEWAY if exc.errcode is not None else status.HTTP_503_SERVICE_UNAVAILABLE,
        detail={
            "error": "wechat_refused",
            "message": f"mini-program login failed: {exc}",
            "user_message": texts.WXA_LOGIN_BUSY,
        },
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(caller: CallerDep, session: SessionDep, clock: ClockDep) -> None:
    """Revoke the token used for this call."""
    revoke_token(session, caller.token, clock())
    session.commit()


@router.get("/me", response_model=UserPublic)
def me(caller: CallerDep, session: SessionDep) -> UserPublic:
    return user_public(session, caller.person)
