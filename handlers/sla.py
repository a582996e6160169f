"""Deadlines (时限) by urgency. Clock time for now; working-day calendars come with the SLA scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SlaPolicy:
    accept_minutes: dict[str, int] = field(default_factory=lambda: {"urgent": 15, "normal": 30})
    resolve_hours: dict[str, int] = field(default_factory=lambda: {"urgent": 24, "normal": 72})

    def accept_deadline(self, urgency: str, start: datetime) -> datetime:
        return start + timedelta(minutes=self.accept_minutes[urgency])

    def resolve_deadline(self, urgency: str, start: datetime) -> datetime:
        return start + timedelta(hours=self.resolve_hours[urgency])
