"""Claiming due work rows (outbox messages, media downloads) so that one worker takes each at a time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel.sql.expression import SelectOfScalar

from models.db import session_scope


def claim_due(engine: Engine, query: SelectOfScalar[Any], now: datetime, lease: timedelta) -> list[int]:
    """Push each selected row's `next_attempt_at` a lease ahead and count the attempt, in one short commit.

    A worker that dies after claiming only delays the row until the lease has passed. PostgreSQL skips rows
    another worker has locked, so concurrent workers claim disjoint sets.
    """
    with session_scope(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.exec(query).all()
        for row in rows:
            row.next_attempt_at = now + lease
            row.attempts += 1
            session.add(row)
        return [row.id for row in rows if row.id is not None]
