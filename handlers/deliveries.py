"""The outbox seen by people: what is owed, what failed and why, and retrying a failed delivery by hand.

A delivery that failed for good (permanent error, or too many attempts) stays `failed` with its last error until
an operator retries it: it goes back to `pending` with a fresh attempt count and is sent by the outbox worker as
usual. Only failed rows can be retried; a sent one was acknowledged and is never sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from handlers.errors import InvalidInput, NotFound
from models import Case, OutboxMessage

STATUSES = ("pending", "sent", "failed")


@dataclass(frozen=True)
class Delivery:
    id: int
    channel: str
    target: str
    status: str
    attempts: int
    case_no: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    preview: str


def list_deliveries(session: Session, status: str | None = None, limit: int = 50) -> list[Delivery]:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    query = (
        select(OutboxMessage, Case.case_no)
        .join(Case, col(Case.id) == col(OutboxMessage.case_id), isouter=True)
        .order_by(col(OutboxMessage.id).desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return [_delivery(row, case_no) for row, case_no in session.exec(query).all()]


def retry_deliveries(session: Session, ids: Sequence[int], now: datetime) -> list[Delivery]:
    """Put failed deliveries back in the queue. Raises, changing nothing, if any id is unknown or not failed."""
    if not ids:
        raise InvalidInput("name at least one outbox message to retry")
    rows = session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(list(ids))).with_for_update()).all()
    found = {row.id: row for row in rows}
    missing = sorted(set(ids) - set(found))
    if missing:
        raise NotFound(f"no outbox message {', '.join(map(str, missing))}", ids=missing)
    not_failed = [f"{row.id} is {row.status}" for row in rows if row.status != "failed"]
    if not_failed:
        raise InvalidInput("only failed deliveries can be retried: " + "; ".join(not_failed))
    for row in rows:
        row.status, row.attempts, row.next_attempt_at = "pending", 0, now
        session.add(row)
    return [_delivery(found[i], None) for i in ids]


def failed_ids(session: Session) -> list[int]:
    return [i for i in session.exec(select(OutboxMessage.id).where(OutboxMessage.status == "failed")).all() if i]


def _delivery(row: OutboxMessage, case_no: str | None) -> Delivery:
    assert row.id is not None
    payload: dict[str, Any] = row.payload or {}
    text = str(payload.get("markdown") or payload.get("text") or "")
    return Delivery(
        id=row.id,
        channel=row.channel,
        target=_mask(row.target),
        status=row.status,
        attempts=row.attempts,
        case_no=case_no,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
        preview=text.replace("\n", " ")[:60],
    )


def _mask(target: str) -> str:
    """Robot keys and openids are credentials of a sort: show enough to tell them apart."""
    return target if len(target) <= 8 else f"{target[:4]}…{target[-4:]}"
