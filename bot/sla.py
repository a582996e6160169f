"""SLA policy from settings (the domain's SlaPolicy knows nothing of config files)."""

from __future__ import annotations

from bot.config import Settings
from handlers.sla import SlaPolicy
from handlers.worktime import work_calendar


def sla_policy(settings: Settings) -> SlaPolicy:
    return SlaPolicy(
        accept_minutes=settings.sla.accept_minutes.model_dump(),
        resolve_hours=settings.sla.resolve_hours.model_dump(),
        calendar=work_calendar(
            settings.zone, settings.sla.work_hours, settings.sla.extra_holidays, settings.sla.extra_workdays
        ),
    )
