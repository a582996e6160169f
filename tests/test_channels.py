"""The three ways a grid's work group is reached (docs/outbox.md), against the fake WeChat/WeCom API on 127.0.0.1:
a WeCom group robot, a WeCom app chat, and messages to each grid worker on the official account."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.config import Settings, WechatSettings, WecomSettings, load_settings
from bot.gateway import Gateway, GatewayError
from bot.outbox import OutboxSender
from classifier.taxonomy import default_taxonomy
from handlers.access import SYSTEM
from handlers.announce import Announcer
from handlers.cases import ActionInput, act_on_case
from handlers.grids import GridImportError, import_grids
from handlers.notify import tell_grid
from handlers.sla import SlaPolicy
from models import Grid, OutboxMessage, Person, ServiceToken
from models.db import new_session, session_scope
from tests.conftest import FakeClock, LiveServer
from tests.factories import make_case, make_person, small_district
from tests.fakes.wechat_api import FakeWeChat

CARD = (
    '**【新事件】20261122-0001**\n> 类别：<font color="warning">井盖</font>\n[点击办理](https://grid.example/m/cases/1)'
)
APPCHAT = {"type": "wecom_appchat", "chatid": "wrGridA01"}


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    api = FakeWeChat()
    api.chats.add("wrGridA01")
    with LiveServer(api.app()) as server:
        api.url = server.url  # type: ignore[attr-defined]
        yield api


def configured(settings: Settings, base_url: str, **wecom: Any) -> Settings:
    app = {"corpid": "wwFAKE", "secret": SecretStr("app-s3cret"), "agentid": 1000002} | wecom
    return settings.model_copy(
        update={
            "wechat": WechatSettings(
                appid="wxFAKE", secret=SecretStr("s3cret"), api_base_url=base_url + "/", template_case_update="TPL"
            ),
            "wecom": WecomSettings(api_base_url=base_url + "/", **app),
        }
    )


@dataclass
class Rig:
    settings: Settings
    engine: Engine
    clock: FakeClock
    fake: FakeWeChat
    sender: OutboxSender

    def district(self, **channels: dict[str, Any] | None) -> None:
        """The factories' district, with the channels given here for grids A and B."""
        document = small_district()
        for feature in document["features"]:
            code = feature["properties"]["code"]
            if code in channels:
                feature["properties"]["channel"] = channels[code]
        with session_scope(self.engine) as session:
            import_grids(session, document)

    def tell(self, code: str, key: str, markdown: str = CARD) -> bool:
        with session_scope(self.engine) as session:
            grid = session.exec(select(Grid).where(Grid.code == code)).one()
            return tell_grid(session, grid, markdown, self.clock(), dedupe_key=key)

    def outbox(self) -> list[OutboxMessage]:
        with new_session(self.engine) as session:
            return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())  # type: ignore[arg-type]

    def run(self, rounds: int = 1, minutes: float = 0) -> None:
        for _ in range(rounds):
            self.sender.run_once()
            self.clock.advance(minutes=minutes)


@pytest.fixture
def rig(settings: Settings, engine: Engine, clock: FakeClock, fake: FakeWeChat) -> Rig:
    ready = configured(settings, fake.url)  # type: ignore[attr-defined]
    return Rig(ready, engine, clock, fake, OutboxSender(engine, Gateway(ready, engine), ready, clock))


# ------------------------------------------------------------------ WeCom app chat


def test_a_card_to_an_app_chat_is_delivered_exactly_once_through_busy_expired_token_and_http_500(rig: Rig) -> None:
    rig.district(A=APPCHAT)
    assert rig.tell("A", "case:1:dispatch:2") is True
    (row,) = rig.outbox()
    assert (row.channel, row.target, row.payload) == ("wecom_appchat", "wrGridA01", {"markdown": CARD})

    rig.fake.fail("/cgi-bin/appchat/send", errcode=-1)
    rig.run()
    assert rig.outbox()[0].status == "pending" and "errcode -1" in (rig.outbox()[0].last_error or "")
    rig.fake.fail("/cgi-bin/appchat/send", http=500)
    rig.clock.advance(minutes=5)
    rig.run()
    assert rig.outbox()[0].status == "pending" and "HTTP 500" in (rig.outbox()[0].last_error or "")
    rig.fake.expire_wecom_token()  # the next call answers 42001: refreshed and retried within the same attempt
    rig.clock.advance(minutes=5)
    rig.run()

    (row,) = rig.outbox()
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert rig.fake.chat_messages == [
        {"chatid": "wrGridA01", "safe": 0, "msgtype": "markdown", "markdown": {"content": CARD}}
    ]
    sends = rig.fake.calls_to("/cgi-bin/appchat/send")
    assert len(sends) == 4  # −1, HTTP 500, 42001, accepted
    assert sends[2].params["access_token"] != sends[3].params["access_token"]
    assert len(rig.fake.calls_to("/cgi-bin/gettoken")) == 2
    rig.run(rounds=3, minutes=30)
    assert len(rig.fake.chat_messages) == 1  # never re-sent after it was accepted


