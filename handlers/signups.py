"""Signing up for an activity, the waiting list, check-in and check-out, attendance and no-shows.

A sign-up is one row per person and activity (docs/activities.md draws its states): confirmed while a place is
free, else waitlisted; cancelled before the deadline (a freed place goes to the oldest waiting sign-up); attended
once checked in (or confirmed by the leader); no_show when the activity ended without it. Every change of an
activity's places locks the activity row first (`get_activity(lock=True)`: SELECT … FOR UPDATE on PostgreSQL; on
SQLite every transaction is BEGIN IMMEDIATE already), so concurrent sign-ups are counted one after another and
never fill more places than there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from math import asin, cos, radians, sin, sqrt

from sqlalchemy import func
from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import Actor
from handlers.activities import (
    ActivityCancelled,
    ActivityContext,
    ensure_organiser,
    get_activity,
    grid_of,
    notice,
    promote_waitlist,
    signup_counts,
)
from handlers.errors import Conflict, Forbidden, InvalidInput, NotFound
from handlers.points import append_entry, entry_by_key
from models import Activity, Signup

SIGNING_ROLES = frozenset({"volunteer", "resident"})
EARTH_RADIUS_M = 6371008.8  # mean radius (IUGG)


class SignupClosed(Conflict):
    code = "signup_closed"


class OutsideWindow(Conflict):
    code = "outside_time_window"


class OutsideGeofence(Conflict):
    code = "outside_geofence"


@dataclass(frozen=True)
class SignupView:
    """A person's sign-up as the API shows it, with the activity's counts at that moment."""

    activity_id: int
    status: str
    position: int | None  # on the waiting list, 1 = next in line
    confirmed_count: int
    waitlisted_count: int
    capacity: int
    signup: Signup | None
    points: int | None = None  # points this attendance earned (when paid)


def haversine_m(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    """Great-circle distance in metres. Both points in the same datum (GCJ-02 here): its offset is all but
    constant over a few kilometres, so distances are those on the ground to well under a metre."""
    p1, p2 = radians(lat1), radians(lat2)
    dp, dl = p2 - p1, radians(lng2 - lng1)
    h = sin(dp / 2) ** 2 + cos(p1) * cos(p2) * sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * asin(min(1.0, sqrt(h)))


def signup_of(session: Session, activity_id: int, person_id: int, *, lock: bool = False) -> Signup | None:
    query = select(Signup).where(Signup.activity_id == activity_id, Signup.person_id == person_id)
    return session.exec(query.with_for_update() if lock else query).first()


def view_of(session: Session, activity: Activity, signup: Signup | None, points: int | None = None) -> SignupView:
    assert activity.id is not None
    taken, waiting = signup_counts(session, [activity.id]).get(activity.id, (0, 0))
    position = None
    if signup is not None and signup.status == "waitlisted":
        ahead = session.exec(
            select(func.count())
            .select_from(Signup)
            .where(
                Signup.activity_id == activity.id,
                Signup.status == "waitlisted",
                (col(Signup.queued_at) < signup.queued_at)
                | ((col(Signup.queued_at) == signup.queued_at) & (col(Signup.id) < signup.id)),
            )
        ).one()
        position = int(ahead) + 1
    return SignupView(
        activity_id=activity.id,
        status=signup.status if signup is not None else "none",
        position=position,
        confirmed_count=taken,
        waitlisted_count=waiting,
        capacity=activity.capacity,
        signup=signup,
        points=points,
    )


def _ensure_person(actor: Actor) -> int:
    if actor.person_id is None:
        raise Forbidden("the system does not sign up for activities")
    return actor.person_id


def sign_up(session: Session, ctx: ActivityContext, actor: Actor, activity_id: int, now: datetime) -> SignupView:
    """A place if one is free, else the back of the waiting list. Asking again gives the same answer."""
    person_id = _ensure_person(actor)
    if not actor.roles & SIGNING_ROLES:
        raise Forbidden("only volunteers and residents sign up for activities", notice=notice("not_volunteer"))
    activity = get_activity(session, activity_id, lock=True)
    if activity.status == "cancelled":
        raise ActivityCancelled(f"activity {activity_id} is cancelled", notice=notice("cancelled"))
    signup = signup_of(session, activity_id, person_id)
    if signup is not None and signup.status != "cancelled":
        return view_of(session, activity, signup)
    if now >= activity.signup_deadline:
        raise SignupClosed(
            f"sign-up for activity {activity_id} closed at {activity.signup_deadline.isoformat()}",
            notice=notice("signup_closed"),
        )
    promote_waitlist(session, ctx, activity, now)  # keeps "someone waits only when every place is taken"
    taken, waiting = signup_counts(session, [activity_id]).get(activity_id, (0, 0))
    status = "confirmed" if taken < activity.capacity and not waiting else "waitlisted"
    if signup is None:
        signup = Signup(activity_id=activity_id, person_id=person_id, status=status, created_at=now, queued_at=now)
    else:  # signing up again after cancelling: a fresh place in the queue
        signup.status, signup.queued_at, signup.cancelled_at, signup.promoted_at = status, now, None, None
    signup.updated_at = now
    session.add(signup)
    session.flush()
    return view_of(session, activity, signup)


def cancel_signup(session: Session, ctx: ActivityContext, actor: Actor, activity_id: int, now: datetime) -> SignupView:
    """Give the place (or the spot on the waiting list) back, before the deadline; the oldest waiting sign-up gets
    a freed place and is told. Cancelling again gives the same answer."""
    person_id = _ensure_person(actor)
    activity = get_activity(session, activity_id, lock=True)
    signup = signup_of(session, activity_id, person_id)
    if signup is None:
        raise NotFound(f"no sign-up for activity {activity_id}", notice=notice("not_signed_up"))
    if signup.status == "cancelled":
        return view_of(session, activity, signup)
    if activity.status == "cancelled":
        raise ActivityCancelled(f"activity {activity_id} is cancelled", notice=notice("cancelled"))
    if signup.status in ("attended", "no_show") or now >= activity.starts_at:
        raise Conflict(
            f"activity {activity_id} has started; a sign-up cannot be cancelled", notice=notice("already_done")
        )
    if now >= activity.signup_deadline:
        raise SignupClosed(
            f"sign-up for activity {activity_id} closed at {activity.signup_deadline.isoformat()}; "
            "cancelling is no longer possible",
            notice=notice("signup_closed"),
        )
    signup.status, signup.cancelled_at, signup.updated_at = "cancelled", now, now
    session.add(signup)
    session.flush()
    promote_waitlist(session, ctx, activity, now)
    return view_of(session, activity, signup)


# ---------------------------------------------------------------------------- attendance


def _place_check(ctx: ActivityContext, activity: Activity, lng: float, lat: float) -> float:
    if activity.lng is None or activity.lat is None:
        raise Conflict(f"activity {activity.id} has no meeting point to check in at", notice=notice("no_place"))
    if not (-180 <= lng <= 180 and -90 <= lat <= 90):
        raise InvalidInput("lng must be within ±180 and lat within ±90 (GCJ-02)")
    distance = haversine_m(lng, lat, activity.lng, activity.lat)
    if distance > activity.checkin_radius_m:
        raise OutsideGeofence(
            f"{distance:.0f} m from the meeting point; the geofence is {activity.checkin_radius_m} m",
            distance_m=round(distance),
            radius_m=activity.checkin_radius_m,
            notice=texts.outside_geofence(distance, activity.checkin_radius_m),
        )
    return distance


def _own_signup(session: Session, activity: Activity, person_id: int) -> Signup:
    assert activity.id is not None
    if activity.status == "cancelled":
        raise ActivityCancelled(f"activity {activity.id} is cancelled", notice=notice("cancelled"))
    signup = signup_of(session, activity.id, person_id, lock=True)
    if signup is None or signup.status == "cancelled":
        raise Conflict(f"not signed up for activity {activity.id}", notice=notice("not_signed_up"))
    if signup.status == "waitlisted":
        raise Conflict(f"still on the waiting list of activity {activity.id}", notice=notice("not_confirmed"))
    return signup


def check_in(
    session: Session, ctx: ActivityContext, actor: Actor, activity_id: int, lng: float, lat: float, now: datetime
) -> SignupView:
    """From `grace` before the start to the end, within the geofence. Checking in again changes nothing."""
    activity = get_activity(session, activity_id)
    signup = _own_signup(session, activity, _ensure_person(actor))
    if signup.checkin_at is not None:
        return view_of(session, activity, signup)
    opens = activity.starts_at - ctx.grace
    if now < opens:
        raise OutsideWindow(f"check-in opens at {opens.isoformat()}", notice=texts.too_early(ctx.moment(opens)))
    if now > activity.ends_at:
        raise OutsideWindow(
            f"activity {activity_id} ended at {activity.ends_at.isoformat()}", notice=notice("too_late")
        )
    signup.checkin_distance_m = round(_place_check(ctx, activity, lng, lat), 1)
    signup.status, signup.checkin_at, signup.updated_at = "attended", now, now
    session.add(signup)
    session.flush()
    return view_of(session, activity, signup)


def check_out(
    session: Session, ctx: ActivityContext, actor: Actor, activity_id: int, lng: float, lat: float, now: datetime
) -> SignupView:
    """Until `grace` after the end, within the geofence; pays the minutes attended inside the activity's window."""
    activity = get_activity(session, activity_id)
    signup = _own_signup(session, activity, _ensure_person(actor))
    if signup.checkin_at is None:
        raise Conflict(f"not checked in to activity {activity_id}", notice=notice("not_checked_in"))
    if signup.checkout_at is not None:
        return view_of(session, activity, signup, paid(session, activity, signup))
    closes = activity.ends_at + ctx.grace
    if now > closes:
        raise OutsideWindow(f"check-out closed at {closes.isoformat()}", notice=notice("checkout_too_late"))
    signup.checkout_distance_m = round(_place_check(ctx, activity, lng, lat), 1)
    signup.checkout_at, signup.updated_at = now, now
    points = _pay(session, activity, signup, attended_minutes(activity, signup.checkin_at, now), None, now)
    return view_of(session, activity, signup, points)


