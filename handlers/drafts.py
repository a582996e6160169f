"""Composing a report from several chat messages (text, photos, voice, place) and submitting it as a case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from classifier.engine import Classification, Classifier
from handlers import texts
from handlers.access import SYSTEM
from handlers.cases import ActionInput, act_on_case, open_case
from handlers.grids import GridIndex
from handlers.notify import tell_grid, tell_person
from handlers.routing import place_report
from handlers.sla import SlaPolicy
from models import Case, Grid, Media, Person, Report, ReportDraft


@dataclass(frozen=True)
class IntakeContext:
    classifier: Classifier
    zone: ZoneInfo
    sla: SlaPolicy
    grid_index: Callable[[], GridIndex]
    review_below: float
    public_base_url: str


def open_draft(session: Session, person: Person, now: datetime, channel: str = "mp") -> ReportDraft:
    """The person's open draft, or a new one (inserted with the rest of the transaction, not on its own)."""
    return current_draft(session, person) or new_draft(session, person, now, channel)


def new_draft(session: Session, person: Person, now: datetime, channel: str = "mp") -> ReportDraft:
    assert person.id is not None
    draft = ReportDraft(
        person_id=person.id,
        channel=channel,
        texts=[],
        voice_transcripts=[],
        media_ids=[],
        created_at=now,
        updated_at=now,
    )
    session.add(draft)
    return draft


def current_draft(session: Session, person: Person) -> ReportDraft | None:
    return session.exec(
        select(ReportDraft).where(ReportDraft.person_id == person.id, ReportDraft.status == "open")
    ).first()


def add_text(draft: ReportDraft, text: str, now: datetime) -> None:
    draft.texts = [*draft.texts, text]
    draft.updated_at = now


def add_voice(draft: ReportDraft, transcript: str | None, media: Media | None, now: datetime) -> None:
    if transcript:
        draft.voice_transcripts = [*draft.voice_transcripts, transcript]
    if media is not None and media.id is not None:
        draft.media_ids = [*draft.media_ids, media.id]
    draft.updated_at = now


def add_media(session: Session, draft: ReportDraft, kind: str, wechat_media_id: str, now: datetime) -> Media:
    """A photo or voice file to fetch from WeChat after the reply (bot/media.py downloads it)."""
    media = Media(
        kind=kind,
        source="wechat",
        wechat_media_id=wechat_media_id,
        status="pending",
        next_attempt_at=now,
        created_at=now,
    )
    session.add(media)
    session.flush()
    assert media.id is not None
    if kind == "image":
        draft.media_ids = [*draft.media_ids, media.id]
    draft.updated_at = now
    return media


def set_place(draft: ReportDraft, lng: float, lat: float, label: str | None, now: datetime) -> None:
    draft.lng, draft.lat = lng, lat
    draft.address = label or draft.address
    draft.updated_at = now


def draft_counts(session: Session, draft: ReportDraft) -> tuple[int, int, int]:
    """(texts, images, voices) in the draft."""
    images = 0
    if draft.media_ids:
        images = len(
            session.exec(select(Media.id).where(col(Media.id).in_(draft.media_ids), Media.kind == "image")).all()
        )
    return len(draft.texts), images, len(draft.voice_transcripts)


def has_description(draft: ReportDraft) -> bool:
    return bool(draft.texts or draft.voice_transcripts)


def has_place(draft: ReportDraft) -> bool:
    return draft.lng is not None or bool(draft.address)


def status_text(session: Session, draft: ReportDraft) -> str:
    n_texts, images, voices = draft_counts(session, draft)
    return texts.draft_status(n_texts, images, voices, has_place(draft))


@dataclass(frozen=True)
class Submission:
    case: Case
    result: Classification
    reply: str


