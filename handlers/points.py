"""The points ledger (积分): append-only entries, balances as their sums, awards that pay once, manual
adjustments by admins, leaderboards.

Every entry has an idempotency key, unique in the table, and is inserted with ON CONFLICT DO NOTHING: an activity
(`activity:<id>:person:<id>`), a case (`report:case:<id>`) or a redemption (`redemption:<id>`, its refund
`redemption:<id>:refund`) pays or debits at most once, however often the code that pays runs. Nothing updates or
deletes an entry. Debits (redemptions, negative adjustments) first lock the person's row (SELECT … FOR UPDATE on
PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), so two debits of one person never both see the
old balance.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import Actor, descendant_grid_ids
from handlers.errors import Conflict, Forbidden, InvalidInput, NotFound
from models import Case, Person, PointsEntry
from models.db import execute_core
from models.points import POINTS_SOURCES

# Spending is not earning: the leaderboards count every source but these.
SPENDING_SOURCES = ("redemption",)
KEY_CHARS = 100


class InsufficientPoints(Conflict):
    code = "insufficient_points"


@dataclass(frozen=True)
class PointsRules:
    """From config `points:`; the activity rule is copied onto each activity when it is created."""

    report_resolved: int = 5
    max_adjustment: int = 1000


DEFAULT_RULES = PointsRules()
# Case actions finish through handlers/cases.py `_FINISH`, which hands its hooks no settings: the application and
# the timers register their rules for the engine they run on, and the report hook looks them up by its session.
_RULES: WeakKeyDictionary[Engine, PointsRules] = WeakKeyDictionary()


def use_rules(engine: Engine, rules: PointsRules) -> None:
    _RULES[engine] = rules


def rules_for(session: Session) -> PointsRules:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return _RULES.get(engine, DEFAULT_RULES)


def _append(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(PointsEntry).on_conflict_do_nothing(index_elements=["idempotency_key"])


_APPEND = {dialect: _append(dialect) for dialect in ("sqlite", "postgresql")}


def append_entry(
    session: Session,
    *,
    person_id: int,
    delta: int,
    reason: str,
    source: str,
    key: str,
    now: datetime,
    source_ref: str | None = None,
    actor_id: int | None = None,
    grid_id: int | None = None,
    note: str = "",
) -> bool:
    """One ledger entry; False (and nothing written) when an entry with this key exists already."""
    if source not in POINTS_SOURCES:
        raise ValueError(f"unknown points source {source!r}")
    if delta == 0:
        raise ValueError("a ledger entry moves at least one point")
    dialect = session.get_bind().dialect.name
    result = execute_core(
        session,
        _APPEND["postgresql" if dialect == "postgresql" else "sqlite"],
        {
            "person_id": person_id,
            "delta": delta,
            "reason": reason[:200],
            "source": source,
            "source_ref": source_ref,
            "idempotency_key": key,
            "actor_id": actor_id,
            "grid_id": grid_id,
            "note": note,
            "created_at": now,
        },
    )
    return bool(result.rowcount)


def entry_by_key(session: Session, key: str) -> PointsEntry | None:
    return session.exec(select(PointsEntry).where(PointsEntry.idempotency_key == key)).first()


def balance_of(session: Session, person_id: int) -> int:
    total = session.exec(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(PointsEntry.person_id == person_id)
    ).one()
    return int(total)


def entries_of(session: Session, person_id: int, *, limit: int = 50, offset: int = 0) -> list[PointsEntry]:
    return list(
        session.exec(
            select(PointsEntry)
            .where(PointsEntry.person_id == person_id)
            .order_by(col(PointsEntry.created_at).desc(), col(PointsEntry.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
    )


def lock_person(session: Session, person_id: int) -> Person:
    """The person's row, locked for the rest of the transaction: their debits queue here."""
    person = session.exec(select(Person).where(Person.id == person_id).with_for_update()).first()
    if person is None:
        raise NotFound(f"no person with id {person_id}", person_id=person_id)
    return person


def ensure_affordable(session: Session, person_id: int, cost: int, notice: str) -> int:
    """The balance, when it covers `cost` (call with the person locked)."""
    balance = balance_of(session, person_id)
    if balance < cost:
        raise InsufficientPoints(
            f"person {person_id} has {balance} points; {cost} are needed",
            balance=balance,
            needed=cost,
            notice=notice,
        )
    return balance


