"""Composing a report from several chat messages (text, photos, voice, place) and submitting it as a case."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, select, update
from sqlmodel import Session

from classifier.engine import Classification, Classifier
from handlers import texts
from handlers.announce import Announcer, first_photo, tell_departments
from handlers.cases import dispatch_new_case, insert_new_case, new_case
from handlers.grids import GridIndex
from handlers.notify import tell_grid, tell_person
from handlers.people import PEOPLE, SENDER_COLUMNS, Sender, sender_from_row
from handlers.routing import PlacedGrid, place_report
from handlers.sla import SlaPolicy
from models import Case, Media, Report, ReportDraft
from models.db import execute_core, insert_id
from models.types import table_of


@dataclass(frozen=True)
class IntakeContext:
    classifier: Classifier
    zone: ZoneInfo
    sla: SlaPolicy
    grid_index: Callable[[], GridIndex]
    review_below: float
    public_base_url: str
    announcer: Announcer | None = None  # department groups told on dispatch


@dataclass
class Draft:
    """What a resident has sent so far for one report, as plain values (a row of `report_drafts`).

    Read with the sender in one statement (handlers/intake.py) or with `current_draft`; every change is written
    by `save_draft` in one INSERT or UPDATE, in the caller's transaction.
    """

    person_id: int
    created_at: datetime
    updated_at: datetime
    channel: str = "mp"
    texts: list[str] = field(default_factory=list)
    voice_transcripts: list[str] = field(default_factory=list)
    media_ids: list[int] = field(default_factory=list)
    lng: float | None = None
    lat: float | None = None
    address: str | None = None
    id: int | None = None


DRAFTS = table_of(ReportDraft)
DRAFT_COLUMNS = (
    DRAFTS.c.id,
    DRAFTS.c.channel,
    DRAFTS.c.texts,
    DRAFTS.c.voice_transcripts,
    DRAFTS.c.media_ids,
    DRAFTS.c.lng,
    DRAFTS.c.lat,
    DRAFTS.c.address,
    DRAFTS.c.created_at,
    DRAFTS.c.updated_at,
)
_DRAFT_VALUES = ("texts", "voice_transcripts", "media_ids", "lng", "lat", "address", "updated_at")
_INSERT_DRAFT = insert(DRAFTS)
_UPDATE_DRAFT = (
    update(DRAFTS).where(DRAFTS.c.id == bindparam("draft_id")).values({name: bindparam(name) for name in _DRAFT_VALUES})
)
_CLOSE_DRAFT = (
    update(DRAFTS)
    .where(DRAFTS.c.id == bindparam("draft_id"))
    .values({name: bindparam(name) for name in (*_DRAFT_VALUES, "status", "case_id")})
)
_INSERT_REPORT = insert(table_of(Report))
_MEDIA = table_of(Media)
_INSERT_MEDIA = insert(_MEDIA)
_COUNT_IMAGES = select(func.count()).where(_MEDIA.c.id.in_(bindparam("ids", expanding=True)), _MEDIA.c.kind == "image")
_ATTACH_MEDIA = (
    update(_MEDIA).where(_MEDIA.c.id.in_(bindparam("ids", expanding=True))).values(report_id=bindparam("report_id"))
)


def draft_from_row(person_id: int, row: Sequence[Any]) -> Draft | None:
    """`row` holds the values of DRAFT_COLUMNS, in that order; None when the id is NULL (an outer join found none)."""
    draft_id, channel, texts_, voices, media_ids, lng, lat, address, created_at, updated_at = row
    if draft_id is None:
        return None
    return Draft(
        person_id=person_id,
        created_at=created_at,
        updated_at=updated_at,
        channel=channel,
        texts=list(texts_ or []),
        voice_transcripts=list(voices or []),
        media_ids=list(media_ids or []),
        lng=lng,
        lat=lat,
        address=address,
        id=draft_id,
    )


def new_draft(person_id: int, now: datetime, channel: str = "mp") -> Draft:
    """A draft that exists once `save_draft` wrote it (with its first content, in one INSERT)."""
    return Draft(person_id=person_id, channel=channel, created_at=now, updated_at=now)


def save_draft(session: Session, draft: Draft) -> None:
    values = {name: getattr(draft, name) for name in _DRAFT_VALUES}
    if draft.id is None:
        row = {**values, "person_id": draft.person_id, "channel": draft.channel, "created_at": draft.created_at}
        draft.id = insert_id(session, _INSERT_DRAFT, {**row, "status": "open", "case_id": None})
    else:
        execute_core(session, _UPDATE_DRAFT, {**values, "draft_id": draft.id})


def close_draft(session: Session, draft: Draft, status: str, now: datetime, case_id: int | None = None) -> None:
    """submitted (with the case it became) | cancelled, written with what the draft holds now (the message that
    closes it may have added to it). A draft never saved (a one-message report) is inserted as it ends, so
    every report still has its draft row."""
    draft.updated_at = now
    values = {name: getattr(draft, name) for name in _DRAFT_VALUES}
    if draft.id is None:
        row = {**values, "person_id": draft.person_id, "channel": draft.channel, "created_at": draft.created_at}
        draft.id = insert_id(session, _INSERT_DRAFT, {**row, "status": status, "case_id": case_id})
        return
    execute_core(session, _CLOSE_DRAFT, {**values, "draft_id": draft.id, "status": status, "case_id": case_id})


def add_text(draft: Draft, text: str, now: datetime) -> None:
    draft.texts = [*draft.texts, text]
    draft.updated_at = now


def add_voice(draft: Draft, transcript: str | None, media_id: int | None, now: datetime) -> None:
    if transcript:
        draft.voice_transcripts = [*draft.voice_transcripts, transcript]
    if media_id is not None:
        draft.media_ids = [*draft.media_ids, media_id]
    draft.updated_at = now


def add_media(session: Session, draft: Draft, kind: str, wechat_media_id: str, now: datetime) -> int:
    """A photo or voice file to fetch from WeChat after the reply (bot/media.py downloads it) → its media id."""
    media_id = insert_id(
        session,
        _INSERT_MEDIA,
        {
            "kind": kind,
            "source": "wechat",
            "wechat_media_id": wechat_media_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    if kind == "image":
        draft.media_ids = [*draft.media_ids, media_id]
    draft.updated_at = now
    return media_id


def set_place(draft: Draft, lng: float, lat: float, label: str | None, now: datetime) -> None:
    draft.lng, draft.lat = lng, lat
    draft.address = label or draft.address
    draft.updated_at = now


def draft_counts(session: Session, draft: Draft) -> tuple[int, int, int]:
    """(texts, images, voices) in the draft."""
    images = 0
    if draft.media_ids:
        images = int(execute_core(session, _COUNT_IMAGES, {"ids": draft.media_ids}).scalar_one())
    return len(draft.texts), images, len(draft.voice_transcripts)


def has_description(draft: Draft) -> bool:
    return bool(draft.texts or draft.voice_transcripts)


def has_place(draft: Draft) -> bool:
    return draft.lng is not None or bool(draft.address)


def status_text(session: Session, draft: Draft) -> str:
    n_texts, images, voices = draft_counts(session, draft)
    return texts.draft_status(n_texts, images, voices, has_place(draft))


@dataclass(frozen=True)
class Submission:
    case: Case
    result: Classification
    reply: str


def submit_draft(
    session: Session,
    draft: Draft,
    sender: Sender,
    ctx: IntakeContext,
    now: datetime,
    classified: Classification | None = None,
) -> Submission:
    """Classify, store the Report, open the case, and dispatch it when grid and class are both clear.

    `classified`: the caller's result for exactly this text (a one-message report), so it is not classified twice.
    The case and its events are built in memory by the lifecycle's own functions and inserted at the end, one
    statement per table, so a submission costs a handful of statements and no ORM flush.
    """
    text = "\n".join([*draft.texts, *draft.voice_transcripts]).strip()
    reuse = classified is not None and classified.text.strip() == text
    result = classified if classified is not None and reuse else ctx.classifier.classify(text)
    subcategory = result.subcategory if result.is_report else "H08"
    report_text = "\n".join(draft.texts)
    transcript = "\n".join(draft.voice_transcripts) or None
    report_id = insert_id(
        session,
        _INSERT_REPORT,
        {
            "person_id": sender.id,
            "channel": draft.channel,
            "text": report_text,
            "voice_transcript": transcript,
            "lng": draft.lng,
            "lat": draft.lat,
            "crs": "gcj02",
            "address": draft.address,
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
    if draft.media_ids:
        execute_core(session, _ATTACH_MEDIA, {"ids": draft.media_ids, "report_id": report_id})
    case, first = new_case(
        session,
        report_id=report_id,
        reporter_id=sender.id,
        channel=draft.channel,
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
        lng=draft.lng,
        lat=draft.lat,
        crs="gcj02",
        text=report_text,
        address=draft.address,
        home_grid_id=sender.home_grid_id,
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
        card_text = (report_text or transcript or "")[:80]
        notify_dispatched(session, case, dispatched_to, draft.address, card_text, ctx, now, bool(draft.media_ids))
    close_draft(session, draft, "submitted", now, case_id=case.id)
    name = ctx.classifier.taxonomy.name_of(subcategory)
    reply = texts.submitted(case.case_no, name, case.urgency == "urgent", case.needs_review)
    return Submission(case=case, result=result, reply=reply)


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


_IDLE_DRAFTS = (
    select(DRAFTS.c.person_id, *DRAFT_COLUMNS)
    .where(DRAFTS.c.status == "open", DRAFTS.c.updated_at < bindparam("before"))
    .order_by(DRAFTS.c.id)
)
_SENDER_BY_ID = select(PEOPLE.c.openid, *SENDER_COLUMNS).where(PEOPLE.c.id == bindparam("person_id"))
_EXPIRE_DRAFTS = (
    update(DRAFTS)
    .where(DRAFTS.c.status == "open", DRAFTS.c.updated_at < bindparam("before"))
    .values(status="expired", updated_at=bindparam("now"))
)


def sweep_drafts(
    session: Session, ctx: IntakeContext, now: datetime, idle: timedelta, expire: timedelta
) -> tuple[int, int]:
    """Submit complete drafts left idle (telling the resident the case number); drop stale incomplete ones."""
    submitted = 0
    for draft in idle_drafts(session, now, idle):
        row = execute_core(session, _SENDER_BY_ID, {"person_id": draft.person_id}).first()
        if row is None:
            continue
        sender = sender_from_row(row[0], row[1:])
        result = submit_draft(session, draft, sender, ctx, now)
        tell_person(session, sender, result.reply, now, dedupe_key=f"draft:{draft.id}:auto-submitted", case=result.case)
        submitted += 1
    expired = execute_core(session, _EXPIRE_DRAFTS, {"before": now - expire, "now": now}).rowcount
    return submitted, expired


def idle_drafts(session: Session, now: datetime, idle: timedelta) -> list[Draft]:
    """Open drafts with a description and a place that nobody touched for `idle`: submitted automatically."""
    stale = [draft_from_row(row[0], row[1:]) for row in execute_core(session, _IDLE_DRAFTS, {"before": now - idle})]
    return [d for d in stale if d is not None and has_description(d) and has_place(d)]
