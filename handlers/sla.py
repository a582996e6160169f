"""Deadlines (时限) by urgency: urgent cases count clock time, normal cases working time on the official calendar."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from handlers.worktime import WorkCalendar


@dataclass(frozen=True)
class SlaPolicy:
    accept_minutes: dict[str, int] = field(default_factory=lambda: {"urgent": 15, "normal": 30})
    resolve_hours: dict[str, int] = field(default_factory=lambda: {"urgent": 24, "normal": 40})
    # Normal cases count their deadlines in working time on this calendar; without one, in clock time.
    calendar: WorkCalendar | None = None

    def accept_deadline(self, urgency: str, start: datetime) -> datetime:
        return self.after(urgency, start, self.accept_minutes[urgency])

    def resolve_deadline(self, urgency: str, start: datetime) -> datetime:
        return self.after(urgency, start, self.resolve_hours[urgency] * 60)

    def after(self, urgency: str, start: datetime, minutes: float) -> datetime:
        """`minutes` of the time that counts for this urgency after `start`."""
        if self.calendar is None or urgency == "urgent":
            return start + timedelta(minutes=minutes)
        return self.calendar.add(start, minutes)

    def left(self, urgency: str, now: datetime, deadline: datetime) -> float:
        """Minutes of counting time from `now` to `deadline` (negative when it has passed): what a suspension
        keeps, to give back on resumption."""
        if deadline <= now:
            return -(now - deadline).total_seconds() / 60
        if self.calendar is None or urgency == "urgent":
            return (deadline - now).total_seconds() / 60
        return self.calendar.between(now, deadline)
