"""The Alembic migrations build exactly the schema the SQLModel tables describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

import models  # noqa: F401


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), SQLModel.metadata)
        conn.rollback()
    assert diff == []


def test_upgrade_is_a_no_op_when_current(engine: Engine) -> None:
    from models.db import schema_is_current, upgrade_schema

    assert schema_is_current(engine)
    upgrade_schema(engine)
    assert "case_events" in inspect(engine).get_table_names()
