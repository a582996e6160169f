"""One inbound chat message → its effect and the reply text. Looked up by message kind in one explicit table.

Pure domain: the callback (bot/wechat.py) turns WeChat XML into an `Inbound`, stores the raw message, calls
`handle_inbound` in the same transaction and renders the returned text as the passive reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import load_actor
from handlers.cases import ActionInput, act_on_case, case_events, get_case
from handlers.drafts import (
    IntakeContext,
    add_media,
    add_text,
    add_voice,
    current_draft,
    draft_counts,
    has_description,
    has_place,
    new_draft,
    open_draft,
    set_place,
    status_text,
    submit_draft,
)
from handlers.errors import DomainError, Forbidden, InvalidTransition, NotFound
from models import Case, Person
from models.cases import CaseEvent

CASE_NO = re.compile(r"(\d{8}-\d{4,})")
RATINGS = {
    "1": 1,
    "2": 2,
    "3": 3,
    "4": 4,
    "5": 5,
    "非常满意": 5,
    "很满意": 5,
    "满意": 5,
    "基本满意": 3,
    "一般": 3,
    "不满意": 1,
    "很不满意": 1,
    "非常不满意": 1,
}
UNSATISFIED_BELOW = 3
INTERACTION_PRECISION = timedelta(minutes=1)
# Menu CLICK keys (config: wechat menu) map to the same commands a resident can type.
MENU_COMMANDS = {"MY_REPORTS": "查询", "HELP": "帮助", "SUBMIT": "提交", "CANCEL": "取消", "REPORT": "上报"}


@dataclass(frozen=True)
class Inbound:
    kind: str  # text | image | voice | location | event | video | link | unknown
    openid: str
    created_at: datetime
    text: str = ""
    media_id: str | None = None
    recognition: str | None = None
    lng: float | None = None
    lat: float | None = None
    label: str | None = None
    event: str | None = None
    event_key: str | None = None


def person_for_openid(session: Session, openid: str, now: datetime) -> Person:
    person = session.exec(select(Person).where(Person.openid == openid)).first()
    if person is None:
        person = Person(openid=openid, roles=["resident"], created_at=now, last_interaction_at=now)
        session.add(person)
        session.flush()
    return person


def handle_inbound(session: Session, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    """Apply one message; return the reply text (None: answer "success" and say nothing)."""
    person = person_for_openid(session, message.openid, now)
    if message.kind != "event" and (
        person.last_interaction_at is None or now - person.last_interaction_at > INTERACTION_PRECISION
    ):
        person.last_interaction_at = now  # minute precision is plenty for a 48-hour window, and saves a write
        session.add(person)
    handler = HANDLERS.get(message.kind, _on_unsupported)
    return handler(session, person, message, ctx, now)


def _on_text(session: Session, person: Person, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    text = message.text.strip()
    command = _command(session, person, text, ctx, now)
    if command is not None:
        return command
    draft = current_draft(session, person)
    result = ctx.classifier.classify(text)
    if not result.is_report and draft is None:
        return {"greeting": texts.GREETING, "thanks": texts.THANKS, "howto": texts.HELP, "ad": texts.AD}.get(
            result.reason or "", texts.UNCLEAR
        )
    draft = draft or new_draft(session, person, now)
    add_text(draft, text, now)
    session.add(draft)
    # A clear report that already names its place needs no second message.
    if result.is_report and result.confidence >= ctx.review_below and not result.place_hint.is_empty():
        return submit_draft(session, draft, person, ctx, now, classified=result).reply
    return status_text(session, draft)


def _on_image(session: Session, person: Person, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    draft = open_draft(session, person, now)
    if message.media_id:
        add_media(session, draft, "image", message.media_id, now)
    session.add(draft)
    _, images, _ = draft_counts(session, draft)
    return texts.images_received(images, has_place(draft))


def _on_voice(session: Session, person: Person, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    draft = open_draft(session, person, now)
    media = add_media(session, draft, "voice", message.media_id, now) if message.media_id else None
    add_voice(draft, (message.recognition or "").strip() or None, media, now)
    session.add(draft)
    return status_text(session, draft)


def _on_location(session: Session, person: Person, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    if message.lng is None or message.lat is None:
        return texts.UNSUPPORTED
    draft = open_draft(session, person, now)
    set_place(draft, message.lng, message.lat, message.label, now)
    session.add(draft)
    return status_text(session, draft)


def _on_event(session: Session, person: Person, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    event = (message.event or "").lower()
    if event in ("subscribe", "subscribe_scan"):
        person.subscribed = True
        session.add(person)
        return texts.WELCOME
    if event == "unsubscribe":
        person.subscribed = False
        session.add(person)
        return None
    if event == "click" and message.event_key in MENU_COMMANDS:
        command = MENU_COMMANDS[message.event_key]
        if command == "上报":
            return texts.HELP
        return _command(session, person, command, ctx, now)
    return None  # location reports, view clicks, template delivery receipts: stored, nothing to say


def _on_unsupported(
    session: Session, person: Person, message: Inbound, ctx: IntakeContext, now: datetime
) -> str | None:
    return texts.UNSUPPORTED


HANDLERS: dict[str, Callable[[Session, Person, Inbound, IntakeContext, datetime], str | None]] = {
    "text": _on_text,
    "image": _on_image,
    "voice": _on_voice,
    "location": _on_location,
    "event": _on_event,
}


# ---------------------------------------------------------------------------- commands


def _command(session: Session, person: Person, text: str, ctx: IntakeContext, now: datetime) -> str | None:
    """The typed commands; None when the text is not one (then it is part of a report)."""
    head, _, rest = text.partition(" ")
    head = head.strip()
    if text in ("帮助", "说明", "菜单", "?", "？"):
        return texts.HELP
    if text == "提交":
        draft = current_draft(session, person)
        if draft is None or not has_description(draft):
            return texts.NOTHING_TO_SUBMIT
        return submit_draft(session, draft, person, ctx, now).reply
    if text in ("取消", "作废"):
        draft = current_draft(session, person)
        if draft is None:
            return texts.NOTHING_TO_CANCEL
        draft.status, draft.updated_at = "cancelled", now
        session.add(draft)
        return texts.CANCELLED
    if text in ("查询", "我的上报", "我的", "进度"):
        return _my_cases(session, person, ctx)
    if head in ("查询", "进度") and CASE_NO.search(rest):
        return _timeline(session, person, CASE_NO.search(rest).group(1), ctx)  # type: ignore[union-attr]
    if head in ("接单", "办结") and set(person.roles) & {"grid_worker", "grid_leader"}:
        return _staff_action(session, person, head, rest.strip(), ctx, now)
    if text in RATINGS:
        return _rate(session, person, RATINGS[text], ctx, now)
    return None


def _my_cases(session: Session, person: Person, ctx: IntakeContext) -> str:
    cases = session.exec(
        select(Case).where(Case.reporter_id == person.id).order_by(col(Case.created_at).desc()).limit(5)
    ).all()
    if not cases:
        return texts.NO_CASES
    return texts.my_cases(
        [
            texts.case_line(c.case_no, ctx.classifier.taxonomy.name_of(c.subcategory), c.status, c.updated_at, ctx.zone)
            for c in cases
        ]
    )


def _timeline(session: Session, person: Person, case_no: str, ctx: IntakeContext) -> str:
    try:
        case = get_case(session, case_no)
    except NotFound:
        return texts.case_not_found(case_no)
    if case.reporter_id != person.id:
        return texts.case_not_found(case_no)  # never confirm that someone else's case exists
    steps = [(e.created_at, e.action, _public_note(e)) for e in case_events(session, case)]
    return texts.case_timeline(
        case.case_no, ctx.classifier.taxonomy.name_of(case.subcategory), steps, case.status, ctx.zone
    )


def _public_note(event: CaseEvent) -> str:
    return event.note if event.action in ("resolve", "reopen", "rate") else ""


def _rate(session: Session, person: Person, rating: int, ctx: IntakeContext, now: datetime) -> str | None:
    """The resident's latest resolved case gets the rating; a repeat or a late one is answered kindly."""
    latest = session.exec(
        select(Case)
        .where(Case.reporter_id == person.id, col(Case.resolved_at).is_not(None))
        .order_by(col(Case.resolved_at).desc())
        .limit(1)
    ).first()
    if latest is None:
        return None  # a bare number with nothing to rate: treat it as ordinary text
    if latest.status == "rated" or (latest.status == "closed" and latest.rating is not None):
        return texts.already_rated(latest.case_no)
    if latest.status == "closed":
        return texts.RATING_CLOSED
    if latest.status != "resolved":
        return texts.RATING_PENDING
    actor = load_actor(session, person)
    act_on_case(session, latest.case_no, "rate", actor, now, ctx.sla, ActionInput(rating=rating))
    if rating < UNSATISFIED_BELOW:
        act_on_case(session, latest.case_no, "reopen", actor, now, ctx.sla, ActionInput(note="居民评价不满意"))
        return texts.RATING_REOPENED
    return texts.RATING_THANKS


