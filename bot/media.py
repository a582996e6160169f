"""The media worker: downloads photos and voice a resident sent, checks them, stores them, retries.

A photo must be a real JPEG, PNG or WebP within the size limit (bot/storage.py clean_photo); it is stored
re-encoded, upright and without EXIF (GPS), XMP or comments. Anything else is kept as `missing` with the reason,
so the case shows what was lost instead of failing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from PIL import Image
from sqlalchemy import Engine
from sqlmodel import col, select

from bot.claims import claim_due
from bot.config import Settings
from bot.gateway import Gateway, GatewayError
from bot.storage import MediaStore, PhotoRefused, clean_photo
from models import Media
from models.db import session_scope

log = logging.getLogger("gridbot.media")

LEASE = timedelta(minutes=2)
Image.MAX_IMAGE_PIXELS = 40_000_000  # refuse decompression bombs long before they exhaust memory


class BadMedia(Exception):
    """The file is not what it claims to be, or too large: retrying will not help."""


@dataclass(frozen=True)
class CheckedFile:
    data: bytes  # what is stored: a photo re-encoded without its metadata, a voice file as received
    extension: str
    content_type: str
    width: int | None
    height: int | None


@dataclass
class MediaFetcher:
    engine: Engine
    gateway: Gateway
    store: MediaStore
    settings: Settings
    clock: Callable[[], datetime]

    def run_once(self, batch: int = 10) -> int:
        claimed = self._claim(self.clock(), batch)
        for media_id in claimed:
            self._fetch(media_id)
        return len(claimed)

    def _claim(self, now: datetime, batch: int) -> list[int]:
        query = (
            select(Media)
            .where(
                Media.status == "pending",
                col(Media.wechat_media_id).is_not(None),
                col(Media.next_attempt_at) <= now,
            )
            .order_by(col(Media.id))
            .limit(batch)
        )
        return claim_due(self.engine, query, now, LEASE)

    def _fetch(self, media_id: int) -> None:
        with session_scope(self.engine) as session:  # a short read: no transaction is held during the download
            media = session.get(Media, media_id)
            if media is None or media.status != "pending" or media.wechat_media_id is None:
                return
            kind, wechat_id = media.kind, media.wechat_media_id
        now = self.clock()
        outcome: dict[str, object] = {}
        try:
            data, content_type = self.gateway.download_media(wechat_id)
            checked = self._check(kind, data, content_type)
            digest = hashlib.sha256(checked.data).hexdigest()
            key = f"{now:%Y/%m}/{digest[:2]}/{digest}.{checked.extension}"
            self.store.put(key, checked.data)
            outcome = {
                "status": "stored",
                "path": key,
                "sha256": digest,
                "size_bytes": len(checked.data),
                "content_type": checked.content_type,
                "width": checked.width,
                "height": checked.height,
                "last_error": None,
            }
        except BadMedia as exc:
            log.warning("media %s refused: %s", media_id, exc)
            outcome = {"status": "missing", "last_error": str(exc)}
        except GatewayError as exc:
            outcome = {"last_error": str(exc), "retryable": exc.retryable}
        with session_scope(self.engine) as session:
            media = session.get(Media, media_id)
            if media is None:
                return
            retryable = outcome.pop("retryable", None)
            for field_name, value in outcome.items():
                setattr(media, field_name, value)
            if retryable is not None:
                if not retryable or media.attempts >= self.settings.media.max_attempts:
                    media.status = "missing"
                    log.warning("media %s missing after %d attempt(s): %s", media_id, media.attempts, media.last_error)
                else:
                    media.next_attempt_at = now + timedelta(seconds=10 * 2 ** (media.attempts - 1))
            session.add(media)

    def _check(self, kind: str, data: bytes, content_type: str) -> CheckedFile:
        if kind == "image":
            # the same check and cleaning as photos uploaded on the case page: EXIF (GPS) never reaches storage
            try:
                photo = clean_photo(data, self.settings.media.max_image_bytes)
            except PhotoRefused as exc:
                raise BadMedia(f"photo refused: {exc}") from None
            return CheckedFile(photo.data, photo.extension, photo.content_type, photo.width, photo.height)
        if len(data) > self.settings.media.max_voice_bytes:
            raise BadMedia(f"{kind} of {len(data)} bytes is over the {self.settings.media.max_voice_bytes} byte limit")
        extension = {"audio/amr": "amr", "audio/mpeg": "mp3", "audio/speex": "spx"}.get(content_type, "bin")
        return CheckedFile(data, extension, content_type, None, None)
