"""Delivery against a fake WeChat/WeCom API on 127.0.0.1: tokens, retries, back-off, pacing, media."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from bot.config import Settings, WechatSettings, WecomSettings
from bot.gateway import Gateway, GatewayError
from bot.media import MediaFetcher
from bot.outbox import OutboxSender
from bot.storage import LocalMediaStore
from handlers.notify import enqueue
from models import Media, OutboxMessage, Person
from models.db import new_session, session_scope
from tests.conftest import FakeClock, free_port
from tests.fakes.wechat_api import FakeWeChat, jpeg_bytes


def point_at(settings: Settings, base_url: str, template: str = "") -> Settings:
    return settings.model_copy(
        update={
            "wechat": WechatSettings(
                appid="wxFAKE", secret=SecretStr("s3cret"), api_base_url=base_url + "/", template_case_update=template
            ),
            "wecom": WecomSettings(api_base_url=base_url + "/"),
        }
    )


@dataclass
class Rig:
    settings: Settings
    engine: Engine
    clock: FakeClock
    fake: FakeWeChat
    gateway: Gateway
    sender: OutboxSender

    def owe(self, channel: str, target: str, payload: dict, key: str) -> None:  # type: ignore[type-arg]
        with session_scope(self.engine) as session:
            enqueue(session, channel=channel, target=target, payload=payload, dedupe_key=key, now=self.clock())

    def outbox(self) -> list[OutboxMessage]:
        with new_session(self.engine) as session:
            return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


@pytest.fixture
def rig(settings: Settings, engine: Engine, clock: FakeClock, fake: FakeWeChat) -> Rig:
    configured = point_at(settings, fake.url, template="TPL-CASE")  # type: ignore[attr-defined]
    gateway = Gateway(configured, engine)
    with session_scope(engine) as session:
        session.add(Person(name="居民", openid="oRES", roles=["resident"], last_interaction_at=clock()))
    return Rig(configured, engine, clock, fake, gateway, OutboxSender(engine, gateway, configured, clock))


def test_tokens_come_from_stable_token_and_are_shared_by_workers(rig: Rig) -> None:
    other_worker = Gateway(rig.settings, rig.engine)
    rig.gateway.send_text("oRES", "一")
    other_worker.send_text("oRES", "二")
    assert len(rig.fake.calls_to("/cgi-bin/stable_token")) == 1
    assert rig.fake.calls_to("/cgi-bin/token") == []
    tokens = {c.params["access_token"] for c in rig.fake.calls_to("/cgi-bin/message/custom/send")}
    assert len(tokens) == 1


def test_an_expired_token_is_refreshed_once_and_the_call_retried(rig: Rig) -> None:
    rig.gateway.send_text("oRES", "一")
    rig.fake.expire_token()
    rig.gateway.send_text("oRES", "二")
    sends = rig.fake.calls_to("/cgi-bin/message/custom/send")
    assert [c.body["text"]["content"] for c in sends] == ["一", "二", "二"]
    assert sends[1].params["access_token"] != sends[2].params["access_token"]
    assert rig.fake.calls_to("/cgi-bin/stable_token")[-1].body["force_refresh"] is True


def test_a_persistent_40001_gives_up_after_one_refresh_instead_of_recursing(rig: Rig) -> None:
    rig.fake.fail("/cgi-bin/message/custom/send", errcode=40001, times=50)
    with pytest.raises(GatewayError) as caught:
        rig.gateway.send_text("oRES", "x")
    assert caught.value.errcode == 40001 and caught.value.retryable
    assert len(rig.fake.calls_to("/cgi-bin/message/custom/send")) == 2


@pytest.mark.parametrize(("errcode", "http"), [(-1, None), (45009, None), (None, 500)])
def test_transient_failures_back_off_and_deliver_exactly_once(rig: Rig, errcode: int | None, http: int | None) -> None:
    rig.owe("wechat_user", "oRES", {"text": "已办结"}, "k1")
    rig.fake.fail("/cgi-bin/message/custom/send", errcode=errcode, http=http, times=2)
    assert rig.sender.run_once() == 1
    (row,) = rig.outbox()
    assert (row.status, row.attempts) == ("pending", 1) and row.next_attempt_at > rig.clock()
    assert rig.sender.run_once() == 0  # not due yet
    for _ in range(2):
        rig.clock.advance(minutes=5)
        rig.sender.run_once()
    (row,) = rig.outbox()
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert rig.sender.run_once() == 0
    delivered = [c for c in rig.fake.calls_to("/cgi-bin/message/custom/send")]
    assert len(delivered) == 3  # two refused by the fake, one accepted; never re-sent after that


def test_a_permanent_error_fails_at_once_and_shows_in_stats(rig: Rig) -> None:
    from handlers.stats import collect_stats

    rig.owe("wechat_user", "oRES", {"text": "x"}, "k1")
    rig.fake.fail("/cgi-bin/message/custom/send", errcode=40003)
    rig.sender.run_once()
    (row,) = rig.outbox()
    assert row.status == "failed" and "40003" in (row.last_error or "")
    with new_session(rig.engine) as session:
        assert collect_stats(session)["outbox"] == {"pending": 0, "sent": 0, "failed": 1}


def test_after_max_attempts_a_message_is_failed(rig: Rig) -> None:
    rig.owe("wecom_robot", "robot-A", {"markdown": "卡片"}, "k1")
    rig.fake.fail("/cgi-bin/webhook/send", http=502, times=100)
    for _ in range(rig.settings.outbox.max_attempts + 2):
        rig.sender.run_once()
        rig.clock.advance(hours=1)
    (row,) = rig.outbox()
    assert (row.status, row.attempts) == ("failed", rig.settings.outbox.max_attempts)


def test_outside_48_hours_a_template_message_is_sent(rig: Rig) -> None:
    rig.clock.advance(days=3)
    rig.owe("wechat_user", "oRES", {"text": "已办结", "case_no": "20261122-0001", "status": "resolved"}, "k1")
    rig.sender.run_once()
    assert rig.fake.calls_to("/cgi-bin/message/custom/send") == []
    (call,) = rig.fake.calls_to("/cgi-bin/message/template/send")
    assert call.body["template_id"] == "TPL-CASE" and call.body["touser"] == "oRES"
    assert call.body["data"]["keyword2"]["value"] == "已办结"


def test_a_45015_refusal_falls_back_to_the_template(rig: Rig) -> None:
    rig.owe("wechat_user", "oRES", {"text": "已办结"}, "k1")
    rig.fake.fail("/cgi-bin/message/custom/send", errcode=45015)
    rig.sender.run_once()
    assert len(rig.fake.calls_to("/cgi-bin/message/template/send")) == 1
    assert rig.outbox()[0].status == "sent"


def test_robot_posts_are_paced_at_twenty_a_minute(rig: Rig) -> None:
    for i in range(25):
        rig.owe("wecom_robot", "robot-A", {"markdown": f"事件{i}"}, f"k{i}")
    rig.owe("wecom_robot", "robot-B", {"markdown": "另一个群"}, "kb")
    for _ in range(3):
        rig.sender.run_once()
    posts = rig.fake.calls_to("/cgi-bin/webhook/send")
    assert sum(1 for c in posts if c.params["key"] == "robot-A") == 20
    assert sum(1 for c in posts if c.params["key"] == "robot-B") == 1
    assert posts[0].body == {"msgtype": "markdown", "markdown": {"content": "事件0"}}
    rig.clock.advance(seconds=62)
    rig.sender.run_once()
    contents = [c.body["markdown"]["content"] for c in rig.fake.calls_to("/cgi-bin/webhook/send")]
    assert sorted(contents) == sorted([f"事件{i}" for i in range(25)] + ["另一个群"])
    assert all(row.status == "sent" for row in rig.outbox())


def test_an_unreachable_api_is_a_retryable_error(settings: Settings, engine: Engine) -> None:
    gateway = Gateway(point_at(settings, f"http://127.0.0.1:{free_port()}"), engine)
    with pytest.raises(GatewayError) as caught:
        gateway.post_robot("k", {"msgtype": "text"})
    assert caught.value.retryable


def test_a_sender_crash_after_claiming_only_delays_the_message(rig: Rig) -> None:
    rig.owe("wecom_robot", "robot-A", {"markdown": "卡片"}, "k1")
    claimed = rig.sender._claim(rig.clock())  # the process dies here, before delivering
    assert len(claimed) == 1 and rig.fake.calls_to("/cgi-bin/webhook/send") == []
    restarted = OutboxSender(rig.engine, Gateway(rig.settings, rig.engine), rig.settings, rig.clock)
    assert restarted.run_once() == 0  # still leased
    rig.clock.advance(minutes=3)
    assert restarted.run_once() == 1
    assert len(rig.fake.calls_to("/cgi-bin/webhook/send")) == 1 and rig.outbox()[0].status == "sent"


# ------------------------------------------------------------------ media


def pending_media(rig: Rig, media_id: str, kind: str = "image") -> int:
    with session_scope(rig.engine) as session:
        row = Media(kind=kind, source="wechat", wechat_media_id=media_id, status="pending", next_attempt_at=rig.clock())
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def media_row(rig: Rig, row_id: int) -> Media:
    with new_session(rig.engine) as session:
        row = session.get(Media, row_id)
        assert row is not None
        return row


def test_photos_are_downloaded_checked_and_stored(rig: Rig, tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    fetcher = MediaFetcher(rig.engine, rig.gateway, store, rig.settings, rig.clock)
    photo = jpeg_bytes(80, 60)
    rig.fake.media["GOOD"] = (photo, "image/jpeg")
    rig.fake.media["FAKE"] = (b"this is not a picture", "image/jpeg")
    good, fake_jpeg, unknown = pending_media(rig, "GOOD"), pending_media(rig, "FAKE"), pending_media(rig, "GONE")
    assert fetcher.run_once() == 3
    stored = media_row(rig, good)
    assert (stored.status, stored.width, stored.height, stored.content_type) == ("stored", 80, 60, "image/jpeg")
    assert stored.path is not None
    with Image.open(io.BytesIO(store.get(stored.path))) as kept:  # re-encoded without metadata, same picture size
        assert (kept.format, kept.size) == ("JPEG", (80, 60))
    refused = media_row(rig, fake_jpeg)
    assert refused.status == "missing" and "not a readable image" in (refused.last_error or "")
    assert media_row(rig, unknown).status == "missing"


def test_an_oversize_photo_is_refused(rig: Rig, tmp_path: Path) -> None:
    small = rig.settings.model_copy(update={"media": rig.settings.media.model_copy(update={"max_image_bytes": 500})})
    fetcher = MediaFetcher(rig.engine, rig.gateway, LocalMediaStore(tmp_path), small, rig.clock)
    rig.fake.media["BIG"] = (jpeg_bytes(400, 400, "blue"), "image/jpeg")
    row = pending_media(rig, "BIG")
    fetcher.run_once()
    assert media_row(rig, row).status == "missing" and "limit" in (media_row(rig, row).last_error or "")


def test_a_failing_download_is_retried_then_shown_missing(rig: Rig, tmp_path: Path) -> None:
    fetcher = MediaFetcher(rig.engine, rig.gateway, LocalMediaStore(tmp_path), rig.settings, rig.clock)
    rig.fake.media["SLOW"] = (jpeg_bytes(), "image/jpeg")
    rig.fake.fail("/cgi-bin/media/get", errcode=-1, times=1)
    row = pending_media(rig, "SLOW")
    fetcher.run_once()
    assert media_row(rig, row).status == "pending"
    rig.clock.advance(minutes=5)
    fetcher.run_once()
    assert media_row(rig, row).status == "stored"

    rig.fake.fail("/cgi-bin/media/get", http=500, times=100)
    broken = pending_media(rig, "SLOW")
    for _ in range(rig.settings.media.max_attempts + 1):
        fetcher.run_once()
        rig.clock.advance(hours=2)
    assert media_row(rig, broken).status == "missing"
    _ = timedelta
