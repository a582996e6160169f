"""Case numbers: YYYYMMDD-NNNN by the Beijing calendar day, unique under concurrent creation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import select

from handlers.cases import open_case
from models import Case, Report
from models.db import session_scope
from tests.factories import ZONE


def create_one(engine: Engine, now: datetime) -> str:
    with session_scope(engine) as session:
        report = Report(channel="mp", text="路灯坏了", created_at=now)
        return open_case(session, report, now, ZONE).case_no


def test_numbers_follow_the_local_day_not_the_utc_day(engine: Engine) -> None:
    # 15:59 UTC is 23:59 in Beijing; 16:00 UTC is already the next day there.
    assert create_one(engine, datetime(2026, 11, 22, 15, 59, tzinfo=UTC)) == "20261122-0001"
    assert create_one(engine, datetime(2026, 11, 22, 15, 59, 30, tzinfo=UTC)) == "20261122-0002"
    assert create_one(engine, datetime(2026, 11, 22, 16, 0, tzinfo=UTC)) == "20261123-0001"


def test_concurrent_creation_yields_unique_consecutive_numbers(engine: Engine) -> None:
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(10):
            try:
                number = create_one(engine, now)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
                return
            with lock:
                numbers.append(number)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(numbers) == [f"20261122-{n:04d}" for n in range(1, 81)]
    with session_scope(engine) as session:
        stored = session.exec(select(Case.case_no)).all()
    assert sorted(stored) == sorted(numbers)


def test_a_rolled_back_case_does_not_burn_a_number(engine: Engine) -> None:
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    try:
        with session_scope(engine) as session:
            open_case(session, Report(channel="mp", text="x", created_at=now), now, ZONE)
            raise RuntimeError("the request failed after numbering")
    except RuntimeError:
        pass
    assert create_one(engine, now) == "20261122-0001"
