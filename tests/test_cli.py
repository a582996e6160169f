"""The `gridbot` command as an operator runs it: a subprocess on a fresh database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.config import REPO_ROOT
from handlers.demo import DEMO_PASSWORD, DISTRICT_FILE
from tests.conftest import free_port
from tests.factories import small_district


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, input=stdin, timeout=120
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GRIDBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "GRIDBOT_MEDIA__ROOT": str(tmp_path / "media"),
        "GRIDBOT_APP__DEMO": "false",
    }


def test_stats_on_a_fresh_database_has_every_key(env: dict[str, str]) -> None:
    result = run(env, "stats", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) >= {"inbound_messages", "reports", "cases", "outbox", "activities", "signups", "points_issued"}
    assert figures["outbox"] == {"pending": 0, "sent": 0, "failed": 0}
    assert figures["cases"]["reported"] == 0 and figures["reports"] == 0


def test_grids_import_then_locate(env: dict[str, str], tmp_path: Path) -> None:
    imported = run(env, "grids", "import", str(DISTRICT_FILE))
    assert imported.returncode == 0, imported.stderr
    assert "29 new" in imported.stdout
    # WGS-84 query inside the demo district's south-west community
    located = run(env, "grids", "locate", "114.54", "38.05", "--crs", "wgs84")
    assert located.returncode == 0
    chain = located.stdout.split()
    assert chain[-1] == "130102" and len(chain) == 4
    as_json = run(env, "grids", "locate", "114.54", "38.05", "--crs", "wgs84", "--json")
    assert json.loads(as_json.stdout) == chain
    outside = run(env, "grids", "locate", "100.0", "30.0")
    assert outside.returncode == 3 and "no grid" in outside.stderr


def test_grids_import_refuses_a_bad_file_and_writes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    doc = small_district()
    doc["features"][4]["properties"]["parent"] = "GHOST"
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    result = run(env, "grids", "import", str(bad))
    assert result.returncode == 1
    assert "parent GHOST" in result.stderr and "nothing was imported" in result.stderr
    assert run(env, "grids", "locate", "114.505", "38.005", "--crs", "wgs84").returncode == 3
    garbage = tmp_path / "garbage.geojson"
    garbage.write_text("{not json", encoding="utf-8")
    assert run(env, "grids", "import", str(garbage)).returncode == 1


def test_gcj02_file_import(env: dict[str, str], tmp_path: Path) -> None:
    from handlers.geo import wgs84_to_gcj02

    doc = small_district()
    for feat in doc["features"]:
        feat["geometry"]["coordinates"] = [
            [list(wgs84_to_gcj02(*pt)) for pt in ring] for ring in feat["geometry"]["coordinates"]
        ]
    path = tmp_path / "gcj.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert run(env, "grids", "import", str(path), "--crs", "gcj02").returncode == 0
    assert run(env, "grids", "locate", "114.505", "38.005", "--crs", "wgs84").stdout.split()[0] == "A"


def test_a_config_error_names_the_key_and_exits_2(env: dict[str, str]) -> None:
    result = run({**env, "GRIDBOT_DATABASE__URLL": "x"}, "stats", "--json")
    assert result.returncode == 2
    assert "GRIDBOT_DATABASE__URLL" in result.stderr


def test_users_add_and_token(env: dict[str, str]) -> None:
    assert run(env, "grids", "import", str(DISTRICT_FILE)).returncode == 0
    added = run(
        env,
        "users",
        "add",
        "zhang",
        "--name",
        "张三",
        "--role",
        "grid_worker",
        "--grid",
        "130102001001-01",
        "--phone",
        "13800001111",
        stdin="pw-123456\npw-123456\n",
    )
    assert added.returncode == 0, added.stderr
    token = run(env, "users", "token", "zhang")
    assert token.returncode == 0 and token.stdout.strip().startswith("gb_")
    missing = run(env, "users", "token", "nobody")
    assert missing.returncode == 1 and "nobody" in missing.stderr


def test_serve_runs_with_the_demo_district_and_upgrades_the_schema(tmp_path: Path) -> None:
    """README's first command, minus the install: `gridbot serve` on a fresh SQLite file with demo data."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GRIDBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "GRIDBOT_MEDIA__ROOT": str(tmp_path / "media"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "service did not answer /healthz"
            time.sleep(0.2)
        assert httpx.get(f"{base}/docs").status_code == 200
        login = httpx.post(f"{base}/api/v1/auth/login", json={"login": "op-01", "password": DEMO_PASSWORD})
        assert login.status_code == 200
        token = login.json()["token"]
        grids = httpx.get(f"{base}/api/v1/grids", headers={"Authorization": f"Bearer {token}"}).json()
        assert sum(1 for g in grids if g["level"] == "grid") >= 20
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    stats = run({**env, "GRIDBOT_APP__DEMO": "false"}, "stats", "--json")
    assert json.loads(stats.stdout)["activities"] >= 2


def test_cli_reads_the_database_while_the_service_writes(env: dict[str, str], tmp_path: Path) -> None:
    """SQLite in WAL mode with a busy timeout: `gridbot stats` works next to a busy writer."""
    import threading
    from datetime import UTC, datetime

    from handlers.cases import open_case
    from models import Report
    from models.db import make_engine, session_scope, upgrade_schema
    from tests.factories import ZONE

    engine = make_engine(env["GRIDBOT_DATABASE__URL"])
    upgrade_schema(engine)
    stop = threading.Event()
    written = []

    def writer() -> None:
        now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
        while not stop.is_set():
            with session_scope(engine) as session:
                written.append(open_case(session, Report(channel="mp", text="噪音", created_at=now), now, ZONE).case_no)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = [run(env, "stats", "--json") for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    engine.dispose()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    counts = [json.loads(r.stdout)["reports"] for r in results]
    assert counts == sorted(counts) and counts[-1] > 0
    assert len(written) == len(set(written)) > 0
