"""Recurring activities: a series row (models/activities.py) with a cron expression read in local time, e.g.
平安志愿服务日 `0 9 9 * *` (09:00 on the 9th of every month). The timers create its occurrences ahead
(`generate_occurrences`, clock passed in); each slot once, because (series_id, series_slot) is unique and the insert
does nothing on a conflict, so a second run, a second process or a moved occurrence never doubles one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from handlers.access import Actor
from handlers.activities import (
    MAX_DURATION,
    ActivityContext,
    ActivityFields,
    cancel_occurrence,
    ensure_organiser,
    get_activity,
    grid_by_code,
    grid_of,
    new_activity,
    post_published,
    validate_activity,
)
from handlers.errors import InvalidInput
from models import Activity
from models.db import execute_core


def recurrence_trigger(cron: str, zone: ZoneInfo) -> CronTrigger:
    """A five-field cron expression (minute hour day month weekday), in local time. Weekdays by name only:
    APScheduler 3 numbers them from Monday = 0 where cron starts from Sunday = 0, so a number would be misread."""
    parts = cron.split()
    if len(parts) != 5:
        raise InvalidInput(f"recurrence must have 5 fields (minute hour day month weekday), got {len(parts)}")
    weekday = parts[4].lower()
    if weekday != "*" and any(ch.isdigit() for ch in weekday.split("/")[0]):
        raise InvalidInput("name weekdays in recurrence (mon … sun, e.g. 'sat' or 'mon-fri'), not numbers")
    try:
        return CronTrigger.from_crontab(" ".join(parts), timezone=zone)
    except ValueError as exc:
        raise InvalidInput(f"recurrence {cron!r} is not a valid cron expression: {exc}") from None


def _slots(trigger: CronTrigger, after: datetime, until: datetime, limit: int) -> list[datetime]:
    found: list[datetime] = []
    cursor = after
    while len(found) < limit:
        slot = trigger.get_next_fire_time(None, cursor)
        if slot is None or slot > until:
            break
        found.append(slot)
        cursor = slot + timedelta(seconds=1)
    return found


def create_series(
    session: Session,
    ctx: ActivityContext,
    actor: Actor,
    grid_code: str,
    cron: str,
    given: ActivityFields,
    duration: timedelta,
    now: datetime,
    *,
    signup_closes: timedelta | None = None,
    starts_from: datetime | None = None,
) -> tuple[Activity, list[Activity]]:
    """A recurring activity, e.g. 平安志愿服务日 `0 9 9 * *` (09:00 on the 9th of every month): the series row and
    the occurrences generated ahead now (each published like a one-off activity)."""
    grid = grid_by_code(session, grid_code)
    ensure_organiser(actor, grid)
    cron = " ".join(cron.split())
    trigger = recurrence_trigger(cron, ctx.zone)
    closes = ctx.signup_closes if signup_closes is None else signup_closes
    if not timedelta(0) < duration <= MAX_DURATION:
        raise InvalidInput("duration must be more than 0 and at most 24 hours")
    if closes < timedelta(0):
        raise InvalidInput("signup_closes must not be negative")
    upcoming = _slots(trigger, max(now + closes, starts_from or now), now + timedelta(days=3660), 12)
    if not upcoming:
        raise InvalidInput(f"recurrence {cron!r} never comes round")
    if any(later - earlier < duration for earlier, later in zip(upcoming, upcoming[1:], strict=False)):
        raise InvalidInput(f"recurrence {cron!r} comes round before an occurrence of {duration} has ended")
    first = upcoming[0]
    series = new_activity(
        ctx,
        grid,
        replace(given, starts_at=first, ends_at=first + duration, signup_deadline=first - closes),
        actor,
        now,
    )
    series.recurrence = cron
    validate_activity(ctx, series, now)
    session.add(series)
    session.flush()
    return series, generate_for_series(session, ctx, series, now)


def stop_series(
    session: Session, ctx: ActivityContext, actor: Actor, series_id: int, reason: str, now: datetime
) -> Activity:
    """No more occurrences; those that have not started are cancelled (group and volunteers told)."""
    series = get_activity(session, series_id, lock=True, series=True)
    ensure_organiser(actor, grid_of(session, series))
    if series.status == "cancelled":
        return series
    if not reason.strip():
        raise InvalidInput("stopping a series needs a reason (the volunteers of its coming occurrences are told it)")
    series.status, series.cancelled_at, series.cancel_reason = "cancelled", now, reason.strip()[:500]
    series.updated_at = now
    session.add(series)
    coming = session.exec(
        select(Activity)
        .where(Activity.series_id == series_id, Activity.status == "published", Activity.starts_at > now)
        .with_for_update()
    ).all()
    for occurrence in coming:
        cancel_occurrence(session, ctx, occurrence, reason, now)
    return series


def _insert_occurrence(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(Activity).on_conflict_do_nothing(index_elements=["series_id", "series_slot"]).returning(col(Activity.id))
    )


_INSERT_OCCURRENCE = {dialect: _insert_occurrence(dialect) for dialect in ("sqlite", "postgresql")}
_TEMPLATE_COLUMNS = (
    "grid_id",
    "title",
    "description",
    "place",
    "lng",
    "lat",
    "capacity",
    "points_per_hour",
    "points_cap",
    "checkin_radius_m",
    "created_by",
)


def generate_for_series(
    session: Session, ctx: ActivityContext, series: Activity, now: datetime, *, publish: bool = True
) -> list[Activity]:
    """The series' occurrences within `generate_ahead` (at most `max_ahead`) whose sign-up is still open, each
    created once: a slot that exists (even cancelled or moved) is left alone; each new one is posted to the group
    unless `publish` is off. → the occurrences created now."""
    if series.status != "published" or series.recurrence is None:
        return []
    trigger = recurrence_trigger(series.recurrence, ctx.zone)
    duration = series.ends_at - series.starts_at
    closes = series.starts_at - series.signup_deadline
    # A slot whose sign-up deadline has passed is skipped, so the earliest slot worth creating starts `closes` on.
    after = max(now + closes + timedelta(seconds=1), series.starts_at)
    dialect = session.get_bind().dialect.name
    statement = _INSERT_OCCURRENCE["postgresql" if dialect == "postgresql" else "sqlite"]
    created = []
    for slot in _slots(trigger, after, now + ctx.generate_ahead, ctx.max_ahead):
        values = {name: getattr(series, name) for name in _TEMPLATE_COLUMNS}
        values.update(
            starts_at=slot,
            ends_at=slot + duration,
            signup_deadline=slot - closes,
            status="published",
            recurrence=None,
            series_id=series.id,
            series_slot=slot,
            revision=0,
            created_at=now,
        )
        new_id = execute_core(session, statement, values).scalar_one_or_none()
        if new_id is not None:
            occurrence = session.get(Activity, new_id)
            assert occurrence is not None
            if publish:
                post_published(session, ctx, occurrence, now)
            created.append(occurrence)
    return created


def generate_occurrences(session: Session, ctx: ActivityContext, now: datetime) -> int:
    """Every running series, topped up (the timers' job). → how many occurrences were created."""
    series_rows = session.exec(
        select(Activity).where(col(Activity.recurrence).is_not(None), Activity.status == "published")
    ).all()
    return sum(len(generate_for_series(session, ctx, series, now)) for series in series_rows)
