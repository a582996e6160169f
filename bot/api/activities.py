"""Volunteer activities over HTTP: list, publish, change, cancel, recurring series, sign-up, check-in/out,
attendance. Thin routes over handlers/activities.py, series.py and signups.py; each commits its own transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime, BaseModel, Field
from sqlmodel import Session, col, select

from bot.api.schemas import ErrorBody
from bot.config import Settings
from bot.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from handlers.access import Actor, descendant_grid_ids
from handlers.activities import (
    ActivityContext,
    ActivityFields,
    ActivityFilter,
    cancel_activity,
    change_activity,
    create_activity,
    ensure_organiser,
    get_activity,
    grid_by_code,
    grid_of,
    list_activities,
    list_series,
    signup_counts,
    statuses_of,
)
from handlers.series import create_series, stop_series
from handlers.signups import (
    SignupView,
    cancel_signup,
    check_in,
    check_out,
    confirm_attendance,
    roster,
    sign_up,
    signup_of,
    view_of,
)
from models import Activity, Grid, Person

router = APIRouter(prefix="/api/v1", tags=["activities"])

REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    403: {"model": ErrorBody, "description": "the caller may not do this (role or grid)"},
    404: {"model": ErrorBody, "description": "no such activity"},
    409: {"model": ErrorBody, "description": "not now: cancelled, deadline passed, outside the window or geofence"},
    422: {"model": ErrorBody, "description": "invalid input"},
}


def activity_context(settings: Settings) -> ActivityContext:
    a, p = settings.activities, settings.points
    return ActivityContext(
        zone=settings.zone,
        public_base_url=settings.app.public_base_url,
        signup_url=a.signup_url,
        checkin_radius_m=a.checkin_radius_m,
        grace=timedelta(minutes=a.grace_minutes),
        signup_closes=timedelta(hours=a.signup_closes_hours),
        generate_ahead=timedelta(days=a.generate_days_ahead),
        max_ahead=a.max_ahead,
        max_capacity=a.max_capacity,
        points_per_hour=p.activity_per_hour,
        points_cap=p.activity_cap,
    )


# ---------------------------------------------------------------------------- shapes


class ActivityPublic(BaseModel):
    id: int
    title: str
    description: str
    place: str
    lng: float | None = Field(description="meeting point, GCJ-02")
    lat: float | None
    crs: str = "gcj02"
    grid: str = Field(description="code of the organising grid")
    grid_name: str
    starts_at: datetime
    ends_at: datetime
    signup_deadline: datetime
    capacity: int
    confirmed_count: int = Field(description="places taken (confirmed, attended, no-show)")
    waitlisted_count: int
    signup_open: bool = Field(description="published and before the sign-up deadline")
    status: str = Field(description="published | cancelled")
    points_per_hour: int
    points_cap: int | None
    checkin_radius_m: int
    series_id: int | None
    cancel_reason: str | None
    link: str = Field(description="the sign-up link posted in the group card")
    my_status: str | None = Field(description="the caller's sign-up: confirmed, waitlisted, … or null")


class SeriesPublic(BaseModel):
    id: int
    title: str
    recurrence: str = Field(description="cron expression (minute hour day month weekday), Beijing time")
    grid: str
    place: str
    duration_minutes: int
    signup_closes_minutes: int = Field(description="sign-up closes this long before each start")
    capacity: int
    status: str = Field(description="published (generating) | cancelled (stopped)")
    first_starts_at: datetime


class SeriesCreated(BaseModel):
    series: SeriesPublic
    occurrences: list[ActivityPublic]


class SignupPublic(BaseModel):
    activity_id: int
    status: str = Field(description="confirmed | waitlisted | cancelled | attended | no_show")
    position: int | None = Field(description="place on the waiting list (1 = next)")
    confirmed_count: int
    waitlisted_count: int
    capacity: int
    signed_up_at: datetime | None
    checkin_at: datetime | None
    checkout_at: datetime | None
    attended_minutes: int | None
    points: int | None = Field(description="points this attendance earned, once paid")


class RosterEntry(BaseModel):
    person_id: int
    name: str
    status: str
    signed_up_at: datetime
    checkin_at: datetime | None
    checkout_at: datetime | None
    checkin_distance_m: float | None
    attended_minutes: int | None


class _ActivityBody(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    place: str | None = Field(default=None, max_length=200)
    lng: float | None = Field(default=None, ge=-180, le=180, description="GCJ-02")
    lat: float | None = Field(default=None, ge=-90, le=90, description="GCJ-02")
    capacity: int | None = Field(default=None, ge=1)
    points_per_hour: int | None = Field(default=None, ge=0, le=100)
    points_cap: int | None = Field(default=None, ge=1, le=10000)
    checkin_radius_m: int | None = Field(default=None, ge=20, le=5000)


class ActivityCreate(_ActivityBody):
    grid: str = Field(description="code of the organising grid")
    title: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    signup_deadline: AwareDatetime | None = Field(default=None, description="default: activities.signup_closes_hours")
    capacity: int = Field(ge=1)
    lng: float = Field(ge=-180, le=180, description="GCJ-02")
    lat: float = Field(ge=-90, le=90, description="GCJ-02")


class ActivityChange(_ActivityBody):
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    signup_deadline: AwareDatetime | None = None


class SeriesCreate(_ActivityBody):
    grid: str
    title: str = Field(min_length=1, max_length=200)
    recurrence: str = Field(
        max_length=64, description="cron in Beijing time, weekdays by name: '0 9 9 * *' = 09:00 on every 9th"
    )
    duration_minutes: int = Field(ge=1, le=24 * 60)
    signup_closes_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 30)
    starts_from: AwareDatetime | None = Field(default=None, description="no occurrence before this")
    capacity: int = Field(ge=1)
    lng: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class Location(BaseModel):
    lng: float = Field(ge=-180, le=180, description="the phone's location, GCJ-02 (wx.getLocation type gcj02)")
    lat: float = Field(ge=-90, le=90)


class Attendance(BaseModel):
    person_id: int
    minutes: int | None = Field(
        default=None, ge=1, description="default: from check-in (or start) to check-out (or end)"
    )


def _fields(body: _ActivityBody) -> ActivityFields:
    data = body.model_dump(exclude={"grid", "recurrence", "duration_minutes", "signup_closes_minutes", "starts_from"})
    return ActivityFields(**{k: v for k, v in data.items() if k in ActivityFields.__dataclass_fields__})


def activities_public(
    session: Session, ctx: ActivityContext, rows: list[Activity], caller: Actor, now: datetime
) -> list[ActivityPublic]:
    ids = [a.id for a in rows if a.id is not None]
    counts = signup_counts(session, ids)
    mine = statuses_of(session, caller.person_id, ids) if caller.person_id is not None else {}
    grids = {g.id: g for g in session.exec(select(Grid).where(col(Grid.id).in_({a.grid_id for a in rows}))).all()}
    out = []
    for a in rows:
        assert a.id is not None
        taken, waiting = counts.get(a.id, (0, 0))
        grid = grids[a.grid_id]
        out.append(
            ActivityPublic(
                **a.model_dump(
                    include={
                        "id",
                        "title",
                        "description",
                        "place",
                        "lng",
                        "lat",
                        "starts_at",
                        "ends_at",
                        "signup_deadline",
                        "capacity",
                        "status",
                        "points_per_hour",
                        "points_cap",
                        "checkin_radius_m",
                        "series_id",
                        "cancel_reason",
                    }
                ),
                grid=grid.code,
                grid_name=grid.name,
                confirmed_count=taken,
                waitlisted_count=waiting,
                signup_open=a.status == "published" and now < a.signup_deadline,
                link=ctx.link(a.id),
                my_status=mine.get(a.id),
            )
        )
    return out


def series_public(session: Session, series: Activity) -> SeriesPublic:
    assert series.id is not None and series.recurrence is not None
    return SeriesPublic(
        id=series.id,
        title=series.title,
        recurrence=series.recurrence,
        grid=grid_of(session, series).code,
        place=series.place,
        duration_minutes=int((series.ends_at - series.starts_at).total_seconds() // 60),
        signup_closes_minutes=int((series.starts_at - series.signup_deadline).total_seconds() // 60),
        capacity=series.capacity,
        status=series.status,
        first_starts_at=series.starts_at,
    )


def signup_public(view: SignupView) -> SignupPublic:
    s = view.signup
    return SignupPublic(
        activity_id=view.activity_id,
        status=view.status,
        position=view.position,
        confirmed_count=view.confirmed_count,
        waitlisted_count=view.waitlisted_count,
        capacity=view.capacity,
        signed_up_at=s.queued_at if s else None,
        checkin_at=s.checkin_at if s else None,
        checkout_at=s.checkout_at if s else None,
        attended_minutes=s.attended_minutes if s else None,
        points=view.points,
    )


def _one(session: Session, settings: Settings, activity: Activity, caller: CallerDep, now: datetime) -> ActivityPublic:
    return activities_public(session, activity_context(settings), [activity], caller.actor, now)[0]


# ---------------------------------------------------------------------------- activities


@router.get("/activities", response_model=list[ActivityPublic], responses=REFUSALS)
def get_activities(
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    grid: Annotated[str | None, Query(description="grid code: this grid and the grids below it")] = None,
    upcoming: Annotated[bool, Query(description="only activities that have not ended")] = False,
    mine: Annotated[bool, Query(description="only those the caller signed up for")] = False,
    include_cancelled: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ActivityPublic]:
    """Activities, soonest first. Series templates are not listed (see /activity-series)."""
    now = clock()
    grid_ids = None
    if grid is not None:
        found = grid_by_code(session, grid)
        assert found.id is not None
        grid_ids = frozenset(descendant_grid_ids(session, [found.id]))
    filters = ActivityFilter(
        grid_ids=grid_ids,
        upcoming_at=now if upcoming else None,
        person_id=caller.actor.person_id if mine else None,
        include_cancelled=include_cancelled,
    )
    rows = list_activities(session, filters, limit=limit, offset=offset)
    return activities_public(session, activity_context(settings), rows, caller.actor, now)


@router.post("/activities", response_model=ActivityPublic, status_code=status.HTTP_201_CREATED, responses=REFUSALS)
def post_activity(
    body: ActivityCreate, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> ActivityPublic:
    """Publish a one-off activity (grid leaders for their grids, admins anywhere); its card goes to the group."""
    now = clock()
    activity = create_activity(session, activity_context(settings), caller.actor, body.grid, _fields(body), now)
    session.commit()
    return _one(session, settings, activity, caller, now)


@router.get("/activities/{activity_id}", response_model=ActivityPublic, responses=REFUSALS)
def get_one_activity(
    activity_id: int, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> ActivityPublic:
    return _one(session, settings, get_activity(session, activity_id), caller, clock())


@router.patch("/activities/{activity_id}", response_model=ActivityPublic, responses=REFUSALS)
def patch_activity(
    activity_id: int,
    body: ActivityChange,
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ActivityPublic:
    """Change an activity before it starts; the group is told (and, for a new time or place, everyone signed up)."""
    now = clock()
    activity = change_activity(session, activity_context(settings), caller.actor, activity_id, _fields(body), now)
    session.commit()
    return _one(session, settings, activity, caller, now)


@router.post("/activities/{activity_id}/cancel", response_model=ActivityPublic, responses=REFUSALS)
def post_cancel(
    activity_id: int, body: Reason, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> ActivityPublic:
    """Cancel; the group and everyone signed up are told why."""
    now = clock()
    activity = cancel_activity(session, activity_context(settings), caller.actor, activity_id, body.reason, now)
    session.commit()
    return _one(session, settings, activity, caller, now)


# ---------------------------------------------------------------------------- sign-up and attendance


@router.post("/activities/{activity_id}/signups", response_model=SignupPublic, responses=REFUSALS)
def post_signup(
    activity_id: int, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> SignupPublic:
    """Sign up: `confirmed` while places are free, else `waitlisted`. A repeat gives the same answer."""
    view = sign_up(session, activity_context(settings), caller.actor, activity_id, clock())
    session.commit()
    return signup_public(view)


@router.delete("/activities/{activity_id}/signups/me", response_model=SignupPublic, responses=REFUSALS)
def delete_my_signup(
    activity_id: int, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> SignupPublic:
    """Cancel one's sign-up before the deadline; a freed place goes to the oldest on the waiting list."""
    view = cancel_signup(session, activity_context(settings), caller.actor, activity_id, clock())
    session.commit()
    return signup_public(view)


