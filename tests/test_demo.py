"""The demo district a fresh `gridbot serve` loads: staff for every grid, activities open for sign-up."""

from __future__ import annotations

from sqlmodel import Session, select

from handlers.demo import database_is_empty, seed_demo
from models import Activity, Grid, Person, PersonGrid
from tests.conftest import FakeClock
from tests.factories import ZONE


def test_seed_gives_every_grid_a_worker_and_leaders_above(session: Session, clock: FakeClock) -> None:
    assert database_is_empty(session)
    summary = seed_demo(session, clock(), ZONE)
    assert not database_is_empty(session)
    grids = session.exec(select(Grid)).all()
    links = session.exec(select(PersonGrid)).all()
    served = {(link.grid_id, link.role) for link in links}
    for grid in grids:
        if grid.level == "grid":
            assert (grid.id, "grid_worker") in served, grid.code
        if grid.level == "community":
            assert (grid.id, "grid_leader") in served, grid.code
    people = session.exec(select(Person)).all()
    roles = [role for p in people for role in p.roles]
    assert roles.count("operator") >= 1 and roles.count("volunteer") >= 3 and roles.count("admin") == 1
    assert summary.people == len(people)


def test_seed_has_an_upcoming_activity_open_for_signup(session: Session, clock: FakeClock) -> None:
    seed_demo(session, clock(), ZONE)
    upcoming = session.exec(select(Activity).where(Activity.signup_deadline > clock())).all()
    assert upcoming and all(a.capacity > 0 and a.ends_at > a.starts_at for a in upcoming)
