"""The official account's callback, /wechat/mp: verify, decrypt, parse, store, handle, reply.

Every valid POST is stored before it is answered; WeChat's retries of one message (same MsgId, or for events
the same sender + CreateTime + event) get the reply the first delivery got and change nothing. Hostile or
broken input gets a 4xx and touches nothing. Slow work (media downloads, notifications) is left to the
outbox and media workers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from bot.config import Settings
from bot.ingest import Job, process_batch
from handlers.intake import Inbound

log = logging.getLogger("gridbot.wechat")
router = APIRouter(tags=["wechat"])

MAX_REPLY_BYTES = 2000  # WeChat truncates passive text replies past 2048 bytes
_FORBIDDEN_MARKUP = (b"<!doctype", b"<!entity", b"<!element", b"<!attlist")


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _plain(text: str, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status)


def _check_signature(settings: Settings, params: dict[str, str], now: float) -> None:
    signature, timestamp, nonce = params.get("signature", ""), params.get("timestamp", ""), params.get("nonce", "")
    if not (signature and timestamp and nonce):
        raise Refused(403, "missing signature, timestamp or nonce")
    signer = WeChatSigner()
    signer.add_data(settings.wechat.token.get_secret_value(), timestamp, nonce)
    if not hmac.compare_digest(signer.signature.encode(), signature.encode()):
        raise Refused(403, "signature does not match")
    try:
        sent = int(timestamp)
    except ValueError:
        raise Refused(403, "timestamp is not a number") from None
    if abs(now - sent) > settings.wechat.timestamp_window_seconds:
        raise Refused(403, f"timestamp {sent} is outside the {settings.wechat.timestamp_window_seconds}s window")


@router.get("/wechat/mp", response_class=PlainTextResponse)
def verify_server(request: Request) -> Response:
    """WeChat's URL check when the server address is saved in the official account console."""
    settings: Settings = request.app.state.settings
    params = dict(request.query_params)
    try:
        _check_signature(settings, params, time.time())
    except Refused as exc:
        log.warning("refused GET /wechat/mp: %s", exc.reason)
        return _plain("forbidden", exc.status)
    return _plain(params.get("echostr", ""))


@dataclass(frozen=True)
class Envelope:
    xml: str
    encrypted: bool


def _open_envelope(settings: Settings, params: dict[str, str], body: bytes) -> Envelope:
    """Check size and markup, then decrypt when the message is encrypted (and must be, in safe mode)."""
    if len(body) > settings.wechat.max_body_bytes:
        raise Refused(413, f"body of {len(body)} bytes is over the {settings.wechat.max_body_bytes} limit")
    _screen(body)
    encrypted = params.get("encrypt_type", "raw").lower() == "aes"
    mode = settings.wechat.encrypt_mode
    if mode == "safe" and not encrypted:
        raise Refused(400, "safe mode accepts only encrypted messages")
    if mode == "plain" and encrypted:
        raise Refused(400, "plain mode is configured but the message is encrypted")
    if not encrypted:
        return Envelope(body.decode("utf-8"), False)
    crypto = WeChatCrypto(
        settings.wechat.token.get_secret_value(), settings.wechat.aes_key.get_secret_value(), settings.wechat.appid
    )
    try:
        plain = crypto.decrypt_message(body, params.get("msg_signature", ""), params["timestamp"], params["nonce"])
    except InvalidSignatureException:
        raise Refused(403, "msg_signature does not match") from None
    except InvalidAppIdException:
        raise Refused(403, "message is for another appid") from None
    except Exception as exc:  # wechatpy raises raw parse and padding errors; any of them means a bad body
        raise Refused(400, f"cannot decrypt: {type(exc).__name__}") from None
    plain_bytes = plain.encode("utf-8") if isinstance(plain, str) else plain
    _screen(plain_bytes)
    return Envelope(plain_bytes.decode("utf-8"), True)


