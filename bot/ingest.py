"""The callback's writer: one thread stores inbound messages and runs the conversation, in batches.

Requests hand their parsed message to the writer and wait for its reply. The writer takes every message
waiting in the queue (up to `MAX_BATCH`), handles each inside its own savepoint, and commits the whole batch
once; only then are the replies released. So nothing is answered before it is stored, and under load many
messages share one commit instead of each paying for its own.

A message that has already waited longer than `wechat.defer_after_ms` is only stored (status `deferred`) and
answered "success": WeChat's 5-second limit holds whatever the backlog. The timers handle deferred messages
later and send their replies as customer-service messages through the outbox.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.sla import announcer, sla_policy
from handlers import texts
from handlers.drafts import IntakeContext
from handlers.grids import GridIndex
from handlers.intake import Inbound, handle_inbound, person_for_openid
from handlers.notify import tell_person
from models import InboundMessage
from models.db import new_session, session_scope
from models.types import table_of

log = logging.getLogger("gridbot.ingest")

MAX_BATCH = 64
Handled = tuple[str, str | None, str | None]  # status, reply, error


@dataclass
class Job:
    raw: str
    message: Any
    inbound: Inbound
    key: str
    enqueued: float = field(default_factory=time.monotonic)
    future: Future[str | None] = field(default_factory=Future)


def intake_context(state: Any, session: Session) -> IntakeContext:
    """What the conversation needs from the process, built once per batch (the grid index is looked up, and its
    freshness checked, at most once per batch too)."""
    settings: Settings = state.settings
    grid_index: list[GridIndex] = []

    def current_grid_index() -> GridIndex:
        if not grid_index:
            grid_index.append(state.grid_cache.get(session))
        return grid_index[0]

    return IntakeContext(
        classifier=state.classifier.get(),
        zone=settings.zone,
        sla=sla_policy(settings),
        grid_index=current_grid_index,
        review_below=settings.classifier.review_below,
        public_base_url=settings.app.public_base_url,
        announcer=announcer(settings),
    )


_INBOUND = table_of(InboundMessage)
_STORED_REPLIES = select(_INBOUND.c.dedupe_key, _INBOUND.c.reply).where(
    _INBOUND.c.dedupe_key.in_(bindparam("keys", expanding=True))
)
_INSERT_INBOUND = insert(_INBOUND)


def _inbound_row(job: Job, now: datetime, status: str, reply: str | None, error: str | None) -> dict[str, Any]:
    msg_id = getattr(job.message, "id", None)
    return {
        "channel": "mp",
        "dedupe_key": job.key,
        "openid": job.inbound.openid,
        "msg_type": job.message.type,
        "event": job.inbound.event,
        "msg_id": str(msg_id) if msg_id else None,
        "wx_create_time": int(job.inbound.created_at.timestamp()),
        "raw": job.raw,
        "received_at": now,
        "status": status,
        "processed_at": now if status == "processed" else None,
        "error": error,
        "reply": reply,
    }


def _store_batch(state: Any, session: Session, jobs: list[Job], started: float, defer_after: float) -> list[str | None]:
    """Every message of the batch inside one transaction → the replies, in order.

    One query finds the messages already stored (WeChat's retries); a retry gets the reply its first delivery got
    and changes nothing, also when both copies are in this batch. The others are handled (or, past the wait
    budget, deferred) one by one, each in its own savepoint, and all their rows are inserted with one executemany
    after the last handler ran, carrying reply and status. Nothing is answered before the batch commits. Two
    processes racing on one message collide on the unique dedupe key at commit, and the loser's batch is retried
    message by message.
    """
    clock: Callable[[], datetime] = state.clock
    stored: dict[str, str | None] = {
        key: reply for key, reply in session.execute(_STORED_REPLIES, {"keys": [job.key for job in jobs]})
    }
    context = functools.cache(lambda: intake_context(state, session))
    rows: list[dict[str, Any]] = []
    replies: list[str | None] = []
    for job in jobs:
        if job.key in stored:
            log.info("retry of %s answered with the stored reply", job.key)
            replies.append(stored[job.key])
            continue
        now = clock()
        status, reply, error = "deferred", None, None
        if started - job.enqueued <= defer_after:
            status, reply, error = handle_safely(session, context, job.inbound, now)
        rows.append(_inbound_row(job, now, status, reply, error))
        stored[job.key] = reply
        replies.append(reply)
    if rows:
        session.execute(_INSERT_INBOUND, rows)
    return replies


def handle_safely(session: Session, context: Callable[[], IntakeContext], inbound: Inbound, now: datetime) -> Handled:
    """Run the handler in a savepoint → (status, reply, error). If it fails (or the context it needs cannot be
    had), its effects are rolled back, the message is still stored (status failed, with the error) and the
    resident is told it was received."""
    savepoint = session.begin_nested()
    try:
        reply = handle_inbound(session, inbound, context(), now)
        savepoint.commit()
        return "processed", reply, None
    except Exception as exc:
        savepoint.rollback()
        log.exception("handler failed for an inbound message from %s", inbound.openid)
        return "failed", texts.SYSTEM_BUSY, f"{type(exc).__name__}: {exc}"[:500]


def process_batch(state: Any, jobs: list[Job], defer_after: float) -> None:
    """Handle and commit a batch; if the commit fails, retry each message alone so one cannot sink the rest."""
    started = time.monotonic()
    session = new_session(state.engine)
    try:
        replies = _store_batch(state, session, jobs, started, defer_after)
        session.commit()
    except Exception:
        session.rollback()
        session.close()
        if len(jobs) == 1:
            jobs[0].future.set_exception(_current_exception())
            return
        log.exception("batch of %d failed; retrying one by one", len(jobs))
        for job in jobs:
            process_batch(state, [job], defer_after)
        return
    finally:
        session.close()
    for job, reply in zip(jobs, replies, strict=True):
        job.future.set_result(reply)


def _current_exception() -> BaseException:
    import sys

    exc = sys.exc_info()[1]
    return exc if exc is not None else RuntimeError("batch failed")


class IngestWriter:
    def __init__(self, state: Any, defer_after_ms: int) -> None:
        self.state = state
        self.defer_after = defer_after_ms / 1000
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Job) -> Future[str | None]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gridbot-ingest", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                process_batch(self.state, batch, self.defer_after)
            except Exception as exc:  # never let the writer die with requests waiting on it
                log.exception("ingest batch crashed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
            if stop:
                return


def handle_deferred(state: Any, parse: Callable[[str], Inbound], batch: int = 50) -> int:
    """Handle messages stored without handling under load; their replies go out as customer-service messages."""
    clock: Callable[[], datetime] = state.clock
    with session_scope(state.engine) as session:
        rows = session.exec(
            select(InboundMessage)
            .where(InboundMessage.status == "deferred")
            .order_by(col(InboundMessage.id))
            .limit(batch)
        ).all()
        context = functools.cache(lambda: intake_context(state, session))
        for row in rows:
            now = clock()
            inbound = parse(row.raw)
            row.status, row.reply, row.error = handle_safely(session, context, inbound, now)
            row.processed_at = now
            if row.reply:
                person = person_for_openid(session, inbound.openid, now)
                tell_person(session, person, row.reply, now, dedupe_key=f"inbound:{row.id}:reply")
            session.add(row)
        return len(rows)
