"""ASGI entry point for uvicorn/gunicorn workers: `uvicorn bot.asgi:app --workers N`.

Settings come from config.yaml and GRIDBOT_* variables; each worker builds its own app and engine.
"""

from __future__ import annotations

from bot.app import create_app
from bot.config import load_settings

app = create_app(load_settings())