def test_the_wecom_token_comes_from_gettoken_under_the_configured_base_and_is_shared_by_workers(rig: Rig) -> None:
    first, second = Gateway(rig.settings, rig.engine), Gateway(rig.settings, rig.engine)
    first.post_appchat_markdown("wrGridA01", "一")
    second.post_appchat_markdown("wrGridA01", "二")
    (fetch,) = rig.fake.calls_to("/cgi-bin/gettoken")
    assert fetch.params == {"corpid": "wwFAKE", "corpsecret": "app-s3cret"}
    assert len({c.params["access_token"] for c in rig.fake.calls_to("/cgi-bin/appchat/send")}) == 1
    with new_session(rig.engine) as session:
        keys = [row.key for row in session.exec(select(ServiceToken)).all()]
    assert keys == ["wecom_wwFAKE_1000002_access_token"]  # per application, and no part of the secret in it


def test_a_token_rejected_again_after_one_refresh_is_a_retryable_error_not_a_loop(rig: Rig) -> None:
    rig.fake.fail("/cgi-bin/appchat/send", errcode=40014, times=50)
    with pytest.raises(GatewayError) as caught:
        Gateway(rig.settings, rig.engine).post_appchat_markdown("wrGridA01", "x")
    assert caught.value.errcode == 40014 and caught.value.retryable
    assert len(rig.fake.calls_to("/cgi-bin/appchat/send")) == 2


@pytest.mark.parametrize(
    ("wecom", "expected"),
    [
        ({"secret": SecretStr("wrong")}, "gettoken: errcode 40001"),
        ({"corpid": "", "secret": SecretStr("")}, "wecom.corpid and wecom.secret are not configured"),
    ],
)
def test_wrong_or_missing_wecom_credentials_fail_the_post_at_once(
    rig: Rig, wecom: dict[str, Any], expected: str
) -> None:
    bad = configured(rig.settings, rig.fake.url, **wecom)  # type: ignore[attr-defined]
    sender = OutboxSender(rig.engine, Gateway(bad, rig.engine), bad, rig.clock)
    rig.district(A=APPCHAT)
    rig.tell("A", "k1")
    sender.run_once()
    (row,) = rig.outbox()
    assert (row.status, row.attempts) == ("failed", 1) and expected in (row.last_error or "")
    assert rig.fake.chat_messages == []


def test_a_chat_our_application_did_not_create_fails_visibly(rig: Rig) -> None:
    rig.district(A={"type": "wecom_appchat", "chatid": "wrSomeoneElse"})
    rig.tell("A", "k1")
    rig.run()
    (row,) = rig.outbox()
    assert row.status == "failed" and "86003" in (row.last_error or "")


def test_a_dispatched_case_posts_its_card_to_the_grids_app_chat(rig: Rig) -> None:
    rig.district(A=APPCHAT)
    taxonomy = default_taxonomy()
    announcer = Announcer(ZoneInfo("Asia/Shanghai"), "https://grid.example", taxonomy.name_of)
    with session_scope(rig.engine) as session:
        case = make_case(session, rig.clock())
        act_on_case(session, case.case_no, "accept", SYSTEM, rig.clock(), SlaPolicy())
        act_on_case(
            session,
            case.case_no,
            "dispatch",
            SYSTEM,
            rig.clock(),
            SlaPolicy(),
            ActionInput(grid_code="A"),
            announcer=announcer,
        )
        case_no = case.case_no
    rig.run()
    (message,) = rig.fake.chat_messages
    assert message["chatid"] == "wrGridA01" and message["msgtype"] == "markdown"
    assert case_no in message["markdown"]["content"] and "点击办理" in message["markdown"]["content"]


