"""Composing a report from several chat messages (text, photos, voice, place) and submitting it as a case."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlmodel import Session

from classifier.engine import Classification
from handlers import texts
from handlers.notify import tell_person
from handlers.people import PEOPLE, SENDER_COLUMNS, Sender, sender_from_row
from handlers.reports import IntakeContext, ReportContent, submit_report
from models import Case, Media, ReportDraft
from models.db import execute_core, insert_id
from models.types import table_of


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
_MEDIA = table_of(Media)
_INSERT_MEDIA = insert(_MEDIA)
_COUNT_IMAGES = select(func.count()).where(_MEDIA.c.id.in_(bindparam("ids", expanding=True)), _MEDIA.c.kind == "image")


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
    """The draft as one report through the submission every door shares (handlers/reports.py), then closed.

    `classified`: the caller's result for exactly this text (a one-message report), so it is not classified twice.
    """
    content = ReportContent(
        person_id=sender.id,
        home_grid_id=sender.home_grid_id,
        channel=draft.channel,
        text="\n".join(draft.texts),
        voice_transcript="\n".join(draft.voice_transcripts) or None,
        lng=draft.lng,
        lat=draft.lat,
        address=draft.address,
        media_ids=tuple(draft.media_ids),
    )
    filed = submit_report(session, content, ctx, now, classified)
    case = filed.case
    close_draft(session, draft, "submitted", now, case_id=case.id)
    reply = texts.submitted(case.case_no, filed.category_name, case.urgency == "urgent", case.needs_review)
    return Submission(case=case, result=filed.result, reply=reply)


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
