"""One GridIndex per process, rebuilt only when the grids table changed (count or newest update)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from handlers.grids import GridIndex
from models import Grid
from models.db import execute_core
from models.types import table_of

_GRIDS = table_of(Grid)
# Built once: the writer checks it once per batch.
_SIGNATURE = select(func.count(_GRIDS.c.id), func.max(_GRIDS.c.updated_at))


class GridIndexCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: Any = None
        self._index: GridIndex | None = None

    def get(self, session: Session) -> GridIndex:
        signature = tuple(execute_core(session, _SIGNATURE).one())
        with self._lock:
            if self._index is None or signature != self._signature:
                self._index = GridIndex.from_session(session)
                self._signature = signature
            return self._index
