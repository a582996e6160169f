"""The staff API over real HTTP: authentication, role checks, the lifecycle as actions, errors that change nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from models import Case, Media, OutboxMessage
from models.db import session_scope
from tests.conftest import FakeClock
from tests.factories import auth, make_case, make_district, make_person, token_for


@dataclass
class Tokens:
    operator: str
    worker_a: str
    worker_b: str
    leader: str
    resident: str
    other_resident: str
    volunteer: str


@pytest.fixture
def tokens(engine: Engine, clock: FakeClock) -> Tokens:
    with session_scope(engine) as session:
        make_district(session)
        people = {
            "operator": make_person(session, "op", ["operator"]),
            "worker_a": make_person(session, "wa", ["grid_worker"], ["A"]),
            "worker_b": make_person(session, "wb", ["grid_worker"], ["B"]),
            "leader": make_person(session, "lc", ["grid_leader"], ["C"]),
            "resident": make_person(session, "res", ["resident"]),
            "other_resident": make_person(session, "res2", ["resident"]),
            "volunteer": make_person(session, "vol", ["volunteer"]),
        }
        return Tokens(**{name: token_for(session, person, clock()) for name, person in people.items()})


@pytest.fixture
def case_no(engine: Engine, clock: FakeClock, tokens: Tokens) -> str:
    with session_scope(engine) as session:
        from handlers.people import get_person_by_login

        case = make_case(session, clock(), reporter=get_person_by_login(session, "res"), text="华兴小区北门井盖丢了")
        return case.case_no


def act(http: httpx.Client, token: str, case_no: str, action: str, **body: object) -> httpx.Response:
    return http.post(f"/api/v1/cases/{case_no}/actions/{action}", json=body, headers=auth(token))


def test_the_closed_loop_over_http(http: httpx.Client, tokens: Tokens, case_no: str, clock: FakeClock) -> None:
    assert act(http, tokens.operator, case_no, "accept").status_code == 200
    r = act(http, tokens.operator, case_no, "dispatch", grid_code="A")
    assert r.status_code == 200, r.text
    assert r.json()["case"]["grid"]["code"] == "A"
    assert r.json()["case"]["accept_deadline"] is not None
    clock.advance(minutes=3)
    r = act(http, tokens.worker_a, case_no, "take")
    assert r.json()["case"]["status"] == "taken" and r.json()["case"]["assignee"] == "用户wa"
    assert act(http, tokens.worker_a, case_no, "resolve", note="已更换井盖", attachments=["m/1.jpg"]).status_code == 200
    assert act(http, tokens.resident, case_no, "rate", rating=5).status_code == 200
    r = act(http, tokens.operator, case_no, "close")
    assert r.status_code == 200

    detail = http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.operator)).json()
    assert [e["to_status"] for e in detail["events"]] == [
        "reported",
        "accepted",
        "dispatched",
        "taken",
        "resolved",
        "rated",
        "closed",
    ]
    assert detail["events"][4]["attachments"] == ["m/1.jpg"]
    assert detail["case"]["rating"] == 5
    assert detail["actions"] == ["reopen"]


def test_a_refused_transition_is_409_with_current_state_and_allowed_actions(
    http: httpx.Client, tokens: Tokens, case_no: str
) -> None:
    r = act(http, tokens.operator, case_no, "close")
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "invalid_transition"
    assert body["current_state"] == "reported"
    assert {a["action"] for a in body["allowed"]} == {"accept", "invalidate", "merge"}
    detail = http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.operator)).json()
    assert detail["case"]["status"] == "reported" and len(detail["events"]) == 1


def test_a_worker_of_grid_b_gets_403_on_a_case_of_grid_a(http: httpx.Client, tokens: Tokens, case_no: str) -> None:
    act(http, tokens.operator, case_no, "accept")
    act(http, tokens.operator, case_no, "dispatch", grid_code="A")
    assert http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.worker_b)).status_code == 403
    r = act(http, tokens.worker_b, case_no, "take")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    listed = http.get("/api/v1/cases", headers=auth(tokens.worker_b)).json()
    assert listed["total"] == 0
    # the community leader above grid A sees it; worker A sees it
    assert http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.leader)).status_code == 200
    assert http.get("/api/v1/cases", headers=auth(tokens.worker_a)).json()["total"] == 1
    detail = http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.operator)).json()
    assert detail["case"]["status"] == "dispatched"


def test_residents_see_only_their_own_cases_without_staff_names(
    http: httpx.Client, tokens: Tokens, case_no: str
) -> None:
    act(http, tokens.operator, case_no, "accept")
    mine = http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.resident))
    assert mine.status_code == 200
    assert all(e["actor"] is None for e in mine.json()["events"])
    assert http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.other_resident)).status_code == 403
    assert http.get("/api/v1/cases", headers=auth(tokens.other_resident)).json()["total"] == 0
    assert http.get("/api/v1/cases", headers=auth(tokens.volunteer)).status_code == 403


def test_missing_or_bad_tokens_are_401(http: httpx.Client, case_no: str) -> None:
    assert http.get("/api/v1/cases").status_code == 401
    r = http.get("/api/v1/cases", headers=auth("gb_not-a-token"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_an_expired_token_is_refused(http: httpx.Client, tokens: Tokens, clock: FakeClock) -> None:
    assert http.get("/api/v1/me", headers=auth(tokens.operator)).status_code == 200
    clock.advance(days=2)
    assert http.get("/api/v1/me", headers=auth(tokens.operator)).status_code == 401


def test_invalid_action_input_is_422_and_changes_nothing(http: httpx.Client, tokens: Tokens, case_no: str) -> None:
    act(http, tokens.operator, case_no, "accept")
    r = act(http, tokens.operator, case_no, "dispatch", grid_code="ZZ")
    assert r.status_code == 422 and "ZZ" in r.json()["message"]
    r = act(http, tokens.operator, case_no, "dispatch", grid_code="A", rating=9)
    assert r.status_code == 422
    assert http.post(f"/api/v1/cases/{case_no}/actions/fly", json={}, headers=auth(tokens.operator)).status_code == 422
    detail = http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.operator)).json()
    assert detail["case"]["status"] == "accepted" and len(detail["events"]) == 2


def test_unknown_case_is_404(http: httpx.Client, tokens: Tokens) -> None:
    r = http.get("/api/v1/cases/20990101-0001", headers=auth(tokens.operator))
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_double_click_on_take_gives_one_event(http: httpx.Client, tokens: Tokens, case_no: str) -> None:
    act(http, tokens.operator, case_no, "accept")
    act(http, tokens.operator, case_no, "dispatch", grid_code="A")
    first = act(http, tokens.worker_a, case_no, "take")
    second = act(http, tokens.worker_a, case_no, "take")
    assert (first.status_code, second.status_code) == (200, 409)
    events = http.get(f"/api/v1/cases/{case_no}", headers=auth(tokens.operator)).json()["events"]
    assert [e["action"] for e in events].count("take") == 1


def test_desk_intake_and_filters(http: httpx.Client, tokens: Tokens, case_no: str) -> None:
    r = http.post(
        "/api/v1/cases",
        json={"text": "育才街路灯不亮", "subcategory": "D03", "urgency": "urgent"},
        headers=auth(tokens.operator),
    )
    assert r.status_code == 201, r.text
    assert r.json()["case"]["urgency"] == "urgent"
    assert http.post("/api/v1/cases", json={"text": "x"}, headers=auth(tokens.worker_a)).status_code in (403, 422)
    assert http.post("/api/v1/cases", json={"text": "路灯不亮"}, headers=auth(tokens.worker_a)).status_code == 403
    h = auth(tokens.operator)
    assert http.get("/api/v1/cases", params={"subcategory": "D03"}, headers=h).json()["total"] == 1
    assert http.get("/api/v1/cases", params={"urgency": "urgent"}, headers=h).json()["total"] == 1
    assert http.get("/api/v1/cases", params={"q": "井盖"}, headers=h).json()["total"] == 1
    assert http.get("/api/v1/cases", params={"status": ["reported"]}, headers=h).json()["total"] == 2
    assert http.get("/api/v1/cases", params={"status": "closed"}, headers=h).json()["total"] == 0
    assert http.get("/api/v1/cases", params={"from": "2026-11-22", "to": "2026-11-22"}, headers=h).json()["total"] == 2
    assert http.get("/api/v1/cases", params={"from": "2026-11-23"}, headers=h).json()["total"] == 0
    assert http.get("/api/v1/cases", params={"status": "bogus"}, headers=h).status_code == 422


def test_overdue_filter_follows_the_clock(http: httpx.Client, tokens: Tokens, case_no: str, clock: FakeClock) -> None:
    act(http, tokens.operator, case_no, "accept")
    dispatched = act(http, tokens.operator, case_no, "dispatch", grid_code="A").json()["case"]
    h = auth(tokens.operator)
    due = datetime.fromisoformat(dispatched["accept_deadline"])
    assert due > clock()
    clock.now = due - timedelta(minutes=1)
    assert http.get("/api/v1/cases", params={"overdue": True}, headers=h).json()["total"] == 0
    clock.now = due + timedelta(minutes=1)
    listed = http.get("/api/v1/cases", params={"overdue": True}, headers=h).json()
    assert listed["total"] == 1 and listed["items"][0]["overdue"] is True


def test_a_normal_case_dispatched_on_a_sunday_is_due_on_monday_morning(
    http: httpx.Client, tokens: Tokens, case_no: str, clock: FakeClock
) -> None:
    # the test clock starts on Sunday 22 Nov 2026, 10:00 in Beijing; normal cases count working time
    act(http, tokens.operator, case_no, "accept")
    dispatched = act(http, tokens.operator, case_no, "dispatch", grid_code="A").json()["case"]
    assert dispatched["urgency"] == "normal"
    due = datetime.fromisoformat(dispatched["accept_deadline"])
    assert due == datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_password_login_and_logout(http: httpx.Client, engine: Engine) -> None:
    with session_scope(engine) as session:
        make_person(session, "desk", ["operator"], password="s3cret-pass")
    assert http.post("/api/v1/auth/login", json={"login": "desk", "password": "wrong"}).status_code == 401
    r = http.post("/api/v1/auth/login", json={"login": "desk", "password": "s3cret-pass"})
    assert r.status_code == 200 and r.json()["user"]["roles"] == ["operator"]
    token = r.json()["token"]
    assert http.get("/api/v1/me", headers=auth(token)).json()["login"] == "desk"
    assert http.post("/api/v1/auth/logout", headers=auth(token)).status_code == 204
    assert http.get("/api/v1/me", headers=auth(token)).status_code == 401


def test_openapi_describes_the_lifecycle(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert "/api/v1/cases/{case_no}/actions/{action}" in spec["paths"]
    post = spec["paths"]["/api/v1/cases/{case_no}/actions/{action}"]["post"]
    assert "409" in post["responses"]
    assert http.get("/healthz").json() == {"status": "ok"}


def test_an_operator_dispatch_posts_the_card_to_the_grid_group_once(
    http: httpx.Client, tokens: Tokens, case_no: str, engine: Engine
) -> None:
    act(http, tokens.operator, case_no, "accept")
    assert act(http, tokens.operator, case_no, "dispatch", grid_code="A").status_code == 200
    assert act(http, tokens.operator, case_no, "dispatch", grid_code="B").status_code == 409  # a double click
    with session_scope(engine) as session:
        posts = session.exec(select(OutboxMessage).where(OutboxMessage.channel == "wecom_robot")).all()
    assert [p.target for p in posts] == ["robot-A"]
    card = posts[0].payload["markdown"]
    assert case_no in card and "华兴小区北门井盖丢了" in card and f"/m/cases/{case_no}" in card


def test_a_worker_suspends_and_resumes_a_case_over_http(
    http: httpx.Client, tokens: Tokens, case_no: str, clock: FakeClock
) -> None:
    act(http, tokens.operator, case_no, "accept")
    act(http, tokens.operator, case_no, "dispatch", grid_code="A")
    act(http, tokens.worker_a, case_no, "take")
    assert act(http, tokens.worker_a, case_no, "suspend").status_code == 422  # a reason is required
    r = act(http, tokens.worker_a, case_no, "suspend", note="等待供电公司")
    assert r.status_code == 200, r.text
    detail = r.json()["case"]
    assert detail["status"] == "taken" and detail["resolve_deadline"] is None
    assert "resume" in r.json()["actions"] and "suspend" not in r.json()["actions"]
    assert act(http, tokens.worker_b, case_no, "resume").status_code == 403  # another grid's worker
    clock.advance(hours=20)  # (API tokens in these tests last a day)
    r = act(http, tokens.worker_a, case_no, "resume")
    assert r.status_code == 200 and r.json()["case"]["resolve_deadline"] is not None
    assert [e["action"] for e in r.json()["events"]][-2:] == ["suspend", "resume"]


def test_the_dispatch_card_links_to_the_reports_first_photo(
    http: httpx.Client, tokens: Tokens, case_no: str, engine: Engine
) -> None:
    with session_scope(engine) as session:
        case = session.exec(select(Case).where(Case.case_no == case_no)).one()
        voice = Media(kind="voice", source="wechat", report_id=case.report_id)
        photo = Media(kind="image", source="wechat", report_id=case.report_id)
        session.add_all([voice, photo])
        session.flush()
        photo_id = photo.id
    act(http, tokens.operator, case_no, "accept")
    act(http, tokens.operator, case_no, "dispatch", grid_code="A")
    with session_scope(engine) as session:
        card = session.exec(select(OutboxMessage).where(OutboxMessage.target == "robot-A")).one().payload["markdown"]
    assert f"[现场照片](http://127.0.0.1:8000/m/cases/{case_no}/photos/{photo_id})" in card
