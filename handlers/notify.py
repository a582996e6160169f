"""Notifications only write outbox rows, in the caller's transaction; bot/outbox.py delivers them later.

A grid's work group is reached through its channel (`grids.channel`), one of CHANNEL_FIELDS:
- `wecom_robot` {key}: a WeCom group robot's webhook, one row per post;
- `wecom_appchat` {chatid}: a WeCom group chat created by our WeCom application, one row per post;
- `mp_template_workers` {}: no group at all, but one `wechat_user` row per grid worker or leader of the grid with
  an official-account openid, delivered like any message to a person.
A channel that cannot be delivered to (unknown type, missing field, no grid) still owes a row, which the sender
marks failed with the reason: a post owed to a group is delivered or visibly failed, never silently dropped.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from models import Case, OutboxMessage, Person, PersonGrid
from models.db import execute_core

log = logging.getLogger("gridbot.notify")

# The fields each channel kind needs besides its type (and the only ones it may have).
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "wecom_robot": ("key",),
    "wecom_appchat": ("chatid",),
    "mp_template_workers": (),
}
CHATID = re.compile(r"[0-9A-Za-z]{1,32}")  # WeCom: at most 32 characters, digits and letters only
WORKER_ROLES = ("grid_worker", "grid_leader")


def _owe(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(OutboxMessage).on_conflict_do_nothing(index_elements=["dedupe_key"])


_OWE = {dialect: _owe(dialect) for dialect in ("sqlite", "postgresql")}


def enqueue(
    session: Session,
    *,
    channel: str,
    target: str,
    payload: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    case_id: int | None = None,
) -> bool:
    """Owe one message. The same dedupe key twice is one message: a retried handler cannot post twice.
    → False when that key was already owed."""
    dialect = session.get_bind().dialect.name
    result = execute_core(
        session,
        _OWE["postgresql" if dialect == "postgresql" else "sqlite"],
        {
            "channel": channel,
            "target": target,
            "payload": payload,
            "dedupe_key": dedupe_key,
            "case_id": case_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    return bool(result.rowcount)


class Reachable(Protocol):
    """Anyone with an official-account openid (a Person row or a chat Sender)."""

    @property
    def openid(self) -> str | None: ...


def tell_person(
    session: Session, person: Reachable, text: str, now: datetime, dedupe_key: str, case: Case | None = None
) -> bool:
    """A message to one resident or staff member on the official account; False when they cannot be reached
    (or the message was already owed)."""
    if not person.openid:
        return False
    payload: dict[str, Any] = {"text": text}
    if case is not None:
        payload.update(case_no=case.case_no, status=case.status)
    return enqueue(
        session,
        channel="wechat_user",
        target=person.openid,
        payload=payload,
        dedupe_key=dedupe_key,
        now=now,
        case_id=case.id if case else None,
    )


class GroupReachable(Protocol):
    """A grid as a row (models.Grid) or as routing placed it (handlers.routing.PlacedGrid); a department's group
    is only a channel. `id` and `code`, when the object has them, name the grid."""

    @property
    def channel(self) -> dict[str, Any] | None: ...


def channel_problem(channel: Any) -> str | None:
    """Why this channel configuration cannot be delivered to, in English; None when it can."""
    if not isinstance(channel, dict) or not isinstance(channel.get("type"), str) or not channel["type"]:
        return "channel must be an object with a 'type'"
    kind = channel["type"]
    if kind not in CHANNEL_FIELDS:
        return f"channel type {kind!r} is not one of {', '.join(CHANNEL_FIELDS)}"
    fields = CHANNEL_FIELDS[kind]
    unknown = sorted(set(channel) - {"type", *fields})
    if unknown:
        return f"channel {kind} does not take {', '.join(repr(name) for name in unknown)}"
    for name in fields:
        value = channel.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"channel {kind} needs a non-empty {name!r}"
        if len(value) > 200:
            return f"channel {kind}: {name!r} is longer than 200 characters"
    if kind == "wecom_appchat" and not CHATID.fullmatch(channel["chatid"]):
        return f"channel wecom_appchat: chatid {channel['chatid']!r} is not 1–32 letters and digits"
    return None


def tell_grid(
    session: Session, grid: GroupReachable, markdown: str, now: datetime, dedupe_key: str, case: Case | None = None
) -> bool:
    """A post to the grid's work group through its channel; False when the grid has none configured (or the
    post was already owed). `mp_template_workers` owes one message to each reachable worker instead; True when at
    least one of them was newly owed."""
    channel = grid.channel
    if not channel:
        return False
    where = _grid_label(grid)
    case_id = case.id if case else None
    problem = channel_problem(channel)
    if problem is None and channel["type"] == "mp_template_workers":
        grid_id = getattr(grid, "id", None)
        if grid_id is not None:
            return _tell_workers(session, int(grid_id), where, markdown, now, dedupe_key, case)
        problem = "channel mp_template_workers reaches the workers of a grid, and this channel has no grid"
    if problem is not None:
        log.warning("%s: %s; the post is owed and will be marked failed", where, problem)
        kind = channel.get("type") if isinstance(channel, dict) else None
        return enqueue(
            session,
            channel=kind[:32] if isinstance(kind, str) and kind else "invalid",
            target="",
            payload={"markdown": markdown, "channel_error": f"{where}: {problem}"},
            dedupe_key=dedupe_key,
            now=now,
            case_id=case_id,
        )
    kind = channel["type"]
    return enqueue(
        session,
        channel=kind,
        target=channel[CHANNEL_FIELDS[kind][0]].strip(),
        payload={"markdown": markdown},
        dedupe_key=dedupe_key,
        now=now,
        case_id=case_id,
    )


def _grid_label(grid: GroupReachable) -> str:
    code = getattr(grid, "code", None)
    return f"grid {code}" if code else "department channel"


def _tell_workers(
    session: Session, grid_id: int, where: str, markdown: str, now: datetime, dedupe_key: str, case: Case | None
) -> bool:
    """One message per worker or leader of the grid who has an openid, each under its own dedupe key."""
    staff = session.exec(
        select(Person.id, Person.openid)
        .join(PersonGrid, col(PersonGrid.person_id) == col(Person.id))
        .where(PersonGrid.grid_id == grid_id, col(PersonGrid.role).in_(WORKER_ROLES), col(Person.active))
        .order_by(col(Person.id))
    ).all()
    reachable = [(person_id, openid) for person_id, openid in staff if openid]
    unreachable = [person_id for person_id, openid in staff if not openid]
    if unreachable:
        log.warning(
            "%s: %d of %d worker(s) have no official-account openid and are not told (person ids %s)",
            where,
            len(unreachable),
            len(staff),
            ", ".join(str(person_id) for person_id in unreachable),
        )
    if not reachable:
        return enqueue(
            session,
            channel="mp_template_workers",
            target="",
            payload={"markdown": markdown, "channel_error": f"{where}: no grid worker has an official-account openid"},
            dedupe_key=dedupe_key,
            now=now,
            case_id=case.id if case else None,
        )
    payload = worker_payload(markdown, case)
    owed = False
    for person_id, openid in reachable:
        owed |= enqueue(
            session,
            channel="wechat_user",
            target=str(openid),
            payload=payload,
            dedupe_key=f"{dedupe_key}:worker:{person_id}",
            now=now,
            case_id=case.id if case else None,
        )
    return owed


_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
_TAG = re.compile(r"</?font[^>]*>")


def worker_payload(markdown: str, case: Case | None) -> dict[str, Any]:
    """A group card as a message to one person: plain text (neither customer-service messages nor templates render
    markdown), its first line as the template's title and its last link (the act-on-it link) as the template's
    link."""
    lines = []
    for line in markdown.splitlines():
        line = _LINK.sub(lambda m: f"{m[1]} {m[2]}", _TAG.sub("", line))
        lines.append(line.replace("**", "").replace("`", "").lstrip("># ").rstrip())
    text = "\n".join(line for line in lines if line)
    payload: dict[str, Any] = {"text": text, "title": lines[0] if lines else ""}
    links = _LINK.findall(markdown)
    if links:
        payload["url"] = links[-1][1]
    if case is not None:
        payload.update(case_no=case.case_no, status=case.status)
    return payload
