"""The callback's writer on whole batches: retries inside one batch, one sender's messages in one batch, a
failing handler among others, the wait budget. Messages are parsed by wechatpy exactly as the callback does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select
from wechatpy import parse_message

from bot.app import create_app
from bot.config import Settings
from bot.ingest import Job, process_batch
from bot.sla import sla_policy
from bot.wechat import dedupe_key, to_inbound
from handlers import intake, texts
from handlers.access import SYSTEM
from handlers.audit import verify_chains
from handlers.cases import ActionInput, act_on_case, open_case
from handlers.geo import wgs84_to_gcj02
from models import Case, CaseEvent, InboundMessage, Media, OutboxMessage, Person, Report, ReportDraft
from models.db import new_session, session_scope
from tests.conftest import FakeClock
from tests.factories import make_district

IN_A = (114.505, 38.005)  # WGS-84, inside grid A of the fixture district
_ids = iter(range(9_000_000_000, 9_100_000_000))


def job(openid: str, msg_type: str, fields: str, msg_id: int | None = None) -> Job:
    msg_id = msg_id if msg_id is not None else next(_ids)
    raw = (
        f"<xml><ToUserName><![CDATA[gh_gridbot]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{fields}"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )
    message = parse_message(raw)
    return Job(raw=raw, message=message, inbound=to_inbound(message), key=dedupe_key(message))


def text(openid: str, content: str, msg_id: int | None = None) -> Job:
    return job(openid, "text", f"<Content><![CDATA[{content}]]></Content>", msg_id)


def photo(openid: str, media_id: str) -> Job:
    return job(openid, "image", f"<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>")


def voice(openid: str, recognition: str) -> Job:
    return job(
        openid,
        "voice",
        f"<MediaId><![CDATA[V-{openid}]]></MediaId><Format><![CDATA[amr]]></Format>"
        f"<Recognition><![CDATA[{recognition}]]></Recognition>",
    )


def location(openid: str, lng: float, lat: float) -> Job:
    g_lng, g_lat = wgs84_to_gcj02(lng, lat)
    return job(openid, "location", f"<Location_X>{g_lat}</Location_X><Location_Y>{g_lng}</Location_Y><Scale>15</Scale>")


@pytest.fixture
def state(settings: Settings, engine: Engine, clock: FakeClock) -> Iterator[Any]:
    with session_scope(engine) as session:
        make_district(session)
    app = create_app(settings, engine=engine, clock=clock, prepare=False, timers=False)
    yield app.state
    app.state.ingest.close()


def run(state: Any, jobs: list[Job], defer_after: float = float("inf")) -> list[str | None]:
    process_batch(state, jobs, defer_after)
    return [j.future.result(timeout=0) for j in jobs]


def rows(engine: Engine, model: type) -> list:  # type: ignore[type-arg]
    with new_session(engine) as session:
        return list(session.exec(select(model)).all())


def test_a_retry_inside_one_batch_is_stored_once_and_answered_like_the_first(state: Any, engine: Engine) -> None:
    first, again = text("oA", "楼道里的灯坏了好几天了", msg_id=41), text("oA", "楼道里的灯坏了好几天了", msg_id=41)
    replies = run(state, [first, again])
    assert replies[0] is not None and "还缺：位置" in replies[0]
    assert replies[1] == replies[0]
    (stored,) = rows(engine, InboundMessage)
    assert (stored.dedupe_key, stored.status, stored.reply) == ("msg:41", "processed", replies[0])
    (draft,) = rows(engine, ReportDraft)
    assert draft.texts == ["楼道里的灯坏了好几天了"]


def test_a_retry_in_a_later_batch_gets_the_stored_reply_and_changes_nothing(state: Any, engine: Engine) -> None:
    (reply,) = run(state, [text("oA", "楼道里的灯坏了好几天了", msg_id=42)])
    assert run(state, [text("oB", "你好"), text("oA", "楼道里的灯坏了好几天了", msg_id=42)])[1] == reply
    assert len(rows(engine, InboundMessage)) == 2
    assert rows(engine, ReportDraft)[0].texts == ["楼道里的灯坏了好几天了"]


def test_one_senders_messages_in_one_batch_build_one_case(state: Any, engine: Engine) -> None:
    replies = run(
        state,
        [
            text("oA", "路边的井盖被偷了，晚上很危险"),
            photo("oA", "M1"),
            text("oB", "你好"),
            location("oA", *IN_A),
            text("oA", "提交"),
        ],
    )
    assert replies[1] == "已收到1张图片，请发送位置或回复“提交”。"
    assert replies[4] is not None and "编号 20261122-0001" in replies[4]
    (case,) = rows(engine, Case)
    assert (case.status, case.subcategory) == ("dispatched", "D01")
    (draft,) = rows(engine, ReportDraft)
    assert (draft.status, draft.case_id, draft.media_ids) == ("submitted", case.id, [rows(engine, Media)[0].id])
    assert rows(engine, Media)[0].report_id == case.report_id
    assert [o.target for o in rows(engine, OutboxMessage)] == ["robot-A"]
    assert sorted(p.openid for p in rows(engine, Person)) == ["oA", "oB"]


def test_a_failing_handler_is_rolled_back_alone_and_its_message_still_stored(
    state: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = intake.HANDLERS["voice"]

    def writes_then_fails(*args: Any) -> str | None:
        real(*args)  # inserts the voice file and a draft, which the savepoint must take back
        raise RuntimeError("boom")

    monkeypatch.setitem(intake.HANDLERS, "voice", writes_then_fails)
    replies = run(state, [text("oA", "路边的井盖被偷了"), voice("oB", "小区门口井盖没了"), text("oC", "你好")])
    assert replies[1] == texts.SYSTEM_BUSY
    assert replies[0] is not None and "还缺：位置" in replies[0]
    assert replies[2] is not None and "您好" in replies[2]
    stored = {m.openid: m for m in rows(engine, InboundMessage)}
    assert [stored[o].status for o in ("oA", "oB", "oC")] == ["processed", "failed", "processed"]
    assert "RuntimeError: boom" in (stored["oB"].error or "")
    assert rows(engine, Media) == []
    assert [d.texts for d in rows(engine, ReportDraft)] == [["路边的井盖被偷了"]]
    assert "oB" not in {p.openid for p in rows(engine, Person)}


def test_past_the_wait_budget_a_batch_is_stored_and_acknowledged_unhandled(state: Any, engine: Engine) -> None:
    late = text("oA", "路边的井盖被偷了", msg_id=43)
    late.enqueued -= 5
    assert run(state, [late, text("oA", "路边的井盖被偷了", msg_id=43)], defer_after=1.0) == [None, None]
    (stored,) = rows(engine, InboundMessage)
    assert (stored.status, stored.reply) == ("deferred", None)
    assert rows(engine, ReportDraft) == [] and rows(engine, Person) == []


def test_nothing_is_answered_before_the_batch_is_committed(state: Any, engine: Engine) -> None:
    jobs = [text(f"o{i}", "你好") for i in range(5)]
    process_batch(state, jobs, float("inf"))
    assert all(j.future.done() for j in jobs)
    with engine.connect() as conn:  # another connection sees every answered message
        assert conn.exec_driver_sql("select count(*) from inbound_messages").scalar() == 5


def _case_and_history(engine: Engine, case_no: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The columns of a case and its events that do not depend on ids, numbers or the chain's hashes."""
    with new_session(engine) as session:
        case = session.exec(select(Case).where(Case.case_no == case_no)).one()
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq)))
        row = case.model_dump(exclude={"id", "case_no", "report_id", "last_event_hash"})
        history = [
            {
                **e.model_dump(exclude={"id", "case_id", "hash", "prev_hash"}),
                "data": {k: v for k, v in e.data.items() if k != "report_id"},
            }
            for e in events.all()
        ]
        return row, history