def confirm_attendance(
    session: Session,
    ctx: ActivityContext,
    actor: Actor,
    activity_id: int,
    person_id: int,
    now: datetime,
    minutes: int | None = None,
) -> SignupView:
    """A leader confirms that someone took part (no phone, no signal, a no-show who did come): `minutes` served,
    by default from their check-in (or the start) to their check-out (or the end). Pays once: attendance already
    paid is not paid again."""
    activity = get_activity(session, activity_id, lock=True)
    ensure_organiser(actor, grid_of(session, activity))
    signup = _own_signup(session, activity, person_id)
    if now < activity.starts_at - ctx.grace:
        raise OutsideWindow(
            f"activity {activity_id} has not started", notice=texts.too_early(ctx.moment(activity.starts_at))
        )
    length = int((activity.ends_at - activity.starts_at).total_seconds() // 60)
    if minutes is not None and not 1 <= minutes <= length:
        raise InvalidInput(f"minutes must be 1–{length} (the activity's length)")
    if minutes is None:
        start = signup.checkin_at or activity.starts_at
        minutes = attended_minutes(activity, start, signup.checkout_at or activity.ends_at)
    signup.status, signup.attendance_by, signup.updated_at = "attended", actor.person_id, now
    points = _pay(session, activity, signup, minutes, actor.person_id, now, override=True)
    return view_of(session, activity, signup, points)


def attended_minutes(activity: Activity, start: datetime, end: datetime) -> int:
    """Whole minutes of [start, end] inside the activity's own window (early arrival and lingering do not count)."""
    inside = min(end, activity.ends_at) - max(start, activity.starts_at)
    return max(0, int(inside.total_seconds() // 60))


def activity_points(activity: Activity, minutes: int) -> int:
    points = minutes * activity.points_per_hour // 60
    return min(points, activity.points_cap) if activity.points_cap is not None else points


def _key(activity: Activity, person_id: int) -> str:
    return f"activity:{activity.id}:person:{person_id}"


def paid(session: Session, activity: Activity, signup: Signup) -> int | None:
    entry = entry_by_key(session, _key(activity, signup.person_id))
    return entry.delta if entry is not None else None


def _pay(
    session: Session,
    activity: Activity,
    signup: Signup,
    minutes: int,
    actor_id: int | None,
    now: datetime,
    *,
    override: bool = False,
) -> int | None:
    """Record the minutes and pay their points, once per person and activity. A leader's minutes (`override`)
    replace the recorded ones while nothing has been paid. → the points paid for it (now or earlier), None when
    nothing was."""
    if signup.attended_minutes is None or (override and paid(session, activity, signup) is None):
        signup.attended_minutes = minutes
    session.add(signup)
    session.flush()
    points = activity_points(activity, signup.attended_minutes)
    if points > 0:
        append_entry(
            session,
            person_id=signup.person_id,
            delta=points,
            reason=texts.activity_points_reason(activity.title),
            source="activity",
            key=_key(activity, signup.person_id),
            now=now,
            source_ref=str(activity.id),
            actor_id=actor_id,
            grid_id=activity.grid_id,
        )
    return paid(session, activity, signup)


# ---------------------------------------------------------------------------- after the end


@dataclass(frozen=True)
class Settled:
    activities: int = 0
    no_shows: int = 0
    paid: int = 0

    def __bool__(self) -> bool:
        return bool(self.activities)


def settle_activities(session: Session, ctx: ActivityContext, now: datetime, *, batch: int = 50) -> Settled:
    """Activities ended more than `grace` ago and not yet settled: confirmed sign-ups that never checked in become
    no-shows; those checked in without checking out are paid to the scheduled end. Each activity once."""
    due = session.exec(
        select(Activity)
        .where(
            col(Activity.recurrence).is_(None),
            Activity.status == "published",
            col(Activity.settled_at).is_(None),
            Activity.ends_at <= now - ctx.grace,
        )
        .order_by(col(Activity.ends_at), col(Activity.id))
        .limit(batch)
        .with_for_update()
    ).all()
    no_shows = paid_count = 0
    for activity in due:
        signups = session.exec(
            select(Signup).where(Signup.activity_id == activity.id, col(Signup.status).in_(("confirmed", "attended")))
        ).all()
        for signup in signups:
            if signup.status == "confirmed":
                signup.status, signup.updated_at = "no_show", now
                session.add(signup)
                no_shows += 1
            elif signup.attended_minutes is None and signup.checkin_at is not None:
                _pay(
                    session,
                    activity,
                    signup,
                    attended_minutes(activity, signup.checkin_at, activity.ends_at),
                    None,
                    now,
                )
                paid_count += 1
        activity.settled_at = now
        session.add(activity)
    session.flush()
    return Settled(activities=len(due), no_shows=no_shows, paid=paid_count)


def roster(session: Session, activity: Activity) -> list[Signup]:
    """Every sign-up of the activity, places first in queue order, then the waiting list, then the cancelled."""
    order = {"attended": 0, "confirmed": 0, "no_show": 0, "waitlisted": 1, "cancelled": 2}
    rows = session.exec(
        select(Signup).where(Signup.activity_id == activity.id).order_by(col(Signup.queued_at), col(Signup.id))
    ).all()
    return sorted(rows, key=lambda s: order.get(s.status, 3))