# ------------------------------------------------------------------ template messages to each grid worker


def staff(session: Session, clock: FakeClock) -> dict[str, Person]:
    """Grid A: a worker who wrote today, a leader who has not written for a week, a worker with no openid, a
    worker who left; grid B has a worker of its own; a resident of A is no grid worker."""
    people = {
        "recent": make_person(session, "w1", ["grid_worker"], ["A"]),
        "quiet": make_person(session, "l1", ["grid_leader"], ["A"]),
        "no_openid": make_person(session, "w2", ["grid_worker"], ["A"]),
        "left": make_person(session, "w3", ["grid_worker"], ["A"]),
        "other_grid": make_person(session, "wb", ["grid_worker"], ["B"]),
        "resident": make_person(session, "r1", ["resident"]),
    }
    openids = {"recent": "oW1", "quiet": "oL1", "left": "oW3", "other_grid": "oWB", "resident": "oR1"}
    for name, openid in openids.items():
        people[name].openid = openid
    people["recent"].last_interaction_at = clock()
    people["quiet"].last_interaction_at = clock() - timedelta(days=7)
    people["left"].active = False
    for person in people.values():
        session.add(person)
    session.flush()
    return people


def test_a_template_worker_grid_owes_one_message_per_reachable_worker_and_none_for_the_rest(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.district(A={"type": "mp_template_workers"})
    with session_scope(rig.engine) as session:
        people = staff(session, rig.clock)
        ids = {name: person.id for name, person in people.items()}
    with caplog.at_level(logging.WARNING, logger="gridbot.notify"):
        assert rig.tell("A", "case:1:dispatch:2") is True
    rows = rig.outbox()
    assert sorted((r.channel, r.target, r.dedupe_key) for r in rows) == [
        ("wechat_user", "oL1", f"case:1:dispatch:2:worker:{ids['quiet']}"),
        ("wechat_user", "oW1", f"case:1:dispatch:2:worker:{ids['recent']}"),
    ]
    skipped = [r for r in caplog.records if "no official-account openid" in r.getMessage()]
    assert len(skipped) == 1 and f"person ids {ids['no_openid']}" in skipped[0].getMessage()
    assert "grid A" in skipped[0].getMessage()
    assert rig.tell("A", "case:1:dispatch:2") is False  # the same post twice owes nothing more
    assert len(rig.outbox()) == 2

    rig.run()
    assert all(row.status == "sent" for row in rig.outbox())
    (text,) = rig.fake.calls_to("/cgi-bin/message/custom/send")  # inside 48 hours: customer-service text
    assert text.body["touser"] == "oW1"
    content = text.body["text"]["content"]
    assert "20261122-0001" in content and "井盖" in content and "https://grid.example/m/cases/1" in content
    assert "**" not in content and "<font" not in content and "](" not in content
    (template,) = rig.fake.calls_to("/cgi-bin/message/template/send")  # a week quiet: the template
    assert template.body["touser"] == "oL1" and template.body["template_id"] == "TPL"
    assert template.body["data"]["first"]["value"] == "【新事件】20261122-0001"
    assert template.body["url"] == "https://grid.example/m/cases/1"


def test_a_template_worker_grid_nobody_can_be_reached_in_shows_a_failed_post(rig: Rig) -> None:
    rig.district(B={"type": "mp_template_workers"})
    with session_scope(rig.engine) as session:
        make_person(session, "wb", ["grid_worker"], ["B"])  # no openid
    assert rig.tell("B", "k1") is True
    rig.run()
    (row,) = rig.outbox()
    assert row.status == "failed" and "grid B: no grid worker has an official-account openid" in (row.last_error or "")


def test_template_workers_as_a_department_channel_fails_visibly_since_there_is_no_grid(rig: Rig) -> None:
    @dataclass(frozen=True)
    class Department:
        channel: dict[str, Any] | None

    with session_scope(rig.engine) as session:
        assert tell_grid(session, Department({"type": "mp_template_workers"}), CARD, rig.clock(), "k1") is True
    rig.run()
    (row,) = rig.outbox()
    assert row.status == "failed" and "has no grid" in (row.last_error or "")


# ------------------------------------------------------------------ bad channel configuration


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"type": "dingtalk", "key": "x"}, "grid A: channel type 'dingtalk' is not one of"),
        ({"type": "wecom_appchat"}, "grid A: channel wecom_appchat needs a non-empty 'chatid'"),
        ({"type": "wecom_appchat", "chatid": "  "}, "grid A: channel wecom_appchat needs a non-empty 'chatid'"),
        ({"type": "wecom_appchat", "chatid": "wr-有空格 x"}, "grid A: channel wecom_appchat: chatid"),
        ({"type": "wecom_robot"}, "grid A: channel wecom_robot needs a non-empty 'key'"),
        ({"type": "wecom_robot", "key": "k", "chatid": "c"}, "grid A: channel wecom_robot does not take 'chatid'"),
        ({"key": "k"}, "grid A: channel must be an object with a 'type'"),
        ("robot-A", "grid A: channel must be an object with a 'type'"),
    ],
)
def test_a_bad_channel_is_refused_at_import_naming_the_grid_and_nothing_is_written(
    session: Session, channel: Any, message: str
) -> None:
    document = small_district()
    document["features"][3]["properties"]["channel"] = channel
    with pytest.raises(GridImportError) as caught:
        import_grids(session, document)
    assert any(problem.startswith(message) for problem in caught.value.problems), caught.value.problems
    assert session.exec(select(Grid)).all() == []


