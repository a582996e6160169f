"""Grid location at district scale: index build time and point lookups per second through `GridIndex`.

    .venv/bin/python bench/locate_bench.py [--grids 100000] [--lookups 100000] [--seconds 5] [--rounds 5] [--builds 3]
                                           [--dedicated 0.01] [--cpu 0] [--no-database] [--profile FILE]
                                           [--geojson FILE]

Builds a synthetic district of N base grids around Shijiazhuang: a lattice of slightly irregular quadrilaterals
(every inner vertex moved by up to a quarter of a cell, so neighbours share their edges exactly: no gaps, no
overlaps), about 350 m x 330 m each, grouped into communities of 4 x 4 grids and streets of 5 x 5 communities
(their polygons are the unions of their grids, the district the union of everything), as `gridbot grids import`
would store it: district → street → community → grid, every level with its polygon. A share of the base grids
(--dedicated) holds a small dedicated grid (school, hospital) whose parent is the community. Every base grid has
two gazetteer names, so the index builds its name automaton as well.

Measured through the project's own `handlers.grids.GridIndex`, the class the service uses:

- index build: `GridIndex(grids)` over grid rows already in memory, and `GridIndex.from_session` on a SQLite file
  holding the same rows (what the service does when the grids table changed); median of --builds;
- point lookups per second, one call per point as the service makes them, on one core (the process is pinned to
  --cpu), after a warm-up: random points over the district's box and a 2 % margin around it, given in GCJ-02 (as
  WeChat and the mini-program send them, so the conversion to the grids' WGS-84 is part of each lookup) and, the
  same places, in WGS-84;
- the share of points found (some fall in the margin on purpose), and whether the GCJ-02 and WGS-84 lookups of a
  place agree.

`--profile FILE` writes a cProfile of the GCJ-02 lookup loop (read it with pstats). `--geojson FILE` writes the
synthetic district as a file for `gridbot grids import` (WGS-84) and stops. The issue's target: at least
50,000 lookups/s at 100,000 grids on one core, index build under 10 s.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from handlers.geo import wgs84_to_gcj02  # noqa: E402
from handlers.grids import GridIndex  # noqa: E402
from models import Grid  # noqa: E402
from models.db import make_engine, session_scope, upgrade_schema  # noqa: E402
from models.types import table_of, utcnow  # noqa: E402

CENTRE = (114.51, 38.04)  # Shijiazhuang, Chang'an and Qiaoxi districts
CELL = (0.004, 0.003)  # degrees of longitude and latitude: about 350 m x 330 m at 38° N
JITTER = 0.25  # share of a cell an inner lattice vertex may move
COMMUNITY = 4  # grids per community side
STREET = 5  # communities per street side


def build_district(n: int, dedicated_share: float, seed: int) -> list[Grid]:
    """Grid rows (ids set, parents before children) for a district of n base grids."""
    rng = np.random.default_rng(seed)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    west = CENTRE[0] - cols * CELL[0] / 2
    south = CENTRE[1] - rows * CELL[1] / 2
    xs = west + np.arange(cols + 1)[None, :] * CELL[0] + np.zeros((rows + 1, 1))
    ys = south + np.arange(rows + 1)[:, None] * CELL[1] + np.zeros((1, cols + 1))
    inner = (slice(1, rows), slice(1, cols))
    xs[inner] += rng.uniform(-JITTER, JITTER, xs[inner].shape) * CELL[0]
    ys[inner] += rng.uniform(-JITTER, JITTER, ys[inner].shape) * CELL[1]

    cells = [(r, c) for r in range(rows) for c in range(cols)][:n]
    ring = np.empty((n, 5, 2))
    for k, (r, c) in enumerate(cells):
        corners = ((r, c), (r, c + 1), (r + 1, c + 1), (r + 1, c), (r, c))
        ring[k] = [(xs[p], ys[p]) for p in corners]
    quads = shapely.polygons(ring)
    assert bool(shapely.is_valid(quads).all()), "a synthetic grid is not a valid polygon"

    community_of = [(r // COMMUNITY, c // COMMUNITY) for r, c in cells]
    members: dict[tuple[int, int], list[int]] = {}
    for k, key in enumerate(community_of):
        members.setdefault(key, []).append(k)
    communities = {key: shapely.union_all(quads[ks]) for key, ks in members.items()}
    street_members: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for key in communities:
        street_members.setdefault((key[0] // STREET, key[1] // STREET), []).append(key)
    streets = {key: shapely.union_all([communities[m] for m in ms]) for key, ms in street_members.items()}
    district = shapely.union_all(list(streets.values()))

    grids: list[Grid] = []

    def add(code: str, level: str, parent: Grid | None, geometry: Any, kind: str = "base", names=()) -> Grid:  # type: ignore[no-untyped-def]
        grid = Grid(
            id=len(grids) + 1,
            code=code,
            name=f"网格{code}",
            level=level,
            kind=kind,
            parent_id=parent.id if parent else None,
            geometry=json.loads(shapely.to_geojson(geometry)),
            crs="wgs84",
            gazetteer=list(names),
        )
        grids.append(grid)
        return grid

    top = add("130100", "district", None, district)
    street_rows = {key: add(f"130100{i:03d}", "street", top, geom) for i, (key, geom) in enumerate(streets.items())}
    community_rows = {
        key: add(f"{street_rows[(key[0] // STREET, key[1] // STREET)].code}{i:04d}", "community",
                 street_rows[(key[0] // STREET, key[1] // STREET)], geom)
        for i, (key, geom) in enumerate(communities.items())
    }
    picker = random.Random(seed)
    for k, quad in enumerate(quads):
        community = community_rows[community_of[k]]
        add(f"{community.code}-{k:06d}", "grid", community, quad, names=(f"第{k}小区", f"{k}号路"))
        if picker.random() < dedicated_share:
            centre = shapely.centroid(quad)
            school = shapely.box(centre.x - 0.15 * CELL[0], centre.y - 0.15 * CELL[1],
                                 centre.x + 0.15 * CELL[0], centre.y + 0.15 * CELL[1])
            add(f"{community.code}-D{k:06d}", "grid", community, school, kind="dedicated", names=(f"第{k}小学",))
    return grids


def write_geojson(grids: Sequence[Grid], path: Path) -> None:
    codes = {grid.id: grid.code for grid in grids}
    features = [
        {
            "type": "Feature",
            "properties": {
                "code": grid.code,
                "name": grid.name,
                "parent": codes.get(grid.parent_id),
                "level": grid.level,
                "kind": grid.kind,
                "gazetteer": grid.gazetteer,
            },
            "geometry": grid.geometry,
        }
        for grid in grids
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False), "utf-8")


def store(grids: Sequence[Grid], url: str) -> Any:
    engine = make_engine(url)
    upgrade_schema(engine)
    now = utcnow()
    rows = [{**grid.model_dump(), "created_at": now, "updated_at": now} for grid in grids]
    with session_scope(engine) as session:
        session.connection().execute(insert(table_of(Grid)), rows)
    return engine


def median_seconds(action: Callable[[], Any], times: int) -> tuple[float, Any]:
    spent, result = [], None
    for _ in range(times):
        start = time.perf_counter()
        result = action()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent), result


def lookups_per_second(
    index: GridIndex, points: list[tuple[float, float]], crs: str, seconds: float, rounds: int
) -> tuple[list[float], list[float]]:
    """Lookups per second of wall time and of the process's CPU time, one figure per round."""
    locate = index.locate
    for lng, lat in points[: min(len(points), 20_000)]:  # warm-up
        locate(lng, lat, crs)
    chunks = itertools.cycle([points[i : i + 10_000] for i in range(0, len(points), 10_000)])
    wall_rates, cpu_rates = [], []
    for _ in range(rounds):
        done = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds / rounds:
            chunk = next(chunks)
            for lng, lat in chunk:
                locate(lng, lat, crs)
            done += len(chunk)
        wall_rates.append(done / (time.perf_counter() - start))
        cpu_rates.append(done / (time.process_time() - start_cpu))
    return wall_rates, cpu_rates


