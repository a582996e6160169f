"""One GridIndex per process, rebuilt only when the grids table changed (count or newest update)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from handlers.grids import GridIndex
from models import Grid


class GridIndexCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: Any = None
        self._index: GridIndex | None = None

    def get(self, session: Session) -> GridIndex:
        signature = tuple(session.exec(select(func.count(Grid.id), func.max(Grid.updated_at))).one())
        with self._lock:
            if self._index is None or signature != self._signature:
                self._index = GridIndex.from_session(session)
                self._signature = signature
            return self._index
