"""Mini-program login over real HTTP: wx.login codes checked by the fake jscode2session through wechatpy, people
found, linked by unionid or created, tokens that work on every call, and WeChat's refusals as clear errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import col, select

from bot.app import create_app
from bot.config import Settings, WxaSettings
from models import ApiToken, Case, Person
from models.db import new_session, session_scope
from tests.conftest import FakeClock, LiveServer, free_port
from tests.factories import auth, make_case, make_district, make_person
from tests.fakes.wechat_api import SESSION_KEY_PREFIX, FakeWeChat

JSCODE2SESSION = "/sns/jscode2session"


@pytest.fixture
def settings(settings: Settings, fake: FakeWeChat) -> Settings:
    """The shared test settings, with the mini-program pointed at the fake WeChat."""
    wxa = WxaSettings(
        appid=fake.wxa_appid,
        secret=SecretStr(fake.wxa_secret),
        api_base_url=fake.url + "/",  # type: ignore[attr-defined]
    )
    return settings.model_copy(update={"wxa": wxa})


def login(http: httpx.Client, fake: FakeWeChat, openid: str, unionid: str | None = None) -> dict[str, Any]:
    r = http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code(openid, unionid)})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def people(engine: Engine) -> list[Person]:
    with new_session(engine) as session:
        return list(session.exec(select(Person).order_by(col(Person.id))).all())


def tokens(engine: Engine) -> list[ApiToken]:
    with new_session(engine) as session:
        return list(session.exec(select(ApiToken)).all())


def test_a_first_login_creates_a_resident_whose_token_works_until_it_expires(
    http: httpx.Client, fake: FakeWeChat, engine: Engine, clock: FakeClock, settings: Settings
) -> None:
    body = login(http, fake, "oWXA-1")
    assert body["user"]["roles"] == ["resident"] and body["user"]["login"] is None
    assert body["token"].startswith("gb_")
    assert datetime.fromisoformat(body["expires_at"]) == clock() + timedelta(hours=settings.auth.token_ttl_hours)
    (person,) = people(engine)
    assert (person.wxa_openid, person.openid, person.unionid, person.roles) == ("oWXA-1", None, None, ["resident"])
    me = http.get("/api/v1/me", headers=auth(body["token"]))
    assert me.status_code == 200 and me.json()["id"] == person.id
    clock.advance(hours=settings.auth.token_ttl_hours, seconds=1)
    assert http.get("/api/v1/me", headers=auth(body["token"])).status_code == 401


def test_the_code_goes_to_jscode2session_with_our_appid_and_no_access_token(
    http: httpx.Client, fake: FakeWeChat
) -> None:
    code = fake.login_code("oWXA-1")
    assert http.post("/api/v1/auth/wxa-login", json={"code": code}).status_code == 200
    (call,) = fake.calls_to(JSCODE2SESSION)
    assert call.params == {
        "appid": fake.wxa_appid,
        "secret": fake.wxa_secret,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    # jscode2session takes no access token: none is fetched for it
    assert [c.path for c in fake.calls] == [JSCODE2SESSION]


def test_the_same_person_logging_in_again_is_the_same_account(
    http: httpx.Client, fake: FakeWeChat, engine: Engine
) -> None:
    first = login(http, fake, "oWXA-1")
    second = login(http, fake, "oWXA-1")
    assert first["user"]["id"] == second["user"]["id"]
    assert first["token"] != second["token"]
    assert len(people(engine)) == 1 and len(tokens(engine)) == 2
    for body in (first, second):
        assert http.get("/api/v1/me", headers=auth(body["token"])).status_code == 200


def test_a_unionid_links_the_mini_program_to_the_official_account_follower_we_know(
    http: httpx.Client, fake: FakeWeChat, engine: Engine
) -> None:
    with session_scope(engine) as session:
        follower = Person(name="老张", openid="oOA-zhang", unionid="UNION-zhang", roles=["resident"])
        session.add(follower)
        session.flush()
        follower_id = follower.id
    body = login(http, fake, "oWXA-zhang", unionid="UNION-zhang")
    assert body["user"]["id"] == follower_id and body["user"]["name"] == "老张"
    (person,) = people(engine)
    assert (person.openid, person.wxa_openid, person.unionid) == ("oOA-zhang", "oWXA-zhang", "UNION-zhang")
    assert login(http, fake, "oWXA-zhang", unionid="UNION-zhang")["user"]["id"] == follower_id
    assert len(people(engine)) == 1


def test_staff_roles_and_grids_come_from_the_database(http: httpx.Client, fake: FakeWeChat, engine: Engine) -> None:
    with session_scope(engine) as session:
        make_district(session)
        worker = make_person(session, "wa", ["grid_worker"], ["A"])
        worker.unionid = "UNION-wa"
        session.add(worker)
    user = login(http, fake, "oWXA-wa", unionid="UNION-wa")["user"]
    assert (user["login"], user["roles"], user["grids"]) == ("wa", ["grid_worker"], ["A"])


def test_a_mini_program_resident_later_known_to_the_official_account_is_folded_into_that_account(
    http: httpx.Client, fake: FakeWeChat, engine: Engine, clock: FakeClock
) -> None:
    first = login(http, fake, "oWXA-li", unionid="UNION-li")
    with session_scope(engine) as session:
        mini = session.get(Person, first["user"]["id"])
        make_case(session, clock(), reporter=mini, text="楼道灯坏了")
        # the official account learns the same unionid for the follower it already had
        session.add(Person(name="小李", openid="oOA-li", unionid="UNION-li", roles=["resident"]))
    again = login(http, fake, "oWXA-li", unionid="UNION-li")
    assert again["user"]["id"] != first["user"]["id"] and again["user"]["name"] == "小李"
    with new_session(engine) as session:
        holders = session.exec(select(Person).where(Person.wxa_openid == "oWXA-li")).all()
        assert [p.id for p in holders] == [again["user"]["id"]]
        assert session.get(Person, first["user"]["id"]).active is False  # type: ignore[union-attr]
        (case,) = session.exec(select(Case)).all()
        assert case.reporter_id == again["user"]["id"]
    mine = http.get("/api/v1/reports/mine", headers=auth(again["token"])).json()
    assert [item["text"] for item in mine["items"]] == ["楼道灯坏了"]
    assert http.get("/api/v1/me", headers=auth(first["token"])).json()["id"] == again["user"]["id"]


@pytest.mark.parametrize("code", ["CODE-never-issued", "used"])
def test_a_bad_or_used_code_is_401_and_creates_nothing(
    http: httpx.Client, fake: FakeWeChat, engine: Engine, code: str
) -> None:
    if code == "used":
        code = fake.login_code("oWXA-1")
        assert http.post("/api/v1/auth/wxa-login", json={"code": code}).status_code == 200
    before = (len(people(engine)), len(tokens(engine)))
    r = http.post("/api/v1/auth/wxa-login", json={"code": code})
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error"] == "invalid_code" and "wx.login" in body["message"]
    assert body["user_message"] == "登录已失效，请重新打开小程序登录。"
    assert (len(people(engine)), len(tokens(engine))) == before


@pytest.mark.parametrize(
    ("failure", "retry_after"), [({"errcode": -1}, "5"), ({"errcode": 45011}, "60"), ({"http": 502}, "5")]
)
def test_wechat_busy_is_503_with_retry_after_and_the_next_try_works(
    http: httpx.Client, fake: FakeWeChat, engine: Engine, failure: dict[str, int], retry_after: str
) -> None:
    fake.fail(JSCODE2SESSION, **failure)
    r = http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code("oWXA-1")})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "wechat_unavailable" and r.headers["retry-after"] == retry_after
    assert r.json()["user_message"] == "微信服务繁忙，请稍后再试。"
    assert people(engine) == [] and tokens(engine) == []
    assert login(http, fake, "oWXA-1")["user"]["roles"] == ["resident"]


@pytest.fixture
def unreachable_app(settings: Settings, engine: Engine, clock: FakeClock) -> Iterator[httpx.Client]:
    """The app with the mini-program's base URL on a port where nothing listens."""
    dead = settings.wxa.model_copy(update={"api_base_url": f"http://127.0.0.1:{free_port()}/"})
    app = create_app(settings.model_copy(update={"wxa": dead}), engine=engine, clock=clock)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=15) as client:
        yield client


