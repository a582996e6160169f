"""Counts for `gridbot stats` and the console's overview."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from handlers.lifecycle import Status
from models import Activity, Case, InboundMessage, OutboxMessage, PointsEntry, Report, Signup

OUTBOX_STATES = ("pending", "sent", "failed")


def _count(session: Session, model: Any) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


def collect_stats(session: Session) -> dict[str, Any]:
    cases = {status.value: 0 for status in Status}
    for status, count in session.exec(select(Case.status, func.count()).group_by(col(Case.status))).all():
        cases[status] = int(count)
    outbox = dict.fromkeys(OUTBOX_STATES, 0)
    for status, count in session.exec(
        select(OutboxMessage.status, func.count()).group_by(col(OutboxMessage.status))
    ).all():
        outbox[status] = int(count)
    points = session.exec(select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(PointsEntry.delta > 0)).one()
    active_signups = session.exec(
        select(func.count()).select_from(Signup).where(col(Signup.status).in_(["confirmed", "waitlisted", "attended"]))
    ).one()
    return {
        "inbound_messages": _count(session, InboundMessage),
        "reports": _count(session, Report),
        "cases": cases,
        "outbox": outbox,
        "activities": _count(session, Activity),
        "signups": int(active_signups),
        "points_issued": int(points),
    }
