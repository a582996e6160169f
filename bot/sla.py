"""SLA policy and group announcements from settings (the domain's objects know nothing of config files)."""

from __future__ import annotations

from bot.config import Settings
from classifier.taxonomy import default_taxonomy
from handlers.announce import Announcer, Departments
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
        by_subcategory={
            code: own.model_dump(exclude_none=True) for code, own in settings.sla.by_subcategory.items()
        },
    )


def announcer(settings: Settings) -> Announcer:
    taxonomy = default_taxonomy()
    return Announcer(
        zone=settings.zone,
        public_base_url=settings.app.public_base_url,
        category_name=taxonomy.name_of,
        departments=Departments(
            channels=settings.routing.departments,
            told_for={code: tuple(names) for code, names in settings.routing.told_for.items()},
            default_of=taxonomy.department_of,
        ),
    )


def sweep_context(settings: Settings) -> SweepContext:
    return SweepContext(sla=sla_policy(settings), announcer=announcer(settings))
