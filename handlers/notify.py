"""Notifications only write outbox rows, in the caller's transaction; bot/outbox.py delivers them later."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from models import Case, OutboxMessage
from models.db import execute_core


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
    """A grid as a row (models.Grid) or as routing placed it (handlers.routing.PlacedGrid)."""

    @property
    def channel(self) -> dict[str, Any] | None: ...


def tell_grid(
    session: Session, grid: GroupReachable, markdown: str, now: datetime, dedupe_key: str, case: Case | None = None
) -> bool:
    """A post to the grid's work group through its channel; False when the grid has none configured (or the
    post was already owed)."""
    channel = grid.channel or {}
    kind = channel.get("type")
    target = channel.get("key") or channel.get("chatid")
    if not kind or not target:
        return False
    return enqueue(
        session,
        channel=str(kind),
        target=str(target),
        payload={"markdown": markdown},
        dedupe_key=dedupe_key,
        now=now,
        case_id=case.id if case else None,
    )
