"""The case page a grid worker opens from a group card (`/m/cases/<case_no>`): server-rendered, no JavaScript.

Session: login puts one of the API's bearer tokens (handlers/people.py issue_token, label "mobile") in an
HttpOnly, SameSite=Lax cookie limited to /m. The token is 256 random bits looked up by its hash on every request,
so the cookie cannot be forged or altered; it expires with the token, and logout revokes it.
CSRF: every form carries an HMAC of the session token, checked before anything is written; the login form,
before there is a session, a double-submit cookie.
Double taps: every form also carries the case's last event number as the page showed it. A second submission of
the same form, or a form shown before someone else acted, is refused and the page shows the case as it is now.

Actions go through handlers/cases.py act_on_case and add_note as the staff API does; the route commits.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.deps import ClockDep, SessionDep, SettingsDep
from bot.sla import announcer, sla_policy
from bot.storage import CleanPhoto, LocalMediaStore, PhotoRefused, clean_photo, thumbnail_of
from classifier.taxonomy import default_taxonomy
from handlers import texts
from handlers.access import Actor, descendant_grid_ids, load_actor, roles_on_case
from handlers.cases import ActionInput, CaseFilter, act_on_case, add_note, case_events, get_case_for_update, list_cases
from handlers.errors import DomainError, Forbidden, InvalidTransition, NotFound
from handlers.lifecycle import AWAITING_TAKE, OPEN_WORK, actions_for
from handlers.people import check_password, hash_password, issue_token, person_for_token, revoke_token
from models import Case, CaseEvent, Grid, Media, Person, Report

log = logging.getLogger("gridbot.mobile")

router = APIRouter(prefix="/m", include_in_schema=False)

COOKIE = "gridbot_m"
LOGIN_COOKIE = "gridbot_m_login"
COOKIE_PATH = "/m"
SESSION_MAX = timedelta(days=7)  # a phone can be lost: at most a week, less if auth.token_ttl_hours says so
MAX_PHOTOS = 9
MAX_NOTE = 1000  # characters of a note, a reason or a resolution
# In the order the page offers them. `note` is add_note; the others are act_on_case actions.
PAGE_ACTIONS = ("take", "start", "resolve", "note", "transfer", "suspend", "resume")
WITH_PHOTOS = frozenset({"note", "resolve"})
WORK_LEVELS = ("grid", "subgrid")  # the grids a case can be transferred to
CASE_NO = re.compile(r"^\d{8}-\d{4,6}$")
NEXT_PATH = re.compile(r"^/m/[A-Za-z0-9_/-]*$")
MEDIA_REF = re.compile(r"^media:(\d+)$")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

T = texts.MOBILE_PAGE


@cache
def _templates() -> Jinja2Templates:
    return Jinja2Templates(directory=Path(__file__).with_name("templates") / "mobile")


@cache
def _dummy_hash() -> str:
    """Checked against when the login is unknown, so both refusals take the same time."""
    return hash_password(secrets.token_urlsafe(16))


# ---------------------------------------------------------------------------- session


@dataclass(frozen=True)
class Visitor:
    token: str
    person_id: int
    name: str
    actor: Actor

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"gridbot mobile form", hashlib.sha256).hexdigest()


def _visitor(request: Request, session: Session, now: datetime) -> Visitor | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    person = person_for_token(session, token, now)
    if person is None or person.id is None:
        return None
    return Visitor(token, person.id, person.name, load_actor(session, person))


def _session_ttl(settings: Settings) -> timedelta:
    return min(timedelta(hours=settings.auth.token_ttl_hours), SESSION_MAX)


def _secure(settings: Settings) -> bool:
    return settings.app.public_base_url.startswith("https://")


def _safe_next(target: str | None) -> str:
    """Only a path of this page: a link in a group card must not send a worker to another site after login."""
    if target and NEXT_PATH.match(target) and "//" not in target:
        return target
    return "/m/"


def _login_url(target: str) -> str:
    return "/m/login?next=" + quote(target, safe="/")


# ---------------------------------------------------------------------------- rendering


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = _templates().TemplateResponse(request, name, {"t": T, **context}, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _message(request: Request, visitor: Visitor | None, status: int, title: str, text: str) -> HTMLResponse:
    return _render(request, "message.html", {"visitor": visitor, "title": title, "text": text}, status)


def _not_found(request: Request, visitor: Visitor | None) -> HTMLResponse:
    return _message(request, visitor, 404, T["not_found_title"], T["not_found"])


def _staff_view(actor: Actor, case: Case) -> bool:
    """Grid staff of the case's grid (or a grid above it), operators and admins; a reporter alone is not."""
    return bool(roles_on_case(actor, case) - {"resident"})