def _staff_action(session: Session, person: Person, head: str, rest: str, ctx: IntakeContext, now: datetime) -> str:
    found = CASE_NO.search(rest)
    if found is None:
        return texts.STAFF_USAGE
    case_no = found.group(1)
    note = rest[found.end() :].strip()
    action = "take" if head == "接单" else "resolve"
    attachments: tuple[str, ...] = ()
    draft = current_draft(session, person)
    if action == "resolve" and draft is not None and draft.media_ids:
        attachments = tuple(f"media:{media_id}" for media_id in draft.media_ids)
    try:
        act_on_case(
            session,
            case_no,
            action,
            load_actor(session, person),
            now,
            ctx.sla,
            ActionInput(note=note or ("已处理" if action == "resolve" else ""), attachments=attachments),
        )
    except NotFound:
        return texts.staff_refused(texts.case_not_found(case_no))
    except Forbidden:
        return texts.staff_refused(texts.STAFF_NOT_ALLOWED)
    except InvalidTransition as exc:
        return texts.staff_refused(texts.staff_wrong_state(str(exc.details.get("current_state")), action))
    except DomainError as exc:
        return texts.staff_refused(exc.message)
    if attachments and draft is not None:
        draft.status, draft.updated_at = "submitted", now  # the photos went to the case, not to a new report
        session.add(draft)
    return texts.staff_done(action, case_no)
