"""The mini-program's reports: file one (text, place, photos) into the same submission as the chat, list one's
own with their public history, rate the result, fetch one's photos.

Every refusal is a 4xx that changes nothing, with `message` in English and `user_message` in Chinese for the
resident. The upload is read with its own limits (whole body, number of photos, field sizes) before anything
else happens, and no database transaction is open while it streams in or while the photos are decoded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from bot.api.schemas import ErrorBody, TransitionRefused
from bot.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from bot.ingest import intake_context
from bot.sla import sla_policy
from bot.storage import CleanPhoto, LocalMediaStore, PhotoRefused, clean_photo, thumbnail_of
from classifier.taxonomy import default_taxonomy
from handlers import texts
from handlers.errors import InvalidTransition
from handlers.geo import out_of_china
from handlers.reports import (
    MAP_CELL_DEG,
    OwnReport,
    ReportContent,
    UploadedPhoto,
    nearby_cases,
    own_reports,
    rate_own_report,
    record_photos,
    report_photo,
    submit_report,
)
from models import Case, CaseEvent

log = logging.getLogger("gridbot.api.reports")

router = APIRouter(prefix="/api/v1/reports", tags=["mini-program"])

MAX_PHOTOS = 9  # what wx.chooseMedia lets a resident pick at once
MAX_TEXT = 2000
MAX_ADDRESS = 500
MAX_FIELD_BYTES = 16 * 1024  # text, lng, lat, address
FIELDS = ("text", "lng", "lat", "address")
PUBLIC_NOTES = frozenset({"resolve", "reopen", "rate"})  # what the grid says back; other notes are internal


class Refusal(ErrorBody):
    user_message: str = Field(description="what to show the resident, in Chinese")


class PhotoLink(BaseModel):
    id: int
    url: str = Field(description="the photo (send the bearer token: wx.downloadFile with a header)")
    thumb_url: str = Field(description="a small JPEG of it")


class ReportFiled(BaseModel):
    case_no: str
    status: str
    status_name: str
    category: str | None
    category_name: str | None
    subcategory: str | None
    subcategory_name: str | None
    urgent: bool
    needs_review: bool = Field(description="an operator checks it before it goes to a grid")
    photos: list[PhotoLink]
    message: str = Field(description="confirmation to show the resident, in Chinese")


class TimelineStep(BaseModel):
    seq: int
    action: str
    action_name: str
    status: str
    status_name: str
    note: str = Field(description="what the grid said (resolution, reopening); other notes are not shown")
    created_at: datetime


class MyReport(BaseModel):
    case_no: str
    status: str
    status_name: str
    category: str | None
    category_name: str | None
    subcategory: str | None
    subcategory_name: str | None
    urgent: bool
    text: str
    address: str | None
    lng: float | None
    lat: float | None
    photos: list[PhotoLink]
    rating: int | None
    can_rate: bool = Field(description="resolved and waiting for the resident's rating")
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    timeline: list[TimelineStep] = Field(description="every step, oldest first; no staff names")


class MyReports(BaseModel):
    items: list[MyReport]
    total: int
    limit: int
    offset: int


class RatingRequest(BaseModel):
    rating: int = Field(ge=1, le=5, description="1 (very unhappy) … 5 (very happy); below 3 reopens the case")


class RatingResult(BaseModel):
    case_no: str
    status: str
    status_name: str
    rating: int
    reopened: bool
    message: str
    timeline: list[TimelineStep]


REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    404: {"model": ErrorBody, "description": "no such case among the caller's own"},
}
UPLOAD_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    413: {"model": Refusal, "description": "the upload is larger than wxa.max_report_bytes"},
    415: {"model": Refusal, "description": "neither multipart/form-data nor (without photos) a urlencoded form"},
    422: {
        "model": Refusal,
        "description": "no text, a place that is not a number or outside China, more than 9 photos, a file that "
        "is not a JPEG/PNG/WebP photo, or text that reports nothing (error not_a_report); nothing is stored",
    },
}
REPORT_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["text", "lng", "lat"],
                    "properties": {
                        "text": {"type": "string", "maxLength": MAX_TEXT, "description": "what happened, where"},
                        "lng": {"type": "number", "description": "longitude, GCJ-02 (what wx.chooseLocation gives)"},
                        "lat": {"type": "number", "description": "latitude, GCJ-02"},
                        "address": {"type": "string", "maxLength": MAX_ADDRESS},
                        "photos": {
                            "type": "array",
                            "maxItems": MAX_PHOTOS,
                            "items": {"type": "string", "format": "binary"},
                            "description": "JPEG, PNG or WebP; EXIF (GPS) is removed before storage",
                        },
                    },
                }
            }
        },
    }
}


def _refuse(code: int, error: str, message: str, user_message: str) -> HTTPException:
    log.info("report refused (%s): %s", error, message)
    return HTTPException(code, detail={"error": error, "message": message, "user_message": user_message})


# ---------------------------------------------------------------------------- reading the upload


@dataclass
class ReportForm:
    fields: dict[str, str]
    photos: list[bytes]  # as uploaded, each at most media.max_image_bytes + 1 bytes (one more: known too big)


class _TooLarge(Exception):
    pass


async def read_report_form(
    request: Request, caller: CallerDep, session: SessionDep, settings: SettingsDep
) -> ReportForm:
    """The form, read under the limits (whole body, photos, fields). The caller is authenticated first, so an
    anonymous upload is refused before a byte of it is read."""
    session.rollback()  # the token check's transaction ends here: no lock is held while the upload streams in
    limit = settings.wxa.max_report_bytes
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise _refuse(
            415,
            "unsupported_media_type",
            "send the report as multipart/form-data (or, without photos, application/x-www-form-urlencoded)",
            texts.WXA_BAD_FORM,
        )
    declared = request.headers.get("content-length")
    if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > limit):
        raise _refuse(413, "too_large", f"the upload is over the {limit} byte limit", texts.WXA_TOO_LARGE)

    async def bounded() -> AsyncIterator[bytes]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _TooLarge
            yield chunk

    parser: MultiPartParser | FormParser
    if kind == "multipart/form-data":
        parser = MultiPartParser(
            request.headers,
            bounded(),
            max_files=MAX_PHOTOS + 1,
            max_fields=len(FIELDS) * 2,
            max_part_size=MAX_FIELD_BYTES,
        )
    else:  # what wx.request sends for a report without photos
        parser = FormParser(request.headers, bounded(), max_fields=len(FIELDS) * 2, max_part_size=MAX_FIELD_BYTES)
    try:
        form = await parser.parse()
    except _TooLarge:
        raise _refuse(413, "too_large", f"the upload is over the {limit} byte limit", texts.WXA_TOO_LARGE) from None
    except MultiPartException as exc:
        if "files" in exc.message:
            raise _too_many_photos() from None
        raise _refuse(422, "invalid_input", f"malformed multipart body: {exc.message}", texts.WXA_BAD_FORM) from None
    try:
        fields: dict[str, str] = {}
        for name in FIELDS:
            values = form.getlist(name)
            if len(values) > 1 or any(not isinstance(v, str) for v in values):
                raise _refuse(422, "invalid_input", f"{name} must be one plain form field", texts.WXA_BAD_FORM)
            if values:
                fields[name] = str(values[0])
        uploads = [u for u in form.getlist("photos") if u != ""]  # an empty file input may come as an empty field
        if any(not isinstance(u, UploadFile) for u in uploads):
            raise _refuse(422, "invalid_input", "photos must be files", texts.WXA_BAD_FORM)
        chosen = [u for u in uploads if isinstance(u, UploadFile) and (u.filename or (u.size or 0) > 0)]
        if len(chosen) > MAX_PHOTOS:
            raise _too_many_photos()
        photos = [await upload.read(settings.media.max_image_bytes + 1) for upload in chosen]
    finally:
        await form.close()
    return ReportForm(fields=fields, photos=photos)


def _too_many_photos() -> HTTPException:
    return _refuse(422, "too_many_photos", f"at most {MAX_PHOTOS} photos", texts.too_many_photos(MAX_PHOTOS))


ReportFormDep = Annotated[ReportForm, Depends(read_report_form)]


def _coordinate(raw: str | None, name: str) -> float:
    if raw is None or not raw.strip():
        raise _refuse(422, "invalid_input", "lng and lat are required (GCJ-02)", texts.WXA_BAD_PLACE)
    try:
        value = float(raw)
    except ValueError:
        raise _refuse(422, "invalid_input", f"{name} must be a number, not {raw[:40]!r}", texts.WXA_BAD_PLACE) from None
    if not math.isfinite(value):
        raise _refuse(422, "invalid_input", f"{name} must be a finite number", texts.WXA_BAD_PLACE)
    return value


def _clean_photos(photos: list[bytes], max_bytes: int) -> list[CleanPhoto]:
    """Every photo checked by content and stripped of its metadata; one bad photo refuses the report."""
    cleaned = []
    for position, data in enumerate(photos, start=1):
        try:
            cleaned.append(clean_photo(data, max_bytes))
        except PhotoRefused as exc:
            if exc.reason == "too_big":
                raise _refuse(
                    422, "photo_too_big", f"photo {position}: {exc}", texts.photo_too_big(position, max_bytes)
                ) from None
            raise _refuse(422, "not_a_photo", f"photo {position}: {exc}", texts.bad_photo(position)) from None
    return cleaned


# ---------------------------------------------------------------------------- routes


@router.post(
    "",
    response_model=ReportFiled,
    status_code=status.HTTP_201_CREATED,
    responses=UPLOAD_REFUSALS,
    openapi_extra=REPORT_FORM,
)
def post_report(
    caller: CallerDep,
    form: ReportFormDep,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ReportFiled:
    """File a report: the same classification, routing, case, dispatch and group card as a chat report.
    Text that reports nothing is refused (422 not_a_report) and opens nothing."""
    text = form.fields.get("text", "").strip()
    if not text:
        raise _refuse(422, "invalid_input", "text is required", texts.WXA_NEED_TEXT)
    if len(text) > MAX_TEXT:
        raise _refuse(422, "invalid_input", f"text is over {MAX_TEXT} characters", texts.text_too_long(MAX_TEXT))
    lng, lat = _coordinate(form.fields.get("lng"), "lng"), _coordinate(form.fields.get("lat"), "lat")
    if out_of_china(lng, lat):
        raise _refuse(422, "outside_china", f"({lng}, {lat}) is not in China (GCJ-02)", texts.WXA_OUTSIDE_CHINA)
    address = form.fields.get("address", "").strip() or None
    if address is not None and len(address) > MAX_ADDRESS:
        raise _refuse(422, "invalid_input", f"address is over {MAX_ADDRESS} characters", texts.WXA_BAD_PLACE)
    photos = _clean_photos(form.photos, settings.media.max_image_bytes)
    classified = request.app.state.classifier.get().classify(text)
    if not classified.is_report:
        raise _refuse(
            422,
            "not_a_report",
            f"the text reports no problem ({classified.reason or 'unclear'})",
            texts.WXA_NOT_A_REPORT,
        )

    now = clock()
    store = LocalMediaStore(settings.media.root)
    for photo in photos:  # written before the rows that name them: a failed write leaves no row behind
        store.put(photo.key(now), photo.data)
        store.put(_thumb_key(photo.sha256), thumbnail_of(photo.data))
    person = caller.person  # read again: the upload's rollback expired it
    media_ids = record_photos(
        session,
        [UploadedPhoto(p.key(now), p.content_type, len(p.data), p.sha256, p.width, p.height) for p in photos],
        now,
    )
    content = ReportContent(
        person_id=person.id,
        home_grid_id=person.home_grid_id,
        channel="wxa",
        text=text,
        lng=lng,
        lat=lat,
        address=address,
        media_ids=tuple(media_ids),
    )
    filed = submit_report(session, content, intake_context(request.app.state, session), now, classified)
    session.commit()
    case = filed.case
    log.info("report from the mini-program: case %s, %d photo(s)", case.case_no, len(media_ids))
    base = _base(settings.app.public_base_url)
    return ReportFiled(
        case_no=case.case_no,
        status=case.status,
        status_name=texts.STATUS_NAMES.get(case.status, case.status),
        category=case.category,
        category_name=_category_name(case.category),
        subcategory=case.subcategory,
        subcategory_name=filed.category_name,
        urgent=case.urgency == "urgent",
        needs_review=case.needs_review,
        photos=[_photo_link(base, case.case_no, media_id) for media_id in media_ids],
        message=texts.wxa_submitted(case.case_no, filed.category_name, case.urgency == "urgent", case.needs_review),
    )


class MapCase(BaseModel):
    """One case on the public map: what and how far along, never who, what they wrote or exactly where."""

    status: str
    status_name: str
    category: str | None
    category_name: str | None
    subcategory: str | None
    subcategory_name: str | None
    urgent: bool
    created_at: datetime
    resolved_at: datetime | None
    lng: float = Field(description="GCJ-02, rounded to 3 decimals (0.001°, about 100 m)")
    lat: float = Field(description="GCJ-02, rounded to 3 decimals")


class NearbyReports(BaseModel):
    items: list[MapCase] = Field(description="newest first")
    truncated: bool = Field(description="more cases matched than `limit`")
    crs: str = "gcj02"
    precision_deg: float = Field(default=MAP_CELL_DEG, description="points are rounded to this")


@router.get(
    "/nearby",
    response_model=NearbyReports,
    responses={
        422: {"model": Refusal, "description": "a parameter missing, not a number, out of range or outside China"}
    },
)
def nearby_reports(
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    lng: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="centre, GCJ-02")],
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="centre, GCJ-02")],
    radius_m: Annotated[int, Query(ge=100, le=5000, description="metres")] = 2000,
    days: Annotated[int, Query(ge=1, le=90, description="reported in the last this many days")] = 30,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> NearbyReports:
    """Public map feed (no token needed; a token sent is ignored and changes nothing): recent cases near a point,
    without case numbers, texts, addresses, photos or people. Invalid, merged and not-a-report cases and those
    still in the operators' review queue are left out."""
    if out_of_china(lng, lat):
        raise _refuse(422, "outside_china", f"({lng}, {lat}) is not in China (GCJ-02)", texts.WXA_OUTSIDE_CHINA)
    rows, truncated = nearby_cases(session, lng, lat, radius_m, clock() - timedelta(days=days), limit=limit)
    response.headers["Cache-Control"] = "public, max-age=60"
    taxonomy = default_taxonomy()
    return NearbyReports(
        items=[
            MapCase(
                status=row.status,
                status_name=texts.STATUS_NAMES.get(row.status, row.status),
                category=row.category,
                category_name=_category_name(row.category),
                subcategory=row.subcategory,
                subcategory_name=taxonomy.name_of(row.subcategory),
                urgent=row.urgency == "urgent",
                created_at=row.created_at,
                resolved_at=row.resolved_at,
                lng=row.lng,
                lat=row.lat,
            )
            for row in rows
        ],
        truncated=truncated,
    )


