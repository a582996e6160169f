"""The timers: one leader at a time, idle drafts submitted, stale drafts dropped, menu pushed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import col, select

from bot.config import Settings, WechatSettings, WecomSettings
from bot.scheduler import LEASE_TTL, Timers, acquire_lease
from bot.sla import announcer, sla_policy
from handlers.access import SYSTEM
from handlers.cases import ActionInput, act_on_case
from models import Case, Grid, OutboxMessage, Person, ReportDraft
from models.db import new_session, session_scope
from tests.conftest import FakeClock, LiveServer
from tests.factories import make_case, make_district
from tests.fakes.wechat_api import FakeWeChat, jpeg_bytes


@pytest.fixture
def fake() -> Iterator[tuple[FakeWeChat, str]]:
    api = FakeWeChat()
    with LiveServer(api.app()) as server:
        yield api, server.url


@pytest.fixture
def configured(settings: Settings, fake: tuple[FakeWeChat, str]) -> Settings:
    return settings.model_copy(
        update={
            "wechat": WechatSettings(appid="wxFAKE", secret=SecretStr("s"), api_base_url=fake[1] + "/"),
            "wecom": WecomSettings(api_base_url=fake[1] + "/"),
        }
    )


def test_only_one_process_holds_the_lease_until_it_lapses(engine: Engine, clock: FakeClock) -> None:
    assert acquire_lease(engine, "worker-1", clock())
    assert not acquire_lease(engine, "worker-2", clock())
    assert acquire_lease(engine, "worker-1", clock.advance(seconds=10))  # renewal
    assert not acquire_lease(engine, "worker-2", clock.advance(seconds=10))
    clock.advance(seconds=LEASE_TTL.total_seconds() + 1)  # worker-1 died and stopped renewing
    assert acquire_lease(engine, "worker-2", clock())
    assert not acquire_lease(engine, "worker-1", clock())


def test_a_follower_runs_no_jobs(
    configured: Settings, engine: Engine, clock: FakeClock, fake: tuple[FakeWeChat, str]
) -> None:
    leader, follower = Timers(configured, engine, clock), Timers(configured, engine, clock)
    assert leader.is_leader() and not follower.is_leader()
    with session_scope(engine) as session:
        from handlers.notify import enqueue

        enqueue(
            session, channel="wecom_robot", target="robot-A", payload={"markdown": "x"}, dedupe_key="k", now=clock()
        )
    follower._guarded("outbox", follower.deliver_outbox)()
    assert fake[0].calls_to("/cgi-bin/webhook/send") == []
    leader._guarded("outbox", leader.deliver_outbox)()
    assert len(fake[0].calls_to("/cgi-bin/webhook/send")) == 1


def test_an_idle_complete_draft_is_submitted_and_the_resident_told(
    configured: Settings, engine: Engine, clock: FakeClock
) -> None:
    with session_scope(engine) as session:
        make_district(session)
        person = Person(openid="oRES", roles=["resident"], last_interaction_at=clock())
        session.add(person)
        session.flush()
        assert person.id is not None
        session.add(
            ReportDraft(
                person_id=person.id,
                texts=["路边的井盖被偷了"],
                lng=114.5111,
                lat=38.0061,
                created_at=clock(),
                updated_at=clock(),
            )
        )
        session.add(ReportDraft(person_id=person.id, texts=["有个事"], created_at=clock(), updated_at=clock()))
    timers = Timers(configured, engine, clock)
    timers.sweep_drafts()
    with new_session(engine) as session:
        assert session.exec(select(Case)).all() == []
    clock.advance(minutes=configured.intake.draft_idle_minutes + 1)
    timers.sweep_drafts()
    with new_session(engine) as session:
        (case,) = session.exec(select(Case)).all()
        told = session.exec(select(OutboxMessage).where(OutboxMessage.channel == "wechat_user")).one()
        assert told.target == "oRES" and case.case_no in told.payload["text"]
        statuses = sorted(d.status for d in session.exec(select(ReportDraft)).all())
        assert statuses == ["open", "submitted"]
    clock.advance(hours=configured.intake.draft_expire_hours + 1)
    timers.sweep_drafts()
    with new_session(engine) as session:
        assert sorted(d.status for d in session.exec(select(ReportDraft)).all()) == ["expired", "submitted"]


def test_media_job_stores_photos(
    configured: Settings, engine: Engine, clock: FakeClock, fake: tuple[FakeWeChat, str]
) -> None:
    from models import Media

    fake[0].media["M1"] = (jpeg_bytes(), "image/jpeg")
    with session_scope(engine) as session:
        session.add(Media(kind="image", source="wechat", wechat_media_id="M1", next_attempt_at=clock()))
    Timers(configured, engine, clock).fetch_media()
    with new_session(engine) as session:
        assert session.exec(select(Media)).one().status == "stored"


def test_menu_push_creates_the_configured_menu(fake: tuple[FakeWeChat, str], db_url: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GRIDBOT_DATABASE__URL": db_url,
        "GRIDBOT_APP__DEMO": "false",
        "GRIDBOT_WECHAT__APPID": "wxFAKE",
        "GRIDBOT_WECHAT__SECRET": "s",
        "GRIDBOT_WECHAT__API_BASE_URL": fake[1] + "/",
    }
    result = subprocess.run([sys.executable, "-m", "bot", "menu", "push"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (call,) = fake[0].calls_to("/cgi-bin/menu/create")
    assert [b["key"] for b in call.body["button"]] == ["REPORT", "MY_REPORTS", "HELP"]
    fake[0].fail("/cgi-bin/menu/create", errcode=40018)
    failed = subprocess.run([sys.executable, "-m", "bot", "menu", "push"], env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "40018" in failed.stderr


def test_an_untaken_urgent_case_is_escalated_two_levels_and_each_group_gets_its_card(
    configured: Settings, engine: Engine, clock: FakeClock, fake: tuple[FakeWeChat, str]
) -> None:
    with session_scope(engine) as session:
        make_district(session)
        for grid in session.exec(select(Grid).where(col(Grid.code).in_(["C", "S"]))).all():
            grid.channel = {"type": "wecom_robot", "key": f"robot-{grid.code}"}
            session.add(grid)
        case = make_case(session, clock(), text="楼道里有烟，好像着火了", subcategory="C01", urgent=True)
        sla = sla_policy(configured)
        act_on_case(session, case.case_no, "accept", SYSTEM, clock(), sla)
        dispatch = ActionInput(grid_code="A")
        act_on_case(session, case.case_no, "dispatch", SYSTEM, clock(), sla, dispatch, announcer=announcer(configured))
        case_no = case.case_no
    timers = Timers(configured, engine, clock)

    def robots() -> list[tuple[str, str]]:
        timers.deliver_outbox()
        return [(c.params["key"], c.body["markdown"]["content"]) for c in fake[0].calls_to("/cgi-bin/webhook/send")]

    timers.sweep_deadlines()
    assert [key for key, _ in robots()] == ["robot-A"]  # the dispatch card, nothing overdue yet
    window = configured.sla.accept_minutes.urgent
    clock.advance(minutes=window * configured.sla.remind_share + 0.5)
    timers.sweep_deadlines()  # the reminder
    clock.advance(minutes=window * (1 - configured.sla.remind_share))
    timers.sweep_deadlines()  # overdue: up to the community
    clock.advance(minutes=window + 1)
    timers.sweep_deadlines()
    timers.sweep_deadlines()  # a second run in the same minute owes nothing more
    posts = robots()
    assert [key for key, _ in posts] == ["robot-A", "robot-A", "robot-C", "robot-S"]
    assert "即将超时" in posts[1][1] and "超时上报" in posts[2][1] and case_no in posts[3][1]
    with new_session(engine) as session:
        stored = session.exec(select(Case).where(Case.case_no == case_no)).one()
        assert (stored.status, stored.escalation_level) == ("escalated", 2)