def _refusal(request: Request, session: Session, visitor: Visitor, case: Case) -> HTMLResponse:
    """403 that says nothing about the case, except to the person who just transferred it away."""
    last = session.exec(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq).desc()).limit(1)
    ).first()
    if last is not None and last.action == "transfer" and last.actor_id == visitor.person_id:
        grid = _grid_names(session, [last.data.get("grid")]).get(last.data.get("grid"), str(last.data.get("grid")))
        return _message(request, visitor, 200, texts.mobile_done("transfer"), texts.transferred_away(grid))
    return _message(request, visitor, 403, T["forbidden_title"], T["forbidden"])


def _grid_names(session: Session, codes: Iterable[Any]) -> dict[Any, str]:
    wanted = {str(code) for code in codes if code}
    if not wanted:
        return {}
    return dict(session.exec(select(Grid.code, Grid.name).where(col(Grid.code).in_(wanted))).all())


@dataclass(frozen=True)
class Photos:
    stored: list[int]  # media ids, shown as thumbnails
    notes: list[str]  # what cannot be shown: photos still being fetched, lost, or references of another kind


def _photos(refs: Iterable[Any], media: dict[int, Media]) -> Photos:
    stored, pending, missing, other = [], 0, 0, 0
    for ref in refs:
        found = MEDIA_REF.match(str(ref))
        item = media.get(int(found.group(1))) if found else None
        if item is None:
            other += 1
        elif item.status == "stored" and item.path:
            assert item.id is not None
            stored.append(item.id)
        elif item.status == "pending":
            pending += 1
        else:
            missing += 1
    notes = [
        say(count)
        for count, say in (
            (pending, texts.photos_pending),
            (missing, texts.photos_missing),
            (other, texts.other_attachments),
        )
        if count
    ]
    return Photos(stored, notes)


def _case_media(session: Session, case: Case, events: list[CaseEvent]) -> dict[int, Media]:
    """Every media row that belongs to this case: the report's and those the events refer to.

    An event's `media:<id>` counts only for a row not tied to another case's report or events: attachments given
    through the API are free text, and must not open another grid's photos to whoever wrote them."""
    ids = {int(m.group(1)) for e in events for ref in e.attachments if (m := MEDIA_REF.match(str(ref)))}
    own_events = {e.id for e in events}
    rows: list[Media] = []
    if ids:
        rows += [
            m
            for m in session.exec(select(Media).where(col(Media.id).in_(ids))).all()
            if (m.report_id is None or m.report_id == case.report_id)
            and (m.case_event_id is None or m.case_event_id in own_events)
        ]
    if case.report_id is not None:
        rows += session.exec(select(Media).where(Media.report_id == case.report_id, Media.kind == "image")).all()
    return {m.id: m for m in rows if m.id is not None}


