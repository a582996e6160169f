"""The public page behind an activity card's sign-up link (/m/activities/<id>): live counts, cancellation, 404."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import select

from models import Activity, Grid
from models.db import session_scope
from tests.conftest import FakeClock
from tests.factories import auth, make_district, make_person, token_for


def setup(engine: Engine, clock: FakeClock) -> tuple[int, list[str], str]:
    """An activity of grid A with 2 places, three volunteers' tokens and an admin's."""
    with session_scope(engine) as session:
        make_district(session)
        grid = session.exec(select(Grid).where(Grid.code == "A")).one()
        assert grid.id is not None
        activity = Activity(
            grid_id=grid.id,
            title="清理楼道杂物",
            place="阳光小区3号楼",
            lng=114.505,
            lat=38.005,
            starts_at=clock.now + timedelta(days=2),
            ends_at=clock.now + timedelta(days=2, hours=3),
            signup_deadline=clock.now + timedelta(days=1),
            capacity=2,
            points_per_hour=2,
            points_cap=6,
        )
        session.add(activity)
        people = [make_person(session, f"vol{i}", ["volunteer"]) for i in range(3)]
        admin = make_person(session, "boss", ["admin"])
        session.flush()
        assert activity.id is not None
        return activity.id, [token_for(session, p, clock.now) for p in people], token_for(session, admin, clock.now)


def test_the_page_shows_the_live_count_and_how_to_sign_up_without_names(
    http: httpx.Client, engine: Engine, clock: FakeClock
) -> None:
    activity_id, volunteers, _ = setup(engine, clock)
    page = http.get(f"/m/activities/{activity_id}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for words in (
        "清理楼道杂物",
        "阳光小区3号楼",
        "已报名 0/2",
        "报名中",
        "每小时2分",
        "最多6分",
        "如何报名",
        "小程序",
    ):
        assert words in page.text, words
    assert "候补" not in page.text.split("如何报名")[0]
    for token in volunteers:
        assert http.post(f"/api/v1/activities/{activity_id}/signups", headers=auth(token)).status_code == 200
    page = http.get(f"/m/activities/{activity_id}")
    assert "已报名 2/2（候补 1 人）" in page.text
    assert "用户vol0" not in page.text and "用户vol2" not in page.text
    assert http.delete(f"/api/v1/activities/{activity_id}/signups/me", headers=auth(volunteers[0])).status_code == 200
    assert "已报名 2/2" in http.get(f"/m/activities/{activity_id}").text  # the first on the waiting list moved up
    assert "候补 1 人" not in http.get(f"/m/activities/{activity_id}").text
    clock.advance(days=1, minutes=1)
    later = http.get(f"/m/activities/{activity_id}").text
    assert "报名已截止" in later and "如何报名" not in later


def test_a_cancelled_activity_says_so_with_its_reason(http: httpx.Client, engine: Engine, clock: FakeClock) -> None:
    activity_id, _, admin = setup(engine, clock)
    r = http.post(f"/api/v1/activities/{activity_id}/cancel", json={"reason": "暴雨预警"}, headers=auth(admin))
    assert r.status_code == 200, r.text
    page = http.get(f"/m/activities/{activity_id}")
    assert page.status_code == 200 and "已取消（暴雨预警）" in page.text and "如何报名" not in page.text


def test_an_unknown_activity_is_a_chinese_404_page(http: httpx.Client, engine: Engine, clock: FakeClock) -> None:
    setup(engine, clock)
    page = http.get("/m/activities/999")
    assert page.status_code == 404 and "没有找到这个活动" in page.text
    malformed = http.get("/m/activities/abc")
    assert malformed.status_code == 404 and "没有找到这个活动" in malformed.text
