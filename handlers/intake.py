"""One inbound chat message → its effect and the reply text. Looked up by message kind in one explicit table.

Pure domain: the callback (bot/wechat.py) turns WeChat XML into an `Inbound`, stores the raw message, calls
`handle_inbound` in the same transaction and renders the returned text as the passive reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import load_actor
from handlers.cases import ActionInput, act_on_case, case_events, get_case
from handlers.drafts import (
    DRAFT_COLUMNS,
    DRAFTS,
    Draft,
    IntakeContext,
    add_media,
    add_text,
    add_voice,
    close_draft,
    draft_counts,
    draft_from_row,
    has_description,
    has_place,
    new_draft,
    save_draft,
    set_place,
    status_text,
    submit_draft,
)
from handlers.errors import DomainError, Forbidden, InvalidTransition, NotFound
from handlers.people import (
    PEOPLE,
    SENDER_COLUMNS,
    Sender,
    new_sender,
    sender_from_row,
    set_subscribed,
    touch_sender,
)
from models import Case, Person
from models.cases import CaseEvent
from models.db import execute_core

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


@dataclass
class Chat:
    """The sender of a message and their open draft (None: no report in progress)."""

    sender: Sender
    draft: Draft | None


# The sender and their open draft in one statement; a new sender has no draft, so a first message costs one
# lookup and one insert.
_CHAT = (
    core_select(*SENDER_COLUMNS, *DRAFT_COLUMNS)
    .select_from(PEOPLE.outerjoin(DRAFTS, and_(DRAFTS.c.person_id == PEOPLE.c.id, DRAFTS.c.status == "open")))
    .where(PEOPLE.c.openid == bindparam("openid"))
    .limit(1)
)


def load_chat(session: Session, openid: str, now: datetime) -> Chat:
    row = execute_core(session, _CHAT, {"openid": openid}).first()
    if row is None:
        return Chat(new_sender(session, openid, now), None)
    sender = sender_from_row(openid, row)
    return Chat(sender, draft_from_row(sender.id, row[len(SENDER_COLUMNS) :]))


def person_for_openid(session: Session, openid: str, now: datetime) -> Person:
    """The person as an ORM object, created on first contact (for jobs off the callback's hot path)."""
    person = session.exec(select(Person).where(Person.openid == openid)).first()
    if person is None:
        person = Person(openid=openid, roles=["resident"], created_at=now, last_interaction_at=now)
        session.add(person)
        session.flush()
    return person


def handle_inbound(session: Session, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    """Apply one message; return the reply text (None: answer "success" and say nothing)."""
    chat = load_chat(session, message.openid, now)
    last = chat.sender.last_interaction_at
    if message.kind != "event" and (last is None or now - last > INTERACTION_PRECISION):
        touch_sender(session, chat.sender, now)  # minute precision is plenty for a 48-hour window, and saves a write
    handler = HANDLERS.get(message.kind, _on_unsupported)
    return handler(session, chat, message, ctx, now)


def _open_draft(chat: Chat, now: datetime) -> Draft:
    if chat.draft is None:
        chat.draft = new_draft(chat.sender.id, now)
    return chat.draft


def _on_text(session: Session, chat: Chat, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    text = message.text.strip()
    command = _command(session, chat, text, ctx, now)
    if command is not None:
        return command
    result = ctx.classifier.classify(text)
    if not result.is_report and chat.draft is None:
        return {"greeting": texts.GREETING, "thanks": texts.THANKS, "howto": texts.HELP, "ad": texts.AD}.get(
            result.reason or "", texts.UNCLEAR
        )
    draft = _open_draft(chat, now)
    add_text(draft, text, now)
    # A clear report that already names its place needs no second message.
    if result.is_report and result.confidence >= ctx.review_below and not result.place_hint.is_empty():
        return submit_draft(session, draft, chat.sender, ctx, now, classified=result).reply
    save_draft(session, draft)
    return status_text(session, draft)


def _on_image(session: Session, chat: Chat, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    draft = _open_draft(chat, now)
    if message.media_id:
        add_media(session, draft, "image", message.media_id, now)
    save_draft(session, draft)
    _, images, _ = draft_counts(session, draft)
    return texts.images_received(images, has_place(draft))


def _on_voice(session: Session, chat: Chat, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    draft = _open_draft(chat, now)
    media_id = add_media(session, draft, "voice", message.media_id, now) if message.media_id else None
    add_voice(draft, (message.recognition or "").strip() or None, media_id, now)
    save_draft(session, draft)
    return status_text(session, draft)


def _on_location(session: Session, chat: Chat, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    if message.lng is None or message.lat is None:
        return texts.UNSUPPORTED
    draft = _open_draft(chat, now)
    set_place(draft, message.lng, message.lat, message.label, now)
    save_draft(session, draft)
    return status_text(session, draft)


def _on_event(session: Session, chat: Chat, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    event = (message.event or "").lower()
    if event in ("subscribe", "subscribe_scan"):
        if not chat.sender.subscribed:
            set_subscribed(session, chat.sender, True)
        return texts.WELCOME
    if event == "unsubscribe":
        if chat.sender.subscribed:
            set_subscribed(session, chat.sender, False)
        return None
    if event == "click" and message.event_key in MENU_COMMANDS:
        command = MENU_COMMANDS[message.event_key]
        if command == "上报":
            return texts.HELP
        return _command(session, chat, command, ctx, now)
    return None  # location reports, view clicks, template delivery receipts: stored, nothing to say


def _on_unsupported(session: Session, chat: Chat, message: Inbound, ctx: IntakeContext, now: datetime) -> str | None:
    return texts.UNSUPPORTED


HANDLERS: dict[str, Callable[[Session, Chat, Inbound, IntakeContext, datetime], str | None]] = {
    "text": _on_text,
    "image": _on_image,
    "voice": _on_voice,
    "location": _on_location,
    "event": _on_event,
}


# ---------------------------------------------------------------------------- commands


def _command(session: Session, chat: Chat, text: str, ctx: IntakeContext, now: datetime) -> str | None:
    """The typed commands; None when the text is not one (then it is part of a report)."""
    head, _, rest = text.partition(" ")
    head = head.strip()
    sender, draft = chat.sender, chat.draft
    if text in ("帮助", "说明", "菜单", "?", "？"):
        return texts.HELP
    if text == "提交":
        if draft is None or not has_description(draft):
            return texts.NOTHING_TO_SUBMIT
        return submit_draft(session, draft, sender, ctx, now).reply
    if text in ("取消", "作废"):
        if draft is None:
            return texts.NOTHING_TO_CANCEL
        close_draft(session, draft, "cancelled", now)
        return texts.CANCELLED
    if text in ("查询", "我的上报", "我的", "进度"):
        return _my_cases(session, sender, ctx)
    if head in ("查询", "进度") and CASE_NO.search(rest):
        return _timeline(session, sender, CASE_NO.search(rest).group(1), ctx)  # type: ignore[union-attr]
    if head in ("接单", "办结") and set(sender.roles) & {"grid_worker", "grid_leader"}:
        return _staff_action(session, chat, head, rest.strip(), ctx, now)
    if text in RATINGS:
        return _rate(session, sender, RATINGS[text], ctx, now)
    return None


def _my_cases(session: Session, sender: Sender, ctx: IntakeContext) -> str:
    cases = session.exec(
        select(Case).where(Case.reporter_id == sender.id).order_by(col(Case.created_at).desc()).limit(5)
    ).all()
    if not cases:
        return texts.NO_CASES
    return texts.my_cases(
        [
            texts.case_line(c.case_no, ctx.classifier.taxonomy.name_of(c.subcategory), c.status, c.updated_at, ctx.zone)
            for c in cases
        ]
    )


def _timeline(session: Session, sender: Sender, case_no: str, ctx: IntakeContext) -> str:
    try:
        case = get_case(session, case_no)
    except NotFound:
        return texts.case_not_found(case_no)
    if case.reporter_id != sender.id:
        return texts.case_not_found(case_no)  # never confirm that someone else's case exists
    steps = [(e.created_at, e.action, _public_note(e)) for e in case_events(session, case)]
    return texts.case_timeline(
        case.case_no, ctx.classifier.taxonomy.name_of(case.subcategory), steps, case.status, ctx.zone
    )


def _public_note(event: CaseEvent) -> str:
    return event.note if event.action in ("resolve", "reopen", "rate") else ""


def _rate(session: Session, sender: Sender, rating: int, ctx: IntakeContext, now: datetime) -> str | None:
    """The resident's latest resolved case gets the rating; a repeat or a late one is answered kindly."""
    latest = session.exec(
        select(Case)
        .where(Case.reporter_id == sender.id, col(Case.resolved_at).is_not(None))
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
    actor = load_actor(session, sender)
    act_on_case(session, latest.case_no, "rate", actor, now, ctx.sla, ActionInput(rating=rating))
    if rating < UNSATISFIED_BELOW:
        act_on_case(session, latest.case_no, "reopen", actor, now, ctx.sla, ActionInput(note="居民评价不满意"))
        return texts.RATING_REOPENED
    return texts.RATING_THANKS


def _staff_action(session: Session, chat: Chat, head: str, rest: str, ctx: IntakeContext, now: datetime) -> str:
    found = CASE_NO.search(rest)
    if found is None:
        return texts.STAFF_USAGE
    case_no = found.group(1)
    note = rest[found.end() :].strip()
    action = "take" if head == "接单" else "resolve"
    attachments: tuple[str, ...] = ()
    draft = chat.draft
    if action == "resolve" and draft is not None and draft.media_ids:
        attachments = tuple(f"media:{media_id}" for media_id in draft.media_ids)
    try:
        act_on_case(
            session,
            case_no,
            action,
            load_actor(session, chat.sender),
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
        close_draft(session, draft, "submitted", now)  # the photos went to the case, not to a new report
    return texts.staff_done(action, case_no)
