"""The one module that calls Tencent: the official account (wechatpy's WeChatClient) and WeCom group robots.

What we add to wechatpy 1.8.18 (each has a test against tests/fakes/wechat_api.py):
- every URL, the token's included, under the configured `api_base_url`;
- `cgi-bin/stable_token` instead of `cgi-bin/token`, with the token kept in the database (ServiceToken), so
  several workers share one token instead of invalidating each other's;
- a bounded refresh-and-retry on 40001/40014/42001 (wechatpy recurses without limit);
- timeouts on every call, and all failures mapped to GatewayError with `retryable` set, so the outbox knows
  whether to back off (−1 busy, 45009 rate limit, HTTP 5xx, network errors) or give up;
- the WeCom group-robot webhook, which wechatpy does not have;
- WeCom app chats through wechatpy's enterprise client (1.8.18 has it as `wechatpy.enterprise.WeChatClient`; 2.x
  renamed it `wechatpy.work`), whose `cgi-bin/gettoken` URL is hard-wired and whose token key holds the start of
  the secret: both replaced, the token shared in the database like the official account's;
- the mini-program's login (`sns/jscode2session` through `WeChatClient.wxa.code_to_session`): `WeChatWxa` has
  its own hard-coded `API_BASE_URL`, replaced by `wxa.api_base_url`; wechatpy would fetch an access token first,
  which jscode2session does not take, so none is fetched or sent; the session_key in the answer is dropped at
  once, never returned, logged or stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from sqlalchemy import Engine
from wechatpy import WeChatClient
from wechatpy.enterprise import WeChatClient as WeComClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from bot.config import Settings
from models import ServiceToken, utcnow
from models.db import session_scope

log = logging.getLogger("gridbot.gateway")

TIMEOUT = (3.05, 10.0)  # connect, read (seconds)
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RETRYABLE_ERRORS = frozenset({-1, 45009, 45011}) | TOKEN_ERRORS
# WeCom: 40014 invalid and 42001 expired token; 40001 there is a wrong secret (permanent). 45033: too many
# concurrent calls.
WECOM_TOKEN_ERRORS = frozenset({40014, 42001})
WECOM_BUSY = frozenset({-1, 45009, 45033})
WECOM_RETRYABLE_ERRORS = WECOM_BUSY | WECOM_TOKEN_ERRORS
TOKEN_MARGIN = timedelta(seconds=120)


class GatewayError(Exception):
    """A failed call to an outside API. `retryable`: worth trying again later with back-off."""

    def __init__(self, message: str, *, errcode: int | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.retryable = retryable


class DatabaseTokenStorage(SessionStorage):  # type: ignore[misc]
    """wechatpy's token storage, in the service_tokens table: shared by every worker and process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str, default: Any = None) -> Any:
        with session_scope(self.engine) as session:
            row = session.get(ServiceToken, key)
            if row is None or row.expires_at - TOKEN_MARGIN <= utcnow():
                return default
            return row.value

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        with session_scope(self.engine) as session:
            row = session.get(ServiceToken, key) or ServiceToken(key=key, value="", expires_at=utcnow())
            row.value = str(value)
            row.expires_at = utcnow() + timedelta(seconds=ttl or 7200)
            session.add(row)

    def delete(self, key: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(ServiceToken, key)
            if row is not None:
                session.delete(row)


class _BoundedTokenRetry:
    """`_request` with at most `max_token_retries` refreshes on a rejected token (wechatpy's own retry recurses
    without limit), and every failure mapped to GatewayError."""

    max_token_retries: int
    token_errors: frozenset[int]
    retryable_errors: frozenset[int]
    session: SessionStorage
    access_token_key: str

    def _refresh_token(self) -> None:
        raise NotImplementedError

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        caller_params = dict(kwargs.get("params") or {})
        for attempt in range(self.max_token_retries + 1):
            call = dict(kwargs, params=dict(caller_params))
            try:
                return super()._request(method, url_or_endpoint, **call)  # type: ignore[misc]
            except WeChatClientException as exc:
                code = _errcode(exc)
                if code in self.token_errors and attempt < self.max_token_retries:
                    log.info("access token rejected (%s); refreshing once", code)
                    self.session.delete(self.access_token_key)
                    self._refresh_token()
                    continue
                raise _mapped(exc, url_or_endpoint, self.retryable_errors) from None
            except requests.RequestException as exc:
                raise GatewayError(f"{url_or_endpoint}: {type(exc).__name__}", retryable=True) from None
        raise GatewayError(f"{url_or_endpoint}: token still rejected", retryable=True)  # pragma: no cover


class OfficialAccountClient(_BoundedTokenRetry, WeChatClient):  # type: ignore[misc]
    token_errors = TOKEN_ERRORS
    retryable_errors = RETRYABLE_ERRORS

    def __init__(
        self,
        appid: str,
        secret: str,
        base_url: str,
        storage: SessionStorage,
        max_token_retries: int = 1,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        super().__init__(appid, secret, session=storage, timeout=timeout, auto_retry=False)
        self.base_url = base_url.rstrip("/") + "/"
        self.API_BASE_URL = self.base_url + "cgi-bin/"
        self.max_token_retries = max_token_retries

    def fetch_access_token(self, force_refresh: bool = False) -> dict[str, Any]:
        try:
            res = self._http.post(
                self.API_BASE_URL + "stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                    "force_refresh": force_refresh,
                },
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise GatewayError(f"stable_token: {type(exc).__name__}", retryable=True) from None
        result = _answer(res, "stable_token", RETRYABLE_ERRORS)
        self.session.set(self.access_token_key, result["access_token"], int(result.get("expires_in", 7200)))
        self.expires_at = None  # the storage's expiry decides, so every worker agrees on it
        return result

    def _refresh_token(self) -> None:
        self.fetch_access_token(force_refresh=True)


# jscode2session: 40029 invalid code, 40163 code already used, 40226 a user WeChat blocks as high-risk; −1 busy
# and 45011 (per-minute quota) are worth retrying (both already in RETRYABLE_ERRORS).
WXA_CODE_REFUSED = frozenset({40029, 40163})
WXA_USER_BLOCKED = 40226
# Calls that take no access token: wechatpy adds one to every call (fetching it first) unless one is given.
WXA_NO_TOKEN = frozenset({"sns/jscode2session"})


@dataclass(frozen=True)
class WxaIdentity:
    """Who a wx.login code belongs to. The session_key of the same answer is deliberately not here."""

    openid: str
    unionid: str | None


class MiniProgramClient(OfficialAccountClient):
    """The mini-program's client: wechatpy's `WeChatClient.wxa` (WeChatWxa) with every URL under
    `wxa.api_base_url`; its access token (for calls that need one) is a stable_token like the official account's,
    stored under the mini-program's own appid."""

    def __init__(
        self, appid: str, secret: str, base_url: str, storage: SessionStorage, timeout: tuple[float, float]
    ) -> None:
        super().__init__(appid, secret, base_url, storage, timeout=timeout)
        self.wxa.API_BASE_URL = self.base_url  # WeChatWxa hard-codes https://api.weixin.qq.com/

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        if url_or_endpoint in WXA_NO_TOKEN:
            # A None value stops wechatpy fetching a token, and requests leaves None parameters out of the URL.
            kwargs["params"] = {**(kwargs.get("params") or {}), "access_token": None}
        return super()._request(method, url_or_endpoint, **kwargs)

    def code_to_session(self, code: str) -> WxaIdentity:
        if not self.appid or not self.secret:
            raise GatewayError("mini-program login: wxa.appid and wxa.secret are not configured", retryable=False)
        result = self.wxa.code_to_session(code)
        if not isinstance(result, dict):  # wechatpy hands back the response when it is not JSON
            raise GatewayError("jscode2session: answer is not JSON", retryable=True)
        openid, unionid = result.get("openid"), result.get("unionid")
        result.clear()  # the session_key goes no further than this line
        if not isinstance(openid, str) or not openid:
            raise GatewayError("jscode2session: answer has no openid", retryable=True)
        return WxaIdentity(openid=openid, unionid=unionid if isinstance(unionid, str) and unionid else None)


class WeComAppClient(_BoundedTokenRetry, WeComClient):  # type: ignore[misc]
    """A WeCom self-built application: `cgi-bin/gettoken` with its corp id and secret, then `appchat/send`."""

    token_errors = WECOM_TOKEN_ERRORS
    retryable_errors = WECOM_RETRYABLE_ERRORS

    def __init__(
        self,
        corpid: str,
        secret: str,
        agentid: int | None,
        base_url: str,
        storage: SessionStorage,
        max_token_retries: int = 1,
    ) -> None:
        self.agentid = agentid
        super().__init__(corpid, secret, session=storage, timeout=TIMEOUT, auto_retry=False)
        self.base_url = base_url.rstrip("/") + "/"
        self.API_BASE_URL = self.base_url + "cgi-bin/"
        self.max_token_retries = max_token_retries

    @property
    def access_token_key(self) -> str:
        # wechatpy's key embeds the first ten characters of the secret; a token is per application anyway.
        return f"wecom_{self.corp_id}_{self.agentid if self.agentid is not None else 'app'}_access_token"

    def fetch_access_token(self) -> dict[str, Any]:
        if not self.corp_id or not self.secret:
            raise GatewayError("WeCom app chat: wecom.corpid and wecom.secret are not configured", retryable=False)
        try:
            res = self._http.get(
                self.API_BASE_URL + "gettoken",
                params={"corpid": self.corp_id, "corpsecret": self.secret},
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            raise GatewayError(f"gettoken: {type(exc).__name__}", retryable=True) from None
        # Only "busy" is worth retrying here: a wrong secret (40001) or corp id (40013) stays wrong.
        result = _answer(res, "gettoken", WECOM_BUSY)
        self.session.set(self.access_token_key, result["access_token"], int(result.get("expires_in", 7200)))
        self.expires_at = None
        return result

    def _refresh_token(self) -> None:
        self.fetch_access_token()


def _answer(res: requests.Response, endpoint: str, retryable_errors: frozenset[int]) -> dict[str, Any]:
    """The JSON answer of a call made with requests directly, or GatewayError (HTTP status, not JSON, errcode)."""
    if res.status_code >= 400:
        raise GatewayError(f"{endpoint}: HTTP {res.status_code}", retryable=res.status_code >= 500)
    try:
        result = res.json()
    except ValueError:
        raise GatewayError(f"{endpoint}: answer is not JSON", retryable=True) from None
    if not isinstance(result, dict):
        raise GatewayError(f"{endpoint}: unexpected answer {result!r:.200}", retryable=True)
    code = int(result.get("errcode") or 0)
    if code:
        raise GatewayError(
            f"{endpoint}: errcode {code} {result.get('errmsg', '')}",
            errcode=code,
            retryable=code in retryable_errors,
        )
    return result


def _errcode(exc: WeChatClientException) -> int | None:
    try:
        return int(exc.errcode) if exc.errcode is not None else None
    except (TypeError, ValueError):
        return None


def _mapped(
    exc: WeChatClientException, endpoint: str, retryable_errors: frozenset[int] = RETRYABLE_ERRORS
) -> GatewayError:
    code = _errcode(exc)
    if code is None:
        status = exc.response.status_code if exc.response is not None else None
        return GatewayError(f"{endpoint}: HTTP {status}", retryable=status is None or status >= 500)
    return GatewayError(f"{endpoint}: errcode {code} {exc.errmsg}", errcode=code, retryable=code in retryable_errors)


class Gateway:
    """Everything the outbox and media workers send to or fetch from Tencent."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.oa = OfficialAccountClient(
            settings.wechat.appid,
            settings.wechat.secret.get_secret_value(),
            settings.wechat.api_base_url,
            DatabaseTokenStorage(engine),
        )
        self.wecom_base = settings.wecom.api_base_url.rstrip("/") + "/"
        self.wecom = WeComAppClient(
            settings.wecom.corpid,
            settings.wecom.secret.get_secret_value(),
            settings.wecom.agentid,
            settings.wecom.api_base_url,
            DatabaseTokenStorage(engine),
        )
        self.wxa = MiniProgramClient(
            settings.wxa.appid,
            settings.wxa.secret.get_secret_value(),
            settings.wxa.api_base_url,
            DatabaseTokenStorage(engine),
            timeout=(min(3.05, settings.wxa.timeout_seconds), settings.wxa.timeout_seconds),
        )
        self._http = requests.Session()

    def code_to_session(self, code: str) -> WxaIdentity:
        """A mini-program's wx.login code → its openid (and unionid when the account is bound to an open platform).

        GatewayError: `errcode` in WXA_CODE_REFUSED for a bad or used code, `retryable` when WeChat is busy."""
        return self.wxa.code_to_session(code)

    def send_text(self, openid: str, text: str) -> None:
        self.oa.message.send_text(openid, text)

    def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None) -> None:
        self.oa.message.send_template(openid, template_id, data, url=url)

    def download_media(self, media_id: str) -> tuple[bytes, str]:
        """The bytes and content type of a temporary media file (photos and voice the resident sent)."""
        res = self.oa.media.download(media_id)
        if isinstance(res, dict):  # JSON means an error the client did not raise (it should not happen)
            raise GatewayError(f"media/get: unexpected JSON {res}", retryable=False)
        return res.content, res.headers.get("Content-Type", "application/octet-stream")

    def create_menu(self, menu: dict[str, Any]) -> None:
        self.oa.menu.create(menu)

    def post_robot(self, key: str, payload: dict[str, Any]) -> None:
        """WeCom group robot: POST cgi-bin/webhook/send?key=…; 20 messages a minute per robot."""
        try:
            res = self._http.post(
                self.wecom_base + "cgi-bin/webhook/send", params={"key": key}, json=payload, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise GatewayError(f"webhook/send: {type(exc).__name__}", retryable=True) from None
        _answer(res, "webhook/send", RETRYABLE_ERRORS)

    def post_appchat_markdown(self, chatid: str, markdown: str) -> None:
        """WeCom app chat (群聊会话 of our application): POST cgi-bin/appchat/send, msgtype markdown."""
        result = self.wecom.appchat.send(chatid, "markdown", content=markdown)
        if not isinstance(result, dict):  # wechatpy hands back the response when it is not JSON
            raise GatewayError("appchat/send: answer is not JSON", retryable=True)
