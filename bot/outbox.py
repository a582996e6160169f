"""The outbox sender: claims due messages, delivers them through the gateway, retries with back-off.

A claim moves `next_attempt_at` a lease ahead and counts the attempt in its own short transaction, so a
crash between claim and delivery only delays the message; a message is marked sent right after the API
accepted it. PostgreSQL claims with FOR UPDATE SKIP LOCKED, so several senders never take the same row.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.claims import claim_due
from bot.config import Settings
from bot.gateway import Gateway, GatewayError
from handlers.texts import STATUS_NAMES
from models import OutboxMessage, Person
from models.db import session_scope

log = logging.getLogger("gridbot.outbox")

LEASE = timedelta(minutes=2)
CUSTOM_WINDOW = timedelta(hours=48)
OUT_OF_WINDOW = 45015  # customer-service message refused: the person has not written for 48 hours
SENDERS = ("wecom_robot", "wecom_appchat", "wechat_user")  # mp_template_workers rows are wechat_user rows


class RateLimited(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"rate limited until {until.isoformat()}")
        self.until = until


@dataclass
class OutboxSender:
    engine: Engine
    gateway: Gateway
    settings: Settings
    clock: Callable[[], datetime]

    def run_once(self) -> int:
        """Deliver what is due now; returns how many messages were tried."""
        claimed = self._claim(self.clock())
        for message_id in claimed:
            self._deliver(message_id)
        return len(claimed)

    def _claim(self, now: datetime) -> list[int]:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending", col(OutboxMessage.next_attempt_at) <= now)
            .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
            .limit(self.settings.outbox.batch)
        )
        return claim_due(self.engine, query, now, LEASE)

    def _deliver(self, message_id: int) -> None:
        """Read and decide in one short transaction, call the API with no transaction open, record the outcome.

        Holding a write transaction across an HTTP call would block every writer for up to the call's timeout.
        """
        now = self.clock()
        send: Callable[[], None] | None = None
        with session_scope(self.engine) as session:
            row = session.get(OutboxMessage, message_id)
            if row is None or row.status != "pending":
                return
            try:
                send = self._prepare(session, row, now)
            except RateLimited as limited:
                row.attempts -= 1  # waiting for our turn is not a failed attempt
                row.next_attempt_at = limited.until
                session.add(row)
                return
            except GatewayError as exc:
                self._failed_attempt(row, now, str(exc), exc.retryable)
                session.add(row)
                return
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                # A malformed row stays malformed: fail it where people see it, and go on with the others.
                log.exception("outbox message %s: cannot be prepared", message_id)
                self._failed_attempt(row, now, f"malformed message: {type(exc).__name__}: {exc}", False)
                session.add(row)
                return
        error: tuple[str, bool] | None = None
        try:
            send()
        except GatewayError as exc:
            error = (str(exc), exc.retryable)
        except Exception as exc:  # a bug in a sender must not stop the others; it is retried and logged
            log.exception("outbox message %s: unexpected error", message_id)
            error = (f"{type(exc).__name__}: {exc}", True)
        with session_scope(self.engine) as session:
            row = session.get(OutboxMessage, message_id)
            if row is None:
                return
            if error is None:
                row.status, row.sent_at, row.last_error = "sent", self.clock(), None
                log.info("outbox message %s sent (%s → %s)", row.id, row.channel, row.target)
            else:
                self._failed_attempt(row, self.clock(), *error)
            session.add(row)

    def _failed_attempt(self, row: OutboxMessage, now: datetime, error: str, retryable: bool) -> None:
        row.last_error = error[:1000]
        if not retryable or row.attempts >= self.settings.outbox.max_attempts:
            row.status = "failed"
            log.warning("outbox message %s failed for good after %d attempt(s): %s", row.id, row.attempts, error)
            return
        base = self.settings.outbox.backoff_base_seconds * 2 ** (row.attempts - 1)
        delay = min(base, self.settings.outbox.backoff_max_seconds) * random.uniform(0.8, 1.2)
        row.next_attempt_at = now + timedelta(seconds=delay)
        log.info("outbox message %s: attempt %d failed (%s); next in %.0f s", row.id, row.attempts, error, delay)

    def _prepare(self, session: Session, row: OutboxMessage, now: datetime) -> Callable[[], None]:
        """What to call for this row, decided from the database; raises RateLimited or a permanent error.

        Channels: docs/outbox.md. A row whose grid channel could not be delivered to carries `channel_error`
        (handlers/notify.py) and fails here with that reason."""
        if row.payload.get("channel_error"):
            raise GatewayError(str(row.payload["channel_error"]), retryable=False)
        if row.channel not in SENDERS:
            raise GatewayError(f"no sender for channel {row.channel!r}", retryable=False)
        if not row.target:
            raise GatewayError(f"{row.channel} message without a target", retryable=False)
        if row.channel == "wecom_robot":
            self._pace_robot(session, row.target, now)
            payload = {"msgtype": "markdown", "markdown": {"content": str(row.payload["markdown"])}}
            key = row.target
            return lambda: self.gateway.post_robot(key, payload)
        if row.channel == "wecom_appchat":
            chatid, markdown = row.target, str(row.payload["markdown"])
            return lambda: self.gateway.post_appchat_markdown(chatid, markdown)
        return self._prepare_person(session, row, now)

    def _pace_robot(self, session: Session, key: str, now: datetime) -> None:
        window_start = now - timedelta(minutes=1)
        recent = session.exec(
            select(func.count(), func.min(OutboxMessage.sent_at)).where(
                OutboxMessage.channel == "wecom_robot",
                OutboxMessage.target == key,
                col(OutboxMessage.sent_at) > window_start,
            )
        ).one()
        count, oldest = recent
        if count >= self.settings.outbox.robot_per_minute and oldest is not None:
            raise RateLimited(oldest + timedelta(minutes=1, seconds=1))

    def _prepare_person(self, session: Session, row: OutboxMessage, now: datetime) -> Callable[[], None]:
        """Customer-service text inside the 48-hour window, else the case-update template."""
        person = session.exec(select(Person).where(Person.openid == row.target)).first()
        recent = (
            person is not None
            and person.last_interaction_at is not None
            and (now - person.last_interaction_at < CUSTOM_WINDOW)
        )
        openid, text = row.target, str(row.payload["text"])
        template = self.settings.wechat.template_case_update
        # A grid card told to each worker (mp_template_workers) brings its own title and act-on-it link.
        data = {
            "first": {"value": str(row.payload.get("title") or "您反映的问题有新进展")},
            "keyword1": {"value": row.payload.get("case_no", "")},
            "keyword2": {"value": STATUS_NAMES.get(row.payload.get("status", ""), "")},
            "remark": {"value": text[:180]},
        }
        url = row.payload.get("url")

        def send_template() -> None:
            if not template:
                raise GatewayError(
                    "outside the 48-hour window and wechat.template_case_update is not set", retryable=False
                )
            self.gateway.send_template(openid, template, data, url=str(url) if url else None)

        def send() -> None:
            if recent:
                try:
                    self.gateway.send_text(openid, text)
                    return
                except GatewayError as exc:
                    if exc.errcode != OUT_OF_WINDOW:
                        raise
            send_template()

        return send
