"""The points ledger and the 爱心超市 over real HTTP: balances as sums, awards that pay once, admin adjustments,
leaderboards by Beijing month, redemption with stock and refunds, and concurrent redemptions on the live server."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from handlers.people import create_person
from models import PointsEntry, Redemption, RedemptionItem
from models.db import new_session, session_scope
from tests.conftest import FakeClock, LiveServer
from tests.factories import auth, make_case, make_district, make_person, token_for


@pytest.fixture
def clock() -> FakeClock:
    """23:00 on 30 Nov 2026 in Beijing: an hour before a month boundary (tokens last a day)."""
    return FakeClock(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))


@dataclass
class Tokens:
    admin: str
    operator: str
    worker_a: str
    leader: str
    resident: str
    resident_id: int
    other: str
    other_id: int


@pytest.fixture
def tokens(engine: Engine, clock: FakeClock) -> Tokens:
    with session_scope(engine) as session:
        make_district(session)
        people = {
            "admin": make_person(session, "adm", ["admin"]),
            "operator": make_person(session, "op", ["operator"]),
            "worker_a": make_person(session, "wa", ["grid_worker"], ["A"]),
            "leader": make_person(session, "lc", ["grid_leader"], ["C"]),
            "resident": create_person(session, name="张三丰", roles=["resident"], login="res", home_grid_code="A"),
            "other": create_person(session, name="李四", roles=["resident"], login="res2", home_grid_code="B"),
        }
        session.flush()
        found = {name: token_for(session, person, clock()) for name, person in people.items()}
        return Tokens(**found, resident_id=people["resident"].id, other_id=people["other"].id)  # type: ignore[arg-type]


def me(http: httpx.Client, token: str) -> dict[str, Any]:
    r = http.get("/api/v1/points/me", headers=auth(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["balance"] == sum(e["delta"] for e in body["entries"])  # reconcilable
    return body


def adjust(
    http: httpx.Client, token: str, person_id: int, delta: int, note: str = "补录", **extra: object
) -> httpx.Response:
    body = {"person_id": person_id, "delta": delta, "note": note, **extra}
    return http.post("/api/v1/points/adjustments", json=body, headers=auth(token))


def ledger_rows(engine: Engine) -> int:
    with new_session(engine) as session:
        return len(session.exec(select(PointsEntry)).all())


def act(http: httpx.Client, token: str, case_no: str, action: str, **body: object) -> httpx.Response:
    r = http.post(f"/api/v1/cases/{case_no}/actions/{action}", json=body, headers=auth(token))
    assert r.status_code == 200, r.text
    return r


def resolved_case(http: httpx.Client, engine: Engine, clock: FakeClock, t: Tokens) -> str:
    with session_scope(engine) as session:
        from handlers.people import get_person_by_login

        case_no = make_case(session, clock(), reporter=get_person_by_login(session, "res")).case_no
    act(http, t.operator, case_no, "accept")
    act(http, t.operator, case_no, "dispatch", grid_code="A")
    act(http, t.worker_a, case_no, "take")
    act(http, t.worker_a, case_no, "resolve", note="已修好")
    return case_no


def test_a_resolved_and_rated_case_pays_once_even_when_reopened_and_rated_again(
    http: httpx.Client, engine: Engine, clock: FakeClock, tokens: Tokens
) -> None:
    assert me(http, tokens.resident) == {"balance": 0, "entries": []}
    case_no = resolved_case(http, engine, clock, tokens)
    assert me(http, tokens.resident)["balance"] == 0  # resolving alone pays nothing
    act(http, tokens.resident, case_no, "rate", rating=5)
    body = me(http, tokens.resident)
    assert body["balance"] == 5
    (entry,) = body["entries"]
    assert (entry["source"], entry["source_ref"], entry["delta"]) == ("report", case_no, 5)
    act(http, tokens.resident, case_no, "reopen", note="又坏了")
    act(http, tokens.worker_a, case_no, "take")
    act(http, tokens.worker_a, case_no, "resolve", note="再修")
    act(http, tokens.resident, case_no, "rate", rating=4)
    act(http, tokens.operator, case_no, "close")
    assert me(http, tokens.resident)["balance"] == 5 and ledger_rows(engine) == 1


def test_a_case_closed_without_rating_pays_once_and_an_invalid_case_pays_nothing(
    http: httpx.Client, engine: Engine, clock: FakeClock, tokens: Tokens
) -> None:
    case_no = resolved_case(http, engine, clock, tokens)
    act(http, tokens.operator, case_no, "close")
    assert me(http, tokens.resident)["balance"] == 5
    with session_scope(engine) as session:
        from handlers.people import get_person_by_login

        other_no = make_case(session, clock(), reporter=get_person_by_login(session, "res")).case_no
    act(http, tokens.operator, other_no, "invalidate", note="非本辖区")
    assert me(http, tokens.resident)["balance"] == 5 and ledger_rows(engine) == 1


def test_manual_adjustments_admin_only_with_note_idempotent_and_never_below_zero(
    http: httpx.Client, engine: Engine, tokens: Tokens
) -> None:
    for token in (tokens.operator, tokens.leader, tokens.resident):
        assert adjust(http, token, tokens.resident_id, 10).status_code == 403
    assert adjust(http, tokens.admin, tokens.resident_id, 10, note="   ").status_code == 422
    assert adjust(http, tokens.admin, tokens.resident_id, 0).status_code == 422
    assert adjust(http, tokens.admin, tokens.resident_id, 5000).status_code == 422
    assert ledger_rows(engine) == 0
    first = adjust(http, tokens.admin, tokens.resident_id, 10, idempotency_key="k1")
    assert first.status_code == 201 and first.json()["balance"] == 10
    again = adjust(http, tokens.admin, tokens.resident_id, 10, idempotency_key="k1")
    assert again.status_code == 200 and again.json()["entry"]["id"] == first.json()["entry"]["id"]
    assert adjust(http, tokens.admin, tokens.resident_id, 7, idempotency_key="k1").status_code == 409
    refused = adjust(http, tokens.admin, tokens.resident_id, -11, note="扣分")
    assert refused.status_code == 409 and refused.json()["error"] == "insufficient_points"
    assert adjust(http, tokens.admin, tokens.resident_id, -10, note="扣分").json()["balance"] == 0
    body = me(http, tokens.resident)
    assert [(e["delta"], e["source"], e["note"]) for e in body["entries"]] == [
        (-10, "manual", "扣分"),
        (10, "manual", "补录"),
    ]


def test_leaderboards_by_grid_community_and_beijing_month_ignore_spending_and_mask_names(
    http: httpx.Client, engine: Engine, clock: FakeClock, tokens: Tokens
) -> None:
    clock.now = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 on 30 Nov in Beijing
    assert adjust(http, tokens.admin, tokens.other_id, 3).status_code == 201  # B, November
    clock.now = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)  # 00:30 on 1 Dec in Beijing
    assert adjust(http, tokens.admin, tokens.resident_id, 8).status_code == 201  # A, December
    h = auth(tokens.resident)

    def board(**params: str) -> list[tuple[str, int, bool]]:
        r = http.get("/api/v1/points/leaderboard", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [(s["name"], s["points"], s["me"]) for s in r.json()["standings"]]

    assert board(month="2026-12") == [("张**", 8, True)]
    assert board(month="2026-11") == [("李*", 3, False)]
    assert board(month="current") == [("张**", 8, True)]
    assert board() == [("张**", 8, True), ("李*", 3, False)]
    assert board(grid="A") == [("张**", 8, True)]
    assert board(grid="B") == [("李*", 3, False)]
    assert board(grid="C") == [("张**", 8, True), ("李*", 3, False)]  # the community includes its grids
    item = http.post(
        "/api/v1/points/items",
        json={"grid": "C", "name": "洗衣液", "price": 6, "stock": 2},
        headers=auth(tokens.leader),
    ).json()
    assert http.post(f"/api/v1/points/items/{item['id']}/redemptions", json={}, headers=h).status_code in (200, 201)
    assert me(http, tokens.resident)["balance"] == 2
    assert board(grid="C") == [("张**", 8, True), ("李*", 3, False)]  # spending does not lower the ranking
    assert http.get("/api/v1/points/leaderboard", params={"month": "2026-13"}, headers=h).status_code == 422


@pytest.fixture
def item(http: httpx.Client, tokens: Tokens) -> int:
    r = http.post(
        "/api/v1/points/items", json={"grid": "A", "name": "大米", "price": 10, "stock": 2}, headers=auth(tokens.leader)
    )
    assert r.status_code == 201, r.text
    assert r.json()["stock"] == 2
    return int(r.json()["id"])


def redeem(http: httpx.Client, token: str, item_id: int, **body: object) -> httpx.Response:
    return http.post(f"/api/v1/points/items/{item_id}/redemptions", json=body, headers=auth(token))


def stock(engine: Engine, item_id: int) -> int:
    with new_session(engine) as session:
        found = session.get(RedemptionItem, item_id)
        assert found is not None
        return found.stock


def test_redeem_refusals_change_nothing_and_a_repeat_key_redeems_once(
    http: httpx.Client, engine: Engine, tokens: Tokens, item: int
) -> None:
    r = redeem(http, tokens.resident, item)
    assert r.status_code == 409 and r.json()["error"] == "insufficient_points" and r.json()["notice"]
    assert stock(engine, item) == 2 and ledger_rows(engine) == 0
    adjust(http, tokens.admin, tokens.resident_id, 50)
    r = redeem(http, tokens.resident, item, quantity=3)
    assert r.status_code == 409 and r.json()["error"] == "out_of_stock"
    assert stock(engine, item) == 2 and me(http, tokens.resident)["balance"] == 50
    first = redeem(http, tokens.resident, item, idempotency_key="tap-1")
    second = redeem(http, tokens.resident, item, idempotency_key="tap-1")
    assert first.status_code in (200, 201) and second.status_code in (200, 201)
    assert first.json()["id"] == second.json()["id"] and first.json()["balance"] == 40
    assert stock(engine, item) == 1 and me(http, tokens.resident)["balance"] == 40
    with new_session(engine) as session:
        assert len(session.exec(select(Redemption)).all()) == 1


def test_hand_over_by_a_leader_once_and_cancel_refunds_by_a_new_entry(
    http: httpx.Client, engine: Engine, tokens: Tokens, item: int
) -> None:
    adjust(http, tokens.admin, tokens.resident_id, 20)
    one = redeem(http, tokens.resident, item).json()["id"]
    two = redeem(http, tokens.resident, item).json()["id"]
    assert stock(engine, item) == 0 and me(http, tokens.resident)["balance"] == 0
    handover = f"/api/v1/points/redemptions/{one}/handover"
    assert http.post(handover, headers=auth(tokens.resident)).status_code == 403
    assert http.post(handover, headers=auth(tokens.leader)).json()["status"] == "handed_over"
    assert http.post(handover, headers=auth(tokens.leader)).json()["status"] == "handed_over"
    r = http.post(f"/api/v1/points/redemptions/{one}/cancel", json={}, headers=auth(tokens.resident))
    assert r.status_code == 409 and stock(engine, item) == 0
    assert http.post(f"/api/v1/points/redemptions/{two}/cancel", json={}, headers=auth(tokens.other)).status_code == 403
    r = http.post(f"/api/v1/points/redemptions/{two}/cancel", json={"reason": "不要了"}, headers=auth(tokens.resident))
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["balance"] == 10
    again = http.post(f"/api/v1/points/redemptions/{two}/cancel", json={}, headers=auth(tokens.resident))
    assert again.status_code == 200 and stock(engine, item) == 1
    body = me(http, tokens.resident)
    assert body["balance"] == 10
    assert sorted(e["delta"] for e in body["entries"]) == [-10, -10, 10, 20]  # the debit stays; a refund is added
    assert http.post(f"/api/v1/points/redemptions/{two}/handover", headers=auth(tokens.leader)).status_code == 409


def concurrent_redemptions(base_url: str, tokens: list[str], item_id: int) -> list[httpx.Response]:
    """Every token redeems the item once, all released together by a barrier; the responses in token order."""
    barrier = threading.Barrier(len(tokens))
    results: list[httpx.Response | None] = [None] * len(tokens)

    def run(index: int, token: str) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            barrier.wait()
            results[index] = client.post(f"/api/v1/points/items/{item_id}/redemptions", json={}, headers=auth(token))

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def check_stock_race(base_url: str, admin: str, leader: str, residents: list[tuple[int, str]]) -> None:
    """An item with stock 5 and 20 residents with enough points: exactly 5 redeem, 15 are told out_of_stock."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for person_id, _ in residents:
            r = client.post(
                "/api/v1/points/adjustments",
                json={"person_id": person_id, "delta": 10, "note": "并发测试"},
                headers=auth(admin),
            )
            assert r.status_code == 201, r.text
        r = client.post(
            "/api/v1/points/items", json={"grid": "A", "name": "毛巾", "price": 10, "stock": 5}, headers=auth(leader)
        )
        item_id = r.json()["id"]
    responses = concurrent_redemptions(base_url, [token for _, token in residents], item_id)
    won = [r for r in responses if r.status_code in (200, 201)]
    lost = [r for r in responses if r.status_code == 409]
    assert len(won) == 5 and len(lost) == 15, [r.text for r in responses]
    assert all(r.json()["error"] == "out_of_stock" for r in lost)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        items = client.get("/api/v1/points/items", params={"grid": "A"}, headers=auth(leader)).json()
        assert [i["stock"] for i in items if i["id"] == item_id] == [0]
        balances = [client.get("/api/v1/points/me", headers=auth(t)).json()["balance"] for _, t in residents]
    assert sorted(balances) == [0] * 5 + [10] * 15


