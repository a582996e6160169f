"""Shared fixtures: settings built directly, a migrated database per test, a live server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session

from bot.app import create_app
from bot.config import AppSettings, ClassifierSettings, DatabaseSettings, MediaSettings, Settings
from models.db import make_engine, new_session, upgrade_schema
from tests.fakes.wechat_api import FakeWeChat

# CLI subprocesses in tests must never pick up a developer's own overrides.
for _var in [v for v in os.environ if v.startswith("GRIDBOT_")]:
    del os.environ[_var]


class FakeClock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Beijing

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy instead of running Alembic again."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the main file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def db_url(tmp_path: Path, migrated_template: Path) -> str:
    target = tmp_path / "gridbot.db"
    shutil.copyfile(migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def jieba_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jieba-cache")


FIXTURE_RULES = Path(__file__).parent / "data" / "rules_fixture"


def fixture_rules(target: Path) -> Path:
    """The fixture's small category files with the shipped _common.yaml (non-report patterns, negations).

    Service tests run on these, so they do not change meaning whenever the shipped keyword rules are tuned.
    """
    from classifier.rules import COMMON_FILE, RULES_DIR

    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RULES_DIR / COMMON_FILE, target / COMMON_FILE)
    for path in FIXTURE_RULES.glob("*.yaml"):
        shutil.copyfile(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def test_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_rules(tmp_path_factory.mktemp("rules"))


@pytest.fixture
def settings(db_url: str, tmp_path: Path, jieba_cache: Path, test_rules: Path) -> Settings:
    return Settings(
        app=AppSettings(demo=False, timers="off"),
        database=DatabaseSettings(url=db_url),
        media=MediaSettings(root=str(tmp_path / "media")),
        classifier=ClassifierSettings(cache_dir=str(jieba_cache), rules_dir=str(test_rules)),
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database.url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    session = new_session(engine)
    yield session
    session.rollback()
    session.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The real app under uvicorn on a loopback port, in a thread, as httpx's own tests do."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(settings: Settings, engine: Engine, clock: FakeClock) -> Iterator[LiveServer]:
    app = create_app(settings, engine=engine, clock=clock)
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    """The fake WeChat/WeCom API on a loopback port (`fake.url`); tests point the configured base URLs at it."""
    api = FakeWeChat()
    with LiveServer(api.app()) as server:
        api.url = server.url  # type: ignore[attr-defined]
        yield api


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=10) as client:
        yield client