@router.get("/activities/{activity_id}/signups/me", response_model=SignupPublic, responses=REFUSALS)
def get_my_signup(activity_id: int, caller: CallerDep, session: SessionDep) -> SignupPublic:
    """The caller's own sign-up (status `none` when there is none)."""
    activity = get_activity(session, activity_id)
    signup = signup_of(session, activity_id, caller.actor.person_id or 0)
    return signup_public(view_of(session, activity, signup))


@router.get("/activities/{activity_id}/signups", response_model=list[RosterEntry], responses=REFUSALS)
def get_roster(activity_id: int, caller: CallerDep, session: SessionDep) -> list[RosterEntry]:
    """Who signed up (organisers only)."""
    activity = get_activity(session, activity_id)
    ensure_organiser(caller.actor, grid_of(session, activity))
    rows = roster(session, activity)
    names = dict(
        session.exec(select(Person.id, Person.name).where(col(Person.id).in_([s.person_id for s in rows]))).all()
    )
    return [
        RosterEntry(
            person_id=s.person_id,
            name=names.get(s.person_id) or "",
            status=s.status,
            signed_up_at=s.queued_at,
            checkin_at=s.checkin_at,
            checkout_at=s.checkout_at,
            checkin_distance_m=s.checkin_distance_m,
            attended_minutes=s.attended_minutes,
        )
        for s in rows
    ]


