"""Grids (网格): the administrative hierarchy and the polygons cases are routed by."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.types import JSONType, UTCDateTime, empty_list, utcnow

GRID_LEVELS = ("district", "street", "community", "grid", "subgrid")
GRID_KINDS = ("base", "dedicated")


class Grid(SQLModel, table=True):
    __tablename__ = "grids"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=64)
    name: str = Field(max_length=200)
    level: str = Field(max_length=16, description="district | street | community | grid | subgrid")
    kind: str = Field(default="base", max_length=16, description="base | dedicated (school, hospital …)")
    parent_id: int | None = Field(default=None, foreign_key="grids.id", index=True)
    # GeoJSON geometry (Polygon or MultiPolygon), in the CRS named by `crs` (wgs84 | gcj02).
    geometry: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    crs: str = Field(default="wgs84", max_length=8)
    # How the grid's work group is reached, e.g. {"type": "wecom_robot", "key": "..."}.
    channel: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    # Community, road, building and landmark names used to place reports that have no coordinates.
    gazetteer: list[str] = Field(default_factory=empty_list, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