def check_balance_race(base_url: str, admin: str, leader: str, person_id: int, token: str) -> None:
    """One person with points for exactly 3 redemptions fires 10 at once: exactly 3, balance 0."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        r = client.post(
            "/api/v1/points/adjustments",
            json={"person_id": person_id, "delta": 30, "note": "并发测试"},
            headers=auth(admin),
        )
        assert r.status_code == 201, r.text
        item_id = client.post(
            "/api/v1/points/items", json={"grid": "A", "name": "香皂", "price": 10, "stock": 50}, headers=auth(leader)
        ).json()["id"]
    responses = concurrent_redemptions(base_url, [token] * 10, item_id)
    won = [r for r in responses if r.status_code in (200, 201)]
    lost = [r for r in responses if r.status_code == 409]
    assert len(won) == 3 and len(lost) == 7, [r.text for r in responses]
    assert all(r.json()["error"] == "insufficient_points" for r in lost)
    assert sorted(r.json()["balance"] for r in won) == [0, 10, 20]
    with httpx.Client(base_url=base_url, timeout=30) as client:
        body = client.get("/api/v1/points/me", headers=auth(token)).json()
        items = client.get("/api/v1/points/items", params={"grid": "A"}, headers=auth(leader)).json()
    assert body["balance"] == 0 == 30 + sum(e["delta"] for e in body["entries"] if e["source"] == "redemption")
    assert [i["stock"] for i in items if i["id"] == item_id] == [47]


def test_twenty_residents_race_for_five_pieces(
    live: LiveServer, engine: Engine, clock: FakeClock, tokens: Tokens
) -> None:
    with session_scope(engine) as session:
        residents = []
        for n in range(20):
            person = make_person(session, f"r{n}", ["resident"])
            session.flush()
            assert person.id is not None
            residents.append((person.id, token_for(session, person, clock())))
    check_stock_race(live.url, tokens.admin, tokens.leader, residents)


def test_one_person_fires_ten_redemptions_with_points_for_three(live: LiveServer, tokens: Tokens) -> None:
    check_balance_race(live.url, tokens.admin, tokens.leader, tokens.resident_id, tokens.resident)
