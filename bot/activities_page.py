"""The public page behind an activity card's sign-up link (`/m/activities/<id>`, config activities.signup_url):
what, when, where, how many have signed up, and how to sign up in the mini-program. No login, and nothing about
the volunteers but their number."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bot.deps import ClockDep, SessionDep, SettingsDep
from bot.mobile import SECURITY_HEADERS
from handlers import texts
from handlers.activities import get_activity, grid_of, signup_counts
from handlers.errors import NotFound

router = APIRouter(prefix="/m", include_in_schema=False)

P = texts.ACTIVITY_PAGE


@cache
def _templates() -> Jinja2Templates:
    return Jinja2Templates(directory=Path(__file__).with_name("templates") / "mobile")


@router.get("/activities/{activity_id}", response_class=HTMLResponse)
def activity_page(
    activity_id: str, request: Request, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> HTMLResponse:
    context: dict[str, object] = {"t": texts.MOBILE_PAGE, "p": P, "visitor": None, "a": None}
    try:
        if not (activity_id.isascii() and activity_id.isdigit() and len(activity_id) < 12):
            raise NotFound(f"no activity with id {activity_id[:20]!r}")
        activity = get_activity(session, int(activity_id))
    except NotFound:
        response = _templates().TemplateResponse(request, "activity.html", context, status_code=404)
        response.headers.update(SECURITY_HEADERS)
        return response
    assert activity.id is not None
    now, zone = clock(), settings.zone
    taken, waiting = signup_counts(session, [activity.id]).get(activity.id, (0, 0))
    if activity.status == "cancelled":
        state = P["cancelled"]
    elif now >= activity.ends_at:
        state = P["ended"]
    elif now >= activity.signup_deadline:
        state = P["closed"]
    else:
        state = P["open"]
    context.update(
        a=activity,
        state=state,
        signup_open=activity.status == "published" and now < activity.signup_deadline,
        when=texts.activity_when(activity.starts_at, activity.ends_at, zone),
        grid_name=grid_of(session, activity).name,
        places=texts.activity_places(taken, activity.capacity, waiting),
        deadline=texts.fmt_time(activity.signup_deadline, zone),
        points=texts.activity_points_rule(activity.points_per_hour, activity.points_cap),
    )
    response = _templates().TemplateResponse(request, "activity.html", context)
    response.headers.update(SECURITY_HEADERS)
    return response
