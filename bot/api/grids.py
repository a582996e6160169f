"""Grids: the hierarchy and point location."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlmodel import select

from bot.api.presenters import grid_public
from bot.api.schemas import ErrorBody, GridPublic
from bot.deps import CallerDep, SessionDep
from handlers.grids import GridIndex
from models import Grid

router = APIRouter(prefix="/api/v1/grids", tags=["grids"])


@router.get("", response_model=list[GridPublic])
def list_grids(caller: CallerDep, session: SessionDep) -> list[GridPublic]:
    grids = session.exec(select(Grid).order_by(Grid.code)).all()
    by_id = {g.id: g for g in grids if g.id is not None}
    return [grid_public(g, by_id) for g in grids]


@router.get("/locate", response_model=list[GridPublic], responses={404: {"model": ErrorBody}})
def locate(
    caller: CallerDep,
    session: SessionDep,
    lng: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    crs: Annotated[str, Query(pattern="^(gcj02|wgs84)$")] = "gcj02",
) -> list[GridPublic]:
    """The grids holding a point, smallest first. Coordinates are GCJ-02 unless crs=wgs84."""
    chain = GridIndex.from_session(session).locate(lng, lat, crs)
    if not chain:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail={"error": "not_found", "message": "the point is outside every grid"}
        )
    grids = {g.id: g for g in session.exec(select(Grid)).all()}
    return [grid_public(grids[entry.id], grids) for entry in chain]
