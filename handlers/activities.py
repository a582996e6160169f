"""Volunteer activities (志愿活动): one-off occurrences published to the grid's group, changed, cancelled.

Grid leaders organise activities for the grids they serve (a community leader for the community and its grids),
admins anywhere. Every publication, change and cancellation is an outbox row under its own dedupe key, written in
the caller's transaction. Recurring activities are in handlers/series.py, sign-ups and attendance in
handlers/signups.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import Actor
from handlers.errors import Conflict, Forbidden, InvalidInput, NotFound
from handlers.geo import out_of_china
from handlers.notify import tell_grid, tell_person
from models import Activity, Grid, Person, Signup

TAKING_PLACES = ("confirmed", "attended", "no_show")  # sign-ups that hold one of the places
ACTIVE_SIGNUPS = (*TAKING_PLACES, "waitlisted")
MAX_DURATION = timedelta(hours=24)
MOVING_FIELDS = frozenset({"starts_at", "ends_at", "place", "lng", "lat"})  # changes the volunteers are told of
OCCURRENCE = col(Activity.recurrence).is_(None)  # a series row is a template, never an activity people join


class ActivityCancelled(Conflict):
    code = "activity_cancelled"


class ActivityStarted(Conflict):
    code = "activity_started"


@dataclass(frozen=True)
class ActivityContext:
    """What activities take from config (`activities:` and the activity defaults of `points:`)."""

    zone: ZoneInfo
    public_base_url: str = "http://127.0.0.1:8000"
    signup_url: str = "{base}/m/activities/{id}"
    checkin_radius_m: int = 300
    grace: timedelta = timedelta(minutes=30)
    signup_closes: timedelta = timedelta(hours=12)
    generate_ahead: timedelta = timedelta(days=35)
    max_ahead: int = 6
    max_capacity: int = 1000
    points_per_hour: int = 2
    points_cap: int | None = 8

    def link(self, activity_id: int | None) -> str:
        return self.signup_url.format(base=self.public_base_url.rstrip("/"), id=activity_id)

    def when(self, activity: Activity) -> str:
        return texts.activity_when(activity.starts_at, activity.ends_at, self.zone)

    def moment(self, at: datetime) -> str:
        return texts.fmt_time(at, self.zone)


@dataclass(frozen=True)
class ActivityFields:
    """What an organiser sets on an activity (or on a series, as the template of its occurrences).
    None means: not given (the default on creation; unchanged on a change)."""

    title: str | None = None
    description: str | None = None
    place: str | None = None
    lng: float | None = None
    lat: float | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    signup_deadline: datetime | None = None
    capacity: int | None = None
    points_per_hour: int | None = None
    points_cap: int | None = None
    checkin_radius_m: int | None = None


def notice(key: str) -> str:
    return texts.ACTIVITY_NOTICES[key]


def ensure_organiser(actor: Actor, grid: Grid) -> None:
    """Admins anywhere; grid leaders for the grids they serve and those below."""
    if "admin" in actor.roles:
        return
    if "grid_leader" in actor.roles and grid.id in actor.grid_ids:
        return
    raise Forbidden(
        f"{actor.name or 'this account'} does not lead grid {grid.code}",
        grid_code=grid.code,
        notice=notice("not_organiser"),
    )


def grid_by_code(session: Session, code: str) -> Grid:
    grid = session.exec(select(Grid).where(Grid.code == code)).first()
    if grid is None:
        raise InvalidInput(f"no grid with code {code!r}", grid_code=code)
    return grid


def get_activity(session: Session, activity_id: int, *, lock: bool = False, series: bool = False) -> Activity:
    """An occurrence (or, with series=True, a series); `lock` takes its row lock (PostgreSQL FOR UPDATE; SQLite's
    BEGIN IMMEDIATE already serialises writers): sign-ups and cancellations of one activity queue on it."""
    query = select(Activity).where(Activity.id == activity_id)
    query = query.where(col(Activity.recurrence).is_not(None) if series else OCCURRENCE)
    found = session.exec(query.with_for_update() if lock else query).first()
    if found is None:
        raise NotFound(f"no {'series' if series else 'activity'} with id {activity_id}", activity_id=activity_id)
    return found


# ---------------------------------------------------------------------------- validation


def validate_activity(ctx: ActivityContext, a: Activity, now: datetime, *, check_start: bool = True) -> None:
    a.title = (a.title or "").strip()
    a.place = (a.place or "").strip()
    a.description = (a.description or "").strip()
    if not 1 <= len(a.title) <= 200:
        raise InvalidInput("title must be 1–200 characters")
    if len(a.place) > 200 or len(a.description) > 2000:
        raise InvalidInput("place is at most 200 characters, description at most 2000")
    if a.lng is None or a.lat is None:
        raise InvalidInput("lng and lat (GCJ-02) of the meeting point are required: check-in is checked against them")
    if out_of_china(a.lng, a.lat):
        raise InvalidInput(f"({a.lng}, {a.lat}) is not a GCJ-02 point in China (longitude first)")
    for name in ("starts_at", "ends_at", "signup_deadline"):
        if getattr(a, name).tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. 2026-11-25T09:00:00+08:00)")
    if not a.starts_at < a.ends_at <= a.starts_at + MAX_DURATION:
        raise InvalidInput("ends_at must be after starts_at, and an activity lasts at most 24 hours")
    if check_start and a.starts_at <= now:
        raise InvalidInput("starts_at must be in the future")
    if a.signup_deadline > a.starts_at:
        raise InvalidInput("signup_deadline must not be after starts_at")
    if check_start and a.signup_deadline <= now:
        raise InvalidInput("signup_deadline must be in the future")
    if not 1 <= a.capacity <= ctx.max_capacity:
        raise InvalidInput(f"capacity must be 1–{ctx.max_capacity}")
    if not 0 <= a.points_per_hour <= 100:
        raise InvalidInput("points_per_hour must be 0–100")
    if a.points_cap is not None and not 1 <= a.points_cap <= 10000:
        raise InvalidInput("points_cap must be 1–10000")
    if not 20 <= a.checkin_radius_m <= 5000:
        raise InvalidInput("checkin_radius_m must be 20–5000 metres")


def new_activity(ctx: ActivityContext, grid: Grid, given: ActivityFields, actor: Actor, now: datetime) -> Activity:
    if given.starts_at is None or given.ends_at is None or given.capacity is None or given.title is None:
        raise InvalidInput("title, starts_at, ends_at and capacity are required")
    assert grid.id is not None
    return Activity(
        grid_id=grid.id,
        title=given.title,
        description=given.description or "",
        place=given.place or "",
        lng=given.lng,
        lat=given.lat,
        starts_at=given.starts_at,
        ends_at=given.ends_at,
        signup_deadline=given.signup_deadline or given.starts_at - ctx.signup_closes,
        capacity=given.capacity,
        points_per_hour=ctx.points_per_hour if given.points_per_hour is None else given.points_per_hour,
        points_cap=ctx.points_cap if given.points_cap is None else given.points_cap,
        checkin_radius_m=given.checkin_radius_m or ctx.checkin_radius_m,
        status="published",
        created_by=actor.person_id,
        created_at=now,
    )


# ---------------------------------------------------------------------------- one-off activities


def create_activity(
    session: Session, ctx: ActivityContext, actor: Actor, grid_code: str, given: ActivityFields, now: datetime
) -> Activity:
    """Publish a one-off activity: stored, and its card owed to the grid's group."""
    grid = grid_by_code(session, grid_code)
    ensure_organiser(actor, grid)
    activity = new_activity(ctx, grid, given, actor, now)
    validate_activity(ctx, activity, now)
    session.add(activity)
    session.flush()
    post_published(session, ctx, activity, now)
    return activity


