"""Grids: GeoJSON import with validation before any write, and point location through an STRtree."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import ahocorasick
import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from sqlalchemy import String, cast
from sqlalchemy import select as select_core
from sqlmodel import Session, select

from handlers.errors import InvalidInput
from handlers.geo import CRS_VALUES, convert, wgs84_to_gcj02_array
from handlers.notify import channel_problem
from models import Grid, utcnow
from models.db import execute_core
from models.grids import GRID_KINDS, GRID_LEVELS
from models.types import table_of

LEVEL_DEPTH = {level: depth for depth, level in enumerate(GRID_LEVELS)}
# Base grids may touch along edges; an overlap larger than this share of the smaller grid is an error.
OVERLAP_TOLERANCE = 1e-6


class GridImportError(InvalidInput):
    """Every problem found in a grid file; nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the grid file: " + "; ".join(problems[:20]))
        self.problems = problems


@dataclass
class GridSpec:
    code: str
    name: str
    level: str
    kind: str
    parent: str | None
    geometry: BaseGeometry
    channel: dict[str, Any] | None = None
    gazetteer: list[str] = field(default_factory=list)


ImportProgress = Callable[[str, int, int], None]
"""Told (step, done, total) as an import goes: "read" (each feature parsed and checked on its own), "check" (the
whole set: duplicates, parents, cycles, then overlaps pair by pair), "write" (grids created or updated)."""
# Each step is reported about this many times, whatever its size.
PROGRESS_REPORTS = 200


def _reporter(progress: ImportProgress | None, step: str, total: int) -> Callable[[int], None]:
    if progress is None:
        return lambda done: None
    every = max(1, total // PROGRESS_REPORTS)
    progress(step, 0, total)

    def report(done: int) -> None:
        if done % every == 0 or done == total:
            progress(step, done, total)

    return report


def _features_of(document: Any, crs: str) -> list[Any]:
    if crs not in CRS_VALUES:
        raise InvalidInput(f"crs must be one of {', '.join(CRS_VALUES)}, not {crs!r}")
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise GridImportError(["the file is not a GeoJSON FeatureCollection"])
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise GridImportError(["the FeatureCollection has no features"])
    return features


def parse_feature_collection(document: Any, crs: str = "wgs84", store_crs: str = "wgs84") -> list[GridSpec]:
    """Check each feature of a GeoJSON FeatureCollection on its own (`check_grid_set` checks the set). Raises
    GridImportError listing every problem."""
    specs, _, problems = _read_features(_features_of(document, crs), crs, store_crs, None)
    if problems:
        raise GridImportError(problems)
    return specs


def _read_features(
    features: list[Any], crs: str, store_crs: str, progress: ImportProgress | None
) -> tuple[list[GridSpec], list[tuple[str, str | None]], list[str]]:
    """The features that are sound on their own, (code, parent) of every feature that names a code (sound or
    not, so that the set checks know the grids the file declares), and the problems found."""
    problems: list[str] = []
    specs: list[GridSpec] = []
    declared: list[tuple[str, str | None]] = []
    report = _reporter(progress, "read", len(features))
    for index, feature in enumerate(features):
        spec = _parse_feature(index, feature, crs, store_crs, problems)
        if spec is not None:
            specs.append(spec)
            declared.append((spec.code, spec.parent))
        else:
            props = feature.get("properties") if isinstance(feature, dict) else None
            code = props.get("code") if isinstance(props, dict) else None
            parent = props.get("parent") if isinstance(props, dict) else None
            if isinstance(code, str) and code.strip():
                declared.append((code.strip(), parent if isinstance(parent, str) else None))
        report(index + 1)
    return specs, declared, problems


def _parse_feature(index: int, feature: Any, crs: str, store_crs: str, problems: list[str]) -> GridSpec | None:
    props = feature.get("properties") if isinstance(feature, dict) else None
    if not isinstance(props, dict):
        problems.append(f"feature #{index}: no properties")
        return None
    code = props.get("code")
    where = f"grid {code}" if isinstance(code, str) and code else f"feature #{index}"
    found = len(problems)
    if code is None or (isinstance(code, str) and not code.strip()):
        problems.append(f"{where}: property 'code' is missing")
    elif not isinstance(code, str):
        problems.append(f"{where}: property 'code' must be a string, not {code!r} (quote it in the file)")
    if not isinstance(props.get("name"), str) or not props["name"].strip():
        problems.append(f"{where}: property 'name' is missing")
    level, kind, parent = props.get("level"), props.get("kind", "base"), props.get("parent")
    if level not in GRID_LEVELS:
        problems.append(f"{where}: level {level!r} is not one of {', '.join(GRID_LEVELS)}")
    if kind not in GRID_KINDS:
        problems.append(f"{where}: kind {kind!r} is not one of {', '.join(GRID_KINDS)}")
    if parent is not None and not isinstance(parent, str):
        problems.append(f"{where}: parent must be a grid code or null")
    channel = props.get("channel")
    if channel is not None and (problem := channel_problem(channel)) is not None:
        problems.append(f"{where}: {problem}")
    gazetteer = props.get("gazetteer") or []
    if not isinstance(gazetteer, list) or not all(isinstance(name, str) for name in gazetteer):
        problems.append(f"{where}: gazetteer must be a list of names")
    geometry = _parse_geometry(where, feature.get("geometry"), crs, store_crs, problems)
    if len(problems) > found or geometry is None:
        return None
    return GridSpec(
        code=str(code).strip(),
        name=str(props["name"]).strip(),
        level=str(level),
        kind=str(kind),
        parent=parent,
        geometry=geometry,
        channel=channel,
        gazetteer=list(gazetteer),
    )


def _parse_geometry(where: str, raw: Any, crs: str, store_crs: str, problems: list[str]) -> BaseGeometry | None:
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        problems.append(f"{where}: geometry must be a Polygon or MultiPolygon")
        return None
    try:
        geometry = shape(raw)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.GEOSException) as exc:
        problems.append(f"{where}: unreadable coordinates ({exc})")
        return None
    if geometry.is_empty:
        problems.append(f"{where}: empty polygon")
        return None
    min_x, min_y, max_x, max_y = geometry.bounds
    if not (-180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90):
        problems.append(f"{where}: coordinates out of range (longitude first, then latitude)")
        return None
    if not geometry.is_valid:
        problems.append(f"{where}: invalid polygon ({explain_validity(geometry)})")
        return None
    if crs != store_crs:
        geometry = shapely.transform(geometry, _coordinate_converter(crs, store_crs))
    return geometry


