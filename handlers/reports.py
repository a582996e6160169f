"""A report becoming a case, whichever door it came in by (the chat's draft, the mini-program's form): classify,
store the Report, open the case, place it, dispatch it when grid and class are clear, tell the grid's group and
the departments concerned. Also what the mini-program's residents do with their reports afterwards: list them,
rate the result, see their photos."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, insert, or_, update
from sqlmodel import Session, col, func, select

from classifier.engine import Classification, Classifier
from handlers import texts
from handlers.access import Actor, roles_on_case
from handlers.announce import Announcer, first_photo, tell_departments
from handlers.cases import ActionInput, act_on_case, case_events, dispatch_new_case, get_case, insert_new_case, new_case
from handlers.errors import NotFound
from handlers.geo import convert
from handlers.grids import GridIndex
from handlers.notify import tell_grid
from handlers.routing import PlacedGrid, place_report
from handlers.signups import haversine_m
from handlers.sla import SlaPolicy
from models import Case, CaseEvent, Media, Report
from models.db import execute_core, insert_id
from models.types import table_of

UNSATISFIED_BELOW = 3  # a rating below this (不满意) reopens the case, in the chat and the mini-program alike


@dataclass(frozen=True)
class IntakeContext:
    classifier: Classifier
    zone: ZoneInfo
    sla: SlaPolicy
    grid_index: Callable[[], GridIndex]
    review_below: float
    public_base_url: str
    announcer: Announcer | None = None  # department groups told on dispatch


@dataclass(frozen=True)
class ReportContent:
    """What a report says, as plain values: the chat gathers it in a draft, the mini-program sends it at once."""

    person_id: int | None
    home_grid_id: int | None  # placement's last resort when neither point nor place name is given
    channel: str  # mp | wxa
    text: str
    voice_transcript: str | None = None
    lng: float | None = None
    lat: float | None = None
    address: str | None = None
    media_ids: Sequence[int] = field(default_factory=tuple)  # stored Media rows, attached to the report


@dataclass(frozen=True)
class Filed:
    case: Case
    result: Classification
    category_name: str | None


_INSERT_REPORT = insert(table_of(Report))
_MEDIA = table_of(Media)
_INSERT_MEDIA = insert(_MEDIA)
_ATTACH_MEDIA = (
    update(_MEDIA).where(_MEDIA.c.id.in_(bindparam("ids", expanding=True))).values(report_id=bindparam("report_id"))
)


def classify_text(content: ReportContent) -> str:
    """The text the classifier judges: what was written, then what was said."""
    return "\n".join(part for part in (content.text, content.voice_transcript) if part).strip()


def submit_report(
    session: Session,
    content: ReportContent,
    ctx: IntakeContext,
    now: datetime,
    classified: Classification | None = None,
) -> Filed:
    """Classify, store the Report, open the case, and dispatch it when grid and class are both clear.

    `classified`: the caller's result for exactly this text, so it is not classified twice. The case and its
    events are built in memory by the lifecycle's own functions and inserted at the end, one statement per
    table, so a submission costs a handful of statements and no ORM flush.
    """
    text = classify_text(content)
    reuse = classified is not None and classified.text.strip() == text
    result = classified if classified is not None and reuse else ctx.classifier.classify(text)
    subcategory = result.subcategory if result.is_report else "H08"
    report_id = insert_id(
        session,
        _INSERT_REPORT,
        {
            "person_id": content.person_id,
            "channel": content.channel,
            "text": content.text,
            "voice_transcript": content.voice_transcript,
            "lng": content.lng,
            "lat": content.lat,
            "crs": "gcj02",
            "address": content.address,
            "place_hint": result.place_hint.to_dict(),
            "is_report": result.is_report,
            "category": subcategory[0] if subcategory else None,
            "subcategory": subcategory,
            "confidence": result.confidence,
            "urgent": result.urgent,
            "keywords": result.keywords,
            "alternatives": [{"subcategory": a.subcategory, "score": a.score} for a in result.alternatives],
            "created_at": now,
        },
    )
    if content.media_ids:
        execute_core(session, _ATTACH_MEDIA, {"ids": list(content.media_ids), "report_id": report_id})
    case, first = new_case(
        session,
        report_id=report_id,
        reporter_id=content.person_id,
        channel=content.channel,
        category=subcategory[0] if subcategory else None,
        subcategory=subcategory,
        urgent=result.urgent,
        now=now,
        zone=ctx.zone,
    )
    events = [first]
    placement = place_report(
        session,
        ctx.grid_index(),
        lng=content.lng,
        lat=content.lat,
        crs="gcj02",
        text=content.text,
        address=content.address,
        home_grid_id=content.home_grid_id,
    )
    confident = result.is_report and result.confidence >= ctx.review_below
    dispatched_to = placement.grid if placement.grid is not None and confident else None
    if dispatched_to is not None:
        events += dispatch_new_case(case, dispatched_to, now, ctx.sla, note=f"located by {placement.method}")
    else:
        case.needs_review = True
        case.review_reason = placement.reason or "classifier confidence below the review threshold"
        if placement.grid is not None:
            case.grid_id = placement.grid.id  # a suggestion for the operator
    insert_new_case(session, case, events)
    if dispatched_to is not None:
        card_text = (content.text or content.voice_transcript or "")[:80]
        has_photos = bool(content.media_ids)
        notify_dispatched(session, case, dispatched_to, content.address, card_text, ctx, now, has_photos)
    return Filed(case=case, result=result, category_name=ctx.classifier.taxonomy.name_of(subcategory))


def notify_dispatched(
    session: Session,
    case: Case,
    grid: PlacedGrid,
    address: str | None,
    text: str,
    ctx: IntakeContext,
    now: datetime,
    has_photos: bool = False,
) -> None:
    deadline = texts.fmt_time(case.accept_deadline, ctx.zone) if case.accept_deadline else "—"
    link = f"{ctx.public_base_url.rstrip('/')}/m/cases/{case.case_no}"
    photo = first_photo(session, case.report_id) if has_photos else None
    card = texts.group_card(
        case.case_no,
        ctx.classifier.taxonomy.name_of(case.subcategory),
        case.urgency == "urgent",
        address or grid.name,
        text,
        deadline,
        link,
        f"{link}/photos/{photo}" if photo is not None else None,
    )
    tell_grid(session, grid, card, now, dedupe_key=f"case:{case.id}:dispatch:{case.last_event_seq}", case=case)
    if ctx.announcer is not None:
        tell_departments(session, ctx.announcer, case, grid.name, card, now)


# ---------------------------------------------------------------------------- photos uploaded with a report


@dataclass(frozen=True)
class UploadedPhoto:
    """A photo already checked and cleaned (no EXIF/GPS) and written to the media store under `path`."""

    path: str
    content_type: str
    size_bytes: int
    sha256: str
    width: int
    height: int


def record_photos(session: Session, photos: Sequence[UploadedPhoto], now: datetime) -> list[int]:
    """Media rows for uploaded photos, in upload order (the first is the one the group card links to)."""
    return [
        insert_id(
            session,
            _INSERT_MEDIA,
            {
                "kind": "image",
                "source": "upload",
                "path": photo.path,
                "content_type": photo.content_type,
                "size_bytes": photo.size_bytes,
                "sha256": photo.sha256,
                "width": photo.width,
                "height": photo.height,
                "status": "stored",
                "attempts": 0,
                "created_at": now,
            },
        )
        for photo in photos
    ]


def report_photo(session: Session, actor: Actor, case_no: str, media_id: int) -> Media:
    """A stored photo of the case's report, for someone who may see the case; NotFound for anyone else, so
    that another resident's case number is never confirmed."""
    case = _visible_case(session, actor, case_no)
    media = session.get(Media, media_id)
    if (
        media is None
        or case.report_id is None
        or media.report_id != case.report_id
        or media.kind != "image"
        or media.status != "stored"
        or not media.path
    ):
        raise NotFound(f"case {case_no} has no photo {media_id}", case_no=case_no)
    return media


