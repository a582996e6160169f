"""Deadlines: urgent cases count clock time, normal cases working time on the official calendar (from config)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import ConfigError, load_settings
from bot.sla import sla_policy

BEIJING = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_an_urgent_case_counts_clock_time_and_a_normal_one_working_time(tmp_path: Path) -> None:
    sla = sla_policy(load_settings(config(tmp_path, "app:\n  demo: false\n"), environ={}))
    friday_night = at("2025-03-07T20:00")
    assert sla.accept_deadline("urgent", friday_night) == friday_night + timedelta(minutes=15)
    assert sla.accept_deadline("normal", friday_night) == at("2025-03-10T09:30")
    # 40 working hours of 8 a day from Monday 09:00: the end of Friday
    assert sla.resolve_deadline("normal", at("2025-03-10T09:00")) == at("2025-03-14T18:00")
    assert sla.resolve_deadline("urgent", friday_night) == friday_night + timedelta(hours=24)


def test_the_national_day_holiday_does_not_eat_a_normal_deadline(tmp_path: Path) -> None:
    sla = sla_policy(load_settings(config(tmp_path, "app:\n  demo: false\n"), environ={}))
    assert sla.accept_deadline("normal", at("2025-09-30T17:50")) == at("2025-10-09T09:20")


def test_what_is_left_of_a_deadline_is_measured_in_the_same_time(tmp_path: Path) -> None:
    sla = sla_policy(load_settings(config(tmp_path, "app:\n  demo: false\n"), environ={}))
    start = at("2025-03-07T16:00")
    due = sla.resolve_deadline("normal", start)
    assert sla.left("normal", start, due) == pytest.approx(40 * 60)
    assert sla.left("urgent", start, start + timedelta(hours=3)) == pytest.approx(180)
    assert sla.left("normal", due + timedelta(minutes=10), due) == pytest.approx(-10)


def test_extra_days_from_the_config_and_the_environment_change_the_calendar(tmp_path: Path) -> None:
    path = config(tmp_path, "sla:\n  extra_holidays: [2025-03-10]\n")
    sla = sla_policy(load_settings(path, environ={"GRIDBOT_SLA__EXTRA_WORKDAYS": '["2025-03-08"]'}))
    assert sla.calendar is not None
    assert not sla.calendar.is_workday(date(2025, 3, 10)) and sla.calendar.is_workday(date(2025, 3, 8))
    assert sla.accept_deadline("normal", at("2025-03-07T20:00")) == at("2025-03-08T09:30")


@pytest.mark.parametrize("hours", ['["9 to 5"]', '["18:00-09:00"]', "[]"])
def test_bad_office_hours_stop_the_start_naming_the_key(tmp_path: Path, hours: str) -> None:
    with pytest.raises(ConfigError, match="sla.work_hours"):
        load_settings(config(tmp_path, f"sla:\n  work_hours: {hours}\n"), environ={})


def test_a_subcategory_can_have_deadlines_of_its_own(tmp_path: Path) -> None:
    body = "sla:\n  by_subcategory:\n    C03: {accept_minutes: 5, resolve_hours: 4}\n"
    sla = sla_policy(load_settings(config(tmp_path, body), environ={}))
    start = at("2025-03-11T10:00")
    assert sla.accept_deadline("urgent", start, "C03") == start + timedelta(minutes=5)
    assert sla.resolve_deadline("urgent", start, "C03") == start + timedelta(hours=4)
    assert sla.accept_deadline("urgent", start, "D01") == start + timedelta(minutes=15)
    with pytest.raises(ConfigError, match="Z99 not subcategory codes"):
        load_settings(config(tmp_path, "sla:\n  by_subcategory:\n    Z99: {accept_minutes: 5}\n"), environ={})