def _coordinate_converter(source: str, target: str) -> Callable[[Any], Any]:
    def convert_coordinates(coordinates: Any) -> Any:
        pairs = [convert(x, y, source, target) for x, y in coordinates.tolist()]
        return np.array(pairs, dtype=float).reshape(-1, 2)

    return convert_coordinates


def check_grid_set(
    specs: Sequence[GridSpec],
    existing: dict[str, str | None],
    *,
    declared: Sequence[tuple[str, str | None]] | None = None,
    progress: ImportProgress | None = None,
) -> list[str]:
    """Whole-set checks: duplicates, unknown parents, cycles, overlapping base grids.

    `declared` is (code, parent) of every feature of the file, including those refused on their own, so that a
    grid whose parent has a bad polygon is not also told its parent does not exist.
    """
    declared = declared if declared is not None else [(spec.code, spec.parent) for spec in specs]
    problems: list[str] = []
    seen: set[str] = set()
    for code, _ in declared:
        if code in seen:
            problems.append(f"grid {code}: code appears more than once")
        seen.add(code)
    parents = dict(existing)
    parents.update(dict(declared))
    for code, parent in declared:
        if parent is not None and parent not in parents:
            problems.append(f"grid {code}: parent {parent} is neither in the file nor in the database")
    problems.extend(_cycles(parents, [code for code, _ in declared]))
    problems.extend(_overlaps([s for s in specs if s.kind == "base" and s.level in ("grid", "subgrid")], progress))
    return problems


