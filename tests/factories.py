"""Plain factory functions for tests: a tiny two-grid community, people, tokens, reports, cases."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from handlers.access import Actor, load_actor
from handlers.cases import open_case
from handlers.grids import import_grids
from handlers.people import create_person, issue_token
from models import Case, Person, Report

ZONE = ZoneInfo("Asia/Shanghai")


def square(lng: float, lat: float, size: float) -> dict[str, Any]:
    ring = [[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


GAZETTEER = {"A": ["阳光小区", "育才街"], "B": ["幸福小区", "胜利北大街"]}


def feature(code: str, parent: str | None, level: str, geometry: dict[str, Any], kind: str = "base") -> dict[str, Any]:
    channel = {"type": "wecom_robot", "key": f"robot-{code}"} if level == "grid" else None
    return {
        "type": "Feature",
        "properties": {
            "code": code,
            "name": f"网格{code}",
            "parent": parent,
            "level": level,
            "kind": kind,
            "channel": channel,
            "gazetteer": GAZETTEER.get(code, []),
        },
        "geometry": geometry,
    }


def small_district() -> dict[str, Any]:
    """District D → street S → community C → grids A and B side by side (each 0.01° square)."""
    return {
        "type": "FeatureCollection",
        "features": [
            feature("D", None, "district", square(114.50, 38.00, 0.02)),
            feature("S", "D", "street", square(114.50, 38.00, 0.02)),
            feature("C", "S", "community", square(114.50, 38.00, 0.02)),
            feature("A", "C", "grid", square(114.50, 38.00, 0.01)),
            feature("B", "C", "grid", square(114.51, 38.00, 0.01)),
        ],
    }


def make_district(session: Session) -> None:
    import_grids(session, small_district())
    session.flush()


def make_person(
    session: Session, login: str, roles: list[str], grids: list[str] | None = None, password: str | None = None
) -> Person:
    return create_person(
        session, name=f"用户{login}", roles=roles, login=login, password=password, grid_codes=grids or []
    )


def actor_of(session: Session, person: Person) -> Actor:
    return load_actor(session, person)


def token_for(session: Session, person: Person, now: datetime) -> str:
    token, _ = issue_token(session, person, now, timedelta(days=1))
    return token


def make_case(
    session: Session,
    now: datetime,
    reporter: Person | None = None,
    text: str = "井盖丢了",
    subcategory: str = "D01",
    urgent: bool = False,
) -> Case:
    report = Report(
        person_id=reporter.id if reporter else None,
        channel="mp",
        text=text,
        subcategory=subcategory,
        category=subcategory[0],
        urgent=urgent,
        created_at=now,
    )
    session.add(report)
    return open_case(session, report, now, ZONE)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
