"""The tamper-evident history: edits, deletions and reorderings of stored events are found and named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from handlers.access import SYSTEM
from handlers.audit import verify_chains
from handlers.cases import ActionInput, act_on_case
from handlers.sla import SlaPolicy
from models.db import session_scope
from tests.conftest import FakeClock
from tests.factories import actor_of, make_case, make_district, make_person

SLA = SlaPolicy()


@pytest.fixture
def two_cases(engine: Engine, clock: FakeClock) -> list[str]:
    with session_scope(engine) as session:
        make_district(session)
        worker = actor_of(session, make_person(session, "wa", ["grid_worker"], ["A"]))
        numbers = []
        for _ in range(2):
            case = make_case(session, clock())
            act_on_case(session, case.case_no, "accept", SYSTEM, clock.advance(minutes=1), SLA)
            act_on_case(
                session, case.case_no, "dispatch", SYSTEM, clock.advance(minutes=1), SLA, ActionInput(grid_code="A")
            )
            act_on_case(session, case.case_no, "take", worker, clock.advance(minutes=1), SLA)
            numbers.append(case.case_no)
    return numbers


def verify(engine: Engine) -> tuple[int, list[tuple[str, int, str]]]:
    with session_scope(engine) as session:
        checked, breaks = verify_chains(session)
    return checked, [(b.case_no, b.seq, b.reason) for b in breaks]


def test_untouched_histories_verify(engine: Engine, two_cases: list[str]) -> None:
    assert verify(engine) == (2, [])


def test_an_edited_note_is_found_at_its_event(engine: Engine, two_cases: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE case_events SET note = '已处理' WHERE seq = 3 AND case_id = "
                "(SELECT id FROM cases WHERE case_no = :no)"
            ),
            {"no": two_cases[1]},
        )
    checked, breaks = verify(engine)
    assert checked == 2
    assert breaks == [(two_cases[1], 3, "content does not match its hash")]


def test_a_changed_actor_with_recomputed_hash_still_breaks_the_next_link(engine: Engine, two_cases: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE case_events SET hash = :h WHERE seq = 2 AND case_id = "
                "(SELECT id FROM cases WHERE case_no = :no)"
            ),
            {"no": two_cases[0], "h": "0" * 64},
        )
    _, breaks = verify(engine)
    assert breaks[0][:2] == (two_cases[0], 2)


def test_a_deleted_event_is_found(engine: Engine, two_cases: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM case_events WHERE seq = 2 AND case_id = (SELECT id FROM cases WHERE case_no = :no)"),
            {"no": two_cases[0]},
        )
    _, breaks = verify(engine)
    assert breaks == [(two_cases[0], 2, "event 2 is missing")]


def test_a_removed_last_event_is_found(engine: Engine, two_cases: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM case_events WHERE seq = 4 AND case_id = (SELECT id FROM cases WHERE case_no = :no)"),
            {"no": two_cases[0]},
        )
    _, breaks = verify(engine)
    assert breaks[0][0] == two_cases[0]


def test_cli_audit_verify_names_the_first_broken_link(
    engine: Engine, two_cases: list[str], db_url: str, tmp_path: Path
) -> None:
    env = {"GRIDBOT_DATABASE__URL": db_url, "GRIDBOT_APP__DEMO": "false", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "bot", "audit", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "2 case histories verified" in ok.stdout
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE case_events SET to_status = 'resolved' WHERE seq = 4 AND case_id = "
                "(SELECT id FROM cases WHERE case_no = :no)"
            ),
            {"no": two_cases[0]},
        )
    bad = subprocess.run([sys.executable, "-m", "bot", "audit", "verify"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"BROKEN case {two_cases[0]} at event 4" in bad.stderr
