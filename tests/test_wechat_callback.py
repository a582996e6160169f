"""The official account callback over real HTTP: protocol, retries, hostile bodies, the conversation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from bot.app import create_app
from bot.config import Settings, WechatSettings
from models import Case, CaseEvent, InboundMessage, Media, OutboxMessage, Person, ReportDraft
from models.db import new_session, session_scope
from tests.conftest import FakeClock, LiveServer
from tests.factories import make_district, make_person
from tests.wechat_sim import AES_KEY, APPID, TOKEN, Resident, reply_text, sign

IN_A = (114.505, 38.005)  # WGS-84, inside grid A of the fixture district
IN_B = (114.515, 38.005)


def wechat_settings(settings: Settings, mode: str) -> Settings:
    return settings.model_copy(
        update={
            "wechat": WechatSettings(
                token=SecretStr(TOKEN),
                appid=APPID,
                aes_key=SecretStr(AES_KEY),
                encrypt_mode=mode,  # type: ignore[arg-type]
                max_body_bytes=8192,
            )
        }
    )


@pytest.fixture(params=["plain"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(settings: Settings, engine: Engine, clock: FakeClock, mode: str) -> Iterator[LiveServer]:
    with session_scope(engine) as session:
        make_district(session)
    app = create_app(wechat_settings(settings, mode), engine=engine, clock=clock)
    with LiveServer(app) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def resident(http: httpx.Client, mode: str = "plain", openid: str = "oRESIDENT0000000000000000001") -> Resident:
    return Resident(http, openid, mode)


def rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with new_session(engine) as session:
        return list(session.exec(select(model)).all())


# ------------------------------------------------------------------ protocol


def test_server_check_echoes_echostr_and_refuses_a_bad_signature(http: httpx.Client) -> None:
    import time

    ts, nonce = str(int(time.time())), "abc"
    ok = http.get(
        "/wechat/mp", params={"signature": sign(ts, nonce), "timestamp": ts, "nonce": nonce, "echostr": "hello123"}
    )
    assert ok.status_code == 200 and ok.text == "hello123"
    bad = http.get("/wechat/mp", params={"signature": "0" * 40, "timestamp": ts, "nonce": nonce, "echostr": "x"})
    assert bad.status_code == 403


def test_a_forged_or_stale_post_is_refused_and_stores_nothing(http: httpx.Client, engine: Engine) -> None:
    import time

    person = resident(http)
    assert person.post_xml(person.xml("text", "<Content>井盖没了</Content>"), signature="f" * 40).status_code == 403
    stale = int(time.time()) - 3600
    assert person.post_xml(person.xml("text", "<Content>井盖没了</Content>"), timestamp=stale).status_code == 403
    assert rows(engine, InboundMessage) == []


def test_a_retried_message_is_stored_once_and_answered_the_same(http: httpx.Client, engine: Engine) -> None:
    person = resident(http)
    first = reply_text(person.say("楼道里的灯坏了好几天了，没人管", msg_id=777))
    again = reply_text(person.say("楼道里的灯坏了好几天了，没人管", msg_id=777))
    assert first == again and first is not None
    assert len(rows(engine, InboundMessage)) == 1
    drafts = rows(engine, ReportDraft)
    assert len(drafts) == 1 and drafts[0].texts == ["楼道里的灯坏了好几天了，没人管"]


def test_an_event_retry_is_recognised_by_sender_time_and_event(http: httpx.Client, engine: Engine) -> None:
    person = resident(http)
    welcome = reply_text(person.event("subscribe", create_time=1_790_000_000))
    assert welcome is not None and "欢迎关注网格通" in welcome
    assert reply_text(person.event("subscribe", create_time=1_790_000_000)) == welcome
    assert len(rows(engine, InboundMessage)) == 1
    assert reply_text(person.event("unsubscribe", create_time=1_790_000_100)) is None
    (someone,) = rows(engine, Person)
    assert someone.subscribed is False


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
            b"<MsgType>text</MsgType><Content>&lol2;</Content></xml>",
            400,
        ),
        (b'<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]><xml><Content>&ext;</Content></xml>', 400),
        (b"<xml><ToUserName>a</ToUserName><FromUser", 400),
        ("<xml><Content>井盖</Content></xml>".encode("gb18030"), 400),
        (b"", 400),
        (b"<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>", 400),
        (b"<xml><FromUserName>a</FromUserName><CreateTime>1</CreateTime></xml>", 400),
        (b"<xml>" + b"<Content>" + b"x" * 9000 + b"</Content></xml>", 413),
        (b"just text", 400),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "truncated",
        "gb18030",
        "empty",
        "no-sender",
        "no-msgtype",
        "oversize",
        "not-xml",
    ],
)
def test_hostile_or_broken_bodies_get_4xx_and_the_next_message_works(
    http: httpx.Client, engine: Engine, body: bytes, status: int
) -> None:
    import time

    ts, nonce = str(int(time.time())), "n1"
    r = http.post("/wechat/mp", params={"signature": sign(ts, nonce), "timestamp": ts, "nonce": nonce}, content=body)
    assert r.status_code == status
    assert "Traceback" not in r.text
    assert rows(engine, InboundMessage) == []
    assert reply_text(resident(http).say("你好")) is not None


def test_an_unknown_message_type_is_stored_and_acknowledged(http: httpx.Client, engine: Engine) -> None:
    person = resident(http)
    r = person.post_xml(person.xml("hologram", "<Data>?</Data>"))
    assert r.status_code == 200
    assert [m.msg_type for m in rows(engine, InboundMessage)] == ["unknown"]


# ------------------------------------------------------------------ conversation


def test_a_report_in_several_messages_becomes_one_dispatched_case(http: httpx.Client, engine: Engine) -> None:
    person = resident(http)
    first = reply_text(person.say("路边的井盖被偷了，晚上很危险"))
    assert first is not None and "还缺：位置" in first
    photo = reply_text(person.photo("MEDIA_1"))
    assert photo == "已收到1张图片，请发送位置或回复“提交”。"
    reply_text(person.photo("MEDIA_2"))
    located = reply_text(person.location_wgs84(*IN_A, label="阳光小区北门"))
    assert located is not None and "位置" in located and "2张图片" in located
    done = reply_text(person.say("提交"))
    assert done is not None and "您反映的问题已登记，编号 20261122-0001，类别：井盖与雨水箅子。" in done

    (case,) = rows(engine, Case)
    assert (case.status, case.subcategory, case.needs_review) == ("dispatched", "D01", False)
    with new_session(engine) as session:
        assert case.grid_id is not None
        from models import Grid

        assert session.get(Grid, case.grid_id).code == "A"  # type: ignore[union-attr]
    media = rows(engine, Media)
    assert sorted(m.wechat_media_id for m in media) == ["MEDIA_1", "MEDIA_2"]
    assert all(m.status == "pending" and m.report_id is not None for m in media)
    (post,) = rows(engine, OutboxMessage)
    assert (post.channel, post.target) == ("wecom_robot", "robot-A")
    assert "20261122-0001" in post.payload["markdown"] and "井盖" in post.payload["markdown"]
    first_photo = min(m.id for m in media if m.wechat_media_id == "MEDIA_1")
    assert f"[现场照片](http://127.0.0.1:8000/m/cases/20261122-0001/photos/{first_photo})" in post.payload["markdown"]
    assert rows(engine, ReportDraft)[0].status == "submitted"


def test_a_clear_report_with_its_place_is_submitted_at_once(http: httpx.Client, engine: Engine) -> None:
    reply = reply_text(resident(http).say("幸福小区3号楼门口的井盖丢了"))
    assert reply is not None and reply.startswith("您反映的问题已登记")
    (case,) = rows(engine, Case)
    assert case.status == "dispatched"  # located through grid B's gazetteer


def test_cancel_discards_the_draft(http: httpx.Client, engine: Engine) -> None:
    person = resident(http)
    person.say("路边的井盖被偷了")
    assert reply_text(person.say("取消")) == "已作废本次草稿，需要时可以重新描述。"
    assert reply_text(person.say("提交")) == "您还没有描述问题，请先发送文字或语音说明情况。"
    assert rows(engine, Case) == []


@pytest.mark.parametrize(("text", "expected"), [("你好", "您好！"), ("谢谢", "不客气"), ("怎么上报问题", "使用说明")])
def test_non_reports_get_help_not_a_case(http: httpx.Client, engine: Engine, text: str, expected: str) -> None:
    assert expected in (reply_text(resident(http).say(text)) or "")
    assert rows(engine, ReportDraft) == [] and rows(engine, Case) == []


def test_voice_with_recognition_counts_as_the_description(http: httpx.Client, engine: Engine) -> None:
    person = resident(http)
    person.voice("小区门口井盖没了")
    person.location_wgs84(*IN_B)
    assert "已登记" in (reply_text(person.say("提交")) or "")
    (case,) = rows(engine, Case)
    assert case.subcategory == "D01"


def test_queries_show_own_cases_only(http: httpx.Client, engine: Engine) -> None:
    alice, bob = resident(http, openid="oALICE"), resident(http, openid="oBOB")
    alice.say("幸福小区门口的井盖丢了")
    listing = reply_text(alice.say("查询"))
    assert listing is not None and "20261122-0001" in listing and "已交办网格" in listing
    timeline = reply_text(alice.say("查询 20261122-0001"))
    assert timeline is not None and "登记" in timeline and "交办" in timeline
    assert reply_text(bob.say("查询 20261122-0001")) == "没有找到编号为 20261122-0001 的上报，请核对编号。"
    assert reply_text(bob.say("我的上报")) == "您还没有上报过问题。"


def test_staff_accept_and_resolve_from_the_chat_and_the_resident_rates(http: httpx.Client, engine: Engine) -> None:
    with session_scope(engine) as session:
        worker_a = make_person(session, "wa", ["grid_worker"], ["A"])
        worker_a.openid = "oWORKER_A"
        worker_b = make_person(session, "wb", ["grid_worker"], ["B"])
        worker_b.openid = "oWORKER_B"
    alice = resident(http, openid="oALICE")
    alice.say("阳光小区门口的井盖丢了")
    case_no = "20261122-0001"
    assert (
        reply_text(resident(http, openid="oWORKER_B").say(f"接单 {case_no}"))
        == "操作未成功：您不是该事件所在网格的工作人员，不能办理。"
    )
    a = resident(http, openid="oWORKER_A")
    assert reply_text(a.say(f"接单 {case_no}")) == f"已接单：{case_no}"
    assert "不能接单" in (reply_text(a.say(f"接单 {case_no}")) or "")
    a.photo("MEDIA_AFTER")
    assert reply_text(a.say(f"办结 {case_no} 已更换新井盖")) == f"已办结：{case_no}"
    with new_session(engine) as session:
        resolve = session.exec(select(CaseEvent).where(CaseEvent.action == "resolve")).one()
        assert resolve.note == "已更换新井盖" and len(resolve.attachments) == 1
        notice = session.exec(select(OutboxMessage).where(OutboxMessage.channel == "wechat_user")).one()
        assert notice.target == "oALICE" and "请为本次处理打分" in notice.payload["text"]

    assert reply_text(alice.say("不满意")) == "很抱歉没能让您满意，已重新交办处理。"
    assert reply_text(alice.say("5")) == "该事件正在重新办理，办结后再请您评价。"
    a.say(f"接单 {case_no}")
    a.say(f"办结 {case_no} 已加固")
    assert reply_text(alice.say("满意")) == "感谢您的评价！"
    assert reply_text(alice.say("满意")) == f"您已经对编号 {case_no} 的处理作过评价，感谢您的反馈！"
    (case,) = rows(engine, Case)
    assert (case.status, case.rating, case.reopen_count) == ("rated", 5, 1)


def test_two_residents_at_once_keep_their_own_drafts(http: httpx.Client, engine: Engine, server: LiveServer) -> None:
    errors: list[BaseException] = []

    def talk(openid: str, point: tuple[float, float]) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=10) as own:
                person = Resident(own, openid)
                for _ in range(3):
                    person.photo(f"M-{openid}")
                person.say("井盖被偷了")
                person.location_wgs84(*point)
                person.say("提交")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(f"oUSER{i}", IN_A if i % 2 else IN_B)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cases = rows(engine, Case)
    assert len(cases) == 4 and len({c.case_no for c in cases}) == 4
    assert len(rows(engine, Media)) == 12
    assert all(d.status == "submitted" for d in rows(engine, ReportDraft))


def test_a_handler_failure_still_stores_the_message_and_answers(
    http: httpx.Client, engine: Engine, server: LiveServer
) -> None:
    """A broken classifier must not lose the resident's message or surface a 500 to WeChat."""
    server.server.config.app.state.classifier = None  # type: ignore[attr-defined]
    reply = reply_text(resident(http).say("井盖被偷了"))
    assert reply == "系统繁忙，您的消息已收到并记录，稍后为您处理。"
    (row,) = rows(engine, InboundMessage)
    assert row.status == "failed" and "AttributeError" in (row.error or "")


