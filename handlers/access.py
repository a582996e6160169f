"""Who is acting, and what they may see: roles plus the grids (and sub-grids) a staff member serves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlmodel import Session, select

from handlers.errors import Forbidden
from models import Case, Grid, PersonGrid

STAFF_ROLES = frozenset({"grid_worker", "grid_leader"})
GLOBAL_ROLES = frozenset({"operator", "admin", "system"})


@dataclass(frozen=True)
class Actor:
    person_id: int | None
    name: str
    roles: frozenset[str]
    # Grids served, expanded to every grid below them: a community leader sees the community's grids.
    grid_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_global(self) -> bool:
        return bool(self.roles & GLOBAL_ROLES)

    def has_any(self, roles: Iterable[str]) -> bool:
        return bool(self.roles & frozenset(roles))


SYSTEM = Actor(person_id=None, name="system", roles=frozenset({"system"}))


def descendant_grid_ids(session: Session, roots: Iterable[int]) -> set[int]:
    children: dict[int | None, list[int]] = {}
    for grid_id, parent_id in session.exec(select(Grid.id, Grid.parent_id)).all():
        if grid_id is not None:
            children.setdefault(parent_id, []).append(grid_id)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.add(current)
        stack.extend(children.get(current, []))
    return found


class Someone(Protocol):
    """A person as an account (models.Person) or as the sender of a chat message (handlers.people.Sender)."""

    @property
    def id(self) -> int | None: ...
    @property
    def name(self) -> str: ...
    @property
    def roles(self) -> Sequence[str]: ...


def load_actor(session: Session, person: Someone) -> Actor:
    assert person.id is not None
    served = session.exec(select(PersonGrid.grid_id).where(PersonGrid.person_id == person.id)).all()
    grid_ids = descendant_grid_ids(session, served) if served else set()
    return Actor(person_id=person.id, name=person.name, roles=frozenset(person.roles), grid_ids=frozenset(grid_ids))


def roles_on_case(actor: Actor, case: Case) -> frozenset[str]:
    """The roles the actor can exercise on this particular case."""
    usable = set(actor.roles & GLOBAL_ROLES)
    if case.grid_id is not None and case.grid_id in actor.grid_ids:
        usable |= actor.roles & STAFF_ROLES
    if actor.person_id is not None and case.reporter_id == actor.person_id:
        usable.add("resident")
    return frozenset(usable)


def ensure_can_see(actor: Actor, case: Case) -> None:
    if not roles_on_case(actor, case):
        raise Forbidden(f"{actor.name or 'this account'} may not see case {case.case_no}", case_no=case.case_no)
