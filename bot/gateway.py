"""The one module that calls Tencent: the official account (wechatpy's WeChatClient) and WeCom group robots.

What we add to wechatpy 1.8.18 (each has a test against tests/fakes/wechat_api.py):
- every URL, the token's included, under the configured `api_base_url`;
- `cgi-bin/stable_token` instead of `cgi-bin/token`, with the token kept in the database (ServiceToken), so
  several workers share one token instead of invalidating each other's;
- a bounded refresh-and-retry on 40001/40014/42001 (wechatpy recurses without limit);
- timeouts on every call, and all failures mapped to GatewayError with `retryable` set, so the outbox knows
  whether to back off (−1 busy, 45009 rate limit, HTTP 5xx, network errors) or give up;
- the WeCom group-robot webhook, which wechatpy does not have.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import requests
from sqlalchemy import Engine
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from bot.config import Settings
from models import ServiceToken, utcnow
from models.db import session_scope

log = logging.getLogger("gridbot.gateway")

TIMEOUT = (3.05, 10.0)  # connect, read (seconds)
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RETRYABLE_ERRORS = frozenset({-1, 45009, 45011}) | TOKEN_ERRORS
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


class OfficialAccountClient(WeChatClient):  # type: ignore[misc]
    def __init__(
        self, appid: str, secret: str, base_url: str, storage: SessionStorage, max_token_retries: int = 1
    ) -> None:
        super().__init__(appid, secret, session=storage, timeout=TIMEOUT, auto_retry=False)
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
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            raise GatewayError(f"stable_token: {type(exc).__name__}", retryable=True) from None
        if res.status_code >= 400:
            raise GatewayError(f"stable_token: HTTP {res.status_code}", retryable=res.status_code >= 500)
        result = res.json()
        if result.get("errcode"):
            code = int(result["errcode"])
            raise GatewayError(
                f"stable_token: errcode {code} {result.get('errmsg', '')}",
                errcode=code,
                retryable=code in RETRYABLE_ERRORS,
            )
        expires_in = int(result.get("expires_in", 7200))
        self.session.set(self.access_token_key, result["access_token"], expires_in)
        self.expires_at = None
        return dict(result)

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        caller_params = dict(kwargs.get("params") or {})
        for attempt in range(self.max_token_retries + 1):
            call = dict(kwargs, params=dict(caller_params))
            try:
                return super()._request(method, url_or_endpoint, **call)
            except WeChatClientException as exc:
                code = _errcode(exc)
                if code in TOKEN_ERRORS and attempt < self.max_token_retries:
                    log.info("access token rejected (%s); refreshing once", code)
                    self.session.delete(self.access_token_key)
                    self.fetch_access_token(force_refresh=True)
                    continue
                raise _mapped(exc, url_or_endpoint) from None
            except requests.RequestException as exc:
                raise GatewayError(f"{url_or_endpoint}: {type(exc).__name__}", retryable=True) from None
        raise GatewayError(f"{url_or_endpoint}: token still rejected", retryable=True)  # pragma: no cover


def _errcode(exc: WeChatClientException) -> int | None:
    try:
        return int(exc.errcode) if exc.errcode is not None else None
    except (TypeError, ValueError):
        return None


def _mapped(exc: WeChatClientException, endpoint: str) -> GatewayError:
    code = _errcode(exc)
    if code is None:
        status = exc.response.status_code if exc.response is not None else None
        return GatewayError(f"{endpoint}: HTTP {status}", retryable=status is None or status >= 500)
    return GatewayError(f"{endpoint}: errcode {code} {exc.errmsg}", errcode=code, retryable=code in RETRYABLE_ERRORS)


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
        self._http = requests.Session()

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
        if res.status_code >= 400:
            raise GatewayError(f"webhook/send: HTTP {res.status_code}", retryable=res.status_code >= 500)
        try:
            result = res.json()
        except ValueError:
            raise GatewayError("webhook/send: answer is not JSON", retryable=True) from None
        code = int(result.get("errcode", 0))
        if code:
            raise GatewayError(
                f"webhook/send: errcode {code} {result.get('errmsg', '')}",
                errcode=code,
                retryable=code in RETRYABLE_ERRORS,
            )
