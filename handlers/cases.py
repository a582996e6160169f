"""Opening cases and acting on them: numbering, deadlines, grid moves, merges, ratings, queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import SYSTEM, Actor, ensure_can_see, roles_on_case
from handlers.announce import Announcer, announce_move
from handlers.audit import append_event, chain_event
from handlers.errors import Forbidden, InvalidInput, NotFound
from handlers.lifecycle import (
    ACTIONS,
    AWAITING_TAKE,
    OPEN_WORK,
    SIDE_ACTIONS,
    Status,
    advance,
    find_side_action,
    find_transition,
    record_transition,
)
from handlers.notify import tell_person
from handlers.points import award_report_points
from handlers.sla import (
    SlaPolicy,
    resume_clocks,
    start_accept_clock,
    start_resolve_clock,
    stop_clocks,
    suspend_clocks,
)
from models import Case, CaseCounter, CaseEvent, Grid, Person, Report
from models.db import execute_core, insert_id
from models.types import table_of

URGENCIES = ("normal", "urgent")


def _counter_bump(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(CaseCounter)
        .values(day=bindparam("day"), last=1)
        .on_conflict_do_update(index_elements=["day"], set_={"last": col(CaseCounter.last) + 1})
        .returning(col(CaseCounter.last))
    )


_COUNTER_BUMP = {dialect: _counter_bump(dialect) for dialect in ("sqlite", "postgresql")}


def next_case_no(session: Session, now: datetime, zone: ZoneInfo) -> str:
    """`YYYYMMDD-NNNN` by the local calendar day; one atomic upsert, so concurrent callers never collide."""
    day = now.astimezone(zone).strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    number = execute_core(session, _COUNTER_BUMP["postgresql" if dialect == "postgresql" else "sqlite"], {"day": day})
    return f"{day}-{number.scalar_one():04d}"


def new_case(
    session: Session,
    *,
    report_id: int,
    reporter_id: int | None,
    channel: str,
    category: str | None,
    subcategory: str | None,
    urgent: bool,
    now: datetime,
    zone: ZoneInfo,
    actor: Actor = SYSTEM,
    urgency: str | None = None,
) -> tuple[Case, CaseEvent]:
    """A numbered case in state `reported` and its first event, in memory: `open_case` adds them to the session,
    `insert_new_case` inserts them with Core statements. Only the number is taken from the database."""
    urgency = urgency or ("urgent" if urgent else "normal")
    if urgency not in URGENCIES:
        raise InvalidInput(f"urgency must be one of {', '.join(URGENCIES)}, not {urgency!r}")
    case = Case(
        case_no=next_case_no(session, now, zone),
        report_id=report_id,
        reporter_id=reporter_id,
        status=Status.REPORTED.value,
        category=category,
        subcategory=subcategory,
        urgency=urgency,
        priority=1 if urgency == "urgent" else 0,
        created_at=now,
        updated_at=now,
    )
    first = chain_event(
        case,
        action="report",
        from_status=None,
        to_status=case.status,
        actor=actor,
        actor_role=_creator_role(actor),
        now=now,
        data={"channel": channel, "report_id": report_id},
    )
    return case, first


def open_case(
    session: Session,
    report: Report,
    now: datetime,
    zone: ZoneInfo,
    *,
    actor: Actor = SYSTEM,
    urgency: str | None = None,
) -> Case:
    """Create the case for a stored report, in state `reported`, with its first event."""
    if report.id is None:
        session.add(report)
        session.flush()
    assert report.id is not None
    case, first = new_case(
        session,
        report_id=report.id,
        reporter_id=report.person_id,
        channel=report.channel,
        category=report.category,
        subcategory=report.subcategory,
        urgent=report.urgent,
        now=now,
        zone=zone,
        actor=actor,
        urgency=urgency,
    )
    session.add(case)
    session.flush()
    assert case.id is not None
    first.case_id = case.id
    session.add(first)
    return case


class GridRef(Protocol):
    """A grid as a row (models.Grid) or as the few values routing found (handlers.routing.PlacedGrid)."""

    @property
    def id(self) -> int | None: ...
    @property
    def code(self) -> str: ...


def dispatch_new_case(case: Case, grid: GridRef, now: datetime, sla: SlaPolicy, note: str) -> list[CaseEvent]:
    """accept + dispatch by the system of a case still in memory (a clear, located report from the chat): the
    same transitions, checks and event data as `act_on_case` gives them, without reading the case back."""
    ensure_can_see(SYSTEM, case)
    accept, role = find_transition(case, "accept", SYSTEM)
    events = [advance(case, accept, SYSTEM, role, now)]
    ensure_can_see(SYSTEM, case)
    dispatch, role = find_transition(case, "dispatch", SYSTEM)
    data = _dispatch_data(case, grid, None, SYSTEM, now, sla, ActionInput(grid_code=grid.code, note=note))
    events.append(advance(case, dispatch, SYSTEM, role, now, note=note.strip(), data=data))
    return events


_CASES = table_of(Case)
_EVENTS = table_of(CaseEvent)
_INSERT_CASE = insert(_CASES)
_INSERT_EVENTS = insert(_EVENTS)
_CASE_COLUMNS = tuple(c.name for c in _CASES.c if c.name != "id")
_EVENT_COLUMNS = tuple(c.name for c in _EVENTS.c if c.name != "id")


def insert_new_case(session: Session, case: Case, events: list[CaseEvent]) -> None:
    """Insert a case built in memory and its events: one INSERT and one executemany, no ORM flush. The objects
    stay outside the session (read them, do not change them expecting a write)."""
    case.id = insert_id(session, _INSERT_CASE, {name: getattr(case, name) for name in _CASE_COLUMNS})
    for event in events:
        event.case_id = case.id
    execute_core(session, _INSERT_EVENTS, [{name: getattr(e, name) for name in _EVENT_COLUMNS} for e in events])


def _creator_role(actor: Actor) -> str:
    for role in ("system", "operator", "admin", "grid_leader", "grid_worker", "resident"):
        if role in actor.roles:
            return role
    return "resident"


def get_case(session: Session, case_no: str) -> Case:
    case = session.exec(select(Case).where(Case.case_no == case_no)).first()
    if case is None:
        raise NotFound(f"no case numbered {case_no}", case_no=case_no)
    return case


def get_case_for_update(session: Session, case_no: str) -> Case:
    """Row-locked read (PostgreSQL FOR UPDATE; SQLite is already serialised by BEGIN IMMEDIATE)."""
    case = session.exec(select(Case).where(Case.case_no == case_no).with_for_update()).first()
    if case is None:
        raise NotFound(f"no case numbered {case_no}", case_no=case_no)
    return case


def get_grid_by_code(session: Session, code: str) -> Grid:
    grid = session.exec(select(Grid).where(Grid.code == code)).first()
    if grid is None:
        raise InvalidInput(f"no grid with code {code!r}", grid_code=code)
    return grid


@dataclass(frozen=True)
class ActionInput:
    note: str = ""
    attachments: tuple[Any, ...] = ()
    grid_code: str | None = None  # dispatch, transfer
    assignee_id: int | None = None  # dispatch
    rating: int | None = None  # rate
    merge_into: str | None = None  # merge


def act_on_case(
    session: Session,
    case_no: str,
    action: str,
    actor: Actor,
    now: datetime,
    sla: SlaPolicy,
    params: ActionInput | None = None,
    *,
    announcer: Announcer | None = None,
) -> Case:
    """Check visibility, validate the action's own inputs, set its side effects, then transition. With an
    announcer, a case that moves to a grid (dispatch, transfer, escalate) is posted to that grid's group."""
    params = params or ActionInput()
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action '{action}'; known actions: {', '.join(ACTIONS)}")
    case = get_case_for_update(session, case_no)
    ensure_can_see(actor, case)
    if action in SIDE_ACTIONS:
        return _act_aside(session, case, action, actor, now, sla, params)
    # Role and state are checked against the case as it is, before an action moves it to another grid.
    transition, role = find_transition(case, action, actor)
    if transition.needs_note and not params.note.strip():
        raise InvalidInput(f"{action} needs a note saying why")
    prepare = _PREPARE.get(action)
    data = prepare(session, case, actor, now, sla, params) if prepare is not None else {}
    record_transition(
        session,
        case,
        transition,
        actor,
        role,
        now,
        note=params.note.strip(),
        attachments=list(params.attachments),
        data=data,
    )
    finish = _FINISH.get(action)
    if finish is not None:
        finish(session, case, actor, role, now, params)
    if case.status not in OPEN_WORK:
        stop_clocks(case)
    if announcer is not None and action in MOVES:
        announce_move(session, announcer, case, action, data, now)
    return case


