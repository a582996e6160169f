"""Working time on the official calendar: office hours, weekends, statutory holidays and 调休 make-up days.

The dates are the State Council's published 2025 schedule: 春节 28 Jan – 4 Feb with Sunday 26 Jan and Saturday
8 Feb worked; 国庆/中秋 1–8 Oct with Sunday 28 Sep and Saturday 11 Oct worked.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from handlers.worktime import Window, WorkCalendar, covered_years, work_calendar

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def calendar() -> WorkCalendar:
    return work_calendar(BEIJING, ["09:00-12:00", "13:00-18:00"])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def test_working_time_skips_the_night_and_the_weekend(calendar: WorkCalendar) -> None:
    # Friday 7 March 2025, 17:00 + 2 working hours → Monday 10 March, 10:00
    assert calendar.add(at("2025-03-07T17:00"), 120) == at("2025-03-10T10:00")


def test_working_time_skips_the_lunch_break(calendar: WorkCalendar) -> None:
    assert calendar.add(at("2025-03-11T11:30"), 60) == at("2025-03-11T13:30")


def test_a_report_at_night_starts_counting_when_the_office_opens(calendar: WorkCalendar) -> None:
    assert calendar.add(at("2025-03-11T22:15"), 30) == at("2025-03-12T09:30")


def test_the_national_day_holiday_is_not_working_time(calendar: WorkCalendar) -> None:
    # Tuesday 30 Sep 17:30 + 1 hour: 1–8 Oct are holidays, Thursday 9 Oct is the next working day
    assert calendar.add(at("2025-09-30T17:30"), 60) == at("2025-10-09T09:30")


def test_a_make_up_saturday_is_working_time(calendar: WorkCalendar) -> None:
    # Saturday 11 Oct 2025 was worked (调休)
    assert calendar.is_workday(date(2025, 10, 11))
    assert calendar.add(at("2025-10-10T17:00"), 120) == at("2025-10-11T10:00")


def test_a_make_up_sunday_before_the_spring_festival_is_working_time(calendar: WorkCalendar) -> None:
    assert calendar.is_workday(date(2025, 1, 26))
    assert not calendar.is_workday(date(2025, 1, 28))
    assert calendar.add(at("2025-01-25T10:00"), 30) == at("2025-01-26T09:30")


def test_between_measures_what_add_added(calendar: WorkCalendar) -> None:
    start = at("2025-09-29T16:20")
    for minutes in (0, 45, 100, 481, 2400):
        assert calendar.between(start, calendar.add(start, minutes)) == pytest.approx(minutes)
    assert calendar.between(at("2025-10-02T10:00"), at("2025-10-05T10:00")) == 0  # all holiday


def test_results_keep_the_callers_time_zone(calendar: WorkCalendar) -> None:
    start = datetime.fromisoformat("2025-03-07T09:00+00:00")  # 17:00 in Beijing
    due = calendar.add(start, 120)
    assert due.utcoffset() == start.utcoffset()
    assert due == at("2025-03-10T10:00")


def test_operators_can_add_local_holidays_and_workdays() -> None:
    local = work_calendar(
        BEIJING, ["09:00-17:00"], extra_holidays=[date(2025, 3, 10)], extra_workdays=[date(2025, 3, 8)]
    )
    assert not local.is_workday(date(2025, 3, 10))
    assert local.is_workday(date(2025, 3, 8))  # a Saturday
    assert local.add(at("2025-03-07T16:00"), 120) == at("2025-03-08T10:00")


def test_a_year_the_package_does_not_know_falls_back_to_weekdays_and_says_so(
    calendar: WorkCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    year = covered_years().stop + 1  # well past the installed package's data
    monday = date(year, 3, 1)
    while monday.weekday() != 0:
        monday = monday.replace(day=monday.day + 1)
    with caplog.at_level(logging.WARNING, logger="gridbot.worktime"):
        assert calendar.is_workday(monday)
        assert not calendar.is_workday(monday.replace(day=monday.day + 5))  # Saturday
    assert any(f"no official calendar for {year}" in r.getMessage() for r in caplog.records)
    patched = work_calendar(BEIJING, ["09:00-18:00"], extra_holidays=[monday])
    assert not patched.is_workday(monday)


@pytest.mark.parametrize("text", ["9-12", "12:00-09:00", "09:00", "morning"])
def test_bad_office_hours_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="office hours"):
        Window.parse(text)


def test_overlapping_windows_and_contradictory_days_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        work_calendar(BEIJING, ["09:00-12:00", "11:00-14:00"])
    with pytest.raises(ValueError, match="both"):
        work_calendar(BEIJING, ["09:00-12:00"], extra_holidays=[date(2025, 5, 6)], extra_workdays=[date(2025, 5, 6)])
