"""People and their credentials: staff accounts, passwords, API tokens, grid assignments, masked phones; and the
sender of a chat message, read and written with single Core statements on the callback's hot path."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy import column as sa_column
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as sa_select
from sqlalchemy import table as sa_table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnClause
from sqlmodel import Session, col, select

from handlers.errors import InvalidInput, NotFound
from models import ApiToken, Grid, Person, PersonGrid
from models.db import execute_core, insert_id
from models.people import ROLES
from models.types import table_of

_PHONE = re.compile(r"^1\d{10}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def mask_phone(phone: str | None) -> str | None:
    """138****1234: enough for a grid worker to recognise a caller, not enough to harvest numbers."""
    if not phone:
        return None
    if len(phone) >= 7:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * len(phone)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_hex, digest_hex = stored.split("$", 2)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def create_person(
    session: Session,
    *,
    name: str,
    roles: list[str],
    login: str | None = None,
    phone: str | None = None,
    openid: str | None = None,
    password: str | None = None,
    grid_codes: list[str] | None = None,
    home_grid_code: str | None = None,
) -> Person:
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise InvalidInput(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if phone is not None and not _PHONE.match(phone):
        raise InvalidInput(f"phone {mask_phone(phone)} is not an 11-digit mainland mobile number")
    if login is not None and session.exec(select(Person).where(Person.login == login)).first():
        raise InvalidInput(f"login {login!r} is taken")
    person = Person(
        name=name,
        login=login,
        phone=phone,
        openid=openid,
        roles=list(dict.fromkeys(roles)),
        password_hash=hash_password(password) if password else None,
    )
    if home_grid_code:
        person.home_grid_id = _grid(session, home_grid_code).id
    session.add(person)
    session.flush()
    staff_role = "grid_leader" if "grid_leader" in roles else "grid_worker"
    for code in grid_codes or []:
        grid = _grid(session, code)
        assert person.id is not None and grid.id is not None
        session.add(PersonGrid(person_id=person.id, grid_id=grid.id, role=staff_role))
    session.flush()
    return person


def _grid(session: Session, code: str) -> Grid:
    grid = session.exec(select(Grid).where(Grid.code == code)).first()
    if grid is None:
        raise InvalidInput(f"no grid with code {code!r}")
    return grid


def get_person_by_login(session: Session, login: str) -> Person:
    person = session.exec(select(Person).where(Person.login == login)).first()
    if person is None:
        raise NotFound(f"no account with login {login!r}")
    return person


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session, person: Person, now: datetime, ttl: timedelta, label: str = ""
) -> tuple[str, datetime]:
    """A new random bearer token; only its hash is stored, so it is shown exactly once."""
    assert person.id is not None
    token = "gb_" + secrets.token_urlsafe(32)
    expires_at = now + ttl
    session.add(
        ApiToken(token_hash=_token_hash(token), person_id=person.id, label=label, created_at=now, expires_at=expires_at)
    )
    return token, expires_at


def person_for_token(session: Session, token: str, now: datetime) -> Person | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    person = session.get(Person, row.person_id)
    if person is None or not person.active:
        return None
    return person


def revoke_token(session: Session, token: str, now: datetime) -> bool:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    session.add(row)
    return True


def grid_codes_served(session: Session, person: Person) -> list[str]:
    rows = session.exec(
        select(Grid.code).join(PersonGrid, col(PersonGrid.grid_id) == Grid.id).where(PersonGrid.person_id == person.id)
    ).all()
    return sorted(rows)


# ---------------------------------------------------------------------------- the sender of a chat message


@dataclass
class Sender:
    """Who sent a chat message: the columns of `people` the conversation reads, as plain values.

    Built from one row (see handlers/intake.py, which reads it together with the open draft); changes are
    written at once with one UPDATE each, never through an ORM object and a flush.
    """

    id: int
    openid: str | None  # None only for people who never wrote to the official account (mini-program users)
    name: str
    roles: list[str]
    home_grid_id: int | None
    subscribed: bool
    last_interaction_at: datetime | None


PEOPLE = table_of(Person)
SENDER_COLUMNS = (
    PEOPLE.c.id,
    PEOPLE.c.name,
    PEOPLE.c.roles,
    PEOPLE.c.home_grid_id,
    PEOPLE.c.subscribed,
    PEOPLE.c.last_interaction_at,
)
_INSERT_SENDER = insert(PEOPLE)
_TOUCH_SENDER = update(PEOPLE).where(PEOPLE.c.id == bindparam("person_id")).values(last_interaction_at=bindparam("at"))
_SUBSCRIBE_SENDER = (
    update(PEOPLE).where(PEOPLE.c.id == bindparam("person_id")).values(subscribed=bindparam("subscribed"))
)


def sender_from_row(openid: str | None, row: Sequence[Any]) -> Sender:
    """`row` starts with the values of SENDER_COLUMNS, in that order."""
    person_id, name, roles, home_grid_id, subscribed, last_interaction_at = row[: len(SENDER_COLUMNS)]
    return Sender(person_id, openid, name, list(roles or []), home_grid_id, bool(subscribed), last_interaction_at)


def new_sender(session: Session, openid: str, now: datetime) -> Sender:
    """A first message from this openid: the person is a resident from now on."""
    person_id = insert_id(
        session,
        _INSERT_SENDER,
        {
            "openid": openid,
            "name": "",
            "roles": ["resident"],
            "active": True,
            "subscribed": False,
            "created_at": now,
            "last_interaction_at": now,
        },
    )
    return Sender(person_id, openid, "", ["resident"], None, False, now)


def touch_sender(session: Session, sender: Sender, now: datetime) -> None:
    """Record when the person last wrote to us (the 48-hour customer-service window is counted from it)."""
    execute_core(session, _TOUCH_SENDER, {"person_id": sender.id, "at": now})
    sender.last_interaction_at = now


def set_subscribed(session: Session, sender: Sender, subscribed: bool) -> None:
    execute_core(session, _SUBSCRIBE_SENDER, {"person_id": sender.id, "subscribed": subscribed})
    sender.subscribed = subscribed


# ---------------------------------------------------------------------------- the mini-program's people


@dataclass(frozen=True)
class WxaLogin:
    """The person a mini-program login belongs to. `outcome`: existing | created | linked (an account we knew
    by its unionid, e.g. from the official account, now also has this mini-program openid) | merged (a
    mini-program-only person folded into the account that has the same unionid)."""

    person: Person
    outcome: str


# What a mini-program-only person can own that moves with them when they turn out to be someone we knew. The
# history (case_events.actor_id) stays as it was: it is hash-chained, and the old row is kept for it.
_MERGED_REFERENCES = (("reports", "person_id"), ("cases", "reporter_id"), ("api_tokens", "person_id"))


def person_for_wxa(session: Session, openid: str, unionid: str | None, now: datetime) -> WxaLogin:
    """Find or create the person behind a mini-program openid. A unionid that another account already has (an
    official-account follower, a staff member) makes them one person: linked, never duplicated. Roles are
    whatever the account has in the database; a new person is a resident."""
    if not openid:
        raise InvalidInput("a mini-program login needs an openid")
    known = session.exec(select(Person).where(Person.wxa_openid == openid)).first()
    same = _person_with_unionid(session, unionid, exclude=known.id if known else None) if unionid else None
    if known is not None:
        if same is not None and same.wxa_openid is None and _mergeable(session, known):
            return WxaLogin(_merge_wxa_person(session, known, same, openid, unionid), "merged")
        if unionid and known.unionid is None and same is None:
            known.unionid = unionid
            session.add(known)
        return WxaLogin(known, "existing")
    if same is not None:
        same.wxa_openid = openid  # also when it had another mini-program openid (the appid was changed)
        session.add(same)
        session.flush()
        return WxaLogin(same, "linked")
    person = Person(
        name="",
        roles=["resident"],
        wxa_openid=openid,
        unionid=unionid,
        active=True,
        subscribed=False,
        created_at=now,
        last_interaction_at=None,
    )
    try:
        with session.begin_nested():  # two first logins at once: the second finds the first's row
            session.add(person)
    except IntegrityError:
        existing = session.exec(select(Person).where(Person.wxa_openid == openid)).first()
        if existing is None:
            raise
        return WxaLogin(existing, "existing")
    return WxaLogin(person, "created")


def _person_with_unionid(session: Session, unionid: str, exclude: int | None) -> Person | None:
    query = select(Person).where(Person.unionid == unionid, col(Person.active).is_(True))
    if exclude is not None:
        query = query.where(Person.id != exclude)
    # An account with a login or an official-account openid first: that is the one people already know.
    candidates = session.exec(query.order_by(col(Person.id))).all()
    return next((p for p in candidates if p.login or p.openid), candidates[0] if candidates else None)


def _mergeable(session: Session, person: Person) -> bool:
    """Only a plain mini-program resident is folded into another account, and only when nothing but reports,
    cases and tokens point at it (sign-ups, points and staff assignments are other modules' to move). The
    references are read from the database itself, so a table added later is counted without a change here."""
    if person.openid or person.login or set(person.roles) - {"resident"}:
        return False
    movable = set(_MERGED_REFERENCES) | {("case_events", "actor_id")}
    schema = sa_inspect(session.connection())
    for table_name in schema.get_table_names():
        for fk in schema.get_foreign_keys(table_name):
            if fk["referred_table"] != "people":
                continue
            for column_name in fk["constrained_columns"]:
                if (table_name, column_name) in movable:
                    continue
                column: ColumnClause[Any] = sa_column(column_name)
                probe = sa_select(column).select_from(sa_table(table_name, column)).where(column == person.id)
                if execute_core(session, probe.limit(1)).first() is not None:
                    return False
    return True


def _merge_wxa_person(session: Session, old: Person, keep: Person, openid: str, unionid: str | None) -> Person:
    assert old.id is not None and keep.id is not None
    old.wxa_openid = None
    old.unionid = None
    old.active = False
    session.add(old)
    session.flush()  # the openid is unique: free it before the other account takes it
    tables = {t.name: t for t in Person.metadata.sorted_tables}
    for table_name, column_name in _MERGED_REFERENCES:
        column = tables[table_name].c[column_name]
        execute_core(session, update(tables[table_name]).where(column == old.id).values({column_name: keep.id}))
    keep.wxa_openid = openid
    keep.unionid = keep.unionid or unionid
    session.add(keep)
    session.flush()
    return keep