@router.get("/mine", response_model=MyReports, responses={401: REFUSALS[401]})
def my_reports(
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MyReports:
    """The caller's own reports, newest first, with status and every step of their history (no staff names)."""
    assert caller.person.id is not None
    rows, total = own_reports(session, caller.person.id, limit=limit, offset=offset)
    base = _base(settings.app.public_base_url)
    return MyReports(items=[_my_report(base, row) for row in rows], total=total, limit=limit, offset=offset)


@router.post(
    "/{case_no}/rating",
    response_model=RatingResult,
    responses={
        **REFUSALS,
        409: {"model": TransitionRefused, "description": "not resolved, or already rated"},
        422: {"model": ErrorBody, "description": "rating is not a whole number from 1 to 5"},
    },
)
def rate_report(
    case_no: str,
    body: RatingRequest,
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> RatingResult:
    """评价 a resolved case of one's own; below 3 (不满意) it is reopened and goes back to the operators."""
    try:
        rated = rate_own_report(session, caller.actor, case_no, body.rating, clock(), sla_policy(settings))
    except InvalidTransition as exc:
        current = str(exc.details.get("current_state"))
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={
                "error": exc.code,
                "message": exc.message,
                **exc.details,
                "user_message": _why_no_rating(case_no, current),
            },
        ) from None
    session.commit()
    case = rated.case
    return RatingResult(
        case_no=case.case_no,
        status=case.status,
        status_name=texts.STATUS_NAMES.get(case.status, case.status),
        rating=body.rating,
        reopened=rated.reopened,
        message=texts.RATING_REOPENED if rated.reopened else texts.RATING_THANKS,
        timeline=_timeline(rated.events),
    )


@router.get(
    "/{case_no}/photos/{media_id}",
    responses={**REFUSALS, 200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
    response_class=Response,
)
def report_photo_file(
    case_no: str,
    media_id: int,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    thumb: Annotated[bool, Query(description="a small JPEG instead of the photo")] = False,
) -> Response:
    """A photo of the caller's own report (as stored: re-encoded, without EXIF or GPS)."""
    media = report_photo(session, caller.actor, case_no, media_id)
    path, sha256 = media.path or "", media.sha256 or str(media.id)
    content_type = media.content_type or "application/octet-stream"
    session.rollback()  # reading files needs no transaction
    store = LocalMediaStore(settings.media.root)
    if not store.exists(path):
        raise HTTPException(404, detail={"error": "not_found", "message": f"photo {media_id} is not in the store"})
    if thumb:
        key = _thumb_key(sha256)
        if not store.exists(key):
            store.put(key, thumbnail_of(store.get(path)))
        data, content_type = store.get(key), "image/jpeg"
    else:
        data = store.get(path)
    return Response(
        data,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


# ---------------------------------------------------------------------------- shapes


def _thumb_key(sha256: str) -> str:
    return f"thumbs/{sha256}.jpg"  # the key the case page (bot/mobile.py) uses too: one thumbnail per photo


def _base(public_base_url: str) -> str:
    return public_base_url.rstrip("/")


def _photo_link(base: str, case_no: str, media_id: int) -> PhotoLink:
    url = f"{base}/api/v1/reports/{case_no}/photos/{media_id}"
    return PhotoLink(id=media_id, url=url, thumb_url=url + "?thumb=1")


def _category_name(code: str | None) -> str | None:
    return default_taxonomy().categories.get(code) if code else None


def _timeline(events: list[CaseEvent]) -> list[TimelineStep]:
    return [
        TimelineStep(
            seq=e.seq,
            action=e.action,
            action_name=texts.ACTION_NAMES.get(e.action, e.action),
            status=e.to_status,
            status_name=texts.STATUS_NAMES.get(e.to_status, e.to_status),
            note=e.note if e.action in PUBLIC_NOTES else "",
            created_at=e.created_at,
        )
        for e in events
    ]


def _my_report(base: str, row: OwnReport) -> MyReport:
    case: Case = row.case
    report = row.report
    return MyReport(
        case_no=case.case_no,
        status=case.status,
        status_name=texts.STATUS_NAMES.get(case.status, case.status),
        category=case.category,
        category_name=_category_name(case.category),
        subcategory=case.subcategory,
        subcategory_name=default_taxonomy().name_of(case.subcategory),
        urgent=case.urgency == "urgent",
        text=(report.text or report.voice_transcript or "") if report else "",
        address=report.address if report else None,
        lng=report.lng if report else None,
        lat=report.lat if report else None,
        photos=[_photo_link(base, case.case_no, media_id) for media_id in row.photo_ids],
        rating=case.rating,
        can_rate=case.status == "resolved",
        created_at=case.created_at,
        updated_at=case.updated_at,
        resolved_at=case.resolved_at,
        timeline=_timeline(row.events),
    )


def _why_no_rating(case_no: str, status_now: str) -> str:
    """The chat's answers to a rating at the wrong moment (handlers/intake.py), and one for "not resolved yet"."""
    if status_now == "rated":
        return texts.already_rated(case_no)
    if status_now == "closed":
        return texts.RATING_CLOSED
    if status_now == "reopened":
        return texts.RATING_PENDING
    return texts.WXA_RATING_NOT_YET
