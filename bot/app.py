"""The application factory: one FastAPI app per Settings, nothing built at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from bot import activities_page, mobile, wechat
from bot.api import activities, admin, auth, cases, grids, points, reports
from bot.api.points import points_rules
from bot.classification import ClassifierHolder
from bot.config import Settings
from bot.database import engine_from_settings, prepare_database
from bot.grid_cache import GridIndexCache
from bot.ingest import IngestWriter
from bot.scheduler import Timers
from handlers.errors import Conflict, DomainError, Forbidden, InvalidInput, InvalidTransition, NotFound
from handlers.points import use_rules
from models import utcnow
from models.db import database_answers

log = logging.getLogger("gridbot.app")

STATUS_FOR_ERROR: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    InvalidTransition: 409,
    Conflict: 409,
    InvalidInput: 422,
}


HTTP_ERROR_NAMES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    prepare: bool = True,
    timers: bool | None = None,
) -> FastAPI:
    """`timers`: run the outbox/media/draft timers in this process (default: config app.timers)."""
    engine = engine or engine_from_settings(settings)
    use_rules(engine, points_rules(settings))  # the report award runs inside case actions, which get no settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if prepare:
            prepare_database(settings, engine)
        app.state.classifier.get()  # load jieba and the rules now, not on the first resident's message
        # What start-up loaded (jieba's dictionary, the rules, the ORM mappers) lives as long as the process.
        # Without this every full collection walks those millions of objects again: p99 of /wechat/mp went
        # from ~100 ms to ~11 ms and its HTTP side from ~2.8k to ~3.4k req/s (docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        running = None
        if timers if timers is not None else settings.app.timers == "in_process":
            running = Timers(settings, engine, clock, app.state.classifier, app.state.grid_cache)
            running.start()
        yield
        if running is not None:
            running.shutdown()
        app.state.ingest.close()
        engine.dispose()
        gc.unfreeze()  # several apps in one process (the tests) must not keep each other's objects forever

    app = FastAPI(
        title="Gridbot 网格通",
        version="0.1.0",
        description="WeChat intake and case lifecycle of a grid-governance platform. Times are UTC (ISO 8601).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock
    app.state.classifier = ClassifierHolder(settings)
    app.state.grid_cache = GridIndexCache()
    app.state.ingest = IngestWriter(app.state, settings.wechat.defer_after_ms)

    app.include_router(wechat.router)
    app.include_router(auth.router)
    app.include_router(cases.router)
    app.include_router(grids.router)
    app.include_router(admin.router)
    app.include_router(activities.router)
    app.include_router(points.router)
    app.include_router(reports.router)
    app.include_router(mobile.router)
    app.include_router(activities_page.router)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """200 when the database answers, 503 otherwise."""
        if database_answers(engine):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "database unavailable"}, status_code=503)

    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        code = next((status for kind, status in STATUS_FOR_ERROR.items() if isinstance(exc, kind)), 400)
        return JSONResponse({"error": exc.code, "message": exc.message, **exc.details}, status_code=code)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            body = exc.detail
        else:
            body = {"error": HTTP_ERROR_NAMES.get(exc.status_code, "http_error"), "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return JSONResponse(
            {"error": "invalid_input", "message": "; ".join(problems), "problems": problems}, status_code=422
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal", "message": "internal error; it has been logged"}, status_code=500)