# ------------------------------------------------------------------ safe and compatible modes


@pytest.mark.parametrize("mode", ["safe", "compatible"], indirect=True)
def test_encrypted_messages_are_answered_encrypted(http: httpx.Client, engine: Engine, mode: str) -> None:
    person = resident(http, mode="safe")
    assert "您好" in (reply_text(person.say("你好"), mode="safe") or "")
    assert len(rows(engine, InboundMessage)) == 1


@pytest.mark.parametrize("mode", ["safe"], indirect=True)
def test_safe_mode_refuses_plain_and_bad_msg_signature(http: httpx.Client, engine: Engine, mode: str) -> None:
    assert resident(http, mode="plain").say("你好").status_code == 400
    person = resident(http, mode="safe")
    import time

    from wechatpy.crypto import WeChatCrypto

    ts, nonce = str(int(time.time())), "n9"
    body = WeChatCrypto(TOKEN, AES_KEY, APPID).encrypt_message(person.xml("text", "<Content>x</Content>"), nonce, ts)
    r = http.post(
        "/wechat/mp",
        params={
            "signature": sign(ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": "0" * 40,
        },
        content=body,
    )
    assert r.status_code == 403
    assert rows(engine, InboundMessage) == []


@pytest.mark.parametrize("mode", ["compatible"], indirect=True)
def test_compatible_mode_also_takes_plain(http: httpx.Client, mode: str) -> None:
    assert "您好" in (reply_text(resident(http).say("你好")) or "")


def test_replies_use_the_clock_window(http: httpx.Client, clock: FakeClock) -> None:
    clock.advance(hours=1)  # the app's clock moves; signatures are still checked against real time
    assert reply_text(resident(http).say("你好")) is not None
    _ = timedelta


def test_under_a_backlog_messages_are_stored_acknowledged_and_handled_later(
    settings: Settings, engine: Engine, clock: FakeClock
) -> None:
    """Past the defer budget the answer is "success" at once; the timers handle it and reply via the outbox."""
    from bot.scheduler import Timers

    with session_scope(engine) as session:
        make_district(session)
    rushed = wechat_settings(settings, "plain")
    rushed = rushed.model_copy(update={"wechat": rushed.wechat.model_copy(update={"defer_after_ms": 1})})
    app = create_app(rushed, engine=engine, clock=clock)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        person = resident(client, openid="oBUSY")
        import time

        original = app.state.ingest.submit  # make every message look as if it had waited a second

        def slow_submit(job):  # type: ignore[no-untyped-def]
            job.enqueued = time.monotonic() - 1.0
            return original(job)

        app.state.ingest.submit = slow_submit
        assert reply_text(person.say("路边的井盖被偷了", msg_id=4242)) is None
        assert reply_text(person.say("路边的井盖被偷了", msg_id=4242)) is None
        (row,) = rows(engine, InboundMessage)
        assert row.status == "deferred" and rows(engine, ReportDraft) == []

        Timers(rushed, engine, clock, app.state.classifier, app.state.grid_cache).handle_deferred()
    (row,) = rows(engine, InboundMessage)
    assert row.status == "processed" and row.reply and "还缺：位置" in row.reply
    (told,) = rows(engine, OutboxMessage)
    assert (told.channel, told.target, told.payload["text"]) == ("wechat_user", "oBUSY", row.reply)
    assert rows(engine, ReportDraft)[0].texts == ["路边的井盖被偷了"]