def adjust_points(
    session: Session,
    actor: Actor,
    person_id: int,
    delta: int,
    note: str,
    now: datetime,
    rules: PointsRules,
    client_key: str | None = None,
) -> tuple[PointsEntry, bool]:
    """A manual adjustment by an admin, with a note saying why; never below a zero balance.
    → (the entry, whether it is new). The same client key again returns the first entry."""
    if "admin" not in actor.roles or actor.person_id is None:
        raise Forbidden("only admins adjust points by hand")
    note = note.strip()
    if not note:
        raise InvalidInput("a manual adjustment needs a note saying why")
    if delta == 0 or abs(delta) > rules.max_adjustment:
        raise InvalidInput(f"delta must be a non-zero whole number of at most {rules.max_adjustment} points")
    key = f"manual:{client_key_part(client_key)}"
    person = lock_person(session, person_id)
    existing = entry_by_key(session, key)
    if existing is not None:
        if (existing.person_id, existing.delta, existing.note) != (person_id, delta, note[:500]):
            raise Conflict("this idempotency key was used for another adjustment", idempotency_key=client_key)
        return existing, False
    if delta < 0:
        ensure_affordable(session, person_id, -delta, texts.POINTS_NOTICES["insufficient_points"])
    append_entry(
        session,
        person_id=person_id,
        delta=delta,
        reason=texts.manual_reason(note),
        source="manual",
        key=key,
        now=now,
        actor_id=actor.person_id,
        grid_id=person.home_grid_id,
        note=note[:500],
    )
    entry = entry_by_key(session, key)
    assert entry is not None
    return entry, True


def client_key_part(client_key: str | None) -> str:
    if client_key is None:
        return secrets.token_hex(16)
    if not client_key.strip() or len(client_key) > KEY_CHARS:
        raise InvalidInput(f"idempotency_key must be 1–{KEY_CHARS} characters")
    return client_key.strip()


def award_report_points(session: Session, case: Case, actor: Actor, role: str, now: datetime, params: object) -> None:
    """`_FINISH` hook of rate and close: the reporter of a case that was resolved earns the report rule's points,
    once per case (a reopened case rated again pays nothing more)."""
    points = rules_for(session).report_resolved
    if points <= 0 or case.reporter_id is None or case.resolved_at is None or case.id is None:
        return
    append_entry(
        session,
        person_id=case.reporter_id,
        delta=points,
        reason=texts.report_points_reason(case.case_no),
        source="report",
        key=f"report:case:{case.id}",
        now=now,
        source_ref=case.case_no,
        actor_id=actor.person_id,
        grid_id=case.grid_id,
    )


# ---------------------------------------------------------------------------- leaderboards


@dataclass(frozen=True)
class Standing:
    rank: int
    person_id: int
    name: str
    points: int


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """`2026-11` → the first instant of that month and of the next, in local (Beijing) time."""
    try:
        year, number = (int(part) for part in month.split("-"))
        start = datetime.combine(datetime(year, number, 1).date(), time(), tzinfo=zone)
    except ValueError:
        raise InvalidInput(f"month must look like 2026-11, not {month!r}") from None
    following = datetime(year + number // 12, number % 12 + 1, 1).date()
    return start, datetime.combine(following, time(), tzinfo=zone)


def current_month(now: datetime, zone: ZoneInfo) -> str:
    return now.astimezone(zone).strftime("%Y-%m")


def leaderboard(
    session: Session,
    *,
    grid_id: int | None,
    between: tuple[datetime, datetime] | None,
    limit: int = 20,
) -> list[Standing]:
    """Points earned (every source but spending) in the grid and every grid below it (a community's board is the
    sum of its grids), in a period or all-time; most first, ties by who got there first (lowest id)."""
    earned = func.sum(PointsEntry.delta).label("earned")
    query = select(PointsEntry.person_id, earned).where(col(PointsEntry.source).not_in(SPENDING_SOURCES))
    if grid_id is not None:
        query = query.where(col(PointsEntry.grid_id).in_(descendant_grid_ids(session, [grid_id])))
    if between is not None:
        query = query.where(PointsEntry.created_at >= between[0], PointsEntry.created_at < between[1])
    rows = session.exec(
        query.group_by(col(PointsEntry.person_id))
        .having(earned > 0)
        .order_by(earned.desc(), col(PointsEntry.person_id))
        .limit(limit)
    ).all()
    names = dict(session.exec(select(Person.id, Person.name).where(col(Person.id).in_([row[0] for row in rows]))).all())
    return [
        Standing(rank=index, person_id=person_id, name=names.get(person_id) or "", points=int(points))
        for index, (person_id, points) in enumerate(rows, start=1)
    ]
