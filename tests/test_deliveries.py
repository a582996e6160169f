"""Outbox and media workers seen by people: failed deliveries retried by hand; chat photos stored without EXIF."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine

from bot.config import Settings
from bot.gateway import Gateway
from bot.media import MediaFetcher
from bot.outbox import OutboxSender
from bot.storage import LocalMediaStore
from handlers.deliveries import list_deliveries, retry_deliveries
from handlers.errors import InvalidInput, NotFound
from models import Media
from models.db import new_session, session_scope
from tests.conftest import FakeClock
from tests.factories import auth, make_person, token_for
from tests.fakes.wechat_api import FakeWeChat
from tests.test_gateway_outbox import Rig, point_at


@pytest.fixture
def rig(settings: Settings, engine: Engine, clock: FakeClock, fake: FakeWeChat) -> Rig:
    configured = point_at(settings, fake.url)  # type: ignore[attr-defined]
    gateway = Gateway(configured, engine)
    return Rig(configured, engine, clock, fake, gateway, OutboxSender(engine, gateway, configured, clock))


def fail_one(rig: Rig) -> int:
    rig.owe("wecom_robot", "robot-A-key-0001", {"markdown": "**【新事件】**\n> 井盖丢了"}, "k-fail")
    rig.owe("wecom_robot", "robot-A-key-0001", {"markdown": "第二条"}, "k-ok")
    rig.fake.fail("/cgi-bin/webhook/send", errcode=93000)  # invalid webhook: permanent
    rig.sender.run_once()
    failed = [row for row in rig.outbox() if row.status == "failed"]
    assert len(failed) == 1
    assert failed[0].id is not None
    return failed[0].id


def test_a_failed_delivery_retried_by_hand_is_sent_once(rig: Rig) -> None:
    failed = fail_one(rig)
    with session_scope(rig.engine) as session:
        [shown] = list_deliveries(session, "failed")
        assert shown.id == failed and "93000" in (shown.last_error or "") and shown.target == "robo…0001"
        retry_deliveries(session, [failed], rig.clock())
    rig.sender.run_once()
    assert {row.dedupe_key: row.status for row in rig.outbox()} == {"k-fail": "sent", "k-ok": "sent"}
    sent = [c.body["markdown"]["content"] for c in rig.fake.calls_to("/cgi-bin/webhook/send")]
    assert sent.count("**【新事件】**\n> 井盖丢了") == 2  # the refused attempt, then the retry
    with session_scope(rig.engine) as session, pytest.raises(InvalidInput, match="only failed"):
        retry_deliveries(session, [failed], rig.clock())  # it was sent: never again


def test_retrying_an_unknown_or_pending_message_changes_nothing(rig: Rig) -> None:
    failed = fail_one(rig)
    rig.owe("wecom_robot", "robot-B", {"markdown": "x"}, "k-pending")
    pending = next(row.id for row in rig.outbox() if row.dedupe_key == "k-pending")
    assert pending is not None
    with session_scope(rig.engine) as session, pytest.raises(NotFound, match="999"):
        retry_deliveries(session, [failed, 999], rig.clock())
    with session_scope(rig.engine) as session, pytest.raises(InvalidInput, match=f"{pending} is pending"):
        retry_deliveries(session, [failed, pending], rig.clock())
    with new_session(rig.engine) as session:
        assert [d.id for d in list_deliveries(session, "failed")] == [failed]


def test_operators_retry_over_http_and_workers_may_not(
    rig: Rig, http: httpx.Client, engine: Engine, clock: FakeClock
) -> None:
    failed = fail_one(rig)
    with session_scope(engine) as session:
        operator = token_for(session, make_person(session, "op", ["operator"]), clock())
        worker = token_for(session, make_person(session, "w", ["grid_worker"]), clock())
    assert http.get("/api/v1/admin/outbox", params={"status": "failed"}, headers=auth(worker)).status_code == 403
    listed = http.get("/api/v1/admin/outbox", params={"status": "failed"}, headers=auth(operator)).json()
    assert [d["id"] for d in listed] == [failed]
    assert http.post("/api/v1/admin/outbox/retry", json={"ids": [failed]}, headers=auth(worker)).status_code == 403
    r = http.post("/api/v1/admin/outbox/retry", json={"ids": [failed]}, headers=auth(operator))
    assert r.status_code == 200 and r.json()[0]["status"] == "pending"
    again = http.post("/api/v1/admin/outbox/retry", json={"ids": [failed]}, headers=auth(operator))
    assert again.status_code == 422 and "only failed" in again.json()["message"]


def test_the_cli_lists_and_retries_every_failed_message(rig: Rig, db_url: str) -> None:
    failed = fail_one(rig)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GRIDBOT_DATABASE__URL": db_url}
    env["GRIDBOT_APP__DEMO"] = "false"

    def gridbot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True)

    listed = gridbot("outbox", "list", "--status", "failed", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["status"], row["channel"]) == (failed, "failed", "wecom_robot")
    assert "93000" in row["last_error"]
    table = gridbot("outbox", "list")
    assert table.returncode == 0 and "93000" in table.stdout and "robo…0001" in table.stdout
    retried = gridbot("outbox", "retry", "--all-failed")
    assert retried.returncode == 0 and f"queued again: {failed}" in retried.stdout
    assert gridbot("outbox", "retry", "--all-failed").stdout.strip() == "no failed messages"
    bad = gridbot("outbox", "retry", "424242")
    assert bad.returncode == 1 and "no outbox message 424242" in bad.stderr


def test_a_photo_sent_in_the_chat_is_stored_without_its_gps(rig: Rig, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (38.0, 2.0, 30.0), 3: "E", 4: (114.0, 30.0, 15.0)}  # GPSInfo
    exif[0x010F] = "PhoneMaker"
    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), "green").save(buffer, "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as sent:
        assert sent.getexif().get_ifd(0x8825)  # the fixture really carries a position
    rig.fake.media["GPS"] = (buffer.getvalue(), "image/jpeg")
    with session_scope(rig.engine) as session:
        media = Media(kind="image", source="wechat", wechat_media_id="GPS", next_attempt_at=rig.clock())
        session.add(media)
        session.flush()
        media_id = media.id
    store = LocalMediaStore(tmp_path / "media")
    MediaFetcher(rig.engine, rig.gateway, store, rig.settings, rig.clock).run_once()
    with new_session(rig.engine) as session:
        row = session.get(Media, media_id)
        assert row is not None and row.status == "stored" and row.path is not None
        assert row.sha256 == hashlib.sha256(store.get(row.path)).hexdigest()
    with Image.open(io.BytesIO(store.get(row.path))) as kept:
        assert kept.size == (120, 90) and not kept.getexif().get_ifd(0x8825) and 0x010F not in kept.getexif()
