"""Where a report belongs: its point in a grid polygon, else a place name in a grid's gazetteer, else the
reporter's home grid, else the operators' queue with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from handlers.grids import GridIndex
from models import Grid, Report


@dataclass(frozen=True)
class Placement:
    grid: Grid | None
    method: str  # point | gazetteer | home | none
    reason: str | None = None  # why nothing was found, for the operators' queue


def place_report(session: Session, report: Report, index: GridIndex, home_grid_id: int | None) -> Placement:
    if report.lng is not None and report.lat is not None:
        chain = index.locate(report.lng, report.lat, report.crs)
        if chain:
            return Placement(session.get(Grid, chain[0].id), "point")
        return Placement(None, "none", "the point is outside every grid")
    named = index.match_names(" ".join(filter(None, [report.text, report.address])))
    if named is not None:
        return Placement(session.get(Grid, named.id), "gazetteer")
    if home_grid_id is not None:
        return Placement(session.get(Grid, home_grid_id), "home")
    return Placement(None, "none", "no location and no known place name")
