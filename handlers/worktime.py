"""Working time on China's official calendar: statutory holidays and the 调休 make-up working days.

Normal cases count their deadlines in working time (office hours on working days); urgent cases count clock time
(handlers/sla.py decides which). Which days are working days comes from the maintained `chinesecalendar`
package. For a year the installed package does not cover yet (the State Council publishes each year's schedule
in the autumn before), the calendar falls back to Monday–Friday plus whatever the operators have entered in
`sla.extra_holidays` / `sla.extra_workdays`, and says so in the log once per year.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger("gridbot.worktime")

MAX_DAYS_SCANNED = 3660  # ten years of days: a deadline further away than that is a configuration error


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        """'09:00-12:00' → Window; raises ValueError naming the text."""
        try:
            first, second = (part.strip() for part in text.split("-"))
            start, end = time.fromisoformat(first), time.fromisoformat(second)
        except ValueError:
            raise ValueError(f"office hours must look like '09:00-12:00', not {text!r}") from None
        if not start < end:
            raise ValueError(f"office hours {text!r} end before they start")
        return cls(start, end)


@dataclass(frozen=True)
class WorkCalendar:
    zone: ZoneInfo
    windows: tuple[Window, ...] = (Window(time(9), time(12)), Window(time(13), time(18)))
    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    extra_workdays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        ordered = sorted(self.windows, key=lambda w: w.start)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if after.start < before.end:
                raise ValueError("office hours overlap")
        object.__setattr__(self, "windows", tuple(ordered))
        overlap = self.extra_holidays & self.extra_workdays
        if overlap:
            raise ValueError(f"{min(overlap)} is listed both as a holiday and as a working day")

    def is_workday(self, day: date) -> bool:
        if day in self.extra_holidays:
            return False
        if day in self.extra_workdays:
            return True
        if _covered(day.year):
            return bool(chinese_calendar.is_workday(day))
        _warn_uncovered(day.year)
        return day.weekday() < 5

    def add(self, start: datetime, minutes: float) -> datetime:
        """The moment `minutes` of working time after `start`."""
        if minutes < 0:
            raise ValueError("working time cannot be negative")
        remaining = timedelta(minutes=minutes)
        cursor = start.astimezone(self.zone)
        for day in _days_from(cursor.date()):
            if self.is_workday(day):
                for window in self.windows:
                    opens, closes = self._bounds(day, window)
                    begin = max(cursor, opens)
                    if begin >= closes:
                        continue
                    if remaining <= closes - begin:
                        return (begin + remaining).astimezone(start.tzinfo)
                    remaining -= closes - begin
        raise ValueError(f"{minutes} working minutes from {start} is more than ten years away")

    def between(self, start: datetime, end: datetime) -> float:
        """Working minutes from `start` to `end` (0 when end is not after start)."""
        if end <= start:
            return 0.0
        start, end = start.astimezone(self.zone), end.astimezone(self.zone)
        total = timedelta()
        for day in _days_from(start.date()):
            if day > end.date():
                break
            if not self.is_workday(day):
                continue
            for window in self.windows:
                opens, closes = self._bounds(day, window)
                overlap = min(end, closes) - max(start, opens)
                if overlap > timedelta():
                    total += overlap
        return total.total_seconds() / 60

    def _bounds(self, day: date, window: Window) -> tuple[datetime, datetime]:
        return (
            datetime.combine(day, window.start, tzinfo=self.zone),
            datetime.combine(day, window.end, tzinfo=self.zone),
        )


def work_calendar(
    zone: ZoneInfo, hours: Iterable[str], extra_holidays: Iterable[date] = (), extra_workdays: Iterable[date] = ()
) -> WorkCalendar:
    return WorkCalendar(
        zone=zone,
        windows=tuple(Window.parse(text) for text in hours),
        extra_holidays=frozenset(extra_holidays),
        extra_workdays=frozenset(extra_workdays),
    )


def covered_years() -> range:
    """The years the installed chinesecalendar knows (e.g. 2004–2026 for 1.11.0)."""
    return range(_first_year(), _last_year() + 1)


def _days_from(first: date) -> Iterable[date]:
    for offset in range(MAX_DAYS_SCANNED):
        yield first + timedelta(days=offset)


def _covered(year: int) -> bool:
    return _first_year() <= year <= _last_year()


@lru_cache(maxsize=1)
def _first_year() -> int:
    return min(day.year for day in chinese_calendar.holidays)


@lru_cache(maxsize=1)
def _last_year() -> int:
    return max(day.year for day in chinese_calendar.holidays)


@cache
def _warn_uncovered(year: int) -> None:
    log.warning(
        "chinesecalendar %s has no official calendar for %d: counting Monday-Friday as working days plus "
        "sla.extra_holidays / sla.extra_workdays; upgrade the package when the year's schedule is published",
        getattr(chinese_calendar, "__version__", "?"),
        year,
    )