def test_wechat_not_answering_is_503_and_creates_nothing(unreachable_app: httpx.Client, engine: Engine) -> None:
    r = unreachable_app.post("/api/v1/auth/wxa-login", json={"code": "CODE-1"})
    assert r.status_code == 503 and r.json()["error"] == "wechat_unavailable"
    assert people(engine) == []


def test_a_wrong_appsecret_is_502_and_says_so(http: httpx.Client, fake: FakeWeChat, engine: Engine) -> None:
    fake.wxa_secret = "rotated-on-the-platform"
    r = http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code("oWXA-1")})
    assert r.status_code == 502 and "40125" in r.json()["message"]
    assert people(engine) == []


def test_malformed_codes_are_422_without_calling_wechat(http: httpx.Client, fake: FakeWeChat) -> None:
    for body in ({}, {"code": ""}, {"code": "has space"}, {"code": "x" * 129}, {"code": 12345}):
        assert http.post("/api/v1/auth/wxa-login", json=body).status_code == 422, body
    assert fake.calls_to(JSCODE2SESSION) == []


def test_a_disabled_account_gets_no_token(http: httpx.Client, fake: FakeWeChat, engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Person(name="停用", wxa_openid="oWXA-off", roles=["resident"], active=False))
    r = http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code("oWXA-off")})
    assert r.status_code == 403 and tokens(engine) == []


def test_the_session_key_is_never_stored_or_logged(
    http: httpx.Client, fake: FakeWeChat, engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    login(http, fake, "oWXA-1", unionid="UNION-1")
    fake.fail(JSCODE2SESSION, errcode=-1)
    http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code("oWXA-1")})
    assert SESSION_KEY_PREFIX not in caplog.text
    database = Path(settings.database.url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert b"oWXA-1" in stored  # the file is the right one
    assert SESSION_KEY_PREFIX.encode() not in stored
