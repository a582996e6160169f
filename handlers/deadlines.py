"""The SLA sweep: reminders before a deadline, escalation up the grid chain after one, and the daily digest.

Run by the timers (bot/scheduler.py) with the clock passed in. Every effect is idempotent: a reminder clears the
time that asked for it in the same transaction as its outbox row; an escalation is a lifecycle transition that
moves the deadline it answered; each step up for an overdue resolution (督办) advances the case's own
`next_supervision_at`; outbox dedupe keys make a re-run post nothing twice.

- Not taken by the acceptance deadline → `escalate` (the case moves to the parent grid, whose group and leaders
  are told and whose own acceptance clock starts); missed again → on up, until the top of the chain.
- Taken but not resolved by the resolution deadline → `supervise` events: the parent grid's group and leaders,
  then each further `sla.supervise_every_minutes` the next level up. The case stays with the grid handling it.
- Suspended cases (挂起) have no running clocks and are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import SYSTEM, descendant_grid_ids
from handlers.announce import Announcer
from handlers.audit import append_event
from handlers.cases import ActionInput, act_on_case
from handlers.lifecycle import AWAITING_TAKE, OPEN_WORK, Status
from handlers.notify import tell_grid, tell_person
from handlers.sla import SlaPolicy
from models import Case, Grid, Person, PersonGrid

HANDLING = (Status.TAKEN.value, Status.IN_PROGRESS.value)
SATISFIED_FROM = 4  # ratings of 4 and 5 count as satisfied (满意率)


@dataclass(frozen=True)
class SweepContext:
    sla: SlaPolicy
    announcer: Announcer

    @property
    def zone(self) -> ZoneInfo:
        return self.announcer.zone

    def category_name(self, code: str | None) -> str | None:
        return self.announcer.category_name(code)

    def link(self, case_no: str) -> str:
        return self.announcer.link(case_no)

    def when(self, moment: datetime | None) -> str:
        return self.announcer.when(moment)


@dataclass
class SweepCounts:
    reminded: int = 0
    escalated: int = 0
    supervised: int = 0

    def __bool__(self) -> bool:
        return bool(self.reminded or self.escalated or self.supervised)


def sweep_deadlines(session: Session, ctx: SweepContext, now: datetime, batch: int = 100) -> SweepCounts:
    counts = SweepCounts()
    counts.reminded = _remind(session, ctx, now, batch)
    counts.escalated = _escalate_unaccepted(session, ctx, now, batch)
    counts.supervised = _supervise_unresolved(session, ctx, now, batch)
    return counts


# ---------------------------------------------------------------------------- reminders


@dataclass(frozen=True)
class _Clock:
    kind: str  # accept | resolve
    remind_at: str  # the Case column holding the reminder time
    deadline: str  # the Case column holding the deadline
    states: frozenset[str]  # the states in which this deadline is running
    what: str  # 接单 | 办结, for the card


_CLOCKS = (
    _Clock("accept", "accept_remind_at", "accept_deadline", frozenset(s.value for s in AWAITING_TAKE), "接单"),
    _Clock("resolve", "resolve_remind_at", "resolve_deadline", frozenset(s.value for s in OPEN_WORK), "办结"),
)


def _remind(session: Session, ctx: SweepContext, now: datetime, batch: int) -> int:
    sent = 0
    for clock in _CLOCKS:
        remind_at = col(getattr(Case, clock.remind_at))
        due = session.exec(
            select(Case)
            .where(remind_at <= now, col(Case.suspended_at).is_(None))
            .order_by(remind_at)
            .limit(batch)
            .with_for_update()
        ).all()
        for case in due:
            setattr(case, clock.remind_at, None)
            session.add(case)
            deadline: datetime | None = getattr(case, clock.deadline)
            if case.status in clock.states and deadline is not None and deadline > now:
                sent += _remind_grid(session, ctx, case, now, clock.kind, deadline, clock.what)
    return sent


def _remind_grid(
    session: Session, ctx: SweepContext, case: Case, now: datetime, kind: str, due: datetime, what: str
) -> int:
    grid = session.get(Grid, case.grid_id) if case.grid_id is not None else None
    if grid is None:
        return 0
    category = ctx.category_name(case.subcategory)
    card = texts.reminder_card(case.case_no, category, ctx.when(due), what, ctx.link(case.case_no))
    key = f"case:{case.id}:remind:{kind}:{int(due.timestamp())}"
    return int(tell_grid(session, grid, card, now, dedupe_key=key, case=case))


# ---------------------------------------------------------------------------- escalation (not taken in time)


def _escalate_unaccepted(session: Session, ctx: SweepContext, now: datetime, batch: int) -> int:
    overdue = session.exec(
        select(Case.case_no, Grid.name)
        .join(Grid, col(Grid.id) == col(Case.grid_id))
        .where(
            col(Case.status).in_([s.value for s in AWAITING_TAKE]),
            col(Case.accept_deadline) < now,
            col(Case.suspended_at).is_(None),
            col(Grid.parent_id).is_not(None),  # at the top of the chain there is nobody left to escalate to
        )
        .order_by(col(Case.accept_deadline))
        .limit(batch)
    ).all()
    for case_no, from_grid in overdue:
        note = ActionInput(note="超时未接单，自动上报上级网格")
        # the transition posts the escalation card to the parent grid's group; its leaders are told here
        case = act_on_case(session, case_no, "escalate", SYSTEM, now, ctx.sla, note, announcer=ctx.announcer)
        parent = session.get(Grid, case.grid_id) if case.grid_id is not None else None
        if parent is None:
            continue
        category = ctx.category_name(case.subcategory)
        key = f"case:{case.id}:escalate:{case.last_event_seq}"
        notice = texts.leader_notice(case.case_no, category, f"在{from_grid}超时未接单，已上报", ctx.link(case.case_no))
        _tell_leaders(session, parent, notice, now, key, case)
    return len(overdue)


# ---------------------------------------------------------------------------- supervision (not resolved in time)


def _supervise_unresolved(session: Session, ctx: SweepContext, now: datetime, batch: int) -> int:
    due = session.exec(
        select(Case)
        .where(
            col(Case.status).in_(HANDLING),
            col(Case.next_supervision_at) <= now,
            col(Case.suspended_at).is_(None),
        )
        .order_by(col(Case.next_supervision_at))
        .limit(batch)
        .with_for_update()
    ).all()
    supervised = 0
    for case in due:
        level = case.supervision_level + 1
        own = session.get(Grid, case.grid_id) if case.grid_id is not None else None
        above = _ancestor(session, own, level)
        if own is None or above is None:
            case.next_supervision_at = None  # the whole chain has been told
            session.add(case)
            continue
        case.supervision_level = level
        case.next_supervision_at = ctx.sla.next_supervision(case.urgency, now)
        case.updated_at = now
        append_event(
            session,
            case,
            action="supervise",
            from_status=case.status,
            to_status=case.status,
            actor=SYSTEM,
            actor_role="system",
            now=now,
            note="办理超时，自动督办",
            data={"level": level, "grid": above.code, "resolve_deadline": _iso(case.resolve_deadline)},
        )
        category = ctx.category_name(case.subcategory)
        card = texts.supervision_card(
            case.case_no, category, own.name, level, ctx.when(case.resolve_deadline), ctx.link(case.case_no)
        )
        key = f"case:{case.id}:supervise:{level}"
        tell_grid(session, above, card, now, dedupe_key=key, case=case)
        notice = texts.leader_notice(case.case_no, category, f"在{own.name}办理超时", ctx.link(case.case_no))
        _tell_leaders(session, above, notice, now, key, case)
        supervised += 1
    return supervised


# ---------------------------------------------------------------------------- daily digest


@dataclass(frozen=True)
class Digest:
    new: int
    open: int
    overdue: int
    resolved: int
    rated: int
    satisfied: int

    def is_empty(self) -> bool:
        return not (self.new or self.open or self.resolved)

    def satisfaction(self) -> str:
        return f"{100 * self.satisfied / self.rated:.1f}%（{self.rated}件评价）" if self.rated else "暂无评价"


def digest_for(session: Session, grid: Grid, day_start: datetime, now: datetime) -> Digest:
    """Figures for a grid and every grid below it: the day that began at `day_start`, and the state at `now`."""
    assert grid.id is not None
    ids = descendant_grid_ids(session, [grid.id])
    mine = col(Case.grid_id).in_(ids)
    day_end = day_start + timedelta(days=1)

    def count(*where: ColumnElement[bool]) -> int:
        return int(session.exec(select(func.count()).select_from(Case).where(mine, *where)).one())

    awaiting = col(Case.status).in_([s.value for s in AWAITING_TAKE])
    handling = col(Case.status).in_(HANDLING)
    late = (awaiting & (col(Case.accept_deadline) < now)) | (handling & (col(Case.resolve_deadline) < now))
    month_ago = now - timedelta(days=30)
    return Digest(
        new=count(col(Case.created_at) >= day_start, col(Case.created_at) < day_end),
        open=count(col(Case.status).in_([s.value for s in OPEN_WORK])),
        overdue=count(late),
        resolved=count(col(Case.resolved_at) >= day_start, col(Case.resolved_at) < day_end),
        rated=count(col(Case.rated_at) >= month_ago, col(Case.rating).is_not(None)),
        satisfied=count(col(Case.rated_at) >= month_ago, col(Case.rating) >= SATISFIED_FROM),
    )


def post_digests(session: Session, ctx: SweepContext, now: datetime) -> int:
    """Yesterday's digest to every grid group with a channel (once per grid and day, whoever runs it)."""
    today = now.astimezone(ctx.zone).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    posted = 0
    for grid in session.exec(select(Grid).where(col(Grid.channel).is_not(None)).order_by(col(Grid.id))).all():
        digest = digest_for(session, grid, yesterday, now)
        if digest.is_empty():
            continue
        label = yesterday.strftime("%m-%d")
        card = texts.digest_card(
            grid.name, label, digest.new, digest.open, digest.overdue, digest.resolved, digest.satisfaction()
        )
        posted += tell_grid(session, grid, card, now, dedupe_key=f"digest:{grid.id}:{yesterday.date().isoformat()}")
    return posted


# ---------------------------------------------------------------------------- grid chain


def _ancestor(session: Session, grid: Grid | None, levels: int) -> Grid | None:
    current = grid
    for _ in range(levels):
        if current is None or current.parent_id is None:
            return None
        current = session.get(Grid, current.parent_id)
    return current


def _tell_leaders(session: Session, grid: Grid, text: str, now: datetime, key: str, case: Case) -> None:
    leaders = session.exec(
        select(Person)
        .join(PersonGrid, col(PersonGrid.person_id) == col(Person.id))
        .where(PersonGrid.grid_id == grid.id, PersonGrid.role == "grid_leader")
    ).all()
    for leader in leaders:
        tell_person(session, leader, text, now, dedupe_key=f"{key}:leader:{leader.id}", case=case)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
