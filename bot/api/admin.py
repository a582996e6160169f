"""Admin actions: reload the classifier's keyword rules without a restart."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel

from bot.api.schemas import ErrorBody
from bot.classification import ClassifierHolder
from bot.deps import CallerDep
from classifier.rules import RuleValidationError

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