def change_activity(
    session: Session, ctx: ActivityContext, actor: Actor, activity_id: int, given: ActivityFields, now: datetime
) -> Activity:
    """Change an activity that has not started. The group hears of each change (one post per revision); people
    signed up hear of a new time or place; more places promote the waiting list. Nothing new: nothing posted."""
    activity = get_activity(session, activity_id, lock=True)
    ensure_organiser(actor, grid_of(session, activity))
    _ensure_open(activity, now)
    before = {f.name: getattr(activity, f.name) for f in fields(ActivityFields)}
    changed = {name: value for name, value in _given(given).items() if value != before[name]}
    if not changed:
        return activity
    draft = Activity.model_validate({**activity.model_dump(), **changed})
    validate_activity(ctx, draft, now, check_start="starts_at" in changed or "signup_deadline" in changed)
    taken = places_taken(session, activity)
    if draft.capacity < taken:
        raise Conflict(
            f"{taken} people hold places; capacity cannot go below that",
            confirmed_count=taken,
            notice=notice("capacity_below_confirmed"),
        )
    for name in changed:
        setattr(activity, name, getattr(draft, name))
    activity.revision += 1
    activity.updated_at = now
    session.add(activity)
    session.flush()
    if "capacity" in changed:
        promote_waitlist(session, ctx, activity, now)
    post_changed(session, ctx, activity, now, moved=bool(MOVING_FIELDS & changed.keys()))
    return activity


