"""Points over HTTP: one's balance and ledger, admins' adjustments, leaderboards, the 爱心超市 (items,
redemptions, hand-over, cancellation). Thin routes over handlers/points.py and handlers/redemption.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from bot.api.schemas import ErrorBody
from bot.config import Settings
from bot.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from handlers import texts
from handlers.access import Actor, descendant_grid_ids
from handlers.activities import grid_by_code
from handlers.points import (
    PointsRules,
    adjust_points,
    balance_of,
    current_month,
    entries_of,
    leaderboard,
    month_bounds,
)
from handlers.redemption import (
    ItemChanges,
    cancel_redemption,
    change_item,
    create_item,
    hand_over,
    list_items,
    list_redemptions,
    redeem,
)
from models import Grid, Person, PointsEntry, Redemption, RedemptionItem

router = APIRouter(prefix="/api/v1/points", tags=["points"])

REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    403: {"model": ErrorBody, "description": "the caller may not do this (role or grid)"},
    404: {"model": ErrorBody, "description": "no such person, item or redemption"},
    409: {"model": ErrorBody, "description": "not enough points or stock, or not in a state for this"},
    422: {"model": ErrorBody, "description": "invalid input"},
}


def points_rules(settings: Settings) -> PointsRules:
    return PointsRules(report_resolved=settings.points.report_resolved, max_adjustment=settings.points.max_adjustment)


# ---------------------------------------------------------------------------- shapes


class EntryPublic(BaseModel):
    id: int
    delta: int
    reason: str
    source: str = Field(description="activity | report | redemption | manual")
    source_ref: str | None = Field(description="activity id, case number or redemption id")
    note: str
    created_at: datetime


class LedgerPublic(BaseModel):
    balance: int = Field(description="the sum of every entry")
    entries: list[EntryPublic] = Field(description="newest first")


class AdjustmentRequest(BaseModel):
    person_id: int
    delta: int = Field(description="points to add (negative: take away); never below a zero balance")
    note: str = Field(min_length=1, max_length=500, description="why")
    idempotency_key: str | None = Field(default=None, max_length=100, description="the same key again: one entry")


class AdjustmentResult(BaseModel):
    entry: EntryPublic
    balance: int


class Standing(BaseModel):
    rank: int
    name: str = Field(description="masked: the first character only")
    points: int
    me: bool


class Leaderboard(BaseModel):
    grid: str | None = Field(description="the grid (with every grid below it), or null for the whole platform")
    month: str | None = Field(description="YYYY-MM in Beijing time, or null for all-time")
    standings: list[Standing]


class ItemPublic(BaseModel):
    id: int
    grid: str
    name: str
    description: str
    price: int
    stock: int
    active: bool


class ItemCreate(BaseModel):
    grid: str
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)
    price: int = Field(ge=1)
    stock: int = Field(ge=0)


class ItemChange(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    price: int | None = Field(default=None, ge=1)
    add_stock: int | None = Field(default=None, description="restock (negative: write off)")
    active: bool | None = None


class RedeemRequest(BaseModel):
    quantity: int = Field(default=1, ge=1)
    idempotency_key: str | None = Field(default=None, max_length=100, description="the same key again: one redemption")


class RedemptionPublic(BaseModel):
    id: int
    item_id: int
    item: str
    person_id: int
    quantity: int
    points: int
    status: str = Field(description="pending | handed_over | cancelled")
    created_at: datetime
    handed_over_at: datetime | None
    cancelled_at: datetime | None
    balance: int | None = Field(default=None, description="the redeemer's balance afterwards (their own calls)")


class CancelRequest(BaseModel):
    reason: str = Field(default="", max_length=500)


def entry_public(entry: PointsEntry) -> EntryPublic:
    assert entry.id is not None
    return EntryPublic(
        id=entry.id,
        delta=entry.delta,
        reason=entry.reason,
        source=entry.source,
        source_ref=entry.source_ref,
        note=entry.note,
        created_at=entry.created_at,
    )


def mask_name(name: str) -> str:
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else (name or texts.ANONYMOUS_VOLUNTEER)


def items_public(session: Session, items: list[RedemptionItem]) -> list[ItemPublic]:
    codes = dict(session.exec(select(Grid.id, Grid.code).where(col(Grid.id).in_({i.grid_id for i in items}))).all())
    return [
        ItemPublic(
            **i.model_dump(include={"id", "name", "description", "price", "stock", "active"}), grid=codes[i.grid_id]
        )
        for i in items
    ]


def redemptions_public(session: Session, rows: list[Redemption], balance: int | None = None) -> list[RedemptionPublic]:
    names = dict(
        session.exec(
            select(RedemptionItem.id, RedemptionItem.name).where(col(RedemptionItem.id).in_({r.item_id for r in rows}))
        ).all()
    )
    fields = {
        "id",
        "item_id",
        "person_id",
        "quantity",
        "points",
        "status",
        "created_at",
        "handed_over_at",
        "cancelled_at",
    }
    return [RedemptionPublic(**r.model_dump(include=fields), item=names[r.item_id], balance=balance) for r in rows]


def _person_id(actor: Actor) -> int:
    if actor.person_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={"error": "forbidden", "message": "no person"})
    return actor.person_id


def _managed_grids(session: Session, actor: Actor, grid: str | None) -> set[int] | None:
    """The grids whose 爱心超市 this caller manages (None: all, for admins), narrowed to `grid` when given."""
    scope: set[int] | None = None
    if grid is not None:
        found = grid_by_code(session, grid)
        assert found.id is not None
        scope = descendant_grid_ids(session, [found.id])
    if "admin" in actor.roles:
        return scope
    if "grid_leader" not in actor.roles:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail={"error": "forbidden", "message": "only grid leaders and admins see others' redemptions"},
        )
    return set(actor.grid_ids) if scope is None else scope & set(actor.grid_ids)


# ---------------------------------------------------------------------------- ledger


@router.get("/me", response_model=LedgerPublic, responses=REFUSALS)
def my_points(
    caller: CallerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LedgerPublic:
    """The caller's balance (always the sum of the ledger) and their entries, newest first."""
    person_id = _person_id(caller.actor)
    return LedgerPublic(
        balance=balance_of(session, person_id),
        entries=[entry_public(e) for e in entries_of(session, person_id, limit=limit, offset=offset)],
    )