def test_a_case_the_chat_opens_and_dispatches_matches_one_made_through_act_on_case(
    state: Any, engine: Engine, clock: FakeClock
) -> None:
    """The writer builds the case and its events in memory and inserts them; the result is what the lifecycle
    gives through the ORM path the staff API uses, event for event, and its hash chain verifies."""
    (reply,) = run(state, [text("oA", "幸福小区3号楼门口的井盖丢了")])
    assert reply is not None and "编号 20261122-0001" in reply
    sla = sla_policy(state.settings)
    with session_scope(engine) as session:
        stored = session.get(Report, session.exec(select(Case)).one().report_id)
        assert stored is not None
        report = Report(**stored.model_dump(exclude={"id"}))
        case = open_case(session, report, clock(), state.settings.zone)
        act_on_case(session, case.case_no, "accept", SYSTEM, clock(), sla)
        dispatch = ActionInput(grid_code="B", note="located by gazetteer")
        act_on_case(session, case.case_no, "dispatch", SYSTEM, clock(), sla, dispatch)
    chat_row, chat_history = _case_and_history(engine, "20261122-0001")
    api_row, api_history = _case_and_history(engine, "20261122-0002")
    assert chat_row == api_row and chat_row["status"] == "dispatched"
    assert chat_history == api_history and [e["action"] for e in chat_history] == ["report", "accept", "dispatch"]
    with new_session(engine) as session:
        assert verify_chains(session) == (2, [])


def test_a_report_that_cannot_be_placed_waits_for_review_with_the_reason(state: Any, engine: Engine) -> None:
    replies = run(state, [text("oA", "路边的井盖被偷了"), text("oA", "提交")])
    assert replies[1] is not None and "编号 20261122-0001" in replies[1]
    (case,) = rows(engine, Case)
    assert (case.status, case.needs_review, case.grid_id) == ("reported", True, None)
    assert case.review_reason == "no location and no known place name"
    assert rows(engine, OutboxMessage) == []
    with new_session(engine) as session:
        assert verify_chains(session) == (1, [])


def test_a_clear_report_that_completes_a_draft_is_kept_in_the_draft_it_submits(state: Any, engine: Engine) -> None:
    replies = run(state, [text("oA", "路边的井盖被偷了"), text("oA", "幸福小区3号楼门口的井盖也丢了")])
    assert replies[1] is not None and "编号 20261122-0001" in replies[1]
    (draft,) = rows(engine, ReportDraft)
    assert draft.status == "submitted"
    assert draft.texts == ["路边的井盖被偷了", "幸福小区3号楼门口的井盖也丢了"]
    (report,) = rows(engine, Report)
    assert report.text == "路边的井盖被偷了\n幸福小区3号楼门口的井盖也丢了"