def _given(given: ActivityFields) -> dict[str, Any]:
    return {f.name: getattr(given, f.name) for f in fields(given) if getattr(given, f.name) is not None}


def _ensure_open(activity: Activity, now: datetime) -> None:
    if activity.status == "cancelled":
        raise ActivityCancelled(f"activity {activity.id} is cancelled", notice=notice("cancelled"))
    if now >= activity.starts_at:
        raise ActivityStarted(
            f"activity {activity.id} started at {activity.starts_at.isoformat()}", notice=notice("started")
        )


def cancel_activity(
    session: Session, ctx: ActivityContext, actor: Actor, activity_id: int, reason: str, now: datetime
) -> Activity:
    """Cancel an activity that has not ended; the group and everyone signed up are told. Twice: once."""
    activity = get_activity(session, activity_id, lock=True)
    ensure_organiser(actor, grid_of(session, activity))
    if activity.status == "cancelled":
        return activity
    cancel_occurrence(session, ctx, activity, reason, now)
    return activity


def cancel_occurrence(session: Session, ctx: ActivityContext, activity: Activity, reason: str, now: datetime) -> None:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a cancellation needs a reason (the volunteers are told it)")
    if now >= activity.ends_at:
        raise Conflict(f"activity {activity.id} has ended", notice=notice("ended"))
    activity.status = "cancelled"
    activity.cancelled_at = now
    activity.cancel_reason = reason[:500]
    activity.updated_at = now
    session.add(activity)
    when = ctx.when(activity)
    _post(session, activity, texts.activity_cancelled_card(activity.title, when, reason), "cancelled", now)
    message = texts.activity_cancelled_notice(activity.title, when, reason)
    for person in _people_signed_up(session, activity):
        tell_person(session, person, message, now, dedupe_key=f"activity:{activity.id}:cancelled:person:{person.id}")


# ---------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class ActivityFilter:
    grid_id: int | None = None  # this grid and the grids below it
    grid_ids: frozenset[int] | None = None
    upcoming_at: datetime | None = None  # only activities that have not ended by then
    person_id: int | None = None  # only those this person is signed up for (any state but cancelled)
    include_cancelled: bool = False


def list_activities(session: Session, filters: ActivityFilter, *, limit: int = 50, offset: int = 0) -> list[Activity]:
    query = select(Activity).where(OCCURRENCE)
    if filters.grid_ids is not None:
        query = query.where(col(Activity.grid_id).in_(filters.grid_ids))
    if filters.upcoming_at is not None:
        query = query.where(Activity.ends_at > filters.upcoming_at)
    if not filters.include_cancelled:
        query = query.where(Activity.status == "published")
    if filters.person_id is not None:
        query = query.join(Signup, col(Signup.activity_id) == col(Activity.id)).where(
            Signup.person_id == filters.person_id, col(Signup.status).in_(ACTIVE_SIGNUPS)
        )
    query = query.order_by(col(Activity.starts_at), col(Activity.id)).offset(offset).limit(limit)
    return list(session.exec(query).all())


def list_series(session: Session, grid_ids: Iterable[int] | None = None) -> list[Activity]:
    query = select(Activity).where(col(Activity.recurrence).is_not(None))
    if grid_ids is not None:
        query = query.where(col(Activity.grid_id).in_(list(grid_ids)))
    return list(session.exec(query.order_by(col(Activity.id))).all())


def places_taken(session: Session, activity: Activity) -> int:
    return signup_counts(session, [activity.id] if activity.id is not None else []).get(activity.id or 0, (0, 0))[0]


def promote_waitlist(session: Session, ctx: ActivityContext, activity: Activity, now: datetime) -> list[Signup]:
    """Fill free places from the waiting list, oldest sign-up first, and tell each person promoted. Call with the
    activity locked (get_activity(lock=True)), as every change of its places does."""
    free = activity.capacity - places_taken(session, activity)
    if free <= 0 or activity.status != "published":
        return []
    waiting = session.exec(
        select(Signup)
        .where(Signup.activity_id == activity.id, Signup.status == "waitlisted")
        .order_by(col(Signup.queued_at), col(Signup.id))
        .limit(free)
    ).all()
    message = texts.promoted_notice(activity.title, ctx.when(activity), activity.place)
    for signup in waiting:
        signup.status, signup.promoted_at, signup.updated_at = "confirmed", now, now
        session.add(signup)
        person = session.get(Person, signup.person_id)
        if person is not None:
            key = f"signup:{signup.id}:promoted:{signup.queued_at.isoformat()}"
            tell_person(session, person, message, now, dedupe_key=key)
    session.flush()
    return list(waiting)


