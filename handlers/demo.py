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

from handlers.grids import import_grids
from handlers.people import create_person, hash_password
from models import Activity, Grid, Person

DEMO_DIR = Path(__file__).with_name("demo_data")
DISTRICT_FILE = DEMO_DIR / "district.geojson"
PEOPLE_FILE = DEMO_DIR / "people.yaml"
# Every demo staff account logs in with this password; a real deployment creates its own accounts.
DEMO_PASSWORD = "demo1234"


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
