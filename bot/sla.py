"""SLA policy from settings (the domain's SlaPolicy knows nothing of config files)."""

from __future__ import annotations

from bot.config import Settings
from handlers.sla import SlaPolicy


def sla_policy(settings: Settings) -> SlaPolicy:
    return SlaPolicy(
        accept_minutes=settings.sla.accept_minutes.model_dump(),
        resolve_hours=settings.sla.resolve_hours.model_dump(),
    )
