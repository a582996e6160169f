"""The timers (APScheduler): outbox delivery, media downloads, idle drafts, deadlines (reminders, escalation,
督办), the daily digest, occurrences of recurring activities and no-shows after activities. Run by one process at
a time.

Every process that starts timers (each `gridbot serve` worker, or `gridbot scheduler`) competes for one
lease row in the database; only the holder runs the jobs, renewing the lease as it goes. If the holder dies,
its lease expires and another process takes over within `LEASE_TTL`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, time, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from bot.api.activities import activity_context
from bot.api.points import points_rules
from bot.classification import ClassifierHolder
from bot.config import Settings
from bot.gateway import Gateway
from bot.grid_cache import GridIndexCache
from bot.ingest import handle_deferred
from bot.media import MediaFetcher
from bot.outbox import OutboxSender
from bot.sla import announcer, sla_policy, sweep_context
from bot.storage import LocalMediaStore
from bot.wechat import parse_stored
from handlers.deadlines import post_digests, sweep_deadlines
from handlers.drafts import IntakeContext, sweep_drafts
from handlers.points import use_rules
from handlers.series import generate_occurrences
from handlers.signups import settle_activities
from models import SchedulerLease
from models.db import session_scope

log = logging.getLogger("gridbot.scheduler")

LEASE_NAME = "timers"
LEASE_TTL = timedelta(seconds=30)


def acquire_lease(engine: Engine, holder: str, now: datetime, ttl: timedelta = LEASE_TTL) -> bool:
    """Take or renew the timers lease; False while another live process holds it."""
    try:
        with session_scope(engine) as session:
            row = session.get(SchedulerLease, LEASE_NAME, with_for_update=True)
            if row is None:
                session.add(SchedulerLease(name=LEASE_NAME, holder=holder, expires_at=now + ttl))
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            row.holder, row.expires_at = holder, now + ttl
            session.add(row)
            return True
    except IntegrityError:  # another process inserted the first lease at the same moment
        return False


class Timers:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        clock: Callable[[], datetime],
        classifier: ClassifierHolder | None = None,
        grid_cache: GridIndexCache | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.classifier = classifier or ClassifierHolder(settings)
        self.grid_cache = grid_cache or GridIndexCache()
        gateway = gateway or Gateway(settings, engine)
        self.outbox = OutboxSender(engine, gateway, settings, clock)
        self.media = MediaFetcher(engine, gateway, LocalMediaStore(settings.media.root), settings, clock)
        self.scheduler: BaseScheduler | None = None
        use_rules(engine, points_rules(settings))  # case actions of the SLA sweep may award report points

    def is_leader(self) -> bool:
        return acquire_lease(self.engine, self.holder, self.clock())

    def _guarded(self, name: str, job: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                if self.is_leader():
                    job()
            except Exception:  # a failing job is logged and tried again at its next tick
                log.exception("timer job %s failed", name)

        return run

    def deliver_outbox(self) -> None:
        while self.outbox.run_once():
            pass

    def fetch_media(self) -> None:
        while self.media.run_once():
            pass

    def handle_deferred(self) -> None:
        while handle_deferred(self, parse_stored):
            pass

    def sweep_drafts(self) -> None:
        with session_scope(self.engine) as session:
            ctx = IntakeContext(
                classifier=self.classifier.get(),
                zone=self.settings.zone,
                sla=sla_policy(self.settings),
                grid_index=lambda: self.grid_cache.get(session),
                review_below=self.settings.classifier.review_below,
                public_base_url=self.settings.app.public_base_url,
                announcer=announcer(self.settings),
            )
            submitted, expired = sweep_drafts(
                session,
                ctx,
                self.clock(),
                idle=timedelta(minutes=self.settings.intake.draft_idle_minutes),
                expire=timedelta(hours=self.settings.intake.draft_expire_hours),
            )
        if submitted or expired:
            log.info("drafts: %d submitted after idling, %d expired", submitted, expired)

    def sweep_deadlines(self) -> None:
        """Reminders, escalation and 督办 (handlers/deadlines.py), a batch per transaction until none is due."""
        ctx = sweep_context(self.settings)
        while True:
            with session_scope(self.engine) as session:
                counts = sweep_deadlines(session, ctx, self.clock())
            if not counts:
                return
            log.info(
                "deadlines: %d reminded, %d escalated, %d supervised",
                counts.reminded,
                counts.escalated,
                counts.supervised,
            )

    def post_digests(self) -> None:
        with session_scope(self.engine) as session:
            posted = post_digests(session, sweep_context(self.settings), self.clock())
        log.info("daily digest owed to %d grid groups", posted)

    def generate_occurrences(self) -> None:
        """Recurring activities: their occurrences within activities.generate_days_ahead, each created once."""
        with session_scope(self.engine) as session:
            created = generate_occurrences(session, activity_context(self.settings), self.clock())
        if created:
            log.info("activities: %d occurrences of recurring activities published", created)

    def settle_activities(self) -> None:
        """After each activity (and its grace period): no-shows recorded, open attendances paid."""
        ctx = activity_context(self.settings)
        while True:
            with session_scope(self.engine) as session:
                settled = settle_activities(session, ctx, self.clock())
            if not settled:
                return
            log.info(
                "activities: %d settled, %d no-shows, %d paid to the end",
                settled.activities,
                settled.no_shows,
                settled.paid,
            )

    def start(self, blocking: bool = False) -> None:
        scheduler: BaseScheduler = (
            BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
        )
        jobs = {
            "deferred": (self.handle_deferred, 2),
            "outbox": (self.deliver_outbox, 2),
            "media": (self.fetch_media, 3),
            "drafts": (self.sweep_drafts, 30),
        }
        jobs["deadlines"] = (self.sweep_deadlines, 30)
        jobs["series"] = (self.generate_occurrences, 600)
        jobs["attendance"] = (self.settle_activities, 60)
        for name, (job, seconds) in jobs.items():
            scheduler.add_job(
                self._guarded(name, job), "interval", seconds=seconds, id=name, max_instances=1, coalesce=True
            )
        at = time.fromisoformat(self.settings.sla.digest_at)
        scheduler.add_job(
            self._guarded("digest", self.post_digests),
            CronTrigger(hour=at.hour, minute=at.minute, timezone=self.settings.zone),
            id="digest",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
        self.scheduler = scheduler
        log.info("timers starting as %s", self.holder)
        scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
