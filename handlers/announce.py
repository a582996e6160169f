"""Posts to a grid's work group when a case moves to it: dispatch (交办), transfer (转办) and escalation (上报);
on dispatch, the department groups its subcategory concerns hear of it too (派出所 for fraud …).

act_on_case calls `announce_move` after the transition, in the same transaction, so every path that moves a case
(the staff API, chat commands, the SLA sweep) tells the group that now holds it. Only outbox rows are written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from handlers import texts
from handlers.notify import tell_grid
from models import Case, Grid, Media, Report

EXCERPT_CHARS = 80


@dataclass(frozen=True)
class Departments:
    """Department work groups that hear of a case besides its grid (fraud → the police station's group).

    `told_for` maps a subcategory to the departments told (an empty list: none); a subcategory not listed tells
    its taxonomy default department. Only departments with a channel are reached."""

    channels: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    told_for: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_of: Callable[[str | None], str | None] = lambda code: None

    def for_subcategory(self, code: str | None) -> list[tuple[str, dict[str, Any]]]:
        if code is not None and code in self.told_for:
            names: tuple[str, ...] = self.told_for[code]
        else:
            default = self.default_of(code)
            names = (default,) if default else ()
        return [(name, self.channels[name]) for name in names if name in self.channels]


@dataclass(frozen=True)
class Announcer:
    zone: ZoneInfo
    public_base_url: str
    category_name: Callable[[str | None], str | None]
    departments: Departments = field(default_factory=Departments)

    def link(self, case_no: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/m/cases/{case_no}"

    def photo_link(self, case_no: str, media_id: int | None) -> str | None:
        """The case page serves a report's photos to staff who may see the case (once downloaded)."""
        return f"{self.link(case_no)}/photos/{media_id}" if media_id is not None else None

    def when(self, moment: datetime | None) -> str:
        return texts.fmt_time(moment, self.zone) if moment is not None else "—"


def announce_move(
    session: Session, announcer: Announcer, case: Case, action: str, data: dict[str, Any], now: datetime
) -> bool:
    """The card for the grid the case now sits with; False when that grid has no work group configured."""
    grid = session.get(Grid, case.grid_id) if case.grid_id is not None else None
    if grid is None:
        return False
    category = announcer.category_name(case.subcategory)
    link = announcer.link(case.case_no)
    if action == "escalate":
        from_grid = _grid_name(session, data.get("from_grid"))
        card = texts.escalation_card(
            case.case_no, category, from_grid, case.escalation_level, announcer.when(case.accept_deadline), link
        )
    else:
        report = session.get(Report, case.report_id) if case.report_id is not None else None
        excerpt = ((report.text or report.voice_transcript or "") if report else "")[:EXCERPT_CHARS]
        card = texts.group_card(
            case.case_no,
            category,
            case.urgency == "urgent",
            (report.address if report and report.address else None) or grid.name,
            excerpt,
            announcer.when(case.accept_deadline),
            link,
            announcer.photo_link(case.case_no, first_photo(session, case.report_id)),
        )
    key = f"case:{case.id}:{action}:{case.last_event_seq}"
    told = tell_grid(session, grid, card, now, dedupe_key=key, case=case)
    if action == "dispatch":
        tell_departments(session, announcer, case, grid.name, card, now)
    return told


def tell_departments(
    session: Session, announcer: Announcer, case: Case, grid_name: str, card: str, now: datetime
) -> list[str]:
    """The departments this case's subcategory concerns hear of it once (later moves do not repeat it)."""
    told = []
    for name, channel in announcer.departments.for_subcategory(case.subcategory):
        copy = texts.department_card(name, grid_name, card)
        if tell_grid(session, _Channel(channel), copy, now, dedupe_key=f"case:{case.id}:department:{name}", case=case):
            told.append(name)
    return told


@dataclass(frozen=True)
class _Channel:
    channel: dict[str, Any] | None


def first_photo(session: Session, report_id: int | None) -> int | None:
    """The report's first photo, if it has one: the card links to it."""
    if report_id is None:
        return None
    return session.exec(
        select(Media.id).where(Media.report_id == report_id, Media.kind == "image").order_by(col(Media.id)).limit(1)
    ).first()


def _grid_name(session: Session, code: Any) -> str:
    if not code:
        return "下级网格"
    name = session.exec(select(Grid.name).where(Grid.code == str(code))).first()
    return name or str(code)