def _cycles(parents: dict[str, str | None], codes: Iterable[str]) -> list[str]:
    problems = []
    reported: set[str] = set()
    for code in codes:
        path: list[str] = []
        current: str | None = code
        while current is not None and current in parents and current not in path:
            path.append(current)
            current = parents[current]
        if current is not None and current in path:
            cycle = path[path.index(current) :]
            if not reported & set(cycle):
                problems.append("grids form a parent cycle: " + " → ".join([*cycle, current]))
                reported |= set(cycle)
    return problems




def _overlaps(specs: list[GridSpec], progress: ImportProgress | None = None) -> list[str]:
    if len(specs) < 2:
        _reporter(progress, "check", 0)
        return []
    geometries = np.array([spec.geometry for spec in specs], dtype=object)
    tree = shapely.STRtree(geometries)
    left, right = tree.query(geometries, predicate="intersects")
    pairs = [(i, j) for i, j in zip(left.tolist(), right.tolist(), strict=True) if i < j]
    pairs = [(i, j) for i, j in pairs if specs[i].level == specs[j].level]
    report = _reporter(progress, "check", len(pairs))
    problems = []
    step = min(5_000, max(100, len(pairs) // PROGRESS_REPORTS))  # pairs tested at once, then progress is told
    for start in range(0, len(pairs), step):
        chunk = pairs[start : start + step]
        firsts = geometries[[i for i, _ in chunk]]
        seconds = geometries[[j for _, j in chunk]]
        # Neighbours that only touch along an edge (most pairs) share no interior and so no area: skip them.
        inside = shapely.relate_pattern(firsts, seconds, "T********").tolist()
        for (i, j), interiors_meet in zip(chunk, inside, strict=True):
            if not interiors_meet:
                continue
            shared = geometries[i].intersection(geometries[j]).area
            if shared > OVERLAP_TOLERANCE * min(geometries[i].area, geometries[j].area):
                problems.append(f"base grids {specs[i].code} and {specs[j].code} overlap")
        report(start + len(chunk))
    return problems


def import_grids(
    session: Session,
    document: Any,
    *,
    crs: str = "wgs84",
    store_crs: str = "wgs84",
    progress: ImportProgress | None = None,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Validate the whole file, then create or update grids by code. Returns (created, updated). No commit.

    Every problem of the file is found before anything is written: those of single features and those of the set
    (checked on the features that are sound), all in one GridImportError.
    """
    specs, declared, problems = _read_features(_features_of(document, crs), crs, store_crs, progress)
    existing_rows = session.exec(select(Grid)).all()
    by_id = {grid.id: grid for grid in existing_rows}
    existing = {grid.code: (by_id[grid.parent_id].code if grid.parent_id in by_id else None) for grid in existing_rows}
    problems.extend(check_grid_set(specs, existing, declared=declared, progress=progress))
    if problems:
        raise GridImportError(problems)
    grids = {grid.code: grid for grid in existing_rows}
    created = updated = 0
    report = _reporter(progress, "write", len(specs))
    for done, spec in enumerate(_parents_first(specs), start=1):
        grid = grids.get(spec.code)
        if grid is None:
            grid = Grid(code=spec.code, name=spec.name, level=spec.level)
            created += 1
        else:
            updated += 1
        grid.name, grid.level, grid.kind = spec.name, spec.level, spec.kind
        grid.geometry = json.loads(shapely.to_geojson(spec.geometry))
        grid.crs = store_crs
        grid.channel = spec.channel
        grid.gazetteer = spec.gazetteer
        grid.updated_at = now or utcnow()  # GridIndex caches compare this to know when to rebuild
        grid.parent_id = grids[spec.parent].id if spec.parent else None
        session.add(grid)
        session.flush()
        grids[spec.code] = grid
        report(done)
    return created, updated


def _parents_first(specs: Sequence[GridSpec]) -> list[GridSpec]:
    by_code = {spec.code: spec for spec in specs}
    ordered: list[GridSpec] = []
    placed: set[str] = set()

    def place(spec: GridSpec) -> None:
        if spec.code in placed:
            return
        if spec.parent in by_code:
            place(by_code[spec.parent])
        placed.add(spec.code)
        ordered.append(spec)

    for spec in specs:
        place(spec)
    return ordered


@dataclass(frozen=True, slots=True)
class IndexedGrid:
    id: int
    code: str
    parent_id: int | None
    rank: tuple[int, int, float]  # smaller is more specific: dedicated first, then deeper level, then area


def _specificity(entry: IndexedGrid) -> tuple[int, int]:
    return entry.rank[0], entry.rank[1]


class GridRow(Protocol):
    """What the index reads of a grid: a `Grid`, or a row of `_INDEX_ROWS` (geometry as GeoJSON text)."""

    @property
    def id(self) -> int | None: ...
    @property
    def code(self) -> str: ...
    @property
    def parent_id(self) -> int | None: ...
    @property
    def level(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def crs(self) -> str: ...
    @property
    def geometry(self) -> dict[str, Any] | str | None: ...
    @property
    def gazetteer(self) -> list[str] | None: ...


_GRIDS = table_of(Grid)
# The geometry as the stored GeoJSON text: decoding it to dicts (SQLAlchemy's JSON type) and then to shapes cost
# 15 s at 100,000 grids; GEOS reads the text in ~2 s.
_INDEX_ROWS = select_core(
    _GRIDS.c.id,
    _GRIDS.c.code,
    _GRIDS.c.parent_id,
    _GRIDS.c.level,
    _GRIDS.c.kind,
    _GRIDS.c.crs,
    cast(_GRIDS.c.geometry, String).label("geometry"),
    _GRIDS.c.gazetteer,
)
# Grids of these ranks or better (every dedicated grid, base grids and subgrids) are the leaves a point is looked
# up in first; communities, streets and districts, whose long outlines are slow to test, only when no leaf holds it.
_LEAF_RANK = (1, -LEVEL_DEPTH["grid"])
# Grids stored in WGS-84 are also indexed in GCJ-02, the datum WeChat and the mini-program send, so such a point is
# looked up as it comes instead of being converted (the inverse costs three evaluations of the offset, a third of
# a lookup). An edge straight in WGS-84 bends slightly in GCJ-02: the offset's fastest term (period 1/3 degree,
# 13 m) makes a chord of L metres stray by at most about 7e-8 L², so edges are first cut into pieces of at most
# 0.005 degrees (~500 m): a point's grid differs from the exact inverse's only within ~2 cm of an edge, far inside
# the error of any phone's location.
_GCJ_SEGMENT_DEGREES = 0.005


def _read_geometries(raw: list[dict[str, Any] | str]) -> list[BaseGeometry]:
    if all(isinstance(item, str) for item in raw):
        return list(shapely.from_geojson(raw)) if raw else []
    return [shapely.from_geojson(item) if isinstance(item, str) else shape(item) for item in raw]


class GridIndex:
    """Point-in-polygon over every grid. Built once from the database; rebuild after an import.

    Two STRtrees: the leaves (dedicated grids, base grids, subgrids) and the areas above them. Every leaf ranks
    before every area, so the most specific grid holding a point is among the leaves that hold it whenever one
    does; the areas are searched only for points no leaf holds. The answer is the same as one tree over all.
    """

    def __init__(self, grids: Sequence[GridRow]) -> None:
        self.crs = grids[0].crs if grids else "wgs84"
        self._grids: list[IndexedGrid] = []
        with_shape = [grid for grid in grids if grid.geometry not in (None, "null") and grid.id is not None]
        geometries = _read_geometries([grid.geometry for grid in with_shape])  # type: ignore[misc]
        areas = shapely.area(geometries).tolist() if geometries else []
        leaves: tuple[list[IndexedGrid], list[BaseGeometry]] = ([], [])
        areas_above: tuple[list[IndexedGrid], list[BaseGeometry]] = ([], [])
        for grid, geometry, area in zip(with_shape, geometries, areas, strict=True):
            entry = IndexedGrid(
                id=int(grid.id),  # type: ignore[arg-type]
                code=grid.code,
                parent_id=grid.parent_id,
                rank=(0 if grid.kind == "dedicated" else 1, -LEVEL_DEPTH.get(grid.level, 0), area),
            )
            self._grids.append(entry)
            tier = leaves if entry.rank[:2] <= _LEAF_RANK else areas_above
            tier[0].append(entry)
            tier[1].append(geometry)
        self._by_id = {entry.id: entry for entry in self._grids}
        for grid in grids:  # grids without a polygon still belong in the chains of the grids under them
            if grid.id is not None and grid.id not in self._by_id:
                self._by_id[grid.id] = IndexedGrid(
                    grid.id,
                    grid.code,
                    grid.parent_id,
                    (0 if grid.kind == "dedicated" else 1, -LEVEL_DEPTH.get(grid.level, 0), float("inf")),
                )
        self._tiers = [(entries, shapely.STRtree(shapes)) for entries, shapes in (leaves, areas_above) if entries]
        # crs of the query → the tiers that answer it without converting the point
        self._tiers_in: dict[str, list[tuple[list[IndexedGrid], shapely.STRtree]]] = {self.crs: self._tiers}
        if self.crs == "wgs84":
            self._tiers_in["gcj02"] = [
                (entries, shapely.STRtree(_to_gcj02(shapes))) for entries, shapes in (leaves, areas_above) if entries
            ]
        self._chains: dict[int, tuple[IndexedGrid, ...]] = {}
        self._names = ahocorasick.Automaton()
        named: dict[str, list[int]] = {}
        for grid in grids:
            for name in grid.gazetteer or []:
                if grid.id is not None and len(name) >= 2:
                    named.setdefault(name, []).append(grid.id)
        for name, ids in named.items():
            self._names.add_word(name, ids)
        if named:
            self._names.make_automaton()

    @classmethod
    def from_session(cls, session: Session) -> GridIndex:
        rows: Sequence[GridRow] = execute_core(session, _INDEX_ROWS).all()
        return cls(rows)

    def __len__(self) -> int:
        return len(self._grids)

    def match_names(self, text: str) -> IndexedGrid | None:
        """The most specific grid one of whose gazetteer names occurs in the text; None if none, or if two
        equally specific grids are named (the operators decide then)."""
        if not text or self._names.kind != ahocorasick.AHOCORASICK:
            return None
        hits = {grid_id for _, ids in self._names.iter(text) for grid_id in ids}
        entries = sorted((self._by_id[i] for i in hits if i in self._by_id), key=_specificity)
        if not entries or (len(entries) > 1 and _specificity(entries[0]) == _specificity(entries[1])):
            return None
        return entries[0]

    def locate(self, lng: float, lat: float, crs: str = "gcj02") -> list[IndexedGrid]:
        """The chain of grids holding the point, smallest first, up to the district; [] when outside all."""
        tiers = self._tiers_in.get(crs)
        if tiers is None:
            lng, lat = convert(lng, lat, crs, self.crs)
            tiers = self._tiers
        # A one-element array: the scalar forms of shapely.points and STRtree.query cost ~6 µs more per call.
        point = shapely.points(np.array(((lng, lat),)))
        for entries, tree in tiers:
            hits = tree.query(point, predicate="covered_by")[1]
            if len(hits) == 1:
                return list(self._chain(entries[hits[0]]))
            if len(hits) > 1:
                return list(self._chain(min((entries[i] for i in hits.tolist()), key=_rank)))
        return []

    def _chain(self, best: IndexedGrid) -> tuple[IndexedGrid, ...]:
        chain = self._chains.get(best.id)
        if chain is None:
            walk = [best]
            seen = {best.id}
            while walk[-1].parent_id is not None and walk[-1].parent_id in self._by_id:
                parent = self._by_id[walk[-1].parent_id]
                if parent.id in seen:
                    break
                seen.add(parent.id)
                walk.append(parent)
            chain = self._chains[best.id] = tuple(walk)
        return chain


def _to_gcj02(shapes: list[BaseGeometry]) -> Any:
    pieces = shapely.segmentize(np.array(shapes, dtype=object), _GCJ_SEGMENT_DEGREES)
    return shapely.transform(pieces, wgs84_to_gcj02_array)


def _rank(entry: IndexedGrid) -> tuple[int, int, float]:
    return entry.rank