def _visible_case(session: Session, actor: Actor, case_no: str) -> Case:
    case = get_case(session, case_no)
    if not roles_on_case(actor, case):
        raise NotFound(f"no case numbered {case_no}", case_no=case_no)
    return case


# ---------------------------------------------------------------------------- a resident's own reports


@dataclass(frozen=True)
class OwnReport:
    case: Case
    report: Report | None
    events: list[CaseEvent]
    photo_ids: list[int]


def own_reports(session: Session, person_id: int, *, limit: int, offset: int) -> tuple[list[OwnReport], int]:
    """The cases this person reported, newest first, each with its report, history and photos (four queries)."""
    mine = select(Case).where(Case.reporter_id == person_id)
    total = int(session.exec(select(func.count()).select_from(mine.subquery())).one())
    cases = list(
        session.exec(mine.order_by(col(Case.created_at).desc(), col(Case.id).desc()).offset(offset).limit(limit))
    )
    case_ids = [c.id for c in cases]
    report_ids = [c.report_id for c in cases if c.report_id is not None]
    events: dict[int, list[CaseEvent]] = {}
    history = select(CaseEvent).where(col(CaseEvent.case_id).in_(case_ids))
    for event in session.exec(history.order_by(col(CaseEvent.case_id), col(CaseEvent.seq))):
        events.setdefault(event.case_id, []).append(event)
    reports = {r.id: r for r in session.exec(select(Report).where(col(Report.id).in_(report_ids)))}
    photos: dict[int, list[int]] = {}
    for media_id, report_id in session.exec(
        select(Media.id, Media.report_id)
        .where(col(Media.report_id).in_(report_ids), Media.kind == "image", Media.status == "stored")
        .order_by(col(Media.id))
    ):
        if media_id is not None and report_id is not None:
            photos.setdefault(report_id, []).append(media_id)
    return [
        OwnReport(
            case=c,
            report=reports.get(c.report_id) if c.report_id is not None else None,
            events=events.get(c.id, []) if c.id is not None else [],
            photo_ids=photos.get(c.report_id, []) if c.report_id is not None else [],
        )
        for c in cases
    ], total