def _screen(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "body is not UTF-8") from None
    lowered = raw.lower()
    if any(marker in lowered for marker in _FORBIDDEN_MARKUP):
        raise Refused(400, "DTDs and entity declarations are not accepted")
    if not raw.strip():
        raise Refused(400, "empty body")


def _parse(xml: str) -> Any:
    try:
        message = parse_message(xml)
    except Exception as exc:  # xmltodict/expat errors, a missing MsgType, a non-object document
        raise Refused(400, f"malformed message XML ({type(exc).__name__})") from None
    if message is None or not getattr(message, "source", None) or not getattr(message, "create_time", None):
        raise Refused(400, "message lacks FromUserName or CreateTime")
    return message


def to_inbound(message: Any) -> Inbound:
    """wechatpy's message object → the domain's plain Inbound (handlers never see wechatpy)."""
    kind = message.type
    created = message.create_time
    created_at = created if isinstance(created, datetime) else datetime.fromtimestamp(int(created), UTC)
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    common: dict[str, Any] = {"openid": message.source, "created_at": created_at}
    if kind == "text":
        return Inbound(kind="text", text=message.content or "", **common)
    if kind == "image":
        return Inbound(kind="image", media_id=message.media_id, **common)
    if kind == "voice":
        return Inbound(kind="voice", media_id=message.media_id, recognition=message.recognition, **common)
    if kind == "location":
        lat, lng = message.location
        return Inbound(kind="location", lng=float(lng), lat=float(lat), label=message.label, **common)
    if kind == "event":
        return Inbound(kind="event", event=message.event, event_key=getattr(message, "key", None), **common)
    if kind in ("video", "shortvideo", "link", "file"):
        return Inbound(kind="unsupported", **common)
    return Inbound(kind="unknown", **common)


def dedupe_key(message: Any) -> str:
    if getattr(message, "id", None):
        return f"msg:{message.id}"
    created = message.create_time
    stamp = int(created.timestamp()) if isinstance(created, datetime) else int(created)
    return f"event:{message.source}:{stamp}:{getattr(message, 'event', message.type)}"


def _reply(message: Any, text: str | None, envelope: Envelope, settings: Settings, params: dict[str, str]) -> Response:
    if not text:
        return _plain("success")
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_REPLY_BYTES:
        text = encoded[:MAX_REPLY_BYTES].decode("utf-8", "ignore") + "…"
    xml = TextReply(content=text, message=message).render()
    if envelope.encrypted:
        crypto = WeChatCrypto(
            settings.wechat.token.get_secret_value(),
            settings.wechat.aes_key.get_secret_value(),
            settings.wechat.appid,
        )
        xml = crypto.encrypt_message(xml, params["nonce"], params["timestamp"])
    return Response(xml, media_type="application/xml")


@router.post("/wechat/mp")
async def receive(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    params = dict(request.query_params)
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        declared = 0
    if declared > settings.wechat.max_body_bytes:
        log.warning("refused POST /wechat/mp: declared body of %d bytes", declared)
        return _plain("payload too large", 413)
    body = await request.body()
    try:
        _check_signature(settings, params, time.time())
        envelope = _open_envelope(settings, params, body)
        message = _parse(envelope.xml)
    except Refused as exc:
        log.warning("refused POST /wechat/mp: %s", exc.reason)
        return _plain(exc.reason if exc.status != 403 else "forbidden", exc.status)
    job = Job(raw=envelope.xml, message=message, inbound=to_inbound(message), key=dedupe_key(message))
    text = await asyncio.wrap_future(request.app.state.ingest.submit(job))
    return _reply(message, text, envelope, settings, params)


def store_and_handle(state: Any, raw: str, message: Any) -> str | None:
    """Store and handle one message in the calling thread (the writer does the same for whole batches)."""
    job = Job(raw=raw, message=message, inbound=to_inbound(message), key=dedupe_key(message))
    process_batch(state, [job], defer_after=float("inf"))
    return job.future.result()


def parse_stored(raw: str) -> Inbound:
    """A stored raw message back into the domain's Inbound (for deferred handling)."""
    return to_inbound(parse_message(raw))
