"""A fake of the WeChat official-account API and WeCom robots, served on 127.0.0.1 for the tests.

It keeps every call it receives, hands out stable tokens, serves temporary media (a real JPEG, or any bytes a
test registers), and can be told to fail: `fail(path, errcode=-1, times=2)`, `fail(path, http=500)`,
`expire_token()` (the current token answers 40001 until a new one is fetched).

WeCom's side: robots (`cgi-bin/webhook/send`), and a self-built application's `cgi-bin/gettoken` (checked against
`wecom_corpid` / `wecom_secret`) and `cgi-bin/appchat/send` to the chats in `chats`. `expire_wecom_token()`
makes the current WeCom token answer 42001 (expired); a token never handed out answers 40014.

The mini-program's `sns/jscode2session` (checked against `wxa_appid` / `wxa_secret`): `login_code(openid,
unionid=None)` scripts a wx.login code, usable once (again: 40163); an unknown code answers 40029. Every answer
carries a session_key (`SESSION_KEY_PREFIX` …), so tests can check that it is never stored or logged.
"""

from __future__ import annotations

import io
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image


def jpeg_bytes(width: int = 64, height: int = 48, color: str = "orange") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG")
    return buffer.getvalue()


SESSION_KEY_PREFIX = "SK-never-stored-"


@dataclass
class Call:
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class FakeWeChat:
    calls: list[Call] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    valid_tokens: set[str] = field(default_factory=set)
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    wecom_corpid: str = "wwFAKE"
    wecom_secret: str = "app-s3cret"
    chats: set[str] = field(default_factory=set)  # app chats our application created (appchat/create)
    chat_messages: list[dict[str, Any]] = field(default_factory=list)  # appchat/send bodies accepted
    wecom_tokens: set[str] = field(default_factory=set)
    expired_wecom_tokens: set[str] = field(default_factory=set)
    wxa_appid: str = "wxaFAKE"
    wxa_secret: str = "wxa-s3cret"
    wxa_codes: dict[str, dict[str, str]] = field(default_factory=dict)  # code → openid (and unionid)
    used_wxa_codes: set[str] = field(default_factory=set)
    _serial: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, *, errcode: int | None = None, http: int | None = None, times: int = 1) -> None:
        with self._lock:
            self.failures.setdefault(path, []).extend([{"errcode": errcode, "http": http}] * times)

    def expire_token(self) -> None:
        with self._lock:
            self.valid_tokens.clear()

    def expire_wecom_token(self) -> None:
        with self._lock:
            self.expired_wecom_tokens |= self.wecom_tokens
            self.wecom_tokens.clear()

    def login_code(self, openid: str, unionid: str | None = None) -> str:
        """A code as wx.login() would hand it to the mini-program, for this user."""
        code = f"CODE-{next(self._serial)}"
        with self._lock:
            self.wxa_codes[code] = {"openid": openid, **({"unionid": unionid} if unionid else {})}
        return code

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def _next_failure(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            queue = self.failures.get(path)
            return queue.pop(0) if queue else None

    def app(self) -> FastAPI:
        app = FastAPI()

        async def record(request: Request) -> Call:
            raw = await request.body()
            try:
                import json

                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            call = Call(request.url.path, dict(request.query_params), body)
            with self._lock:
                self.calls.append(call)
            return call

        def scripted(path: str) -> Response | None:
            failure = self._next_failure(path)
            if failure is None:
                return None
            if failure["http"]:
                return Response("upstream trouble", status_code=failure["http"])
            return JSONResponse({"errcode": failure["errcode"], "errmsg": "injected"})

        def token_problem(call: Call) -> Response | None:
            if call.params.get("access_token") not in self.valid_tokens:
                return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
            return None

        @app.post("/cgi-bin/stable_token")
        async def stable_token(request: Request) -> Response:
            call = await record(request)
            if (failed := scripted(call.path)) is not None:
                return failed
            token = f"TOKEN-{next(self._serial)}"
            with self._lock:
                self.valid_tokens = {token}
            return JSONResponse({"access_token": token, "expires_in": 7200})

        @app.get("/cgi-bin/media/get")
        async def media_get(request: Request) -> Response:
            call = await record(request)
            if (failed := scripted(call.path) or token_problem(call)) is not None:
                return failed
            media_id = call.params.get("media_id", "")
            if media_id not in self.media:
                return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
            content, content_type = self.media[media_id]
            return Response(content, media_type=content_type)

        for path in ("/cgi-bin/message/custom/send", "/cgi-bin/message/template/send", "/cgi-bin/menu/create"):

            async def api(request: Request, path: str = path) -> Response:
                call = await record(request)
                if (failed := scripted(path) or token_problem(call)) is not None:
                    return failed
                return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": next(self._serial)})

            app.post(path)(api)

        @app.get("/cgi-bin/gettoken")
        async def wecom_gettoken(request: Request) -> Response:
            call = await record(request)
            if (failed := scripted(call.path)) is not None:
                return failed
            if call.params.get("corpid") != self.wecom_corpid:
                return JSONResponse({"errcode": 40013, "errmsg": "invalid corpid"})
            if call.params.get("corpsecret") != self.wecom_secret:
                return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
            with self._lock:
                if not self.wecom_tokens:  # like WeCom: the same token until it expires
                    self.wecom_tokens = {f"WECOM-{next(self._serial)}"}
                token = next(iter(self.wecom_tokens))
            return JSONResponse({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})

        @app.post("/cgi-bin/appchat/send")
        async def appchat_send(request: Request) -> Response:
            call = await record(request)
            if (failed := scripted(call.path)) is not None:
                return failed
            token = call.params.get("access_token")
            if token in self.expired_wecom_tokens:
                return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
            if token not in self.wecom_tokens:
                return JSONResponse({"errcode": 40014, "errmsg": "invalid access_token"})
            body = call.body if isinstance(call.body, dict) else {}
            if body.get("chatid") not in self.chats:
                return JSONResponse({"errcode": 86003, "errmsg": "chatid not exist"})
            kind = body.get("msgtype")
            if kind not in ("text", "markdown") or not (body.get(kind) or {}).get("content"):
                return JSONResponse({"errcode": 44004, "errmsg": "empty content or unsupported msgtype"})
            with self._lock:
                self.chat_messages.append(body)
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        @app.get("/sns/jscode2session")
        async def jscode2session(request: Request) -> Response:
            call = await record(request)
            if (failed := scripted(call.path)) is not None:
                return failed
            params = call.params
            if params.get("appid") != self.wxa_appid:
                return JSONResponse({"errcode": 40013, "errmsg": "invalid appid"})
            if params.get("secret") != self.wxa_secret:
                return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
            if params.get("grant_type") != "authorization_code":
                return JSONResponse({"errcode": 40002, "errmsg": "invalid grant_type"})
            code = params.get("js_code", "")
            with self._lock:
                if code in self.used_wxa_codes:
                    return JSONResponse({"errcode": 40163, "errmsg": "code been used"})
                user = self.wxa_codes.get(code)
                if user is None:
                    return JSONResponse({"errcode": 40029, "errmsg": "invalid code"})
                self.used_wxa_codes.add(code)
            # Like WeChat: no errcode field on success, and a session_key we must never keep.
            return JSONResponse({**user, "session_key": f"{SESSION_KEY_PREFIX}{next(self._serial)}"})

        @app.post("/cgi-bin/webhook/send")
        async def robot(request: Request) -> Response:
            call = await record(request)
            if (failed := scripted(call.path)) is not None:
                return failed
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        return app
