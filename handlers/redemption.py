"""The 爱心超市: items for points, redeemed against the ledger, handed over by a leader, cancelled with a refund.

Redeeming locks the person's row, then the item's (always in that order, so two redemptions never wait on each
other crosswise), checks the balance and the stock under those locks, and writes the redemption, the lower stock and
the ledger's debit in the caller's one transaction: both or neither, and never below zero. A cancelled redemption
puts the stock back and refunds through a ledger entry of its own; nothing in the ledger is changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from handlers import texts
from handlers.access import Actor
from handlers.activities import grid_by_code
from handlers.errors import Conflict, Forbidden, InvalidInput, NotFound
from handlers.points import append_entry, client_key_part, ensure_affordable, lock_person
from models import Grid, Redemption, RedemptionItem

MAX_QUANTITY = 20
MAX_PRICE = 100_000
MAX_STOCK = 100_000


class OutOfStock(Conflict):
    code = "out_of_stock"


class ItemUnavailable(Conflict):
    code = "item_unavailable"


def _notice(key: str) -> str:
    return texts.POINTS_NOTICES[key]


def ensure_manager(session: Session, actor: Actor, grid_id: int) -> None:
    """Admins anywhere; grid leaders for the grids they serve and those below."""
    if "admin" in actor.roles or ("grid_leader" in actor.roles and grid_id in actor.grid_ids):
        return
    grid = session.get(Grid, grid_id)
    raise Forbidden(
        f"{actor.name or 'this account'} does not manage the 爱心超市 of grid {grid.code if grid else grid_id}",
        notice=_notice("not_manager"),
    )


def get_item(session: Session, item_id: int, *, lock: bool = False) -> RedemptionItem:
    query = select(RedemptionItem).where(RedemptionItem.id == item_id)
    item = session.exec(query.with_for_update() if lock else query).first()
    if item is None:
        raise NotFound(f"no item with id {item_id}", item_id=item_id)
    return item


def get_redemption(session: Session, redemption_id: int, *, lock: bool = False) -> Redemption:
    query = select(Redemption).where(Redemption.id == redemption_id)
    found = session.exec(query.with_for_update() if lock else query).first()
    if found is None:
        raise NotFound(f"no redemption with id {redemption_id}", redemption_id=redemption_id)
    return found


@dataclass(frozen=True)
class ItemChanges:
    name: str | None = None
    description: str | None = None
    price: int | None = None
    add_stock: int | None = None  # restock (or write off, negative); never below zero
    active: bool | None = None


def _check_item(item: RedemptionItem) -> None:
    item.name = item.name.strip()
    item.description = item.description.strip()
    if not 1 <= len(item.name) <= 100 or len(item.description) > 500:
        raise InvalidInput("name must be 1–100 characters, description at most 500")
    if not 1 <= item.price <= MAX_PRICE:
        raise InvalidInput(f"price must be 1–{MAX_PRICE} points")
    if not 0 <= item.stock <= MAX_STOCK:
        raise InvalidInput(f"stock must be 0–{MAX_STOCK}")


def create_item(
    session: Session,
    actor: Actor,
    grid_code: str,
    name: str,
    price: int,
    stock: int,
    now: datetime,
    description: str = "",
) -> RedemptionItem:
    grid = grid_by_code(session, grid_code)
    assert grid.id is not None
    ensure_manager(session, actor, grid.id)
    item = RedemptionItem(
        grid_id=grid.id,
        name=name,
        description=description,
        price=price,
        stock=stock,
        created_by=actor.person_id,
        created_at=now,
        updated_at=now,
    )
    _check_item(item)
    session.add(item)
    session.flush()
    return item


def change_item(session: Session, actor: Actor, item_id: int, changes: ItemChanges, now: datetime) -> RedemptionItem:
    """Rename, reprice, restock (relative, so it cannot lose a redemption made meanwhile), list or delist."""
    item = get_item(session, item_id, lock=True)
    ensure_manager(session, actor, item.grid_id)
    if changes.add_stock is not None and item.stock + changes.add_stock < 0:
        raise Conflict(f"only {item.stock} in stock; cannot take away {-changes.add_stock}", stock=item.stock)
    draft = RedemptionItem.model_validate(item.model_dump())
    for name in ("name", "description", "price", "active"):
        if getattr(changes, name) is not None:
            setattr(draft, name, getattr(changes, name))
    draft.stock = item.stock + (changes.add_stock or 0)
    _check_item(draft)
    for name in ("name", "description", "price", "active", "stock"):
        setattr(item, name, getattr(draft, name))
    item.updated_at = now
    session.add(item)
    session.flush()
    return item


def list_items(session: Session, grid_ids: set[int] | None, *, include_inactive: bool = False) -> list[RedemptionItem]:
    query = select(RedemptionItem)
    if grid_ids is not None:
        query = query.where(col(RedemptionItem.grid_id).in_(grid_ids))
    if not include_inactive:
        query = query.where(col(RedemptionItem.active))
    return list(session.exec(query.order_by(col(RedemptionItem.price), col(RedemptionItem.id))).all())


def redeem(
    session: Session,
    actor: Actor,
    item_id: int,
    now: datetime,
    *,
    quantity: int = 1,
    client_key: str | None = None,
) -> tuple[Redemption, bool]:
    """Debit the points and the stock together. → (the redemption, whether it is new): the same idempotency key
    again returns the first redemption and debits nothing."""
    if actor.person_id is None:
        raise Forbidden("the system does not redeem points")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(f"quantity must be 1–{MAX_QUANTITY}")
    key = f"redeem:{actor.person_id}:{client_key_part(client_key)}"
    lock_person(session, actor.person_id)
    existing = session.exec(select(Redemption).where(Redemption.idempotency_key == key)).first()
    if existing is not None:
        if (existing.item_id, existing.quantity) != (item_id, quantity):
            raise Conflict("this idempotency key was used for another redemption", idempotency_key=client_key)
        return existing, False
    item = get_item(session, item_id, lock=True)
    if not item.active:
        raise ItemUnavailable(f"item {item_id} is not offered any more", notice=_notice("item_unavailable"))
    if item.stock < quantity:
        raise OutOfStock(
            f"{item.stock} left of item {item_id}; {quantity} asked", stock=item.stock, notice=_notice("out_of_stock")
        )
    cost = item.price * quantity
    ensure_affordable(session, actor.person_id, cost, _notice("insufficient_points"))
    item.stock -= quantity
    item.updated_at = now
    session.add(item)
    redemption = Redemption(
        item_id=item_id,
        person_id=actor.person_id,
        quantity=quantity,
        points=cost,
        status="pending",
        idempotency_key=key,
        created_at=now,
    )
    session.add(redemption)
    session.flush()
    append_entry(
        session,
        person_id=actor.person_id,
        delta=-cost,
        reason=texts.redemption_reason(item.name, quantity),
        source="redemption",
        key=f"redemption:{redemption.id}",
        now=now,
        source_ref=str(redemption.id),
        actor_id=actor.person_id,
        grid_id=item.grid_id,
    )
    return redemption, True


def hand_over(session: Session, actor: Actor, redemption_id: int, now: datetime) -> Redemption:
    """A leader gives the item out. Twice: once."""
    redemption = get_redemption(session, redemption_id, lock=True)
    item = get_item(session, redemption.item_id)
    ensure_manager(session, actor, item.grid_id)
    if redemption.status == "handed_over":
        return redemption
    if redemption.status == "cancelled":
        raise Conflict(f"redemption {redemption_id} was cancelled", notice=_notice("cancelled"))
    redemption.status, redemption.handed_over_at, redemption.handed_over_by = "handed_over", now, actor.person_id
    session.add(redemption)
    session.flush()
    return redemption


def cancel_redemption(session: Session, actor: Actor, redemption_id: int, reason: str, now: datetime) -> Redemption:
    """The person (or a manager) cancels a redemption not yet handed over: stock back, points refunded by a new
    entry. Twice: once."""
    redemption = get_redemption(session, redemption_id, lock=True)
    item = get_item(session, redemption.item_id, lock=True)
    if redemption.person_id != actor.person_id:
        ensure_manager(session, actor, item.grid_id)
    if redemption.status == "cancelled":
        return redemption
    if redemption.status == "handed_over":
        raise Conflict(f"redemption {redemption_id} was handed over", notice=_notice("already_handed_over"))
    redemption.status, redemption.cancelled_at, redemption.cancelled_by = "cancelled", now, actor.person_id
    redemption.cancel_reason = reason.strip()[:500] or None
    item.stock += redemption.quantity
    item.updated_at = now
    session.add_all([redemption, item])
    session.flush()
    append_entry(
        session,
        person_id=redemption.person_id,
        delta=redemption.points,
        reason=texts.refund_reason(item.name, redemption.quantity),
        source="redemption",
        key=f"redemption:{redemption.id}:refund",
        now=now,
        source_ref=str(redemption.id),
        actor_id=actor.person_id,
        grid_id=item.grid_id,
    )
    return redemption


def list_redemptions(
    session: Session,
    *,
    person_id: int | None = None,
    grid_ids: set[int] | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Redemption]:
    query = select(Redemption)
    if person_id is not None:
        query = query.where(Redemption.person_id == person_id)
    if grid_ids is not None:
        query = query.join(RedemptionItem, col(RedemptionItem.id) == col(Redemption.item_id)).where(
            col(RedemptionItem.grid_id).in_(grid_ids)
        )
    if status is not None:
        query = query.where(Redemption.status == status)
    query = query.order_by(col(Redemption.created_at).desc(), col(Redemption.id).desc()).offset(offset).limit(limit)
    return list(session.exec(query).all())
