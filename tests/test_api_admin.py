"""Reloading the classifier's rules over the API: invalid edits are refused and the old rules stay in use."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import Engine

from bot.app import create_app
from bot.config import ClassifierSettings, Settings
from models.db import session_scope
from tests.conftest import FakeClock, LiveServer, fixture_rules
from tests.factories import auth, make_person, token_for


def test_admin_reloads_rules_and_a_broken_edit_changes_nothing(
    settings: Settings, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    rules = fixture_rules(tmp_path / "rules")
    settings = settings.model_copy(
        update={"classifier": ClassifierSettings(rules_dir=str(rules), cache_dir=str(tmp_path / "cache"))}
    )
    with session_scope(engine) as session:
        admin = token_for(session, make_person(session, "adm", ["admin"]), clock())
        operator = token_for(session, make_person(session, "op", ["operator"]), clock())
    app = create_app(settings, engine=engine, clock=clock)
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as http:
        holder = app.state.classifier
        assert holder.get().classify("噪音很大").subcategory == "E02"

        (rules / "E.yaml").write_text("category: E\nsubcategories:\n  E06:\n    keywords:\n      噪音: x\n", "utf-8")
        refused = http.post("/api/v1/admin/classifier/reload", headers=auth(admin))
        assert refused.status_code == 422
        assert any("E.yaml:5" in p for p in refused.json()["problems"])
        assert holder.get().classify("噪音很大").subcategory == "E02"

        (rules / "E.yaml").write_text("category: E\nsubcategories:\n  E06:\n    keywords:\n      噪音: 4\n", "utf-8")
        assert http.post("/api/v1/admin/classifier/reload", headers=auth(operator)).status_code == 403
        ok = http.post("/api/v1/admin/classifier/reload", headers=auth(admin))
        assert ok.status_code == 200 and "E.yaml" in ok.json()["files"]
        assert holder.get().classify("噪音很大").subcategory == "E06"