def test_every_channel_kind_imports(session: Session) -> None:
    document = small_district()
    document["features"][3]["properties"]["channel"] = APPCHAT
    document["features"][4]["properties"]["channel"] = {"type": "mp_template_workers"}
    import_grids(session, document)
    channels = {g.code: g.channel for g in session.exec(select(Grid)).all()}
    assert channels["A"] == APPCHAT and channels["B"] == {"type": "mp_template_workers"}


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ({"type": "dingtalk", "key": "x"}, "grid A: channel type 'dingtalk' is not one of"),
        ({"type": "wecom_appchat"}, "grid A: channel wecom_appchat needs a non-empty 'chatid'"),
    ],
)
def test_a_bad_channel_already_stored_fails_its_post_visibly_and_the_sender_goes_on(
    rig: Rig, stored: dict[str, Any], reason: str
) -> None:
    rig.district(B=APPCHAT)
    with session_scope(rig.engine) as session:
        grid = session.exec(select(Grid).where(Grid.code == "A")).one()
        grid.channel = stored  # written before validation existed, or by hand
        session.add(grid)
    assert rig.tell("A", "bad") is True
    assert rig.tell("B", "good") is True
    rig.run()
    bad, good = rig.outbox()
    assert (bad.status, bad.attempts) == ("failed", 1) and (bad.last_error or "").startswith(reason)
    assert good.status == "sent" and len(rig.fake.chat_messages) == 1


def test_a_malformed_outbox_row_is_failed_and_the_others_are_still_delivered(rig: Rig) -> None:
    with session_scope(rig.engine) as session:
        for key, payload in (("broken", {"text": "no markdown here"}), ("fine", {"markdown": "卡片"})):
            session.add(
                OutboxMessage(
                    channel="wecom_appchat",
                    target="wrGridA01",
                    payload=payload,
                    dedupe_key=key,
                    next_attempt_at=rig.clock(),
                )
            )
    assert rig.sender.run_once() == 2
    broken, fine = rig.outbox()
    assert broken.status == "failed" and "malformed message: KeyError" in (broken.last_error or "")
    assert fine.status == "sent" and rig.fake.chat_messages[0]["markdown"] == {"content": "卡片"}


# ------------------------------------------------------------------ configuration


def test_the_wecom_application_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("wecom:\n  corpid: wwFromFile\n", encoding="utf-8")
    env = {"GRIDBOT_WECOM__CORPID": "ww123", "GRIDBOT_WECOM__SECRET": "app-secret", "GRIDBOT_WECOM__AGENTID": "1000002"}
    s = load_settings(path, environ=env)
    assert (s.wecom.corpid, s.wecom.secret.get_secret_value(), s.wecom.agentid) == ("ww123", "app-secret", 1000002)
    assert "app-secret" not in repr(s.wecom)