def _act_aside(
    session: Session, case: Case, action: str, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> Case:
    """挂起 / 恢复: the state stays, the clocks stop or run again; both are events in the history."""
    side, role = find_side_action(case, action, actor)
    if side.needs_note and not params.note.strip():
        raise InvalidInput(f"{action} needs a note saying why")
    if action == "suspend":
        data: dict[str, Any] = suspend_clocks(case, sla, now, awaiting_take=case.status in AWAITING_TAKE)
    else:
        data = resume_clocks(case, sla, now)
    append_event(
        session,
        case,
        action=action,
        from_status=case.status,
        to_status=case.status,
        actor=actor,
        actor_role=role,
        now=now,
        note=params.note.strip(),
        attachments=list(params.attachments),
        data=data,
    )
    case.updated_at = now
    session.add(case)
    return case


# Each preparer validates the action's inputs and returns the event's `data`. It runs after the state and role
# checks and may set fields on the case; if it raises, the caller's transaction is rolled back.


def _prepare_dispatch(
    session: Session, case: Case, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> dict[str, Any]:
    grid = get_grid_by_code(session, params.grid_code) if params.grid_code else None
    if grid is None and case.grid_id is None:
        raise InvalidInput("dispatch needs grid_code: the case has no grid yet")
    from_grid = _grid_code(session, case.grid_id) if grid is not None else None
    return _dispatch_data(case, grid, from_grid, actor, now, sla, params)


def _dispatch_data(
    case: Case,
    grid: GridRef | None,
    from_grid: str | None,
    actor: Actor,
    now: datetime,
    sla: SlaPolicy,
    params: ActionInput,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if grid is not None:
        if "grid_leader" in actor.roles and not actor.is_global and grid.id not in actor.grid_ids:
            raise Forbidden(f"grid {grid.code} is outside the grids this leader serves")
        data["from_grid"] = from_grid
        data["grid"] = grid.code
        case.grid_id = grid.id
    case.assignee_id = params.assignee_id
    case.needs_review = False
    if case.suspended_at is not None:  # a new dispatch starts fresh clocks
        stop_clocks(case)
        case.resolve_deadline = None
    start_accept_clock(case, sla, now)
    if case.resolve_deadline is None or case.status == Status.REOPENED:
        start_resolve_clock(case, sla, now)
    assert case.accept_deadline is not None and case.resolve_deadline is not None
    data["accept_deadline"] = case.accept_deadline.isoformat()
    data["resolve_deadline"] = case.resolve_deadline.isoformat()
    return data


def _prepare_transfer(
    session: Session, case: Case, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> dict[str, Any]:
    if not params.grid_code:
        raise InvalidInput("transfer needs grid_code: the grid the case goes to")
    grid = get_grid_by_code(session, params.grid_code)
    if grid.id == case.grid_id:
        raise InvalidInput(f"case {case.case_no} is already with grid {grid.code}")
    data = {"from_grid": _grid_code(session, case.grid_id), "grid": grid.code}
    case.grid_id = grid.id
    case.assignee_id = None
    case.dispatched_at = now
    _restart_accept_clock(case, sla, now)
    assert case.accept_deadline is not None
    data["accept_deadline"] = case.accept_deadline.isoformat()
    return data


def _restart_accept_clock(case: Case, sla: SlaPolicy, now: datetime) -> None:
    """Another grid must take the case now: a fresh acceptance clock, and the resolution clock runs again if a
    suspension had stopped it."""
    if case.suspended_at is not None:
        resume_clocks(case, sla, now)
    start_accept_clock(case, sla, now)


def _prepare_escalate(
    session: Session, case: Case, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> dict[str, Any]:
    grid = session.get(Grid, case.grid_id) if case.grid_id is not None else None
    parent = session.get(Grid, grid.parent_id) if grid is not None and grid.parent_id is not None else None
    data: dict[str, Any] = {"level": case.escalation_level + 1, "from_grid": grid.code if grid else None}
    if parent is not None:
        case.grid_id = parent.id
        data["grid"] = parent.code
    case.escalation_level += 1
    _restart_accept_clock(case, sla, now)
    assert case.accept_deadline is not None
    data["accept_deadline"] = case.accept_deadline.isoformat()
    return data


def _prepare_take(
    session: Session, case: Case, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> dict[str, Any]:
    case.assignee_id = actor.person_id
    return {}


def _prepare_rate(
    session: Session, case: Case, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> dict[str, Any]:
    if params.rating is None or not 1 <= params.rating <= 5:
        raise InvalidInput("rate needs rating, a whole number from 1 to 5")
    case.rating = params.rating
    return {"rating": params.rating}


def _prepare_reopen(
    session: Session, case: Case, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> dict[str, Any]:
    case.reopen_count += 1
    case.closed_at = None
    return {"reopen_count": case.reopen_count}


def _prepare_merge(
    session: Session, case: Case, actor: Actor, now: datetime, sla: SlaPolicy, params: ActionInput
) -> dict[str, Any]:
    if not params.merge_into:
        raise InvalidInput("merge needs merge_into: the number of the case this one duplicates")
    if params.merge_into == case.case_no:
        raise InvalidInput("a case cannot be merged into itself")
    target = get_case_for_update(session, params.merge_into)
    if target.status in (Status.MERGED, Status.INVALID):
        raise InvalidInput(f"case {target.case_no} is {target.status}; merge into the case it points to instead")
    case.merged_into_id = target.id
    return {"merged_into": target.case_no}


def _finish_merge(session: Session, case: Case, actor: Actor, role: str, now: datetime, params: ActionInput) -> None:
    target = get_case(session, params.merge_into or "")
    target.cosign_count += 1
    target.priority += 1
    target.updated_at = now
    append_event(
        session,
        target,
        action="cosign",
        from_status=target.status,
        to_status=target.status,
        actor=actor,
        actor_role=role,
        now=now,
        data={"case": case.case_no, "cosign_count": target.cosign_count},
    )


def _finish_resolve(session: Session, case: Case, actor: Actor, role: str, now: datetime, params: ActionInput) -> None:
    """The reporter hears of the result and is asked to rate it (反馈 → 评价)."""
    reporter = session.get(Person, case.reporter_id) if case.reporter_id is not None else None
    if reporter is not None:
        tell_person(
            session,
            reporter,
            texts.resolved_notice(case.case_no, params.note.strip()),
            now,
            dedupe_key=f"case:{case.id}:resolved:{case.last_event_seq}",
            case=case,
        )


_PREPARE = {
    "dispatch": _prepare_dispatch,
    "transfer": _prepare_transfer,
    "escalate": _prepare_escalate,
    "take": _prepare_take,
    "rate": _prepare_rate,
    "reopen": _prepare_reopen,
    "merge": _prepare_merge,
}
_FINISH = {
    "merge": _finish_merge,
    "resolve": _finish_resolve,
    "rate": award_report_points,
    "close": award_report_points,
}
MOVES = frozenset({"dispatch", "transfer", "escalate"})  # actions after which a grid's group is told


def add_note(session: Session, case_no: str, actor: Actor, now: datetime, note: str, attachments: list[Any]) -> Case:
    """A note or photos on the record, without a change of state. Anyone who can see the case may add one."""
    if not note.strip() and not attachments:
        raise InvalidInput("a note needs text or attachments")
    case = get_case_for_update(session, case_no)
    ensure_can_see(actor, case)
    role = sorted(roles_on_case(actor, case))[0]
    append_event(
        session,
        case,
        action="note",
        from_status=case.status,
        to_status=case.status,
        actor=actor,
        actor_role=role,
        now=now,
        note=note.strip(),
        attachments=attachments,
    )
    case.updated_at = now
    return case


def _grid_code(session: Session, grid_id: int | None) -> str | None:
    if grid_id is None:
        return None
    grid = session.get(Grid, grid_id)
    return grid.code if grid else None


@dataclass(frozen=True)
class CaseFilter:
    status: tuple[str, ...] = ()
    subcategory: str | None = None
    category: str | None = None
    grid_code: str | None = None
    urgency: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    needs_review: bool | None = None
    overdue_at: datetime | None = None  # only cases whose deadline passed before this instant
    text: str | None = None


def list_cases(
    session: Session, actor: Actor, filters: CaseFilter, *, limit: int = 50, offset: int = 0
) -> tuple[list[Case], int]:
    """Cases the actor may see, newest first, with the total count for paging."""
    query = select(Case)
    if not actor.is_global:
        clauses: list[Any] = []
        if actor.has_any(("grid_worker", "grid_leader")) and actor.grid_ids:
            clauses.append(col(Case.grid_id).in_(actor.grid_ids))
        if actor.person_id is not None:
            clauses.append(col(Case.reporter_id) == actor.person_id)
        query = query.where(or_(*clauses))
    if filters.status:
        query = query.where(col(Case.status).in_(filters.status))
    if filters.subcategory:
        query = query.where(Case.subcategory == filters.subcategory)
    if filters.category:
        query = query.where(Case.category == filters.category)
    if filters.urgency:
        query = query.where(Case.urgency == filters.urgency)
    if filters.grid_code:
        grid = get_grid_by_code(session, filters.grid_code)
        query = query.where(Case.grid_id == grid.id)
    if filters.created_from:
        query = query.where(Case.created_at >= filters.created_from)
    if filters.created_to:
        query = query.where(Case.created_at < filters.created_to)
    if filters.needs_review is not None:
        query = query.where(Case.needs_review == filters.needs_review)
    if filters.overdue_at is not None:
        overdue = filters.overdue_at
        query = query.where(
            or_(
                (col(Case.status).in_(["dispatched", "transferred", "escalated", "reopened"]))
                & (col(Case.accept_deadline) < overdue),
                (col(Case.status).in_(["taken", "in_progress"])) & (col(Case.resolve_deadline) < overdue),
            )
        )
    if filters.text:
        query = query.join(Report, col(Report.id) == Case.report_id).where(col(Report.text).contains(filters.text))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(Case.priority).desc(), col(Case.created_at).desc(), col(Case.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), int(total)


def case_events(session: Session, case: Case) -> list[CaseEvent]:
    return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))).all())
