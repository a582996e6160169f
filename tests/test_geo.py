"""GCJ-02 ⇄ WGS-84 against coordinates published by others, and points a metre from a grid edge after conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlmodel import Session

from handlers.geo import convert, gcj02_to_wgs84, wgs84_to_gcj02, wgs84_to_gcj02_array
from handlers.grids import GridIndex, import_grids
from tests.factories import feature, small_district, square

# (WGS-84 lng, lat) → (GCJ-02 lng, lat) from the test table of googollee/eviltransform, go/transform_test.go
# (https://github.com/googollee/eviltransform), the implementation of the published formula most ports copy.
EVILTRANSFORM = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
]
# hujiulong/gcoord, test/unit/crs/WGS84.spec.ts and GCJ02.spec.ts (https://github.com/hujiulong/gcoord): the point
# (123, 45) each way, published to 8 decimals and checked there to 5.
GCOORD_WGS84_123_45_TO_GCJ02 = (123.00607541, 45.00197815)
GCOORD_GCJ02_123_45_TO_WGS84 = (122.99395597, 44.99804071)
# Alibaba Cloud's address service documentation, TransferCoord example (https://help.aliyun.com/zh/
# address-purification/addrpapi/developer-reference/coordinate-system-conversion): GCJ-02 → WGS-84 to 6 decimals.
ALIYUN_GCJ02 = (120.026268, 30.279164)
ALIYUN_WGS84 = (120.021519, 30.281543)

METRE = 1 / 111_320  # of latitude, in degrees


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[1] + b[1]) / 2)
    return math.hypot((a[0] - b[0]) * math.cos(lat), a[1] - b[1]) * 111_320


@pytest.mark.parametrize(("wgs", "gcj"), EVILTRANSFORM)
def test_wgs84_to_gcj02_gives_eviltransforms_published_coordinates(wgs, gcj) -> None:  # type: ignore[no-untyped-def]
    got = wgs84_to_gcj02(*wgs)
    assert got == pytest.approx(gcj, abs=1e-9)  # published with 14-15 digits; eviltransform checks 5


@pytest.mark.parametrize(("wgs", "gcj"), EVILTRANSFORM)
def test_gcj02_to_wgs84_recovers_eviltransforms_points(wgs, gcj) -> None:  # type: ignore[no-untyped-def]
    got = gcj02_to_wgs84(*gcj)
    assert got == pytest.approx(wgs, abs=1e-8)  # about a millimetre; eviltransform's exact inverse allows 0.5 m
    assert convert(*gcj, "gcj02", "wgs84") == got


def test_the_point_123_45_converts_as_gcoord_publishes_it_both_ways() -> None:
    assert wgs84_to_gcj02(123, 45) == pytest.approx(GCOORD_WGS84_123_45_TO_GCJ02, abs=1e-8)
    # gcoord's inverse is approximate (0.02 m off the exact one here), so its own test's tolerance applies.
    assert gcj02_to_wgs84(123, 45) == pytest.approx(GCOORD_GCJ02_123_45_TO_WGS84, abs=5e-6)
    assert wgs84_to_gcj02(183, 45) == (183, 45) and gcj02_to_wgs84(183, 45) == (183, 45)  # not in China


def test_gcj02_to_wgs84_agrees_with_a_map_vendors_documented_example_within_two_metres() -> None:
    # The documented answer is the one-step inverse (the GCJ-02 point minus the offset at that point), rounded to
    # 6 decimals; the exact inverse lies 1.7 m from it. The offset itself is about 500 m here.
    got = gcj02_to_wgs84(*ALIYUN_GCJ02)
    assert metres_between(got, ALIYUN_WGS84) < 2.0
    assert 400 < metres_between(ALIYUN_GCJ02, ALIYUN_WGS84) < 600


def points_by_the_east_edge_of_a() -> tuple[tuple[float, float], tuple[float, float]]:
    """WGS-84 points one metre west and one metre east of the edge A|B (longitude 114.51), mid-height."""
    across = METRE / math.cos(math.radians(38.005))
    return (114.51 - across, 38.005), (114.51 + across, 38.005)


def test_a_wechat_point_a_metre_from_a_grid_edge_lands_on_its_side(session: Session) -> None:
    import_grids(session, small_district())  # stored in WGS-84
    index = GridIndex.from_session(session)
    west, east = points_by_the_east_edge_of_a()
    assert [g.code for g in index.locate(*wgs84_to_gcj02(*west), crs="gcj02")][:1] == ["A"]
    assert [g.code for g in index.locate(*wgs84_to_gcj02(*east), crs="gcj02")][:1] == ["B"]
    # unconverted, the GCJ-02 numbers of the western point lie ~550 m east, in B
    assert [g.code for g in index.locate(*wgs84_to_gcj02(*west), crs="wgs84")][:1] == ["B"]
    south = (114.505, 38.0 - METRE)
    assert index.locate(*wgs84_to_gcj02(*south), crs="gcj02") == []  # a metre outside the district


def test_grids_stored_in_gcj02_place_gps_points_a_metre_from_an_edge(session: Session) -> None:
    import_grids(session, small_district(), crs="wgs84", store_crs="gcj02")
    index = GridIndex.from_session(session)
    assert index.crs == "gcj02"
    west, east = points_by_the_east_edge_of_a()
    assert [g.code for g in index.locate(*west, crs="wgs84")][:1] == ["A"]
    assert [g.code for g in index.locate(*east, crs="wgs84")][:1] == ["B"]
    assert [g.code for g in index.locate(*wgs84_to_gcj02(*west), crs="gcj02")][:1] == ["A"]  # no conversion


def test_the_array_form_of_the_offset_matches_the_scalar_one_and_leaves_points_outside_china() -> None:
    rng = np.random.default_rng(7)
    inside = np.column_stack((rng.uniform(75, 135, 500), rng.uniform(18, 53, 500)))
    outside = np.array([[2.35, 48.85], [-74.0, 40.7], [151.2, -33.9]])
    got = wgs84_to_gcj02_array(np.vstack((inside, outside)))
    expected = [wgs84_to_gcj02(lng, lat) for lng, lat in inside.tolist()]
    assert np.abs(got[:500] - np.array(expected)).max() < 1e-12
    assert np.array_equal(got[500:], outside)


def test_wechat_points_10_cm_from_the_edge_of_a_20_km_grid_land_on_their_side(session: Session) -> None:
    # Unsegmented, a straight WGS-84 edge this long would bend by metres once moved into GCJ-02 (along a parallel
    # the latitude offset swings with a period of 1/3 degree of longitude); the index cuts edges before converting
    # them, so GCJ-02 lookups agree with the exact inverse this close to the edge.
    district = {
        "type": "FeatureCollection",
        "features": [
            feature("D", None, "district", square(114.30, 37.90, 0.40)),
            feature("S", "D", "grid", square(114.30, 37.90, 0.20)),
            feature("N", "D", "grid", square(114.30, 38.10, 0.20)),
        ],
    }
    import_grids(session, district)
    index = GridIndex.from_session(session)
    assert index.crs == "wgs84"
    for step in range(1, 40):
        lng = 114.30 + 0.2 * step / 40
        for lat, code in ((38.10 - 0.1 * METRE, "S"), (38.10 + 0.1 * METRE, "N")):
            gcj = wgs84_to_gcj02(lng, lat)
            assert [g.code for g in index.locate(*gcj, crs="gcj02")][:1] == [code], (step, code)
            assert [g.code for g in index.locate(lng, lat, crs="wgs84")][:1] == [code]