def describe(rates: tuple[list[float], list[float]]) -> str:
    wall, cpu = rates
    median = statistics.median(wall)
    return (
        f"{median:,.0f}/s ({1e6 / median:.1f} µs each; rounds {min(wall):,.0f}–{max(wall):,.0f}; "
        f"per CPU second {statistics.median(cpu):,.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=100_000, help="base grids in the district")
    parser.add_argument("--lookups", type=int, default=100_000, help="distinct random points")
    parser.add_argument("--seconds", type=float, default=5.0, help="time spent on the lookups of each input datum")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the lookup time is split into (median shown)")
    parser.add_argument("--builds", type=int, default=3, help="index builds to take the median of")
    parser.add_argument("--dedicated", type=float, default=0.01, help="share of base grids holding a dedicated grid")
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU to run on")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-database", action="store_true", help="skip the SQLite build (GridIndex.from_session)")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile of the GCJ-02 lookups to this file")
    parser.add_argument("--geojson", type=Path, default=None, help="write the district as GeoJSON and stop")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    start = time.perf_counter()
    grids = build_district(args.grids, args.dedicated, args.seed)
    levels: dict[str, int] = {}
    for grid in grids:
        key = f"{grid.level}/{grid.kind}"
        levels[key] = levels.get(key, 0) + 1
    print(f"district: {len(grids):,} grids ({', '.join(f'{k} {v:,}' for k, v in sorted(levels.items()))}), "
          f"made in {time.perf_counter() - start:.1f} s")

    if args.geojson:
        write_geojson(grids, args.geojson)
        print(f"written to {args.geojson}")
        return

    build_s, index = median_seconds(lambda: GridIndex(grids), args.builds)
    print(f"index build, GridIndex(grids) in memory: {build_s:.2f} s (median of {args.builds})")
    if not args.no_database:
        with tempfile.TemporaryDirectory(prefix="gridbot-locate-") as work:
            engine = store(grids, f"sqlite:///{Path(work) / 'grids.db'}")

            def from_db() -> GridIndex:
                with session_scope(engine) as session:
                    return GridIndex.from_session(session)

            db_s, _ = median_seconds(from_db, args.builds)
            engine.dispose()
        print(f"index build, GridIndex.from_session on SQLite: {db_s:.2f} s (median of {args.builds})")

    district = shapely.geometry.shape(grids[0].geometry)
    west, south, east, north = district.bounds
    margin_x, margin_y = 0.02 * (east - west), 0.02 * (north - south)
    rng = random.Random(args.seed)
    wgs = [
        (rng.uniform(west - margin_x, east + margin_x), rng.uniform(south - margin_y, north + margin_y))
        for _ in range(args.lookups)
    ]
    gcj = [wgs84_to_gcj02(lng, lat) for lng, lat in wgs]

    found_gcj = [index.locate(lng, lat, "gcj02") for lng, lat in gcj]
    found_wgs = [index.locate(lng, lat, "wgs84") for lng, lat in wgs]
    share = sum(1 for chain in found_gcj if chain) / len(gcj)
    agree = sum(1 for a, b in zip(found_gcj, found_wgs, strict=True) if [g.id for g in a] == [g.id for g in b])
    dedicated = sum(1 for chain in found_gcj if chain and chain[0].rank[0] == 0)
    depth = statistics.mean(len(chain) for chain in found_gcj if chain) if share else 0.0
    print(f"points: {len(gcj):,}; found {share:.1%} (in a dedicated grid {dedicated:,}; chain length {depth:.2f}); "
          f"GCJ-02 and WGS-84 lookups agree on {agree:,} of {len(gcj):,}")
    # Where they differ, how far the place is from the edge of its (WGS-84) grid: the GCJ-02 copy of the index bends
    # each edge piece by at most a few centimetres (handlers/grids.py, _GCJ_SEGMENT_DEGREES).
    shapes = {grid.id: grid.geometry for grid in grids}
    gaps = []
    for (lng, lat), a, b in zip(wgs, found_gcj, found_wgs, strict=True):
        if [g.id for g in a] != [g.id for g in b]:
            holder = (b or a)[0]
            boundary = shapely.geometry.shape(shapes[holder.id]).boundary
            # a degree of latitude is the longest a degree gets here: metres at most
            gaps.append(boundary.distance(shapely.Point(lng, lat)) * 111_320)
    if gaps:
        print(f"  the {len(gaps)} that differ are at most {max(gaps) * 1000:.3f} mm from a grid edge")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        lookups_per_second(index, gcj, "gcj02", args.seconds, 1)
        profiler.disable()
        profiler.dump_stats(args.profile)
        print(f"profile of the GCJ-02 lookups written to {args.profile}")
    print("lookups, GCJ-02 input (conversion included): " + describe(
        lookups_per_second(index, gcj, "gcj02", args.seconds, args.rounds)))
    print("lookups, WGS-84 input: " + describe(lookups_per_second(index, wgs, "wgs84", args.seconds, args.rounds)))


if __name__ == "__main__":
    main()
