"""The SLA sweep with a moved clock: reminders, escalation up two levels and on, 督办, suspension, digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from classifier.taxonomy import default_taxonomy
from handlers.access import SYSTEM, Actor
from handlers.announce import Announcer
from handlers.audit import verify_case
from handlers.cases import ActionInput, act_on_case, case_events
from handlers.deadlines import SweepContext, post_digests, sweep_deadlines
from handlers.errors import InvalidInput, InvalidTransition
from handlers.sla import SlaPolicy
from handlers.worktime import work_calendar
from models import Case, Grid, OutboxMessage
from tests.conftest import FakeClock
from tests.factories import actor_of, make_case, make_district, make_person

BEIJING = ZoneInfo("Asia/Shanghai")
SLA = SlaPolicy(
    accept_minutes={"urgent": 15, "normal": 30},
    resolve_hours={"urgent": 24, "normal": 40},
    supervise_every_minutes={"urgent": 60, "normal": 480},
)


@dataclass
class Office:
    session: Session
    clock: FakeClock
    ctx: SweepContext
    worker: Actor
    leader_c: Actor

    def case(self, urgent: bool = True) -> Case:
        case = make_case(self.session, self.clock(), urgent=urgent)
        act_on_case(self.session, case.case_no, "accept", SYSTEM, self.clock(), self.ctx.sla)
        act_on_case(
            self.session,
            case.case_no,
            "dispatch",
            SYSTEM,
            self.clock(),
            self.ctx.sla,
            ActionInput(grid_code="A"),
            announcer=self.ctx.announcer,
        )
        return case

    def sweep(self) -> tuple[int, int, int]:
        counts = sweep_deadlines(self.session, self.ctx, self.clock())
        self.session.flush()
        return counts.reminded, counts.escalated, counts.supervised

    def posts(self, target: str) -> list[str]:
        rows = self.session.exec(select(OutboxMessage).where(OutboxMessage.target == target)).all()
        return [str(r.payload.get("markdown") or r.payload.get("text")) for r in rows]


@pytest.fixture
def office(session: Session, clock: FakeClock) -> Office:
    make_district(session)
    for code in ("C", "S"):  # the community and the street have work groups too
        grid = session.exec(select(Grid).where(Grid.code == code)).one()
        grid.channel = {"type": "wecom_robot", "key": f"robot-{code}"}
        session.add(grid)
    worker = make_person(session, "wa", ["grid_worker"], ["A"])
    leader = make_person(session, "lc", ["grid_leader"], ["C"])
    leader.openid = "o-leader-c"
    session.add(leader)
    session.flush()
    names = default_taxonomy().name_of
    announcer = Announcer(zone=BEIJING, public_base_url="https://grid.example", category_name=names)
    ctx = SweepContext(sla=SLA, announcer=announcer)
    return Office(session, clock, ctx, actor_of(session, worker), actor_of(session, leader))


def test_the_group_is_reminded_once_three_quarters_of_the_way_to_the_deadline(office: Office) -> None:
    case = office.case()  # urgent: 15 minutes to take it
    office.clock.advance(minutes=11)
    assert office.sweep() == (0, 0, 0)
    office.clock.advance(minutes=1, seconds=30)
    assert office.sweep() == (1, 0, 0)
    assert office.sweep() == (0, 0, 0)
    [card] = office.posts("robot-A")[1:]  # the first post is the dispatch card
    assert "即将超时" in card and case.case_no in card and "接单" in card


def test_a_case_nobody_takes_climbs_two_levels_and_stops_at_the_top(office: Office) -> None:
    case = office.case()
    office.clock.advance(minutes=16)
    assert office.sweep()[1] == 1
    assert (case.status, case.escalation_level) == ("escalated", 1)
    assert case.grid_id == office.session.exec(select(Grid.id).where(Grid.code == "C")).one()
    [card] = office.posts("robot-C")
    assert "超时上报" in card and "网格A" in card
    [notice] = office.posts("o-leader-c")
    assert case.case_no in notice
    assert office.sweep()[1] == 0  # the community's own clock has just started
    office.clock.advance(minutes=16)
    assert office.sweep()[1] == 1
    assert case.escalation_level == 2 and "网格C" in office.posts("robot-S")[0]
    office.clock.advance(minutes=16)
    office.sweep()
    assert case.escalation_level == 3  # the district
    office.clock.advance(minutes=16)
    assert office.sweep()[1] == 0  # no grid above the district: it stays in the overdue list
    assert [e.action for e in case_events(office.session, case)].count("escalate") == 3
    assert verify_case(case, case_events(office.session, case)) is None


def test_a_leader_above_can_take_an_escalated_case(office: Office) -> None:
    case = office.case()
    office.clock.advance(minutes=16)
    office.sweep()
    act_on_case(office.session, case.case_no, "take", office.leader_c, office.clock(), SLA)
    assert case.status == "taken"


def test_an_overdue_resolution_is_supervised_up_the_chain_while_the_grid_keeps_the_case(office: Office) -> None:
    case = office.case()
    act_on_case(office.session, case.case_no, "take", office.worker, office.clock(), SLA)
    office.clock.advance(hours=24, minutes=1)
    assert office.sweep() == (0, 0, 1)
    assert (case.status, case.supervision_level) == ("taken", 1)
    assert "超时督办" in office.posts("robot-C")[0]
    assert office.sweep() == (0, 0, 0)
    office.clock.advance(minutes=61)
    assert office.sweep() == (0, 0, 1)
    assert case.supervision_level == 2 and "超时督办" in office.posts("robot-S")[0]
    levels = [e.data["level"] for e in case_events(office.session, case) if e.action == "supervise"]
    assert levels == [1, 2]
    act_on_case(office.session, case.case_no, "resolve", office.worker, office.clock(), SLA, ActionInput(note="已修复"))
    assert case.next_supervision_at is None
    office.clock.advance(hours=5)
    assert office.sweep() == (0, 0, 0)


def test_a_suspended_case_stops_its_clock_and_gets_the_time_back_on_resumption(office: Office) -> None:
    case = office.case()
    act_on_case(office.session, case.case_no, "take", office.worker, office.clock(), SLA)
    office.clock.advance(hours=1)
    with pytest.raises(InvalidInput, match="note"):
        act_on_case(office.session, case.case_no, "suspend", office.worker, office.clock(), SLA)
    with pytest.raises(InvalidTransition):
        act_on_case(office.session, case.case_no, "resume", office.worker, office.clock(), SLA)
    note = ActionInput(note="等待燃气公司上门")
    act_on_case(office.session, case.case_no, "suspend", office.worker, office.clock(), SLA, note)
    assert case.resolve_deadline is None and case.suspended_at == office.clock()
    with pytest.raises(InvalidTransition, match="suspended"):
        act_on_case(office.session, case.case_no, "suspend", office.worker, office.clock(), SLA, note)
    office.clock.advance(hours=40)
    assert office.sweep() == (0, 0, 0)  # nothing is overdue while suspended
    act_on_case(office.session, case.case_no, "resume", office.worker, office.clock(), SLA)
    assert case.resolve_deadline == office.clock() + timedelta(hours=23)
    actions = [e.action for e in case_events(office.session, case)]
    assert actions[-2:] == ["suspend", "resume"] and case.status == "taken"


def test_suspension_keeps_working_time_across_a_weekend(session: Session) -> None:
    make_district(session)
    sla = SlaPolicy(calendar=work_calendar(BEIJING, ["09:00-12:00", "13:00-18:00"]))
    friday = datetime(2025, 3, 7, 9, 0, tzinfo=BEIJING)
    case = make_case(session, friday)
    act_on_case(session, case.case_no, "accept", SYSTEM, friday, sla)
    act_on_case(session, case.case_no, "dispatch", SYSTEM, friday, sla, ActionInput(grid_code="A"))
    assert case.resolve_deadline == datetime(2025, 3, 13, 18, 0, tzinfo=BEIJING)  # 40 working hours
    afternoon = datetime(2025, 3, 7, 17, 0, tzinfo=BEIJING)  # 7 working hours spent (lunch 12–13), 33 left
    worker = actor_of(session, make_person(session, "w", ["grid_worker"], ["A"]))
    act_on_case(session, case.case_no, "take", worker, afternoon, sla)
    act_on_case(session, case.case_no, "suspend", worker, afternoon, sla, ActionInput(note="等物业"))
    assert case.resolve_left_minutes == pytest.approx(33 * 60)
    tuesday = datetime(2025, 3, 11, 9, 0, tzinfo=BEIJING)
    act_on_case(session, case.case_no, "resume", worker, tuesday, sla)
    # Tuesday to Friday give 32 of the 33 hours; the last one is Monday 17 March, 09:00–10:00
    assert case.resolve_deadline == datetime(2025, 3, 17, 10, 0, tzinfo=BEIJING)


def test_the_daily_digest_is_posted_once_per_group_and_day(office: Office) -> None:
    first = office.case()
    act_on_case(office.session, first.case_no, "take", office.worker, office.clock(), SLA)
    act_on_case(
        office.session, first.case_no, "resolve", office.worker, office.clock(), SLA, ActionInput(note="已处理")
    )
    office.case()  # still waiting to be taken
    office.clock.now = office.clock.now + timedelta(days=1)
    assert post_digests(office.session, office.ctx, office.clock()) == 3  # A, and C and S above it; B: nothing
    assert post_digests(office.session, office.ctx, office.clock()) == 0  # a second run owes nothing new
    [digest] = [p for p in office.posts("robot-A") if "每日简报" in p]
    assert "新增：2" in digest and "办结：1" in digest and "在办：1" in digest and "超时：1" in digest
    assert not [p for p in office.posts("robot-B") if "每日简报" in p]
