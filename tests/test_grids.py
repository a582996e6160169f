"""Grid import (validate everything, then write) and point location along the grid chain."""

from __future__ import annotations

import copy
import json
import math
import os
import pty
import re
import select as wait_for
import subprocess
import sys
from pathlib import Path

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


def many_grids(side: int) -> dict:  # type: ignore[type-arg]
    """The factories' district with community C tiled by side x side small square grids."""
    doc = small_district()
    doc["features"] = doc["features"][:3]
    size = 0.02 / side
    for row in range(side):
        for col in range(side):
            cell = square(114.50 + col * size, 38.00 + row * size, size)
            doc["features"].append(feature(f"G{row:02d}{col:02d}", "C", "grid", cell))
    return doc


def test_every_bad_grid_of_a_file_is_named_and_nothing_is_written(session: Session) -> None:
    doc = small_district()
    doc["features"][3]["geometry"]["coordinates"] = [  # A crosses itself
        [[114.5, 38.0], [114.51, 38.01], [114.51, 38.0], [114.5, 38.01], [114.5, 38.0]]
    ]
    doc["features"][4]["properties"]["parent"] = "NOPE"
    doc["features"] += [
        feature("A1", "A", "subgrid", square(114.501, 38.001, 0.002)),  # its parent is bad, but in the file
        feature("B", "C", "grid", square(114.51, 38.01, 0.005)),
        feature("F", "G", "grid", square(114.515, 38.015, 0.001)),
        feature("G", "F", "grid", square(114.517, 38.017, 0.001)),
        feature("H", "C", "grid", square(114.500, 38.010, 0.004)),
        feature("K", "C", "grid", square(114.502, 38.012, 0.004)),
        feature("N", "C", "grid", square(114.519, 38.019, 0.0005)),
    ]
    doc["features"][-1]["properties"]["code"] = 130102
    with pytest.raises(GridImportError) as caught:
        import_grids(session, doc)
    problems = caught.value.problems
    expected = [
        "grid A: invalid polygon",
        "grid B: parent NOPE is neither in the file nor in the database",
        "grid B: code appears more than once",
        "grids form a parent cycle: F → G → F",
        "base grids H and K overlap",
        "feature #11: property 'code' must be a string, not 130102",
    ]
    for message in expected:
        assert any(message in problem for problem in problems), (message, problems)
    assert len(problems) == len(expected), problems  # nothing about A1, whose parent A is in the file
    assert session.exec(select(Grid)).all() == []


def test_an_import_reports_its_progress_step_by_step(session: Session) -> None:
    seen: list[tuple[str, int, int]] = []
    created, _ = import_grids(session, many_grids(20), progress=lambda *step: seen.append(step))
    steps = [step for step, _, _ in seen]
    assert steps == sorted(steps, key=["read", "check", "write"].index)  # in that order, each once
    for name, total in [("read", 403), ("write", 403)]:
        counts = [done for step, done, size in seen if step == name and size == total]
        assert counts[0] == 0 and counts[-1] == total and counts == sorted(counts)
        assert len(counts) > 10  # reported along the way, not only at the end
    checks = [(done, total) for step, done, total in seen if step == "check"]
    assert checks[-1][0] == checks[-1][1] > 400  # every pair of touching neighbours was looked at
    assert created == 403


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GRIDBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "GRIDBOT_MEDIA__ROOT": str(tmp_path / "media"),
        "GRIDBOT_APP__DEMO": "false",
        "TERM": "xterm",
        "COLUMNS": "120",
    }


def run_in_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """`gridbot ARGS` with a pseudo-terminal as its output, as an operator sees it; returns (status, screen text)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", *args], stdin=terminal, stdout=terminal, stderr=terminal, env=env
    )
    os.close(terminal)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = wait_for.select([controller], [], [], 1.0)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(controller)
    status = process.wait(timeout=120)
    return status, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))


def test_a_long_import_shows_its_progress_while_checking_and_writing(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps(many_grids(25)), encoding="utf-8")
    status, screen = run_in_terminal(cli_env(tmp_path), "grids", "import", str(path))
    assert status == 0, screen
    assert "imported 628 grids (628 new, 0 updated)" in screen
    for label, total in [("checking each grid", 628), ("checking overlaps", None), ("writing grids", 628)]:
        counts = [(int(done), int(size)) for done, size in re.findall(re.escape(label) + r"\D*?(\d+)/(\d+)", screen)]
        assert counts, (label, screen[-2000:])
        assert all(size == total for _, size in counts) if total else True
        assert any(0 < done < size for done, size in counts), (label, counts)  # shown along the way
        assert counts[-1][0] == counts[-1][1]


def test_the_cli_names_every_bad_grid_and_imports_nothing(tmp_path: Path) -> None:
    doc = small_district()
    doc["features"][3]["geometry"] = square(114.5, 38.0, 0.012)  # A now overlaps B
    doc["features"][4]["properties"]["parent"] = "GHOST"
    doc["features"].append(feature("[X]", "C", "grid", {"type": "Polygon", "coordinates": [[[114.5, 38.0]]]}))
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    env = cli_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "grids", "import", str(bad)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any("base grids A and B overlap" in line for line in lines), result.stderr
    assert any("grid B: parent GHOST is neither in the file nor in the database" in line for line in lines)
    assert any(line.startswith("error: grid [X]: unreadable coordinates") for line in lines)  # not eaten as markup
    assert "3 problem(s); nothing was imported" in result.stderr
    located = subprocess.run(
        [sys.executable, "-m", "bot", "grids", "locate", "114.505", "38.005", "--crs", "wgs84"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert located.returncode == 3  # not even the sound grids were written


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