def _transfer_targets(session: Session, case: Case) -> list[tuple[str, list[tuple[str, str]]]]:
    """Working grids under the case's street (or the top of its chain), grouped by their parent, own grid left out.

    A district can hold thousands of grids; a transfer goes to a neighbour, so the street's are what a phone shows.
    """
    if case.grid_id is None:
        return []
    rows = session.exec(select(Grid.id, Grid.code, Grid.name, Grid.level, Grid.parent_id)).all()
    grids = {row[0]: row for row in rows}
    root = case.grid_id
    current: int | None = case.grid_id
    while current is not None and current in grids:
        root = current
        if grids[current][3] == "street":
            break
        current = grids[current][4]
    groups: dict[str, list[tuple[str, str]]] = {}
    for grid_id in sorted(descendant_grid_ids(session, [root]), key=lambda i: grids[i][1] if i in grids else ""):
        row = grids.get(grid_id)
        if row is None or row[3] not in WORK_LEVELS or grid_id == case.grid_id:
            continue
        parent = grids.get(row[4]) if row[4] is not None else None
        groups.setdefault(parent[2] if parent else "", []).append((row[1], row[2]))
    return list(groups.items())


def _case_context(session: Session, settings: Settings, now: datetime, visitor: Visitor, case: Case) -> dict[str, Any]:
    zone = settings.zone
    report = session.get(Report, case.report_id) if case.report_id is not None else None
    grid = session.get(Grid, case.grid_id) if case.grid_id is not None else None
    assignee = session.get(Person, case.assignee_id) if case.assignee_id is not None else None
    events = case_events(session, case)
    media = _case_media(session, case, events)
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    names = dict(session.exec(select(Person.id, Person.name).where(col(Person.id).in_(actor_ids))).all())
    grid_names = _grid_names(session, [e.data.get("grid") for e in events if e.action in ("transfer", "escalate")])
    report_media = [m for m in media.values() if m.report_id is not None and m.report_id == case.report_id]
    taxonomy = default_taxonomy()

    def when(moment: datetime | None) -> str:
        return texts.fmt_time(moment, zone) if moment is not None else T["no_deadline"]

    deadlines = []
    if case.status in AWAITING_TAKE and case.accept_deadline is not None:
        deadlines.append((T["accept_deadline"], when(case.accept_deadline), case.accept_deadline < now))
    if case.status in OPEN_WORK and case.resolve_deadline is not None:
        deadlines.append((T["resolve_deadline"], when(case.resolve_deadline), case.resolve_deadline < now))
    possible = set(actions_for(visitor.actor, case)) | {"note"}
    timeline = [
        {
            "when": when(e.created_at),
            "action": texts.ACTION_NAMES.get(e.action, e.action),
            "who": names.get(e.actor_id, "") if e.actor_id is not None else T["system"],
            "target": texts.transferred_to(grid_names.get(e.data.get("grid"), str(e.data.get("grid"))))
            if e.action in ("transfer", "escalate") and e.data.get("grid")
            else "",
            "note": e.note,
            "photos": _photos(e.attachments, media),
        }
        for e in reversed(events)
    ]
    place = (report.address if report and report.address else "") or ""
    coordinates = (
        f"{report.lat:.6f}, {report.lng:.6f}" if report and report.lat is not None and report.lng is not None else ""
    )
    return {
        "visitor": visitor,
        "case": case,
        "category": taxonomy.name_of(case.subcategory) or taxonomy.name_of(case.category) or T["uncategorised"],
        "status_name": texts.STATUS_NAMES.get(case.status, case.status),
        "urgent": case.urgency == "urgent",
        "grid_name": grid.name if grid else "",
        "assignee": assignee.name if assignee else "",
        "place": place,
        "coordinates": coordinates,
        "reported_at": when(case.created_at),
        "report_text": report.text if report else "",
        "voice": (report.voice_transcript or "") if report else "",
        "report_photos": _photos([f"media:{m.id}" for m in sorted(report_media, key=lambda m: m.id or 0)], media),
        "deadlines": deadlines,
        "suspended": texts.MOBILE_PAGE["suspended_since"].format(since=when(case.suspended_at))
        if case.suspended_at is not None
        else "",
        "actions": [a for a in PAGE_ACTIONS if a in possible],
        "targets": _transfer_targets(session, case) if "transfer" in possible else [],
        "timeline": timeline,
        "seen": case.last_event_seq,
        "max_photos": MAX_PHOTOS,
    }


