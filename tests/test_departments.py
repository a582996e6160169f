"""Department groups hear of a dispatched case besides its grid: configured per subcategory, else the taxonomy's
default department; once per case, by the staff API and the chat alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.app import create_app
from bot.config import ConfigError, RoutingSettings, Settings, load_settings
from classifier.taxonomy import default_taxonomy
from handlers.access import SYSTEM
from handlers.announce import Announcer, Departments
from handlers.cases import ActionInput, act_on_case
from handlers.sla import SlaPolicy
from models import OutboxMessage
from models.db import new_session, session_scope
from tests.conftest import FakeClock, LiveServer
from tests.factories import actor_of, make_case, make_district, make_person
from tests.test_wechat_callback import IN_A, resident, wechat_settings
from tests.wechat_sim import reply_text

TAXONOMY = default_taxonomy()
POLICE = {"type": "wecom_robot", "key": "robot-police"}
CITY = {"type": "wecom_robot", "key": "robot-chengguan"}


def announcer(told_for: dict[str, tuple[str, ...]] | None = None) -> Announcer:
    departments = Departments(
        channels={"派出所": POLICE, "城管": CITY}, told_for=told_for or {}, default_of=TAXONOMY.department_of
    )
    return Announcer(ZoneInfo("Asia/Shanghai"), "https://grid.example", TAXONOMY.name_of, departments)


def dispatched(session: Session, clock: FakeClock, subcategory: str, how: Announcer) -> str:
    case = make_case(session, clock(), text="有人冒充客服让我转账", subcategory=subcategory)
    act_on_case(session, case.case_no, "accept", SYSTEM, clock(), SlaPolicy())
    act_on_case(
        session, case.case_no, "dispatch", SYSTEM, clock(), SlaPolicy(), ActionInput(grid_code="A"), announcer=how
    )
    return case.case_no


def targets(session: Session) -> list[str]:
    return [m.target for m in session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()]  # type: ignore[arg-type]


def test_the_taxonomy_default_department_is_told_when_it_has_a_group(session: Session, clock: FakeClock) -> None:
    make_district(session)
    case_no = dispatched(session, clock, "B02", announcer())  # fraud: 派出所 by default
    assert targets(session) == ["robot-A", "robot-police"]
    copy = session.exec(select(OutboxMessage).where(OutboxMessage.target == "robot-police")).one()
    assert "抄送·派出所" in copy.payload["markdown"] and "网格A" in copy.payload["markdown"]
    assert case_no in copy.payload["markdown"]


def test_the_config_overrides_the_default_and_an_empty_list_tells_nobody(session: Session, clock: FakeClock) -> None:
    make_district(session)
    dispatched(session, clock, "D01", announcer({"D01": ("派出所", "城管")}))
    assert targets(session) == ["robot-A", "robot-police", "robot-chengguan"]
    dispatched(session, clock, "B02", announcer({"B02": ()}))
    assert targets(session)[3:] == ["robot-A"]


def test_a_department_without_a_group_is_skipped(session: Session, clock: FakeClock) -> None:
    make_district(session)
    dispatched(session, clock, "C03", announcer())  # gas: 住建 by default, which has no channel here
    assert targets(session) == ["robot-A"]


def test_a_later_transfer_does_not_tell_the_department_again(session: Session, clock: FakeClock) -> None:
    make_district(session)
    operator = actor_of(session, make_person(session, "op", ["operator"]))
    case_no = dispatched(session, clock, "B02", announcer())
    transfer = ActionInput(grid_code="B", note="地址在B网格")
    act_on_case(session, case_no, "transfer", operator, clock(), SlaPolicy(), transfer, announcer=announcer())
    assert targets(session) == ["robot-A", "robot-police", "robot-B"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("routing:\n  departments:\n    警察局: {type: wecom_robot, key: k}\n", "not a department of the taxonomy"),
        ("routing:\n  departments:\n    派出所: {key: k}\n", "channel must be an object with a 'type'"),
        ("routing:\n  departments:\n    派出所: {type: wecom_appchat}\n", "needs a non-empty 'chatid'"),
        ("routing:\n  departments:\n    派出所: {type: mp_template_workers}\n", "a department needs a group"),
        ("routing:\n  told_for:\n    Z99: [派出所]\n", "'Z99' is not a subcategory code"),
        ("routing:\n  told_for:\n    B02: [警察局]\n", "警察局 not departments of the taxonomy"),
    ],
)
def test_bad_department_config_stops_the_start_naming_the_key(tmp_path: Path, body: str, fragment: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "routing." in str(caught.value) and fragment in str(caught.value)


@pytest.fixture
def police_server(settings: Settings, engine: Engine, clock: FakeClock) -> Iterator[LiveServer]:
    with session_scope(engine) as session:
        make_district(session)
    configured = wechat_settings(settings, "plain").model_copy(
        # the service tests' fixture rules know manholes, not fraud: route stolen manhole covers to the police
        update={"routing": RoutingSettings(departments={"派出所": POLICE}, told_for={"D01": ["派出所"]})}
    )
    with LiveServer(create_app(configured, engine=engine, clock=clock)) as live:
        yield live


def test_a_report_made_in_the_chat_reaches_the_department_group_too(police_server: LiveServer, engine: Engine) -> None:
    with httpx.Client(base_url=police_server.url, timeout=10) as http:
        person = resident(http)
        reply_text(person.say("路边的井盖被偷了，晚上很危险"))
        reply_text(person.location_wgs84(*IN_A, label="阳光小区"))
        done = reply_text(person.say("提交"))
    assert done is not None and "已登记" in done
    with new_session(engine) as session:
        assert targets(session) == ["robot-A", "robot-police"]
