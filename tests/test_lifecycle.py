"""The transition table, applied directly to the domain: every allowed move, refused moves, roles, replay."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlmodel import Session, select

from handlers.access import SYSTEM, Actor
from handlers.audit import replay_states, verify_case
from handlers.cases import ActionInput, act_on_case, case_events, get_case
from handlers.errors import Forbidden, InvalidInput, InvalidTransition
from handlers.lifecycle import ACTIONS, STATE_TIMESTAMPS, TRANSITIONS, Status, allowed_from
from handlers.sla import SlaPolicy
from models import Case, CaseEvent, Grid
from tests.conftest import FakeClock
from tests.factories import actor_of, make_case, make_district, make_person

SLA = SlaPolicy()


@dataclass
class World:
    session: Session
    actors: dict[str, Actor]
    reporter_id: int
    grid_ids: dict[str, int]


@pytest.fixture
def world(session: Session) -> World:
    make_district(session)
    people = {
        "operator": make_person(session, "op", ["operator"]),
        "admin": make_person(session, "adm", ["admin"]),
        "grid_worker": make_person(session, "wa", ["grid_worker"], ["A"]),
        "grid_leader": make_person(session, "lc", ["grid_leader"], ["C"]),
        "resident": make_person(session, "res", ["resident"]),
        "worker_b": make_person(session, "wb", ["grid_worker"], ["B"]),
    }
    actors = {role: actor_of(session, person) for role, person in people.items()}
    actors["system"] = SYSTEM
    grids = {g.code: g.id for g in session.exec(select(Grid)).all()}
    assert people["resident"].id is not None
    return World(session, actors, people["resident"].id, grids)  # type: ignore[arg-type]


def case_in_state(world: World, clock: FakeClock, state: Status) -> Case:
    """A case of the resident in grid A, placed in `state` (the table is under test, not the path to it)."""
    reporter = world.session.get_one(__import__("models").Person, world.reporter_id)
    case = make_case(world.session, clock(), reporter=reporter)
    case.grid_id = world.grid_ids["A"]
    case.status = state.value
    world.session.add(case)
    world.session.flush()
    return case


def params_for(world: World, clock: FakeClock, action: str) -> ActionInput:
    if action == "dispatch":
        return ActionInput(grid_code="A")
    if action == "transfer":
        return ActionInput(grid_code="B", note="不属于本网格")
    if action == "rate":
        return ActionInput(rating=4)
    if action == "merge":
        other = make_case(world.session, clock(), text="同一个井盖")
        return ActionInput(merge_into=other.case_no)
    return ActionInput(note="处理说明")


ALLOWED = [
    pytest.param(t.action, source, role, t.target, id=f"{t.action}-{source.value}-{role}")
    for t in TRANSITIONS
    for source in sorted(t.sources)
    for role in sorted(t.roles)
]


@pytest.mark.parametrize(("action", "source", "role", "target"), ALLOWED)
def test_every_allowed_transition_moves_the_case_and_records_one_event(
    world: World, clock: FakeClock, action: str, source: Status, role: str, target: Status
) -> None:
    case = case_in_state(world, clock, source)
    before = len(case_events(world.session, case))
    params = params_for(world, clock, action)
    clock.advance(minutes=5)

    act_on_case(world.session, case.case_no, action, world.actors[role], clock(), SLA, params)

    assert case.status == target.value
    events = case_events(world.session, case)
    assert len(events) == before + 1
    last = events[-1]
    assert (last.action, last.from_status, last.to_status, last.actor_role) == (action, source.value, target, role)
    assert last.created_at == clock()
    if target in STATE_TIMESTAMPS:
        assert getattr(case, STATE_TIMESTAMPS[target]) == clock()


@pytest.mark.parametrize("state", list(Status), ids=lambda s: s.value)
def test_actions_not_in_the_table_are_refused_with_the_allowed_ones_and_change_nothing(
    world: World, clock: FakeClock, state: Status
) -> None:
    case = case_in_state(world, clock, state)
    allowed_actions = {item["action"] for item in allowed_from(state, suspended=False)}
    refused = [a for a in ACTIONS if a not in allowed_actions]
    assert refused, "every state refuses something"
    for action in refused:
        events_before = len(case_events(world.session, case))
        with pytest.raises(InvalidTransition) as caught:
            act_on_case(
                world.session,
                case.case_no,
                action,
                world.actors["admin"],
                clock(),
                SLA,
                params_for(world, clock, action),
            )
        assert caught.value.details["current_state"] == state.value
        assert caught.value.details["allowed"] == allowed_from(state, suspended=False)
        world.session.refresh(case)
        assert case.status == state.value
        assert len(case_events(world.session, case)) == events_before


def test_terminal_states_allow_nothing_but_an_operator_reopen_of_a_closed_case(world: World) -> None:
    assert allowed_from(Status.INVALID) == []
    assert allowed_from(Status.MERGED) == []
    assert allowed_from(Status.CLOSED) == [{"action": "reopen", "to": "reopened"}]


@pytest.mark.parametrize(
    ("role", "state", "action"),
    [
        ("resident", Status.ACCEPTED, "dispatch"),
        ("grid_worker", Status.REPORTED, "accept"),
        ("grid_worker", Status.RATED, "close"),
        ("operator", Status.DISPATCHED, "take"),
        ("operator", Status.RESOLVED, "rate"),
        ("grid_leader", Status.ACCEPTED, "dispatch"),
        ("resident", Status.IN_PROGRESS, "resolve"),
    ],
)
def test_a_role_not_in_the_table_is_forbidden_and_changes_nothing(
    world: World, clock: FakeClock, role: str, state: Status, action: str
) -> None:
    case = case_in_state(world, clock, state)
    with pytest.raises(Forbidden):
        act_on_case(
            world.session, case.case_no, action, world.actors[role], clock(), SLA, params_for(world, clock, action)
        )
    assert case.status == state.value
    assert len(case_events(world.session, case)) == 1


def test_a_worker_of_another_grid_cannot_see_or_take_the_case(world: World, clock: FakeClock) -> None:
    case = case_in_state(world, clock, Status.DISPATCHED)
    with pytest.raises(Forbidden):
        act_on_case(world.session, case.case_no, "take", world.actors["worker_b"], clock(), SLA)
    assert case.status == "dispatched"


def test_inputs_each_action_needs_are_checked_before_anything_changes(world: World, clock: FakeClock) -> None:
    taken = case_in_state(world, clock, Status.TAKEN)
    with pytest.raises(InvalidInput, match="note"):
        act_on_case(world.session, taken.case_no, "resolve", world.actors["grid_worker"], clock(), SLA)
    resolved = case_in_state(world, clock, Status.RESOLVED)
    with pytest.raises(InvalidInput, match="rating"):
        act_on_case(
            world.session, resolved.case_no, "rate", world.actors["resident"], clock(), SLA, ActionInput(rating=9)
        )
    accepted = case_in_state(world, clock, Status.ACCEPTED)
    with pytest.raises(InvalidInput, match="grid"):
        act_on_case(
            world.session,
            accepted.case_no,
            "dispatch",
            world.actors["operator"],
            clock(),
            SLA,
            ActionInput(grid_code="NOPE"),
        )
    with pytest.raises(InvalidInput, match="itself"):
        act_on_case(
            world.session,
            accepted.case_no,
            "merge",
            world.actors["operator"],
            clock(),
            SLA,
            ActionInput(merge_into=accepted.case_no),
        )
    for case, status in ((taken, "taken"), (resolved, "resolved"), (accepted, "accepted")):
        assert case.status == status
        assert len(case_events(world.session, case)) == 1


def test_history_replays_the_whole_closed_loop(world: World, clock: FakeClock) -> None:
    reporter = world.session.get_one(__import__("models").Person, world.reporter_id)
    case = make_case(world.session, clock(), reporter=reporter, urgent=True)
    steps = [
        ("system", "accept", ActionInput()),
        ("operator", "dispatch", ActionInput(grid_code="A")),
        ("grid_worker", "take", ActionInput()),
        ("grid_worker", "start", ActionInput()),
        ("grid_worker", "resolve", ActionInput(note="井盖已更换", attachments=("media/1.jpg",))),
        ("resident", "rate", ActionInput(rating=2)),
        ("resident", "reopen", ActionInput(note="盖子还是松的")),
        ("grid_worker", "take", ActionInput()),
        ("grid_worker", "resolve", ActionInput(note="已加固")),
        ("resident", "rate", ActionInput(rating=5)),
        ("system", "close", ActionInput()),
    ]
    for role, action, params in steps:
        clock.advance(minutes=10)
        act_on_case(world.session, case.case_no, action, world.actors[role], clock(), SLA, params)
    world.session.flush()

    events = case_events(world.session, case)
    assert replay_states(events) == [
        "reported",
        "accepted",
        "dispatched",
        "taken",
        "in_progress",
        "resolved",
        "rated",
        "reopened",
        "taken",
        "resolved",
        "rated",
        "closed",
    ]
    assert [e.seq for e in events] == list(range(1, 13))
    assert events[5].attachments == ["media/1.jpg"]
    assert case.rating == 5 and case.reopen_count == 1
    assert verify_case(case, events) is None
    # urgent: accept within 15 minutes of dispatch by default
    assert case.accept_deadline == events[2].created_at + __import__("datetime").timedelta(minutes=15)


def test_dispatch_sets_deadlines_by_urgency(world: World, clock: FakeClock) -> None:
    sla = SlaPolicy(accept_minutes={"urgent": 10, "normal": 30}, resolve_hours={"urgent": 24, "normal": 72})
    normal = case_in_state(world, clock, Status.ACCEPTED)
    act_on_case(
        world.session, normal.case_no, "dispatch", world.actors["operator"], clock(), sla, ActionInput(grid_code="A")
    )
    from datetime import timedelta

    assert normal.accept_deadline == clock() + timedelta(minutes=30)
    assert normal.resolve_deadline == clock() + timedelta(hours=72)


def test_escalation_climbs_the_grid_hierarchy(world: World, clock: FakeClock) -> None:
    case = case_in_state(world, clock, Status.DISPATCHED)
    act_on_case(world.session, case.case_no, "escalate", SYSTEM, clock(), SLA)
    assert case.grid_id == world.grid_ids["C"] and case.escalation_level == 1
    act_on_case(world.session, case.case_no, "escalate", SYSTEM, clock(), SLA)
    assert case.grid_id == world.grid_ids["S"] and case.escalation_level == 2
    # the community leader no longer sees it; the case is above the community now
    with pytest.raises(Forbidden):
        act_on_case(world.session, case.case_no, "take", world.actors["grid_leader"], clock(), SLA)


def test_merge_makes_a_cosign_on_the_original(world: World, clock: FakeClock) -> None:
    original = case_in_state(world, clock, Status.DISPATCHED)
    duplicate = case_in_state(world, clock, Status.REPORTED)
    act_on_case(
        world.session,
        duplicate.case_no,
        "merge",
        world.actors["operator"],
        clock(),
        SLA,
        ActionInput(merge_into=original.case_no),
    )
    assert duplicate.status == "merged" and duplicate.merged_into_id == original.id
    original = get_case(world.session, original.case_no)
    assert original.cosign_count == 1 and original.priority == 1
    last = case_events(world.session, original)[-1]
    assert (last.action, last.data["case"]) == ("cosign", duplicate.case_no)


def test_events_are_never_shared_between_cases(world: World, clock: FakeClock) -> None:
    first = case_in_state(world, clock, Status.REPORTED)
    second = case_in_state(world, clock, Status.REPORTED)
    rows = world.session.exec(select(CaseEvent).where(CaseEvent.case_id == second.id)).all()
    assert [r.seq for r in rows] == [1]
    assert first.last_event_hash != second.last_event_hash