@dataclass(frozen=True)
class Rated:
    case: Case
    reopened: bool
    events: list[CaseEvent]


def rate_own_report(session: Session, actor: Actor, case_no: str, rating: int, now: datetime, sla: SlaPolicy) -> Rated:
    """评价 by the reporter once the case is resolved; below UNSATISFIED_BELOW (不满意) it is reopened, as in the
    chat. Someone else's case is NotFound; a case not (or no longer) awaiting a rating is InvalidTransition."""
    case = get_case(session, case_no)
    if actor.person_id is None or case.reporter_id != actor.person_id:
        raise NotFound(f"no case numbered {case_no}", case_no=case_no)
    case = act_on_case(session, case_no, "rate", actor, now, sla, ActionInput(rating=rating))
    reopened = rating < UNSATISFIED_BELOW
    if reopened:
        case = act_on_case(session, case_no, "reopen", actor, now, sla, ActionInput(note=texts.UNSATISFIED_NOTE))
    session.flush()
    return Rated(case=case, reopened=reopened, events=case_events(session, case))


# ---------------------------------------------------------------------------- the public map of recent cases

MAP_CELL_DEG = 0.001  # published points are rounded to 3 decimals (~111 m north-south, ~88 m east-west at 38°N)
NOT_ON_MAP = frozenset({"invalid", "merged"})
_M_PER_DEG = 111_195.08  # one degree of latitude on the mean-radius sphere
_MAX_GCJ_OFFSET_DEG = 0.01  # the WGS-84 → GCJ-02 offset is below this everywhere in China


@dataclass(frozen=True)
class MapCase:
    status: str
    category: str | None
    subcategory: str | None
    urgency: str
    created_at: datetime
    resolved_at: datetime | None
    lng: float  # GCJ-02, rounded to MAP_CELL_DEG
    lat: float


def coarse(value: float) -> float:
    """Round half up to MAP_CELL_DEG (3 decimals), the same way on every platform."""
    return round(math.floor(value / MAP_CELL_DEG + 0.5) * MAP_CELL_DEG, 3)


def nearby_cases(
    session: Session, lng: float, lat: float, radius_m: float, since: datetime, *, limit: int
) -> tuple[list[MapCase], bool]:
    """Cases reported since `since` whose coarse point lies within `radius_m` of (lng, lat), GCJ-02, newest first;
    and whether more than `limit` matched. Left out: invalid and merged cases, texts the classifier judged not
    to be reports, and cases still waiting in the operators' review queue (nobody has checked them yet).

    The distance is measured to the rounded point, never the exact one, so that narrowing the radius cannot
    reveal where a resident stood. The bounding box in SQL is widened by half a cell (and, for points stored in
    WGS-84, by the datum offset) so that no point whose rounded position is inside is missed."""
    dlat = radius_m / _M_PER_DEG + MAP_CELL_DEG / 2
    dlng = radius_m / (_M_PER_DEG * math.cos(math.radians(min(abs(lat) + dlat, 89.0)))) + MAP_CELL_DEG / 2

    def box(margin: float) -> Any:
        return and_(
            col(Report.lng).between(lng - dlng - margin, lng + dlng + margin),
            col(Report.lat).between(lat - dlat - margin, lat + dlat + margin),
        )

    query = (
        select(  # type: ignore[call-overload]  # nine columns: more than sqlmodel's overloads spell out
            *(Case.status, Case.category, Case.subcategory, Case.urgency, Case.created_at, Case.resolved_at),
            *(Report.lng, Report.lat, Report.crs),
        )
        .join(Report, col(Case.report_id) == col(Report.id))
        .where(
            col(Case.created_at) >= since,
            col(Case.status).not_in(NOT_ON_MAP),
            col(Case.merged_into_id).is_(None),
            col(Case.needs_review).is_(False),
            col(Report.is_report).is_(True),
            or_(and_(col(Report.crs) == "gcj02", box(0.0)), and_(col(Report.crs) != "gcj02", box(_MAX_GCJ_OFFSET_DEG))),
        )
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
    )
    found: list[MapCase] = []
    for status, category, subcategory, urgency, created_at, resolved_at, p_lng, p_lat, crs in session.exec(query):
        if p_lng is None or p_lat is None:
            continue
        if crs != "gcj02":
            p_lng, p_lat = convert(p_lng, p_lat, crs, "gcj02")
        c_lng, c_lat = coarse(p_lng), coarse(p_lat)
        if haversine_m(lng, lat, c_lng, c_lat) > radius_m:
            continue
        if len(found) == limit:
            return found, True
        found.append(MapCase(status, category, subcategory, urgency, created_at, resolved_at, c_lng, c_lat))
    return found, False
