"""Where a report belongs: its point in a grid polygon, else a place name in a grid's gazetteer, else the
reporter's home grid, else the operators' queue with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlmodel import Session

from handlers.grids import GridIndex
from models import Grid
from models.db import execute_core
from models.types import table_of


@dataclass(frozen=True)
class PlacedGrid:
    """The grid a report was placed in: what dispatch and the group card need (no polygon)."""

    id: int
    code: str
    name: str
    channel: dict[str, Any] | None


@dataclass(frozen=True)
class Placement:
    grid: PlacedGrid | None
    method: str  # point | gazetteer | home | none
    reason: str | None = None  # why nothing was found, for the operators' queue


_GRIDS = table_of(Grid)
_PLACED_GRID = select(_GRIDS.c.id, _GRIDS.c.code, _GRIDS.c.name, _GRIDS.c.channel).where(
    _GRIDS.c.id == bindparam("grid_id")
)


def _placed(session: Session, grid_id: int, method: str) -> Placement:
    row = execute_core(session, _PLACED_GRID, {"grid_id": grid_id}).first()
    if row is None:  # the index is older than a grid's deletion
        return Placement(None, "none", f"grid {grid_id} no longer exists")
    found: tuple[Any, ...] = tuple(row)
    return Placement(PlacedGrid(*found), method)


def place_report(
    session: Session,
    index: GridIndex,
    *,
    lng: float | None,
    lat: float | None,
    crs: str,
    text: str,
    address: str | None,
    home_grid_id: int | None,
) -> Placement:
    if lng is not None and lat is not None:
        chain = index.locate(lng, lat, crs)
        if chain:
            return _placed(session, chain[0].id, "point")
        return Placement(None, "none", "the point is outside every grid")
    named = index.match_names(" ".join(filter(None, [text, address])))
    if named is not None:
        return _placed(session, named.id, "gazetteer")
    if home_grid_id is not None:
        return _placed(session, home_grid_id, "home")
    return Placement(None, "none", "no location and no known place name")
