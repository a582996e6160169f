"""The case lifecycle: one table of allowed transitions and the function that applies them.

发现 reported → 受理 accepted → 交办 dispatched → 接单 taken → 处置 in_progress → 办结 resolved →
评价 rated → 销号 closed; side paths invalid, merged, transferred, escalated, reopened.
See docs/lifecycle.md for the table in prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session

from handlers.access import Actor, roles_on_case
from handlers.audit import chain_event
from handlers.errors import Forbidden, InvalidInput, InvalidTransition
from models import Case, CaseEvent


class Status(StrEnum):
    REPORTED = "reported"  # 发现
    ACCEPTED = "accepted"  # 受理
    DISPATCHED = "dispatched"  # 交办
    TAKEN = "taken"  # 接单
    IN_PROGRESS = "in_progress"  # 处置
    RESOLVED = "resolved"  # 办结
    RATED = "rated"  # 评价
    CLOSED = "closed"  # 销号
    INVALID = "invalid"  # 无效
    MERGED = "merged"  # 重复件合并
    TRANSFERRED = "transferred"  # 转办
    ESCALATED = "escalated"  # 上报上级
    REOPENED = "reopened"  # 重办


TERMINAL = frozenset({Status.CLOSED, Status.INVALID, Status.MERGED})
# States in which a grid is expected to act; their deadlines are watched.
OPEN_WORK = frozenset(
    {
        Status.DISPATCHED,
        Status.TRANSFERRED,
        Status.ESCALATED,
        Status.REOPENED,
        Status.TAKEN,
        Status.IN_PROGRESS,
    }
)

# Of those, the states in which the grid has yet to take the case (the acceptance clock runs).
AWAITING_TAKE = frozenset({Status.DISPATCHED, Status.TRANSFERRED, Status.ESCALATED, Status.REOPENED})

STAFF = ("grid_worker", "grid_leader")
DESK = ("operator", "admin")
S = Status


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[Status]
    target: Status
    roles: frozenset[str]
    needs_note: bool = False


def _t(
    action: str, sources: tuple[Status, ...], target: Status, roles: tuple[str, ...], note: bool = False
) -> Transition:
    return Transition(action, frozenset(sources), target, frozenset(roles), note)


# The whole lifecycle. An action may appear twice when different roles may take it from different states.
TRANSITIONS: tuple[Transition, ...] = (
    _t("accept", (S.REPORTED,), S.ACCEPTED, (*DESK, "system")),
    _t("dispatch", (S.ACCEPTED, S.REOPENED, S.TRANSFERRED), S.DISPATCHED, (*DESK, "system")),
    _t("dispatch", (S.ESCALATED,), S.DISPATCHED, (*DESK, "grid_leader", "system")),
    _t("take", (S.DISPATCHED, S.TRANSFERRED, S.ESCALATED, S.REOPENED), S.TAKEN, STAFF),
    _t("start", (S.TAKEN,), S.IN_PROGRESS, STAFF),
    _t("resolve", (S.TAKEN, S.IN_PROGRESS), S.RESOLVED, STAFF, note=True),
    _t("rate", (S.RESOLVED,), S.RATED, ("resident",)),
    _t("reopen", (S.RATED,), S.REOPENED, ("resident", *DESK, "system"), note=True),
    _t("reopen", (S.RESOLVED, S.CLOSED), S.REOPENED, DESK, note=True),
    _t("close", (S.RATED, S.RESOLVED), S.CLOSED, (*DESK, "system")),
    _t(
        "transfer",
        (S.DISPATCHED, S.TAKEN, S.IN_PROGRESS, S.ESCALATED, S.REOPENED, S.TRANSFERRED),
        S.TRANSFERRED,
        (*STAFF, *DESK),
        note=True,
    ),
    _t(
        "escalate",
        (S.DISPATCHED, S.TRANSFERRED, S.TAKEN, S.IN_PROGRESS, S.REOPENED, S.ESCALATED),
        S.ESCALATED,
        (*DESK, "system"),
    ),
    _t(
        "invalidate",
        (S.REPORTED, S.ACCEPTED, S.DISPATCHED, S.TRANSFERRED, S.ESCALATED),
        S.INVALID,
        DESK,
        note=True,
    ),
    _t("merge", (S.REPORTED, S.ACCEPTED, S.DISPATCHED, S.TRANSFERRED, S.ESCALATED), S.MERGED, DESK),
)



@dataclass(frozen=True)
class SideAction:
    """An action recorded in the history that leaves the state as it is: 挂起 suspends the case's clocks (waiting
    for a third party), 恢复 resumes them."""

    action: str
    states: frozenset[Status]
    roles: frozenset[str]
    needs_note: bool = False
    while_suspended: bool = False  # True: only on a suspended case; False: only on a running one


SIDE_ACTIONS: dict[str, SideAction] = {
    "suspend": SideAction("suspend", OPEN_WORK, frozenset((*STAFF, *DESK)), needs_note=True),
    "resume": SideAction("resume", OPEN_WORK, frozenset((*STAFF, *DESK)), while_suspended=True),
}

ACTIONS = tuple(sorted({t.action for t in TRANSITIONS} | set(SIDE_ACTIONS)))

# Columns stamped when a state is reached (Netflix Dispatch style: one timestamp per state).
STATE_TIMESTAMPS: dict[Status, str] = {
    S.ACCEPTED: "accepted_at",
    S.DISPATCHED: "dispatched_at",
    S.TAKEN: "taken_at",
    S.IN_PROGRESS: "in_progress_at",
    S.RESOLVED: "resolved_at",
    S.RATED: "rated_at",
    S.CLOSED: "closed_at",
    S.INVALID: "closed_at",
    S.MERGED: "closed_at",
}


def allowed_from(status: str, suspended: bool | None = None) -> list[dict[str, str]]:
    """Every action possible from a state, whoever may take it: what a refused caller is shown."""
    seen: dict[str, str] = {}
    for t in TRANSITIONS:
        if status in t.sources:
            seen.setdefault(t.action, t.target.value)
    for side in SIDE_ACTIONS.values():
        if status in side.states and (suspended is None or side.while_suspended == suspended):
            seen.setdefault(side.action, status)
    return [{"action": action, "to": target} for action, target in sorted(seen.items())]


def actions_for(actor: Actor, case: Case) -> list[str]:
    """The actions this actor could take on this case now (for buttons in the console and mini-program)."""
    roles = roles_on_case(actor, case)
    moves = {t.action for t in TRANSITIONS if case.status in t.sources and t.roles & roles}
    asides = {s.action for s in SIDE_ACTIONS.values() if _side_applies(s, case) and s.roles & roles}
    return sorted(moves | asides)


def _side_applies(side: SideAction, case: Case) -> bool:
    return case.status in side.states and side.while_suspended == (case.suspended_at is not None)


def find_side_action(case: Case, action: str, actor: Actor) -> tuple[SideAction, str]:
    """Like find_transition, for an action that keeps the state; raises without changing anything."""
    side = SIDE_ACTIONS[action]
    if not _side_applies(side, case):
        why = "is suspended" if case.suspended_at is not None else "is not suspended"
        raise InvalidTransition(
            f"cannot {action} case {case.case_no} in state '{case.status}'"
            + (f": it {why}" if case.status in side.states else ""),
            case_no=case.case_no,
            current_state=case.status,
            suspended=case.suspended_at is not None,
            allowed=allowed_from(case.status, case.suspended_at is not None),
        )
    usable = side.roles & roles_on_case(actor, case)
    if not usable:
        raise Forbidden(
            f"{action} on case {case.case_no} needs one of the roles {', '.join(sorted(side.roles))} for this case",
            case_no=case.case_no,
            needed_roles=sorted(side.roles),
        )
    return side, _strongest(usable)


def find_transition(case: Case, action: str, actor: Actor) -> tuple[Transition, str]:
    """The transition to apply and the role the actor takes it in; raises without changing anything."""
    if action not in ACTIONS or action in SIDE_ACTIONS:
        known = ", ".join(a for a in ACTIONS if a not in SIDE_ACTIONS)
        raise InvalidInput(f"unknown transition '{action}'; known transitions: {known}")
    candidates = [t for t in TRANSITIONS if t.action == action and case.status in t.sources]
    if not candidates:
        raise InvalidTransition(
            f"cannot {action} case {case.case_no} in state '{case.status}'",
            case_no=case.case_no,
            current_state=case.status,
            allowed=allowed_from(case.status, case.suspended_at is not None),
        )
    roles = roles_on_case(actor, case)
    for transition in candidates:
        usable = transition.roles & roles
        if usable:
            return transition, _strongest(usable)
    needed = sorted(set().union(*(t.roles for t in candidates)))
    raise Forbidden(
        f"{action} on case {case.case_no} needs one of the roles {', '.join(needed)} for this case",
        case_no=case.case_no,
        needed_roles=needed,
    )


def _strongest(roles: frozenset[str]) -> str:
    for role in ("system", "admin", "operator", "grid_leader", "grid_worker", "resident"):
        if role in roles:
            return role
    return sorted(roles)[0]


def apply_transition(
    session: Session,
    case: Case,
    action: str,
    actor: Actor,
    now: datetime,
    *,
    note: str = "",
    attachments: list[Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Case:
    """Check and apply one transition, recording its event. Does not commit."""
    transition, role = find_transition(case, action, actor)
    return record_transition(session, case, transition, actor, role, now, note=note, attachments=attachments, data=data)


def advance(
    case: Case,
    transition: Transition,
    actor: Actor,
    role: str,
    now: datetime,
    *,
    note: str = "",
    attachments: list[Any] | None = None,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """Apply a transition already found by `find_transition` to the case in memory → its event, chained but not
    stored (record_transition stores both; a new case in memory is inserted with its events)."""
    if transition.needs_note and not note.strip():
        raise InvalidInput(f"{transition.action} needs a note saying why")
    from_status = case.status
    case.status = transition.target.value
    stamp = STATE_TIMESTAMPS.get(transition.target)
    if stamp:
        setattr(case, stamp, now)
    case.updated_at = now
    return chain_event(
        case,
        action=transition.action,
        from_status=from_status,
        to_status=case.status,
        actor=actor,
        actor_role=role,
        now=now,
        note=note,
        attachments=attachments or [],
        data=data or {},
    )


def record_transition(
    session: Session,
    case: Case,
    transition: Transition,
    actor: Actor,
    role: str,
    now: datetime,
    *,
    note: str = "",
    attachments: list[Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Case:
    """Apply a transition already found by `find_transition` and append its event."""
    if transition.needs_note and not note.strip():
        raise InvalidInput(f"{transition.action} needs a note saying why")
    if case.id is None:
        session.flush()
    event = advance(case, transition, actor, role, now, note=note, attachments=attachments, data=data)
    session.add(event)
    session.add(case)
    return case
