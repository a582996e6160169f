"""The append-only, hash-chained case history (全过程回溯) and its verification.

Each event stores sha256(previous event's hash + canonical JSON of its own content). Editing, deleting or
reordering any stored event breaks the chain from that event on, and `verify_chains` names the first break.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from handlers.access import Actor
from models import Case, CaseEvent


def event_digest(case_no: str, event: CaseEvent, prev_hash: str) -> str:
    """sha256 over the previous hash and the canonical JSON of everything the event says."""
    content = {
        "case_no": case_no,
        "seq": event.seq,
        "action": event.action,
        "from": event.from_status,
        "to": event.to_status,
        "actor_id": event.actor_id,
        "actor_role": event.actor_role,
        "note": event.note,
        "attachments": event.attachments,
        "data": event.data,
        "at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def chain_event(
    case: Case,
    *,
    action: str,
    from_status: str | None,
    to_status: str,
    actor: Actor,
    actor_role: str,
    now: datetime,
    note: str = "",
    attachments: list[Any] | None = None,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """The next event at the head of the case's chain, hashed, and the case's head moved to it. Writes nothing:
    `append_event` adds both to the session; a case built in memory (cases.insert_new_case) is inserted with
    its events, which get the case's id then (0 until there is one)."""
    event = CaseEvent(
        case_id=case.id if case.id is not None else 0,
        seq=case.last_event_seq + 1,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor_id=actor.person_id,
        actor_role=actor_role,
        note=note,
        attachments=attachments or [],
        data=data or {},
        created_at=now,
        prev_hash=case.last_event_hash,
        hash="",
    )
    event.hash = event_digest(case.case_no, event, case.last_event_hash)
    case.last_event_seq = event.seq
    case.last_event_hash = event.hash
    return event


def append_event(
    session: Session,
    case: Case,
    *,
    action: str,
    from_status: str | None,
    to_status: str,
    actor: Actor,
    actor_role: str,
    now: datetime,
    note: str = "",
    attachments: list[Any] | None = None,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """Add one event at the head of the case's chain. The (case_id, seq) unique key refuses a racing twin."""
    if case.id is None:
        session.flush()
    assert case.id is not None
    event = chain_event(
        case,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_role=actor_role,
        now=now,
        note=note,
        attachments=attachments,
        data=data,
    )
    session.add(event)
    session.add(case)
    return event


@dataclass(frozen=True)
class ChainBreak:
    case_no: str
    seq: int
    event_id: int | None
    reason: str


def verify_case(case: Case, events: list[CaseEvent]) -> ChainBreak | None:
    prev_hash = ""
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return ChainBreak(case.case_no, expected_seq, event.id, f"event {expected_seq} is missing")
        if event.prev_hash != prev_hash:
            return ChainBreak(case.case_no, event.seq, event.id, "link to the previous event does not match")
        digest = event_digest(case.case_no, event, prev_hash)
        if digest != event.hash:
            return ChainBreak(case.case_no, event.seq, event.id, "content does not match its hash")
        prev_hash = event.hash
    if events and events[-1].to_status != case.status:
        return ChainBreak(case.case_no, events[-1].seq, events[-1].id, "case status differs from its history")
    if case.last_event_hash != prev_hash:
        return ChainBreak(case.case_no, len(events), None, "events after the last stored one were removed")
    return None


def _cases_with_events(session: Session, batch: int = 500) -> Iterator[tuple[Case, list[CaseEvent]]]:
    last_id = 0
    while True:
        cases = session.exec(select(Case).where(col(Case.id) > last_id).order_by(col(Case.id)).limit(batch)).all()
        if not cases:
            return
        ids = [c.id for c in cases]
        events: dict[int, list[CaseEvent]] = {}
        rows = session.exec(
            select(CaseEvent)
            .where(col(CaseEvent.case_id).in_(ids))
            .order_by(col(CaseEvent.case_id), col(CaseEvent.seq))
        ).all()
        for event in rows:
            events.setdefault(event.case_id, []).append(event)
        for case in cases:
            assert case.id is not None
            yield case, events.get(case.id, [])
        last_id = cases[-1].id or last_id


def verify_chains(session: Session) -> tuple[int, list[ChainBreak]]:
    """Check every case's chain; returns how many cases were checked and the first break in each bad one."""
    checked = 0
    breaks: list[ChainBreak] = []
    for case, events in _cases_with_events(session):
        checked += 1
        found = verify_case(case, events)
        if found:
            breaks.append(found)
    return checked, breaks


def replay_states(events: list[CaseEvent]) -> list[str]:
    """The sequence of states a case went through, read from its history alone."""
    return [event.to_status for event in sorted(events, key=lambda e: e.seq)]
