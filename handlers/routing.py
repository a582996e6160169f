"""Where a report belongs: its point in a grid polygon, else a place name in a grid's gazetteer, else the
reporter's home grid, else the operators' queue with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from handlers.grids import LEVEL_DEPTH, GridIndex
from models import Grid, Person, Report


@dataclass(frozen=True)
class Placement:
    grid: Grid | None
    method: str  # point | gazetteer | home | none
    reason: str | None = None  # why nothing was found, for the operators' queue


def place_report(session: Session, report: Report, index: GridIndex, person: Person | None) -> Placement:
    if report.lng is not None and report.lat is not None:
        chain = index.locate(report.lng, report.lat, report.crs)
        if chain:
            return Placement(session.get(Grid, chain[0].id), "point")
        return Placement(None, "none", "the point is outside every grid")
    grid = match_gazetteer(session, " ".join(filter(None, [report.text, report.address])))
    if grid is not None:
        return Placement(grid, "gazetteer")
    if person is not None and person.home_grid_id is not None:
        return Placement(session.get(Grid, person.home_grid_id), "home")
    return Placement(None, "none", "no location and no known place name")


def match_gazetteer(session: Session, text: str) -> Grid | None:
    """The most specific grid one of whose names occurs in the text; None when two equally specific differ."""
    if not text:
        return None
    hits = [grid for grid in session.exec(select(Grid)).all() if any(name and name in text for name in grid.gazetteer)]
    if not hits:
        return None

    def rank(grid: Grid) -> tuple[int, int]:
        return (0 if grid.kind == "dedicated" else 1, -LEVEL_DEPTH.get(grid.level, 0))

    hits.sort(key=rank)
    if len(hits) > 1 and rank(hits[0]) == rank(hits[1]):
        return None
    return hits[0]