@router.get("/people/{person_id}", response_model=LedgerPublic, responses=REFUSALS)
def person_points(
    person_id: int,
    caller: CallerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LedgerPublic:
    """Anyone's ledger, for admins."""
    if "admin" not in caller.actor.roles:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail={"error": "forbidden", "message": "only admins see others' ledgers"}
        )
    if session.get(Person, person_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail={"error": "not_found", "message": "no such person"})
    return LedgerPublic(
        balance=balance_of(session, person_id),
        entries=[entry_public(e) for e in entries_of(session, person_id, limit=limit, offset=offset)],
    )


@router.post("/adjustments", response_model=AdjustmentResult, status_code=status.HTTP_201_CREATED, responses=REFUSALS)
def post_adjustment(
    body: AdjustmentRequest,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> AdjustmentResult:
    """A manual adjustment by an admin, with a note. 201 when new, 200 for a repeat of the same key."""
    entry, new = adjust_points(
        session,
        caller.actor,
        body.person_id,
        body.delta,
        body.note,
        clock(),
        points_rules(settings),
        body.idempotency_key,
    )
    balance = balance_of(session, body.person_id)
    session.commit()
    if not new:
        response.status_code = status.HTTP_200_OK
    return AdjustmentResult(entry=entry_public(entry), balance=balance)


@router.get("/leaderboard", response_model=Leaderboard, responses=REFUSALS)
def get_leaderboard(
    caller: CallerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    grid: Annotated[str | None, Query(description="a grid or community code (with every grid below it)")] = None,
    month: Annotated[
        str | None, Query(pattern=r"^(\d{4}-\d{2}|current)$", description="YYYY-MM or current; omit for all-time")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    """Points earned (activities, reports, adjustments; not spending), most first."""
    grid_id = None
    if grid is not None:
        grid_id = grid_by_code(session, grid).id
    if month == "current":
        month = current_month(clock(), settings.zone)
    between = month_bounds(month, settings.zone) if month is not None else None
    rows = leaderboard(session, grid_id=grid_id, between=between, limit=limit)
    return Leaderboard(
        grid=grid,
        month=month,
        standings=[
            Standing(rank=r.rank, name=mask_name(r.name), points=r.points, me=r.person_id == caller.actor.person_id)
            for r in rows
        ],
    )


# ---------------------------------------------------------------------------- 爱心超市


@router.get("/items", response_model=list[ItemPublic], responses=REFUSALS)
def get_items(
    caller: CallerDep,
    session: SessionDep,
    grid: Annotated[str | None, Query(description="this grid and the grids below it")] = None,
    include_inactive: bool = False,
) -> list[ItemPublic]:
    grid_ids = None
    if grid is not None:
        found = grid_by_code(session, grid)
        assert found.id is not None
        grid_ids = descendant_grid_ids(session, [found.id])
    return items_public(session, list_items(session, grid_ids, include_inactive=include_inactive))


@router.post("/items", response_model=ItemPublic, status_code=status.HTTP_201_CREATED, responses=REFUSALS)
def post_item(body: ItemCreate, caller: CallerDep, session: SessionDep, clock: ClockDep) -> ItemPublic:
    """A new item (grid leaders for their grids, admins anywhere)."""
    item = create_item(
        session, caller.actor, body.grid, body.name, body.price, body.stock, clock(), description=body.description
    )
    session.commit()
    return items_public(session, [item])[0]


@router.patch("/items/{item_id}", response_model=ItemPublic, responses=REFUSALS)
def patch_item(item_id: int, body: ItemChange, caller: CallerDep, session: SessionDep, clock: ClockDep) -> ItemPublic:
    item = change_item(session, caller.actor, item_id, ItemChanges(**body.model_dump()), clock())
    session.commit()
    return items_public(session, [item])[0]


@router.post("/items/{item_id}/redemptions", response_model=RedemptionPublic, responses=REFUSALS)
def post_redemption(
    item_id: int, body: RedeemRequest, caller: CallerDep, session: SessionDep, clock: ClockDep
) -> RedemptionPublic:
    """Redeem points for an item: points and stock debited together, never below zero. A repeat of the same
    idempotency key returns the first redemption."""
    redemption, _ = redeem(
        session, caller.actor, item_id, clock(), quantity=body.quantity, client_key=body.idempotency_key
    )
    balance = balance_of(session, redemption.person_id)  # under the person's lock: this redemption's own result
    session.commit()
    return redemptions_public(session, [redemption], balance)[0]


def _own_balance(session: Session, actor: Actor, redemption: Redemption) -> int | None:
    return balance_of(session, redemption.person_id) if redemption.person_id == actor.person_id else None


@router.get("/redemptions/mine", response_model=list[RedemptionPublic], responses=REFUSALS)
def my_redemptions(
    caller: CallerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[RedemptionPublic]:
    rows = list_redemptions(session, person_id=_person_id(caller.actor), limit=limit, offset=offset)
    return redemptions_public(session, rows)


@router.get("/redemptions", response_model=list[RedemptionPublic], responses=REFUSALS)
def get_redemptions(
    caller: CallerDep,
    session: SessionDep,
    grid: str | None = None,
    status_: Annotated[str | None, Query(alias="status", pattern="^(pending|handed_over|cancelled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[RedemptionPublic]:
    """Redemptions of the items a leader manages (admins: all), e.g. status=pending for the hand-over desk."""
    grid_ids = _managed_grids(session, caller.actor, grid)
    rows = list_redemptions(session, grid_ids=grid_ids, status=status_, limit=limit, offset=offset)
    return redemptions_public(session, rows)


@router.post("/redemptions/{redemption_id}/handover", response_model=RedemptionPublic, responses=REFUSALS)
def post_handover(redemption_id: int, caller: CallerDep, session: SessionDep, clock: ClockDep) -> RedemptionPublic:
    """A leader marks the item handed over."""
    redemption = hand_over(session, caller.actor, redemption_id, clock())
    session.commit()
    return redemptions_public(session, [redemption])[0]


@router.post("/redemptions/{redemption_id}/cancel", response_model=RedemptionPublic, responses=REFUSALS)
def post_cancel_redemption(
    redemption_id: int, body: CancelRequest, caller: CallerDep, session: SessionDep, clock: ClockDep
) -> RedemptionPublic:
    """Cancel a redemption not yet handed over (the redeemer, or a leader/admin): stock back, points refunded."""
    redemption = cancel_redemption(session, caller.actor, redemption_id, body.reason, clock())
    balance = _own_balance(session, caller.actor, redemption)
    session.commit()
    return redemptions_public(session, [redemption], balance)[0]
