"""Deadlines (时限) by urgency: urgent cases count clock time, normal cases working time on the official calendar.

Setting a deadline also sets when the group is reminded of it (`remind_share` of the way there) and, for the
resolution deadline, when an overdue case is first taken up the grid chain (督办). Suspension (挂起) keeps what
was left of each deadline and gives it back on resumption. The sweep that acts on these times is
handlers/deadlines.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from handlers.worktime import WorkCalendar
from models import Case


@dataclass(frozen=True)
class SlaPolicy:
    accept_minutes: dict[str, int] = field(default_factory=lambda: {"urgent": 15, "normal": 30})
    resolve_hours: dict[str, int] = field(default_factory=lambda: {"urgent": 24, "normal": 40})
    # Normal cases count their deadlines in working time on this calendar; without one, in clock time.
    calendar: WorkCalendar | None = None
    remind_share: float = 0.75  # the group is reminded when this share of the time to a deadline has gone
    # While resolution stays overdue, one more level up the grid chain is told after each such period.
    supervise_every_minutes: dict[str, int] = field(default_factory=lambda: {"urgent": 60, "normal": 480})
    # Subcategories with deadlines of their own, e.g. {"C03": {"accept_minutes": 5, "resolve_hours": 4}}.
    by_subcategory: dict[str, dict[str, int]] = field(default_factory=dict)

    def accept_deadline(self, urgency: str, start: datetime, subcategory: str | None = None) -> datetime:
        own = self.by_subcategory.get(subcategory or "", {}).get("accept_minutes")
        return self.after(urgency, start, own if own is not None else self.accept_minutes[urgency])

    def resolve_deadline(self, urgency: str, start: datetime, subcategory: str | None = None) -> datetime:
        own = self.by_subcategory.get(subcategory or "", {}).get("resolve_hours")
        return self.after(urgency, start, (own if own is not None else self.resolve_hours[urgency]) * 60)

    def after(self, urgency: str, start: datetime, minutes: float) -> datetime:
        """`minutes` of the time that counts for this urgency after `start` (before it, when negative)."""
        if self.calendar is None or urgency == "urgent" or minutes < 0:
            return start + timedelta(minutes=minutes)
        return self.calendar.add(start, minutes)

    def left(self, urgency: str, now: datetime, deadline: datetime) -> float:
        """Minutes of counting time from `now` to `deadline` (negative when it has passed)."""
        if deadline <= now:
            return -(now - deadline).total_seconds() / 60
        if self.calendar is None or urgency == "urgent":
            return (deadline - now).total_seconds() / 60
        return self.calendar.between(now, deadline)

    def reminder(self, urgency: str, start: datetime, deadline: datetime) -> datetime | None:
        """When to remind the group of a deadline set at `start`; None when that moment is already past."""
        total = self.left(urgency, start, deadline)
        if total <= 0:
            return None
        return self.after(urgency, start, total * self.remind_share)

    def next_supervision(self, urgency: str, now: datetime) -> datetime:
        return self.after(urgency, now, self.supervise_every_minutes[urgency])


def start_accept_clock(case: Case, sla: SlaPolicy, now: datetime) -> None:
    """A grid has to take the case: deadline, and when its group is reminded."""
    case.accept_deadline = sla.accept_deadline(case.urgency, now, case.subcategory)
    case.accept_remind_at = sla.reminder(case.urgency, now, case.accept_deadline)


def start_resolve_clock(case: Case, sla: SlaPolicy, now: datetime) -> None:
    """The case has to be resolved: deadline, reminder, and the first step up the chain if it is missed."""
    case.resolve_deadline = sla.resolve_deadline(case.urgency, now, case.subcategory)
    case.resolve_remind_at = sla.reminder(case.urgency, now, case.resolve_deadline)
    case.supervision_level = 0
    case.next_supervision_at = case.resolve_deadline


def stop_clocks(case: Case) -> None:
    """Nothing more is owed on this case's deadlines (resolved, closed, merged …)."""
    case.accept_remind_at = case.resolve_remind_at = case.next_supervision_at = None
    case.suspended_at = None
    case.accept_left_minutes = case.resolve_left_minutes = None


def suspend_clocks(case: Case, sla: SlaPolicy, now: datetime, awaiting_take: bool) -> dict[str, float | None]:
    """Stop the clocks: keep what was left of each deadline, clear the deadlines. → the event's data."""
    case.accept_left_minutes = (
        sla.left(case.urgency, now, case.accept_deadline) if awaiting_take and case.accept_deadline else None
    )
    case.resolve_left_minutes = sla.left(case.urgency, now, case.resolve_deadline) if case.resolve_deadline else None
    case.accept_deadline = case.resolve_deadline = None
    case.accept_remind_at = case.resolve_remind_at = case.next_supervision_at = None
    case.suspended_at = now
    return {"accept_left_minutes": case.accept_left_minutes, "resolve_left_minutes": case.resolve_left_minutes}


def resume_clocks(case: Case, sla: SlaPolicy, now: datetime) -> dict[str, str | None]:
    """Give back what was left: the deadlines move by exactly the time the case was suspended. → event data."""
    if case.accept_left_minutes is not None:
        case.accept_deadline = sla.after(case.urgency, now, case.accept_left_minutes)
        case.accept_remind_at = sla.reminder(case.urgency, now, case.accept_deadline)
    if case.resolve_left_minutes is not None:
        case.resolve_deadline = sla.after(case.urgency, now, case.resolve_left_minutes)
        case.resolve_remind_at = sla.reminder(case.urgency, now, case.resolve_deadline)
        case.next_supervision_at = (
            max(case.resolve_deadline, now) if case.supervision_level == 0 else sla.next_supervision(case.urgency, now)
        )
    case.suspended_at = None
    case.accept_left_minutes = case.resolve_left_minutes = None
    return {
        "accept_deadline": case.accept_deadline.isoformat() if case.accept_deadline else None,
        "resolve_deadline": case.resolve_deadline.isoformat() if case.resolve_deadline else None,
    }
