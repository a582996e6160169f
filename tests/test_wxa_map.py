"""The public map feed (GET /api/v1/reports/nearby): recent cases near a point, coarse places, no personal data;
and the mini-program's paths in /openapi.json."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import Engine

from models import Case, Report
from models.db import session_scope
from tests.conftest import FakeClock

CENTRE = (114.5051, 38.0052)  # GCJ-02
MAP_KEYS = {
    "status",
    "status_name",
    "category",
    "category_name",
    "subcategory",
    "subcategory_name",
    "urgent",
    "created_at",
    "resolved_at",
    "lng",
    "lat",
}


def add_case(
    engine: Engine,
    clock: FakeClock,
    no: str,
    lng: float,
    lat: float,
    *,
    status: str = "dispatched",
    days_ago: float = 1,
    needs_review: bool = False,
    is_report: bool = True,
    urgency: str = "normal",
) -> None:
    when = clock.now - timedelta(days=days_ago)
    with session_scope(engine) as session:
        report = Report(
            channel="wxa",
            text="张三家门口井盖丢了，电话13800000000",
            lng=lng,
            lat=lat,
            address="阳光小区3号楼",
            is_report=is_report,
            category="D",
            subcategory="D01",
            created_at=when,
        )
        session.add(report)
        session.flush()
        session.add(
            Case(
                case_no=no,
                report_id=report.id,
                status=status,
                category="D",
                subcategory="D01",
                urgency=urgency,
                needs_review=needs_review,
                created_at=when,
                updated_at=when,
            )
        )


def nearby(http: httpx.Client, **params: object) -> httpx.Response:
    query = {"lng": CENTRE[0], "lat": CENTRE[1], **params}
    return http.get("/api/v1/reports/nearby", params=query)


def test_near_cases_are_listed_newest_first_and_far_ones_are_not(
    http: httpx.Client, engine: Engine, clock: FakeClock
) -> None:
    add_case(engine, clock, "20261121-0001", 114.5061, 38.0052, days_ago=1, urgency="urgent")  # ~90 m east
    add_case(engine, clock, "20261120-0001", 114.5051, 38.0150, days_ago=2)  # ~1.1 km north
    add_case(engine, clock, "20261119-0001", 114.5051, 38.0352, days_ago=3)  # ~3.3 km north
    add_case(engine, clock, "20261001-0001", 114.5051, 38.0052, days_ago=40)  # here, but too old
    r = nearby(http)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(i["lng"], i["lat"]) for i in body["items"]] == [(114.506, 38.005), (114.505, 38.015)]
    assert body["truncated"] is False and body["crs"] == "gcj02" and body["precision_deg"] == 0.001
    first = body["items"][0]
    assert first["urgent"] is True and first["status_name"] == "已交办网格" and first["subcategory"] == "D01"
    assert first["category_name"] and first["subcategory_name"]
    assert [i["lat"] for i in nearby(http, radius_m=5000).json()["items"]] == [38.005, 38.015, 38.035]
    assert len(nearby(http, radius_m=500).json()["items"]) == 1
    assert len(nearby(http, days=60).json()["items"]) == 3
    page = nearby(http, limit=1).json()
    assert len(page["items"]) == 1 and page["truncated"] is True


def test_points_are_rounded_to_three_decimals_and_the_distance_is_measured_to_the_rounded_point(
    http: httpx.Client, engine: Engine, clock: FakeClock
) -> None:
    add_case(engine, clock, "20261121-0001", 114.50649, 38.00551)
    (item,) = nearby(http).json()["items"]
    assert (item["lng"], item["lat"]) == (114.506, 38.006)
    # The exact point is ~89 m from (114.5057, 38.0050), its rounded one ~114 m: a 100 m radius does not find it,
    # so shrinking the radius tells nothing finer than the 0.001° cell.
    assert nearby(http, lng=114.5057, lat=38.0050, radius_m=100).json()["items"] == []
    assert len(nearby(http, lng=114.506, lat=38.006, radius_m=100).json()["items"]) == 1


def test_the_feed_carries_no_personal_data(http: httpx.Client, engine: Engine, clock: FakeClock) -> None:
    add_case(engine, clock, "20261121-0001", 114.5051, 38.0052)
    r = nearby(http)
    (item,) = r.json()["items"]
    assert set(item) == MAP_KEYS
    assert set(r.json()) == {"items", "truncated", "crs", "precision_deg"}
    for secret in ("20261121-0001", "张三", "1380000", "阳光小区", "photo", "person"):
        assert secret not in r.text


def test_invalid_merged_not_a_report_and_unreviewed_cases_are_left_out(
    http: httpx.Client, engine: Engine, clock: FakeClock
) -> None:
    add_case(engine, clock, "20261121-0001", 114.5051, 38.0052, status="invalid")
    add_case(engine, clock, "20261121-0002", 114.5051, 38.0052, status="merged")
    add_case(engine, clock, "20261121-0003", 114.5051, 38.0052, is_report=False)
    add_case(engine, clock, "20261121-0004", 114.5051, 38.0052, status="reported", needs_review=True)
    add_case(engine, clock, "20261121-0005", 114.5051, 38.0052, status="resolved")
    add_case(engine, clock, "20261121-0006", 114.5051, 38.0052, status="closed")
    items = nearby(http).json()["items"]
    assert sorted(i["status"] for i in items) == ["closed", "resolved"]


def test_the_feed_is_public_and_a_token_changes_nothing(http: httpx.Client, engine: Engine, clock: FakeClock) -> None:
    add_case(engine, clock, "20261121-0001", 114.5051, 38.0052)
    anonymous = nearby(http)
    with_token = http.get(
        "/api/v1/reports/nearby",
        params={"lng": CENTRE[0], "lat": CENTRE[1]},
        headers={"Authorization": "Bearer not-a-real-token"},
    )
    assert anonymous.status_code == with_token.status_code == 200
    assert anonymous.json() == with_token.json() and len(anonymous.json()["items"]) == 1
    assert anonymous.headers["cache-control"] == "public, max-age=60"


def test_bad_parameters_are_422_with_the_parameter_named(http: httpx.Client) -> None:
    cases = {
        "radius_m": ({"radius_m": 5001}, "less than or equal to 5000"),
        "days": ({"days": 0}, "greater than or equal to 1"),
        "lng": ({"lng": "east"}, "valid number"),
        "lat": ({"lat": "nan"}, "finite"),
        "limit": ({"limit": 501}, "less than or equal to 500"),
    }
    for name, (params, words) in cases.items():
        r = nearby(http, **params)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"] == "invalid_input" and name in r.json()["message"] and words in r.json()["message"]
    r = http.get("/api/v1/reports/nearby", params={"lng": CENTRE[0]})
    assert r.status_code == 422 and "lat" in r.json()["message"]
    r = nearby(http, lng=2.35, lat=48.85)
    assert r.status_code == 422 and r.json()["error"] == "outside_china" and r.json()["user_message"]


def test_openapi_lists_the_mini_program_paths(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    wanted = {
        ("post", "/api/v1/auth/wxa-login"),
        ("post", "/api/v1/reports"),
        ("get", "/api/v1/reports/mine"),
        ("get", "/api/v1/reports/nearby"),
        ("get", "/api/v1/activities"),
        ("post", "/api/v1/activities/{activity_id}/signups"),
        ("delete", "/api/v1/activities/{activity_id}/signups/me"),
        ("get", "/api/v1/points/me"),
    }
    assert {(m, p) for m, p in wanted if m in paths.get(p, {})} == wanted
    assert "security" not in paths["/api/v1/reports/nearby"]["get"]  # public