@router.post("/activities/{activity_id}/checkin", response_model=SignupPublic, responses=REFUSALS)
def post_checkin(
    activity_id: int, body: Location, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> SignupPublic:
    """Check in at the meeting point, from `activities.grace_minutes` before the start until the end."""
    view = check_in(session, activity_context(settings), caller.actor, activity_id, body.lng, body.lat, clock())
    session.commit()
    return signup_public(view)


@router.post("/activities/{activity_id}/checkout", response_model=SignupPublic, responses=REFUSALS)
def post_checkout(
    activity_id: int, body: Location, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> SignupPublic:
    """Check out at the meeting point; the minutes inside the activity's window earn its points."""
    view = check_out(session, activity_context(settings), caller.actor, activity_id, body.lng, body.lat, clock())
    session.commit()
    return signup_public(view)


@router.post("/activities/{activity_id}/attendance", response_model=SignupPublic, responses=REFUSALS)
def post_attendance(
    activity_id: int,
    body: Attendance,
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> SignupPublic:
    """An organiser confirms that someone took part (and for how long); pays once."""
    view = confirm_attendance(
        session, activity_context(settings), caller.actor, activity_id, body.person_id, clock(), body.minutes
    )
    session.commit()
    return signup_public(view)


# ---------------------------------------------------------------------------- series


@router.get("/activity-series", response_model=list[SeriesPublic], responses=REFUSALS)
def get_series(caller: CallerDep, session: SessionDep) -> list[SeriesPublic]:
    return [series_public(session, s) for s in list_series(session)]


@router.post("/activity-series", response_model=SeriesCreated, status_code=status.HTTP_201_CREATED, responses=REFUSALS)
def post_series(
    body: SeriesCreate, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> SeriesCreated:
    """A recurring activity; the occurrences within `activities.generate_days_ahead` are published now, later
    ones by the timers."""
    now = clock()
    ctx = activity_context(settings)
    closes = timedelta(minutes=body.signup_closes_minutes) if body.signup_closes_minutes is not None else None
    series, created = create_series(
        session,
        ctx,
        caller.actor,
        body.grid,
        body.recurrence,
        _fields(body),
        timedelta(minutes=body.duration_minutes),
        now,
        signup_closes=closes,
        starts_from=body.starts_from,
    )
    session.commit()
    return SeriesCreated(
        series=series_public(session, series), occurrences=activities_public(session, ctx, created, caller.actor, now)
    )


@router.post("/activity-series/{series_id}/stop", response_model=SeriesPublic, responses=REFUSALS)
def post_stop_series(
    series_id: int, body: Reason, caller: CallerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> SeriesPublic:
    """No more occurrences; those not started are cancelled and their volunteers told."""
    series = stop_series(session, activity_context(settings), caller.actor, series_id, body.reason, clock())
    session.commit()
    return series_public(session, series)