def submit_draft(
    session: Session,
    draft: ReportDraft,
    person: Person,
    ctx: IntakeContext,
    now: datetime,
    classified: Classification | None = None,
) -> Submission:
    """Classify, store the Report, open the case, and dispatch it when grid and class are both clear.

    `classified`: the caller's result for exactly this text (a one-message report), so it is not classified twice.
    """
    text = "\n".join([*draft.texts, *draft.voice_transcripts]).strip()
    reuse = classified is not None and classified.text.strip() == text
    result = classified if classified is not None and reuse else ctx.classifier.classify(text)
    subcategory = result.subcategory if result.is_report else "H08"
    report = Report(
        person_id=person.id,
        channel=draft.channel,
        text="\n".join(draft.texts),
        voice_transcript="\n".join(draft.voice_transcripts) or None,
        lng=draft.lng,
        lat=draft.lat,
        crs="gcj02",
        address=draft.address,
        place_hint=result.place_hint.to_dict(),
        is_report=result.is_report,
        category=subcategory[0] if subcategory else None,
        subcategory=subcategory,
        confidence=result.confidence,
        urgent=result.urgent,
        keywords=result.keywords,
        alternatives=[{"subcategory": a.subcategory, "score": a.score} for a in result.alternatives],
        created_at=now,
    )
    session.add(report)
    session.flush()
    if draft.media_ids:
        for media in session.exec(select(Media).where(col(Media.id).in_(draft.media_ids))).all():
            media.report_id = report.id
            session.add(media)
    case = open_case(session, report, now, ctx.zone)
    placement = place_report(session, report, ctx.grid_index(), person)
    confident = result.is_report and result.confidence >= ctx.review_below
    if placement.grid is not None and confident:
        act_on_case(session, case.case_no, "accept", SYSTEM, now, ctx.sla)
        act_on_case(
            session,
            case.case_no,
            "dispatch",
            SYSTEM,
            now,
            ctx.sla,
            ActionInput(grid_code=placement.grid.code, note=f"located by {placement.method}"),
        )
        notify_dispatched(session, case, report, placement.grid, ctx, now)
    else:
        case.needs_review = True
        case.review_reason = placement.reason or "classifier confidence below the review threshold"
        if placement.grid is not None:
            case.grid_id = placement.grid.id  # a suggestion for the operator
        session.add(case)
    draft.status = "submitted"
    draft.case_id = case.id
    draft.updated_at = now
    session.add(draft)
    name = ctx.classifier.taxonomy.name_of(subcategory)
    reply = texts.submitted(case.case_no, name, case.urgency == "urgent", case.needs_review)
    return Submission(case=case, result=result, reply=reply)


def notify_dispatched(
    session: Session, case: Case, report: Report, grid: Grid, ctx: IntakeContext, now: datetime
) -> None:
    deadline = texts.fmt_time(case.accept_deadline, ctx.zone) if case.accept_deadline else "—"
    card = texts.group_card(
        case.case_no,
        ctx.classifier.taxonomy.name_of(case.subcategory),
        case.urgency == "urgent",
        report.address or grid.name,
        (report.text or report.voice_transcript or "")[:80],
        deadline,
        f"{ctx.public_base_url.rstrip('/')}/m/cases/{case.case_no}",
        None,
    )
    tell_grid(session, grid, card, now, dedupe_key=f"case:{case.id}:dispatch:{case.last_event_seq}", case=case)


def sweep_drafts(
    session: Session, ctx: IntakeContext, now: datetime, idle: timedelta, expire: timedelta
) -> tuple[int, int]:
    """Submit complete drafts left idle (telling the resident the case number); drop stale incomplete ones."""
    submitted = 0
    for draft in idle_drafts(session, now, idle):
        person = session.get(Person, draft.person_id)
        if person is None:
            continue
        result = submit_draft(session, draft, person, ctx, now)
        tell_person(session, person, result.reply, now, dedupe_key=f"draft:{draft.id}:auto-submitted", case=result.case)
        submitted += 1
    expired = 0
    for draft in session.exec(
        select(ReportDraft).where(ReportDraft.status == "open", col(ReportDraft.updated_at) < now - expire)
    ).all():
        draft.status, draft.updated_at = "expired", now
        session.add(draft)
        expired += 1
    return submitted, expired


def idle_drafts(session: Session, now: datetime, idle: timedelta) -> list[ReportDraft]:
    """Open drafts with a description and a place that nobody touched for `idle`: submitted automatically."""
    stale = session.exec(
        select(ReportDraft).where(ReportDraft.status == "open", col(ReportDraft.updated_at) < now - idle)
    ).all()
    return [d for d in stale if has_description(d) and has_place(d)]
