"""The case lifecycle over HTTP: list, detail with history, desk intake, one endpoint per action."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from bot.api.presenters import case_detail, cases_public
from bot.api.schemas import (
    ActionRequest,
    CaseCreate,
    CaseDetail,
    CaseList,
    ErrorBody,
    NoteRequest,
    TransitionRefused,
)
from bot.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from bot.sla import announcer, sla_policy
from handlers.access import ensure_can_see
from handlers.cases import ActionInput, CaseFilter, act_on_case, add_note, get_case, list_cases, open_case
from handlers.lifecycle import ACTIONS, Status
from handlers.people import get_person_by_login
from models import Report

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])

CaseAction = StrEnum("CaseAction", {name: name for name in ACTIONS})  # type: ignore[misc]
CaseStatus = StrEnum("CaseStatus", {s.value: s.value for s in Status})  # type: ignore[misc]

REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    403: {"model": ErrorBody, "description": "the caller may not see or act on this case"},
    404: {"model": ErrorBody, "description": "no such case"},
    422: {"model": ErrorBody, "description": "missing or invalid input for the action"},
}


@router.get("", response_model=CaseList, responses=REFUSALS)
def get_cases(
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    status_: Annotated[list[CaseStatus] | None, Query(alias="status")] = None,
    subcategory: str | None = None,
    category: str | None = None,
    grid: Annotated[str | None, Query(description="grid code")] = None,
    urgency: Annotated[str | None, Query(pattern="^(normal|urgent)$")] = None,
    created_from: Annotated[date | None, Query(alias="from", description="first local day, e.g. 2026-11-01")] = None,
    created_to: Annotated[date | None, Query(alias="to", description="last local day, inclusive")] = None,
    needs_review: bool | None = None,
    overdue: bool = False,
    q: Annotated[str | None, Query(max_length=100, description="text the report contains")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CaseList:
    """Cases the caller may see: operators all, grid staff their grids and those below, residents their own."""
    if not (caller.actor.is_global or caller.actor.has_any(("grid_worker", "grid_leader", "resident"))):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail={"error": "forbidden", "message": "this account sees no cases"}
        )
    zone = settings.zone
    now = clock()
    filters = CaseFilter(
        status=tuple(s.value for s in status_ or ()),
        subcategory=subcategory,
        category=category,
        grid_code=grid,
        urgency=urgency,
        created_from=datetime.combine(created_from, time(), tzinfo=zone) if created_from else None,
        created_to=datetime.combine(created_to + timedelta(days=1), time(), tzinfo=zone) if created_to else None,
        needs_review=needs_review,
        overdue_at=now if overdue else None,
        text=q,
    )
    rows, total = list_cases(session, caller.actor, filters, limit=limit, offset=offset)
    return CaseList(items=cases_public(session, rows, now), total=total, limit=limit, offset=offset)


@router.post("", response_model=CaseDetail, status_code=status.HTTP_201_CREATED, responses=REFUSALS)
def create_case(
    body: CaseCreate, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> CaseDetail:
    """Register a case at the desk (phone call, walk-in). Operators and admins only; it starts as `reported`."""
    if not caller.actor.has_any(("operator", "admin")):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail={"error": "forbidden", "message": "only operators and admins register cases at the desk"},
        )
    now = clock()
    report = Report(
        person_id=None,
        channel="console",
        text=body.text.strip(),
        address=body.address,
        lng=body.lng,
        lat=body.lat,
        subcategory=body.subcategory,
        category=body.subcategory[0] if body.subcategory else None,
        urgent=body.urgency == "urgent",
        created_at=now,
    )
    session.add(report)
    case = open_case(session, report, now, settings.zone, actor=caller.actor, urgency=body.urgency)
    session.commit()
    return case_detail(session, case, caller.actor, now)


@router.get("/{case_no}", response_model=CaseDetail, responses=REFUSALS)
def get_case_detail(case_no: str, caller: CallerDep, session: SessionDep, clock: ClockDep) -> CaseDetail:
    """A case with its report and its whole event history, oldest first."""
    case = get_case(session, case_no)
    ensure_can_see(caller.actor, case)
    return case_detail(session, case, caller.actor, clock())


@router.post(
    "/{case_no}/actions/{action}",
    response_model=CaseDetail,
    responses={**REFUSALS, 409: {"model": TransitionRefused, "description": "not allowed from the current state"}},
)
def post_action(
    case_no: str,
    action: CaseAction,
    body: ActionRequest,
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> CaseDetail:
    """Move a case along the lifecycle (see docs/lifecycle.md). Refused actions change nothing (409 / 403)."""
    now = clock()
    assignee_id = get_person_by_login(session, body.assignee_login).id if body.assignee_login else None
    case = act_on_case(
        session,
        case_no,
        action.value,
        caller.actor,
        now,
        sla_policy(settings),
        ActionInput(
            note=body.note,
            attachments=tuple(body.attachments),
            grid_code=body.grid_code,
            assignee_id=assignee_id,
            rating=body.rating,
            merge_into=body.merge_into,
        ),
        announcer=announcer(settings),
    )
    session.commit()
    return case_detail(session, case, caller.actor, now)


@router.post("/{case_no}/notes", response_model=CaseDetail, responses=REFUSALS)
def post_note(case_no: str, body: NoteRequest, caller: CallerDep, session: SessionDep, clock: ClockDep) -> CaseDetail:
    """Add a note or photos to the record without changing the state."""
    now = clock()
    case = add_note(session, case_no, caller.actor, now, body.note, list(body.attachments))
    session.commit()
    return case_detail(session, case, caller.actor, now)