def _case_page(
    request: Request,
    session: Session,
    settings: Settings,
    now: datetime,
    visitor: Visitor,
    case: Case,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    context = _case_context(session, settings, now, visitor, case)
    context.update(notice=notice, error=error, form=form or {})
    return _render(request, "case.html", context, status)


# ---------------------------------------------------------------------------- login, logout, my cases


@router.get("/login")
def login_form(request: Request, session: SessionDep, clock: ClockDep, next: str = "/m/", out: int = 0) -> Response:
    target = _safe_next(next)
    if _visitor(request, session, clock()) is not None:
        return _redirect(target)
    return _login_page(request, target, notice=T["logged_out"] if out else None)


def _login_page(
    request: Request,
    target: str,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
    login: str = "",
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    if not re.fullmatch(r"[A-Za-z0-9_-]{32}", nonce):
        nonce = secrets.token_urlsafe(24)
    settings: Settings = request.app.state.settings
    response = _render(
        request, "login.html", {"csrf": nonce, "next": target, "error": error, "notice": notice, "login": login}, status
    )
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=3600, path="/m/login", httponly=True, samesite="lax", secure=_secure(settings)
    )
    return response


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    login: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/m/",
) -> Response:
    target = _safe_next(next)
    expected = request.cookies.get(LOGIN_COOKIE) or ""
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        return _login_page(request, target, status=403, error=T["form_expired"], login=login)
    person = session.exec(select(Person).where(Person.login == login.strip())).first() if login.strip() else None
    stored = person.password_hash if person is not None else _dummy_hash()
    if not check_password(password, stored) or person is None or not person.active:
        log.info("mobile login refused for %r", login[:64])
        return _login_page(request, target, status=401, error=T["login_failed"], login=login)
    ttl = _session_ttl(settings)
    token, _ = issue_token(session, person, clock(), ttl, label="mobile")
    session.commit()
    response = _redirect(target)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(ttl.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/m/login")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, clock: ClockDep, csrf: Annotated[str, Form()] = "") -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        if not hmac.compare_digest(csrf_for(token).encode(), csrf.encode()):
            visitor = _visitor(request, session, clock())
            return _message(request, visitor, 403, T["form_expired"], T["form_expired"])
        revoke_token(session, token, clock())
        session.commit()
    response = _redirect("/m/login?out=1")
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@router.get("/")
def my_cases(request: Request, session: SessionDep, clock: ClockDep, settings: SettingsDep) -> Response:
    """What is open in the visitor's grids: a way back to a case when the group message has scrolled away."""
    now = clock()
    visitor = _visitor(request, session, now)
    if visitor is None:
        return _redirect(_login_url("/m/"))
    rows: list[Case] = []
    if visitor.actor.is_global or visitor.actor.grid_ids:
        rows, _ = list_cases(session, visitor.actor, CaseFilter(status=tuple(s.value for s in OPEN_WORK)), limit=50)
    rows = [case for case in rows if _staff_view(visitor.actor, case)]
    taxonomy = default_taxonomy()
    items = [
        {
            "case_no": case.case_no,
            "category": taxonomy.name_of(case.subcategory) or T["uncategorised"],
            "status_name": texts.STATUS_NAMES.get(case.status, case.status),
            "urgent": case.urgency == "urgent",
            "overdue": _overdue(case, now),
        }
        for case in rows
    ]
    return _render(request, "cases.html", {"visitor": visitor, "items": items})


def _overdue(case: Case, now: datetime) -> bool:
    if case.status in AWAITING_TAKE and case.accept_deadline is not None:
        return case.accept_deadline < now
    if case.status in OPEN_WORK and case.resolve_deadline is not None:
        return case.resolve_deadline < now
    return False


# ---------------------------------------------------------------------------- the case


def _find_case(session: Session, case_no: str) -> Case | None:
    if not CASE_NO.match(case_no):
        return None
    return session.exec(select(Case).where(Case.case_no == case_no)).first()


@router.get("/cases/{case_no}")
def case_page(
    case_no: str,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    done: str | None = None,
) -> Response:
    now = clock()
    visitor = _visitor(request, session, now)
    if visitor is None:
        return _redirect(_login_url(f"/m/cases/{case_no}" if CASE_NO.match(case_no) else "/m/"))
    case = _find_case(session, case_no)
    if case is None:
        return _not_found(request, visitor)
    if not _staff_view(visitor.actor, case):
        return _refusal(request, session, visitor, case)
    notice = texts.mobile_done(done) if done in PAGE_ACTIONS else None
    return _case_page(request, session, settings, now, visitor, case, notice=notice)


class _Refused(Exception):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _read_photos(uploads: list[UploadFile] | None, max_bytes: int) -> list[CleanPhoto]:
    """Every photo checked and cleaned before anything is written; one bad photo refuses them all."""
    chosen = [u for u in uploads or [] if u.filename or (u.size or 0) > 0]  # an empty file input sends one blank
    if len(chosen) > MAX_PHOTOS:
        raise _Refused(texts.too_many_photos(MAX_PHOTOS))
    cleaned = []
    for position, upload in enumerate(chosen, start=1):
        data = upload.file.read(max_bytes + 1)
        try:
            cleaned.append(clean_photo(data, max_bytes))
        except PhotoRefused as exc:
            log.info("mobile photo %d refused: %s", position, exc)
            if exc.reason == "too_big":
                raise _Refused(texts.photo_too_big(position, max_bytes)) from None
            raise _Refused(texts.bad_photo(position)) from None
    return cleaned


def _check_inputs(action: str, note: str, grid_code: str, photos: list[CleanPhoto], targets: list[str]) -> None:
    if len(note) > MAX_NOTE:
        raise _Refused(texts.note_too_long(MAX_NOTE))
    if action == "transfer":
        if not note.strip():
            raise _Refused(T["need_transfer_reason"])
        if not grid_code:
            raise _Refused(T["need_transfer_target"])
        if grid_code not in targets:
            raise _Refused(T["bad_transfer_target"])
    elif action == "suspend" and not note.strip():
        raise _Refused(T["need_suspend_reason"])
    elif action == "resolve" and not note.strip():
        raise _Refused(T["need_resolve_note"])
    elif action == "note" and not note.strip() and not photos:
        raise _Refused(T["need_note_or_photo"])


def _domain_refusal(exc: DomainError, action: str) -> _Refused:
    log.info("mobile %s refused: %s", action, exc.message)
    if isinstance(exc, InvalidTransition):
        suspended = exc.details.get("suspended")
        if action == "suspend" and suspended is True:
            return _Refused(T["already_suspended"], 409)
        if action == "resume" and suspended is False:
            return _Refused(T["not_suspended"], 409)
        return _Refused(texts.staff_wrong_state(str(exc.details.get("current_state")), action), 409)
    if isinstance(exc, Forbidden):
        return _Refused(T["action_not_allowed"], 403)
    return _Refused(T["failed"], 422)


def _attach(session: Session, case: Case, photos: list[CleanPhoto], now: datetime) -> list[Media]:
    rows = [
        Media(
            kind="image",
            source="upload",
            path=photo.key(now),
            content_type=photo.content_type,
            size_bytes=len(photo.data),
            sha256=photo.sha256,
            width=photo.width,
            height=photo.height,
            status="stored",
            created_at=now,
        )
        for photo in photos
    ]
    session.add_all(rows)
    session.flush()
    return rows


@router.post("/cases/{case_no}/{action}")
def case_action(
    case_no: str,
    action: str,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    csrf: Annotated[str, Form()] = "",
    seen: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    grid_code: Annotated[str, Form()] = "",
    photos: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    now = clock()
    page = f"/m/cases/{case_no}"
    visitor = _visitor(request, session, now)
    if visitor is None:
        return _redirect(_login_url(page if CASE_NO.match(case_no) else "/m/"))
    if not hmac.compare_digest(visitor.csrf.encode(), csrf.encode()):
        return _message(request, visitor, 403, T["form_expired"], T["form_expired"])
    if action not in PAGE_ACTIONS:
        return _not_found(request, visitor)
    actor = visitor.actor
    form = {"action": action, "note": note, "grid_code": grid_code}
    session.rollback()  # no transaction (SQLite: no write lock) while the photos are decoded
    try:
        cleaned = _read_photos(photos, settings.media.max_image_bytes) if action in WITH_PHOTOS else []
    except _Refused as refusal:
        cleaned, photo_refusal = [], refusal
    else:
        photo_refusal = None

    try:
        case = get_case_for_update(session, case_no) if CASE_NO.match(case_no) else None
    except NotFound:
        case = None
    if case is None:
        return _not_found(request, visitor)
    if not _staff_view(actor, case):
        return _refusal(request, session, visitor, case)
    if action == "take" and case.status == "taken" and case.assignee_id == visitor.person_id:
        return _case_page(request, session, settings, now, visitor, case, notice=T["already_taken_by_you"])
    if seen != str(case.last_event_seq):
        return _case_page(request, session, settings, now, visitor, case, status=409, error=T["stale"], form=form)
    try:
        if photo_refusal is not None:
            raise photo_refusal
        targets = [code for _, grids in _transfer_targets(session, case) for code, _ in grids]
        _check_inputs(action, note, grid_code, cleaned, targets if action == "transfer" else [])
        media = _attach(session, case, cleaned, now)
        attachments = [f"media:{m.id}" for m in media]
        try:
            if action == "note":
                add_note(session, case_no, actor, now, note, attachments)
            else:
                act_on_case(
                    session,
                    case_no,
                    action,
                    actor,
                    now,
                    sla_policy(settings),
                    ActionInput(note=note, attachments=tuple(attachments), grid_code=grid_code or None),
                    announcer=announcer(settings),
                )
        except DomainError as exc:
            raise _domain_refusal(exc, action) from None
    except _Refused as refusal:
        session.rollback()
        case = get_case_for_update(session, case_no)
        return _case_page(
            request, session, settings, now, visitor, case, status=refusal.status, error=refusal.message, form=form
        )
    if media:
        session.flush()
        event = session.exec(
            select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.seq == case.last_event_seq)
        ).one()
        store = LocalMediaStore(settings.media.root)
        for row, photo in zip(media, cleaned, strict=True):
            row.case_event_id = event.id
            store.put(photo.key(now), photo.data)  # before the commit: a failed write leaves no row behind
    session.commit()
    return _redirect(f"{page}?done={action}")


@router.get("/cases/{case_no}/photos/{media_id}")
def case_photo(
    case_no: str,
    media_id: int,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    thumb: int = 0,
) -> Response:
    """A photo of this case, to those who may see the case; `thumb=1` a small copy (made once, then kept)."""
    now = clock()
    visitor = _visitor(request, session, now)
    if visitor is None:
        return _redirect(_login_url(f"/m/cases/{case_no}" if CASE_NO.match(case_no) else "/m/"))
    case = _find_case(session, case_no)
    if case is None:
        return _not_found(request, visitor)
    if not _staff_view(visitor.actor, case):
        return _message(request, visitor, 403, T["forbidden_title"], T["forbidden"])
    item = _case_media(session, case, case_events(session, case)).get(media_id)
    store = LocalMediaStore(settings.media.root)
    if item is None or item.status != "stored" or not item.path or not store.exists(item.path):
        return _not_found(request, visitor)
    session.rollback()  # reading and resizing files needs no transaction
    if thumb:
        key = f"thumbs/{item.sha256 or item.id}.jpg"
        if not store.exists(key):
            try:
                store.put(key, thumbnail_of(store.get(item.path)))
            except (OSError, ValueError) as exc:  # a stored file Pillow cannot read: no thumbnail, no crash
                log.warning("no thumbnail for media %s: %s", item.id, exc)
                return _not_found(request, visitor)
        data, content_type = store.get(key), "image/jpeg"
    else:
        data, content_type = store.get(item.path), item.content_type or "application/octet-stream"
    return Response(
        data,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
