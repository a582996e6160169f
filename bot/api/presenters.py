"""Turning rows into the public shapes of bot.api.schemas."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from bot.api.schemas import CaseDetail, CaseEventPublic, CasePublic, GridPublic, ReportPublic, UserPublic
from handlers.access import Actor, roles_on_case
from handlers.cases import case_events
from handlers.lifecycle import actions_for
from handlers.people import grid_codes_served, mask_phone
from models import Case, Grid, Person, Report

AWAITING_ACCEPT = {"dispatched", "transferred", "escalated", "reopened"}
AWAITING_RESOLVE = {"taken", "in_progress"}


def user_public(session: Session, person: Person) -> UserPublic:
    assert person.id is not None
    return UserPublic(
        id=person.id,
        name=person.name,
        login=person.login,
        roles=person.roles,
        grids=grid_codes_served(session, person),
        phone=mask_phone(person.phone),
    )


def grid_public(grid: Grid, parents: dict[int, Grid] | None = None) -> GridPublic:
    parent = None
    if grid.parent_id is not None and parents is not None and grid.parent_id in parents:
        parent = parents[grid.parent_id].code
    return GridPublic(code=grid.code, name=grid.name, level=grid.level, kind=grid.kind, parent=parent)


def is_overdue(case: Case, now: datetime) -> bool:
    if case.status in AWAITING_ACCEPT and case.accept_deadline is not None:
        return case.accept_deadline < now
    if case.status in AWAITING_RESOLVE and case.resolve_deadline is not None:
        return case.resolve_deadline < now
    return False


def cases_public(session: Session, cases: list[Case], now: datetime) -> list[CasePublic]:
    grid_ids = {c.grid_id for c in cases if c.grid_id is not None}
    grids = {g.id: g for g in session.exec(select(Grid).where(col(Grid.id).in_(grid_ids))).all()} if grid_ids else {}
    parent_ids = {g.parent_id for g in grids.values() if g.parent_id is not None}
    parents = {g.id: g for g in session.exec(select(Grid).where(col(Grid.id).in_(parent_ids))).all()}
    person_ids = {c.assignee_id for c in cases if c.assignee_id is not None}
    names = dict(session.exec(select(Person.id, Person.name).where(col(Person.id).in_(person_ids))).all())
    merged_ids = {c.merged_into_id for c in cases if c.merged_into_id is not None}
    merged = dict(session.exec(select(Case.id, Case.case_no).where(col(Case.id).in_(merged_ids))).all())
    out = []
    for case in cases:
        grid = grids.get(case.grid_id) if case.grid_id is not None else None
        out.append(
            CasePublic(
                **case.model_dump(
                    include={
                        "case_no",
                        "status",
                        "category",
                        "subcategory",
                        "urgency",
                        "priority",
                        "needs_review",
                        "review_reason",
                        "escalation_level",
                        "cosign_count",
                        "rating",
                        "reopen_count",
                        "accept_deadline",
                        "resolve_deadline",
                        "created_at",
                        "updated_at",
                        "accepted_at",
                        "dispatched_at",
                        "taken_at",
                        "in_progress_at",
                        "resolved_at",
                        "rated_at",
                        "closed_at",
                    }
                ),
                grid=grid_public(grid, parents) if grid else None,
                assignee=names.get(case.assignee_id) if case.assignee_id is not None else None,
                merged_into=merged.get(case.merged_into_id) if case.merged_into_id is not None else None,
                overdue=is_overdue(case, now),
            )
        )
    return out


def case_detail(session: Session, case: Case, actor: Actor, now: datetime) -> CaseDetail:
    events = case_events(session, case)
    staff_view = bool(roles_on_case(actor, case) - {"resident"})
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    names = dict(session.exec(select(Person.id, Person.name).where(col(Person.id).in_(actor_ids))).all())
    report = session.get(Report, case.report_id) if case.report_id is not None else None
    return CaseDetail(
        case=cases_public(session, [case], now)[0],
        report=ReportPublic.model_validate(report, from_attributes=True) if report else None,
        events=[
            CaseEventPublic(
                seq=e.seq,
                action=e.action,
                from_status=e.from_status,
                to_status=e.to_status,
                actor=(names.get(e.actor_id) if e.actor_id is not None else "system") if staff_view else None,
                actor_role=e.actor_role,
                note=e.note,
                attachments=e.attachments,
                data=e.data if staff_view else {},
                created_at=e.created_at,
                hash=e.hash,
            )
            for e in events
        ],
        actions=actions_for(actor, case),
    )