def signup_counts(session: Session, activity_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """activity id → (places taken, people waiting)."""
    ids = list(activity_ids)
    counts: dict[int, tuple[int, int]] = {}
    if not ids:
        return counts
    rows = session.exec(
        select(Signup.activity_id, Signup.status, func.count())
        .where(col(Signup.activity_id).in_(ids), col(Signup.status).in_(ACTIVE_SIGNUPS))
        .group_by(col(Signup.activity_id), col(Signup.status))
    ).all()
    for activity_id, status, count in rows:
        taken, waiting = counts.get(activity_id, (0, 0))
        if status == "waitlisted":
            waiting += int(count)
        else:
            taken += int(count)
        counts[activity_id] = (taken, waiting)
    return counts


def statuses_of(session: Session, person_id: int, activity_ids: Iterable[int]) -> dict[int, str]:
    ids = list(activity_ids)
    if not ids:
        return {}
    rows = session.exec(
        select(Signup.activity_id, Signup.status).where(Signup.person_id == person_id, col(Signup.activity_id).in_(ids))
    ).all()
    return {activity_id: status for activity_id, status in rows}


# ---------------------------------------------------------------------------- posts to the group


def post_published(session: Session, ctx: ActivityContext, activity: Activity, now: datetime) -> bool:
    taken = places_taken(session, activity)
    card = texts.activity_card(
        activity.title,
        ctx.when(activity),
        activity.place,
        taken,
        activity.capacity,
        texts.activity_points_rule(activity.points_per_hour, activity.points_cap),
        ctx.moment(activity.signup_deadline),
        ctx.link(activity.id),
    )
    return _post(session, activity, card, "published", now)


def post_changed(session: Session, ctx: ActivityContext, activity: Activity, now: datetime, *, moved: bool) -> bool:
    when = ctx.when(activity)
    card = texts.activity_changed_card(
        activity.title,
        when,
        activity.place,
        places_taken(session, activity),
        activity.capacity,
        ctx.moment(activity.signup_deadline),
        ctx.link(activity.id),
    )
    posted = _post(session, activity, card, f"changed:{activity.revision}", now)
    if moved:
        message = texts.activity_changed_notice(activity.title, when, activity.place)
        for person in _people_signed_up(session, activity):
            key = f"activity:{activity.id}:changed:{activity.revision}:person:{person.id}"
            tell_person(session, person, message, now, dedupe_key=key)
    return posted


def _post(session: Session, activity: Activity, card: str, what: str, now: datetime) -> bool:
    """The card to the activity's grid's group; a grid without a group (a community, usually) posts to the groups
    of the grids below it instead."""
    owed = False
    for grid in groups_for(session, activity.grid_id):
        owed |= tell_grid(session, grid, card, now, dedupe_key=f"activity:{activity.id}:{what}:grid:{grid.id}")
    return owed


def groups_for(session: Session, grid_id: int) -> list[Grid]:
    grids = {g.id: g for g in session.exec(select(Grid)).all()}
    children: dict[int | None, list[Grid]] = {}
    for grid in grids.values():
        children.setdefault(grid.parent_id, []).append(grid)
    found: list[Grid] = []
    stack = [grids[grid_id]] if grid_id in grids else []
    while stack:
        grid = stack.pop()
        if grid.channel:
            found.append(grid)
        else:
            stack.extend(sorted(children.get(grid.id, []), key=lambda g: g.code, reverse=True))
    return found


def grid_of(session: Session, activity: Activity) -> Grid:
    grid = session.get(Grid, activity.grid_id)
    assert grid is not None
    return grid


def _people_signed_up(session: Session, activity: Activity) -> list[Person]:
    """Everyone holding a place or waiting for one."""
    return list(
        session.exec(
            select(Person)
            .join(Signup, col(Signup.person_id) == col(Person.id))
            .where(Signup.activity_id == activity.id, col(Signup.status).in_(("confirmed", "waitlisted", "attended")))
            .order_by(col(Person.id))
        ).all()
    )
