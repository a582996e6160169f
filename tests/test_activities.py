"""Volunteer activities over HTTP: publishing (group card through the outbox), refusals that store nothing,
sign-up with a waiting list. (Started; see the helper's report for what is still to cover.)"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import select

from models import Activity, OutboxMessage
from models.db import new_session, session_scope
from tests.conftest import FakeClock
from tests.factories import auth, make_district, make_person, token_for

POINT = (114.505, 38.005)


def people(engine: Engine, clock: FakeClock) -> dict[str, str]:
    with session_scope(engine) as session:
        make_district(session)
        found = {
            "leader_a": make_person(session, "la", ["grid_leader"], ["A"]),
            "leader_b": make_person(session, "lb", ["grid_leader"], ["B"]),
            "worker_a": make_person(session, "wa", ["grid_worker"], ["A"]),
            "v1": make_person(session, "v1", ["volunteer"]),
            "v2": make_person(session, "v2", ["volunteer"]),
        }
        return {name: token_for(session, person, clock()) for name, person in found.items()}


def body(clock: FakeClock, **extra: object) -> dict[str, object]:
    start = clock() + timedelta(days=2)
    return {
        "grid": "A",
        "title": "平安志愿服务日",
        "place": "阳光小区北门",
        "lng": POINT[0],
        "lat": POINT[1],
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=3)).isoformat(),
        "capacity": 1,
        **extra,
    }


def test_publishing_posts_a_card_and_strangers_are_refused(
    http: httpx.Client, engine: Engine, clock: FakeClock
) -> None:
    t = people(engine, clock)
    for who in ("worker_a", "leader_b"):
        assert http.post("/api/v1/activities", json=body(clock), headers=auth(t[who])).status_code == 403
    assert http.post("/api/v1/activities", json=body(clock, capacity=0), headers=auth(t["leader_a"])).status_code == 422
    with new_session(engine) as session:
        assert session.exec(select(Activity)).all() == [] and session.exec(select(OutboxMessage)).all() == []
    r = http.post("/api/v1/activities", json=body(clock), headers=auth(t["leader_a"]))
    assert r.status_code == 201, r.text
    with new_session(engine) as session:
        [card] = session.exec(select(OutboxMessage)).all()
    assert card.target == "robot-A" and "已报名 0/1" in card.payload["markdown"]
    aid = r.json()["id"]
    first = http.post(f"/api/v1/activities/{aid}/signups", headers=auth(t["v1"])).json()
    second = http.post(f"/api/v1/activities/{aid}/signups", headers=auth(t["v2"])).json()
    assert (first["status"], second["status"], second["position"]) == ("confirmed", "waitlisted", 1)
    assert http.post(f"/api/v1/activities/{aid}/signups", headers=auth(t["v1"])).json()["status"] == "confirmed"
