"""The database at the edge: engine from settings, schema upgrade, demo seeding."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from bot.config import Settings
from handlers.demo import database_is_empty, seed_demo
from models import utcnow
from models.db import make_engine, session_scope, upgrade_schema

log = logging.getLogger("gridbot.database")


def engine_from_settings(settings: Settings) -> Engine:
    return make_engine(
        settings.database.url, echo=settings.database.echo, busy_timeout_ms=settings.database.busy_timeout_ms
    )


def prepare_database(settings: Settings, engine: Engine) -> None:
    """Upgrade the schema; with demo on, fill an empty database with the demo district."""
    upgrade_schema(engine)
    if not settings.app.demo:
        return
    with session_scope(engine) as session:
        if not database_is_empty(session):
            return
        summary = seed_demo(session, utcnow(), settings.zone)
    log.info(
        "demo district loaded: %d grids, %d people, %d activities (staff password: see README)",
        summary.grids,
        summary.people,
        summary.activities,
    )
