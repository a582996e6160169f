"""The demo district: grids, staff, volunteers and activities for a fresh database with `demo: true`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlmodel import Session, select

from handlers.activities import ActivityContext
from handlers.grids import import_grids
from handlers.people import create_person, hash_password
from handlers.series import generate_for_series, recurrence_trigger
from models import Activity, Grid, Person

DEMO_DIR = Path(__file__).with_name("demo_data")
DISTRICT_FILE = DEMO_DIR / "district.geojson"
PEOPLE_FILE = DEMO_DIR / "people.yaml"
# Every demo staff account logs in with this password; a real deployment creates its own accounts.
DEMO_PASSWORD = "demo1234"
# A recurring activity, so that a demo left running keeps activities open for sign-up: 平安志愿服务日, 09:00–12:00
# on the 9th of every month, in 青园社区 (its occurrences are posted to the groups of its grids as they come up).
DEMO_SERIES = {
    "grid": "130102002001",
    "title": "平安志愿服务日",
    "recurrence": "0 9 9 * *",
    "hours": 3,
    "place": "青园社区党群服务中心",
    "lng": 114.536129,
    "lat": 38.046173,
    "capacity": 30,
    "points_per_hour": 2,
    "points_cap": 6,
    "description": "平安巡防、反诈宣传、矛盾纠纷排查。请佩戴志愿者红马甲，集合后分组出发。",
}


@dataclass(frozen=True)
class DemoSummary:
    grids: int
    people: int
    activities: int


def database_is_empty(session: Session) -> bool:
    return session.exec(select(Grid.id).limit(1)).first() is None and (
        session.exec(select(Person.id).limit(1)).first() is None
    )


def seed_demo(session: Session, now: datetime, zone: ZoneInfo) -> DemoSummary:
    """Load the demo district into an empty database. Does not commit."""
    created, _ = import_grids(session, json.loads(DISTRICT_FILE.read_text(encoding="utf-8")))
    data = yaml.safe_load(PEOPLE_FILE.read_text(encoding="utf-8"))
    people = 0
    # One hash for the one shared demo password: hashing it per account would slow every fresh start.
    shared_hash = hash_password(DEMO_PASSWORD)
    for item in data["people"]:
        staff = bool(set(item["roles"]) & {"grid_worker", "grid_leader", "operator", "admin"})
        person = create_person(
            session,
            name=item["name"],
            roles=item["roles"],
            login=item["login"],
            phone=str(item["phone"]),
            openid=item.get("openid"),
            grid_codes=[str(code) for code in item.get("grids") or []],
            home_grid_code=str(item["home_grid"]) if item.get("home_grid") else None,
        )
        person.password_hash = shared_hash if staff else None
        people += 1
    activities = 0
    for item in data.get("activities") or []:
        session.add(_demo_activity(session, item, now, zone))
        activities += 1
    session.flush()
    activities += _demo_series(session, now, zone)
    return DemoSummary(grids=created, people=people, activities=activities)


def _demo_activity(session: Session, item: dict[str, Any], now: datetime, zone: ZoneInfo) -> Activity:
    grid = session.exec(select(Grid).where(Grid.code == str(item["grid"]))).one()
    assert grid.id is not None
    day = now.astimezone(zone).date() + timedelta(days=int(item["starts_in_days"]))
    hour, minute = (int(part) for part in str(item["start_time"]).split(":"))
    starts_at = datetime.combine(day, time(hour, minute), tzinfo=zone)
    return Activity(
        grid_id=grid.id,
        title=item["title"],
        description=item.get("description", ""),
        place=item.get("place", ""),
        lng=item.get("lng"),
        lat=item.get("lat"),
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=float(item["duration_hours"])),
        signup_deadline=starts_at - timedelta(hours=12),
        capacity=int(item["capacity"]),
        points_per_hour=int(item.get("points_per_hour", 2)),
        created_at=now,
    )


def _demo_series(session: Session, now: datetime, zone: ZoneInfo) -> int:
    """The recurring demo activity and its occurrences within the default horizon. → occurrences created.

    Seeding writes the state a district would have, not news: the occurrences there are now are not posted to the
    groups (the timers post those that come up later)."""
    item = DEMO_SERIES
    grid = session.exec(select(Grid).where(Grid.code == item["grid"])).one()
    assert grid.id is not None
    first = recurrence_trigger(str(item["recurrence"]), zone).get_next_fire_time(None, now)
    assert first is not None
    series = Activity(
        grid_id=grid.id,
        title=str(item["title"]),
        description=str(item["description"]),
        place=str(item["place"]),
        lng=float(item["lng"]),  # type: ignore[arg-type]
        lat=float(item["lat"]),  # type: ignore[arg-type]
        starts_at=first,
        ends_at=first + timedelta(hours=float(item["hours"])),  # type: ignore[arg-type]
        signup_deadline=first - timedelta(hours=12),
        capacity=int(item["capacity"]),  # type: ignore[call-overload]
        points_per_hour=int(item["points_per_hour"]),  # type: ignore[call-overload]
        points_cap=int(item["points_cap"]),  # type: ignore[call-overload]
        recurrence=str(item["recurrence"]),
        created_at=now,
    )
    session.add(series)
    session.flush()
    return len(generate_for_series(session, ActivityContext(zone=zone), series, now, publish=False))
