"""Admin actions: reload the classifier's keyword rules without a restart; see and retry failed deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from bot.api.schemas import ErrorBody
from bot.classification import ClassifierHolder
from bot.deps import CallerDep, ClockDep, SessionDep
from classifier.rules import RuleValidationError
from handlers.deliveries import Delivery, list_deliveries, retry_deliveries

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class RulesReloaded(BaseModel):
    keywords: int
    combos: int
    files: list[str]


class RulesRefused(ErrorBody):
    problems: list[str]


@router.post(
    "/classifier/reload",
    response_model=RulesReloaded,
    responses={403: {"model": ErrorBody}, 422: {"model": RulesRefused, "description": "rules invalid; old kept"}},
)
def reload_classifier(caller: CallerDep, request: Request) -> RulesReloaded:
    """Validate the rule files and use them from the next message on. Invalid rules leave the old ones in use."""
    if not caller.actor.has_any(("admin",)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={"error": "forbidden", "message": "admins only"})
    holder: ClassifierHolder = request.app.state.classifier
    try:
        model = holder.reload()
    except RuleValidationError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={"error": "invalid_rules", "message": str(exc.problems[0]), "problems": exc.problems},
        ) from None
    return RulesReloaded(keywords=len(model.rules.keywords), combos=len(model.rules.combos), files=model.rules.files)


class DeliveryPublic(BaseModel):
    id: int
    channel: str
    target: str = Field(description="robot key or openid, shortened")
    status: str
    attempts: int
    case_no: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    preview: str

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryPublic:
        return cls(**delivery.__dict__)


class RetryRequest(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=500)


def _desk_only(caller: CallerDep) -> None:
    if not caller.actor.has_any(("admin", "operator")):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail={"error": "forbidden", "message": "operators and admins only"}
        )


@router.get("/outbox", response_model=list[DeliveryPublic], responses={403: {"model": ErrorBody}})
def get_outbox(
    caller: CallerDep,
    session: SessionDep,
    status_: Literal["pending", "sent", "failed"] | None = Query(default=None, alias="status"),
    limit: int = Query(default=50, ge=1, le=500),
) -> list[DeliveryPublic]:
    """Messages owed to groups and people, newest first; `status=failed` lists what needs a person."""
    _desk_only(caller)
    return [DeliveryPublic.of(d) for d in list_deliveries(session, status_, limit)]


@router.post(
    "/outbox/retry",
    response_model=list[DeliveryPublic],
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
def retry_outbox(body: RetryRequest, caller: CallerDep, session: SessionDep, clock: ClockDep) -> list[DeliveryPublic]:
    """Send failed deliveries again (they go back to the queue with a fresh attempt count)."""
    _desk_only(caller)
    retried = retry_deliveries(session, body.ids, clock())
    session.commit()
    return [DeliveryPublic.of(d) for d in retried]
