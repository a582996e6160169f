"""SLA policy and group announcements from settings (the domain's objects know nothing of config files)."""

from __future__ import annotations

from bot.config import Settings
from classifier.taxonomy import default_taxonomy
from handlers.announce import Announcer
from handlers.deadlines import SweepContext
from handlers.sla import SlaPolicy
from handlers.worktime import work_calendar


def sla_policy(settings: Settings) -> SlaPolicy:
    return SlaPolicy(
        accept_minutes=settings.sla.accept_minutes.model_dump(),
        resolve_hours=settings.sla.resolve_hours.model_dump(),
        calendar=work_calendar(
            settings.zone, settings.sla.work_hours, settings.sla.extra_holidays, settings.sla.extra_workdays
        ),
        remind_share=settings.sla.remind_share,
        supervise_every_minutes=settings.sla.supervise_every_minutes.model_dump(),
    )


def announcer(settings: Settings) -> Announcer:
    return Announcer(
        zone=settings.zone, public_base_url=settings.app.public_base_url, category_name=default_taxonomy().name_of
    )


def sweep_context(settings: Settings) -> SweepContext:
    return SweepContext(sla=sla_policy(settings), announcer=announcer(settings))
