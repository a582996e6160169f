"""Grid import (validate everything, then write) and point location along the grid chain."""

from __future__ import annotations

import copy
import json
import math

import pytest
from sqlmodel import Session, select

from handlers.demo import DISTRICT_FILE
from handlers.geo import gcj02_to_wgs84, wgs84_to_gcj02
from handlers.grids import GridImportError, GridIndex, import_grids
from models import Grid
from tests.factories import feature, small_district, square


def codes(chain: list) -> list[str]:  # type: ignore[type-arg]
    return [entry.code for entry in chain]


def test_locate_returns_the_chain_from_the_smallest_grid_up(session: Session) -> None:
    import_grids(session, small_district())
    index = GridIndex.from_session(session)
    assert codes(index.locate(114.505, 38.005, "wgs84")) == ["A", "C", "S", "D"]
    assert codes(index.locate(114.515, 38.005, "wgs84")) == ["B", "C", "S", "D"]
    assert index.locate(114.60, 38.005, "wgs84") == []


def test_a_dedicated_grid_wins_over_the_base_grid_around_it(session: Session) -> None:
    doc = small_district()
    doc["features"].append(feature("SCHOOL", "C", "grid", square(114.504, 38.004, 0.002), kind="dedicated"))
    import_grids(session, doc)
    index = GridIndex.from_session(session)
    assert codes(index.locate(114.505, 38.005, "wgs84"))[:2] == ["SCHOOL", "C"]
    assert codes(index.locate(114.509, 38.009, "wgs84"))[0] == "A"


def test_a_point_in_a_community_but_in_none_of_its_grids_gets_the_community_chain(session: Session) -> None:
    import_grids(session, small_district())
    index = GridIndex.from_session(session)
    # A and B cover the southern half of C only
    assert codes(index.locate(114.505, 38.015, "wgs84")) == ["C", "S", "D"]


def test_a_point_on_the_edge_of_two_grids_goes_to_the_smaller(session: Session) -> None:
    doc = small_district()
    doc["features"][3]["geometry"] = square(114.50, 38.00, 0.01)
    doc["features"][4]["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[114.51, 38.0], [114.515, 38.0], [114.515, 38.01], [114.51, 38.01], [114.51, 38.0]]],
    }
    import_grids(session, doc)
    index = GridIndex.from_session(session)
    assert codes(index.locate(114.51, 38.005, "wgs84"))[0] == "B"  # on the shared edge: B is half A's size


def test_a_grid_without_a_polygon_stays_in_the_chain_of_the_grids_under_it(session: Session) -> None:
    import_grids(session, small_district())
    street = session.exec(select(Grid).where(Grid.code == "S")).one()
    street.geometry = None
    session.add(street)
    session.flush()
    index = GridIndex.from_session(session)
    assert codes(index.locate(114.505, 38.005, "wgs84")) == ["A", "C", "S", "D"]
    assert len(index) == 4  # S is in no tree


def test_gcj02_points_are_converted_before_lookup(session: Session) -> None:
    import_grids(session, small_district())
    index = GridIndex.from_session(session)
    # A WGS-84 point just inside A near its east edge; its GCJ-02 form lies ~500 m east, inside B.
    wgs = (114.5095, 38.005)
    gcj = wgs84_to_gcj02(*wgs)
    assert gcj[0] > 114.51
    assert codes(index.locate(*gcj, crs="gcj02"))[0] == "A"
    assert codes(index.locate(*gcj, crs="wgs84"))[0] == "B"


def test_gcj02_round_trip_and_offset_size() -> None:
    for lng, lat in [(114.54, 38.05), (116.3975, 39.9087), (121.4737, 31.2304), (113.2644, 23.1291)]:
        g_lng, g_lat = wgs84_to_gcj02(lng, lat)
        back = gcj02_to_wgs84(g_lng, g_lat)
        assert abs(back[0] - lng) < 1e-8 and abs(back[1] - lat) < 1e-8
        metres = math.hypot((g_lng - lng) * math.cos(math.radians(lat)), g_lat - lat) * 111_320
        assert 100 < metres < 700
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)  # outside China nothing moves


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["features"][3]["geometry"].update(
                coordinates=[[[114.5, 38.0], [114.51, 38.01], [114.51, 38.0], [114.5, 38.01], [114.5, 38.0]]]
            ),
            "grid A: invalid polygon",
        ),
        (lambda d: d["features"][4]["properties"].update(parent="NOPE"), "grid B: parent NOPE"),
        (lambda d: d["features"][4]["properties"].update(code="A"), "grid A: code appears more than once"),
        (lambda d: d["features"][0]["properties"].update(parent="C"), "parent cycle"),
        (lambda d: d["features"][4].update(geometry=square(114.505, 38.0, 0.01)), "base grids A and B overlap"),
        (lambda d: d["features"][4]["properties"].update(level="block"), "grid B: level 'block'"),
        (
            lambda d: d["features"][4]["geometry"].update(type="Point", coordinates=[114.5, 38.0]),
            "grid B: geometry must be a Polygon",
        ),
        (lambda d: d["features"][4].update(geometry=square(38.0, 114.5, 0.01)), "grid B: coordinates out of range"),
    ],
)
def test_a_bad_file_is_refused_whole_with_the_grid_named(session: Session, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(small_district())
    mutate(doc)
    with pytest.raises(GridImportError) as caught:
        import_grids(session, doc)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems
    assert session.exec(select(Grid)).all() == []


def test_reimport_updates_by_code(session: Session) -> None:
    import_grids(session, small_district())
    doc = small_district()
    doc["features"][3]["properties"]["name"] = "新名字"
    created, updated = import_grids(session, doc)
    assert (created, updated) == (0, 5)
    assert session.exec(select(Grid).where(Grid.code == "A")).one().name == "新名字"


def test_the_demo_district_tiles_without_gaps_or_overlaps(session: Session) -> None:
    from shapely.geometry import shape
    from shapely.ops import unary_union

    document = json.loads(DISTRICT_FILE.read_text(encoding="utf-8"))
    created, _ = import_grids(session, document)
    grids = session.exec(select(Grid)).all()
    base = [g for g in grids if g.level == "grid" and g.kind == "base"]
    dedicated = [g for g in grids if g.kind == "dedicated"]
    district = next(g for g in grids if g.level == "district")
    assert created == len(grids) and 18 <= len(base) <= 24 and len(dedicated) == 2
    union = unary_union([shape(g.geometry) for g in base])
    assert union.symmetric_difference(shape(district.geometry)).area < 1e-9
    assert all(g.channel and g.channel["type"] == "wecom_robot" for g in base + dedicated)
    index = GridIndex.from_session(session)
    for grid in dedicated:
        point = shape(grid.geometry).representative_point()
        assert codes(index.locate(point.x, point.y, "wgs84"))[0] == grid.code


def test_gazetteer_names_place_a_report_without_coordinates(session: Session) -> None:
    doc = small_district()
    doc["features"][2]["properties"]["gazetteer"] = ["阳光社区"]
    import_grids(session, doc)
    index = GridIndex.from_session(session)
    hit = index.match_names("阳光小区门口井盖丢了")
    assert hit is not None and hit.code == "A"
    assert index.match_names("阳光社区里面路灯坏了").code == "C"  # type: ignore[union-attr]
    assert index.match_names("阳光社区阳光小区3号楼").code == "A"  # the grid is more specific than the community
    assert index.match_names("阳光小区和幸福小区之间的路") is None  # two grids named: the operators decide
    assert index.match_names("没有地名") is None
