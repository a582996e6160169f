"""What WeChat's servers send: signed (and, in safe mode, encrypted) callback requests, built with wechatpy."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from handlers.geo import wgs84_to_gcj02

TOKEN = "test-token"
APPID = "wx1234567890abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat gives it
ACCOUNT = "gh_gridbot"
_ids = itertools.count(6_000_000_000_000_000_001)


def sign(timestamp: str, nonce: str, token: str = TOKEN) -> str:
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    return str(signer.signature)


def _cdata(value: Any) -> str:
    return f"<![CDATA[{value}]]>"


@dataclass
class Resident:
    """One person chatting with the account; every call is one HTTP POST to /wechat/mp."""

    http: httpx.Client
    openid: str
    mode: str = "plain"  # plain | safe
    clock: Any = None
    sent: list[str] = field(default_factory=list)

    def now(self) -> int:
        return int(self.clock().timestamp()) if self.clock else int(time.time())

    def xml(self, msg_type: str, fields: str, msg_id: int | None = None, create_time: int | None = None) -> str:
        msg_id_xml = f"<MsgId>{msg_id if msg_id is not None else next(_ids)}</MsgId>" if msg_type != "event" else ""
        return (
            f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(self.openid)}</FromUserName>"
            f"<CreateTime>{create_time or self.now()}</CreateTime><MsgType>{_cdata(msg_type)}</MsgType>"
            f"{fields}{msg_id_xml}</xml>"
        )

    def post_xml(self, xml: str, *, timestamp: int | None = None, signature: str | None = None) -> httpx.Response:
        ts, nonce = str(timestamp or int(time.time())), f"n{next(_ids) % 10**9}"
        params = {"signature": signature or sign(ts, nonce), "timestamp": ts, "nonce": nonce, "openid": self.openid}
        body = xml
        if self.mode == "safe":
            crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
            body = crypto.encrypt_message(xml, nonce, ts)
            import xmltodict

            params["msg_signature"] = xmltodict.parse(body)["xml"]["MsgSignature"]
            params["encrypt_type"] = "aes"
        self.sent.append(xml)
        return self.http.post(
            "/wechat/mp", params=params, content=body.encode("utf-8"), headers={"Content-Type": "text/xml"}
        )

    def say(self, text: str, msg_id: int | None = None) -> httpx.Response:
        return self.post_xml(self.xml("text", f"<Content>{_cdata(text)}</Content>", msg_id))

    def photo(self, media_id: str = "MEDIA_IMG") -> httpx.Response:
        return self.post_xml(
            self.xml("image", f"<PicUrl>{_cdata('http://x/p.jpg')}</PicUrl><MediaId>{_cdata(media_id)}</MediaId>")
        )

    def voice(self, recognition: str, media_id: str = "MEDIA_VOICE") -> httpx.Response:
        return self.post_xml(
            self.xml(
                "voice",
                f"<MediaId>{_cdata(media_id)}</MediaId><Format>{_cdata('amr')}</Format>"
                f"<Recognition>{_cdata(recognition)}</Recognition>",
            )
        )

    def location_wgs84(self, lng: float, lat: float, label: str = "") -> httpx.Response:
        """Sends the point as WeChat does: converted to GCJ-02."""
        g_lng, g_lat = wgs84_to_gcj02(lng, lat)
        return self.post_xml(
            self.xml(
                "location",
                f"<Location_X>{g_lat}</Location_X><Location_Y>{g_lng}</Location_Y><Scale>15</Scale>"
                f"<Label>{_cdata(label)}</Label>",
            )
        )

    def event(self, event: str, key: str = "", create_time: int | None = None) -> httpx.Response:
        return self.post_xml(
            self.xml(
                "event", f"<Event>{_cdata(event)}</Event><EventKey>{_cdata(key)}</EventKey>", create_time=create_time
            )
        )


def reply_text(response: httpx.Response, mode: str = "plain") -> str | None:
    """The text of a passive reply (None for "success")."""
    assert response.status_code == 200, response.text
    if response.text == "success":
        return None
    body = response.text
    if mode == "safe":
        import xmltodict

        outer = xmltodict.parse(body)["xml"]
        crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
        body = crypto.decrypt_message(body, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
    import xmltodict

    return str(xmltodict.parse(body)["xml"]["Content"])
