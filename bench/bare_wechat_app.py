"""The comparison endpoint: verify the signature, parse with wechatpy, render a TextReply. No storage.

Served by bench/callback_bench.py next to the full Gridbot callback, in the same run, on the same machine.
"""

from __future__ import annotations

import hmac
import os

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from wechatpy import parse_message
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

TOKEN = os.environ.get("BENCH_TOKEN", "bench-token")
app = FastAPI()


@app.post("/wechat/mp")
async def receive(request: Request) -> Response:
    params = request.query_params
    signer = WeChatSigner()
    signer.add_data(TOKEN, params.get("timestamp", ""), params.get("nonce", ""))
    if not hmac.compare_digest(signer.signature, params.get("signature", "")):
        return PlainTextResponse("forbidden", status_code=403)
    message = parse_message(await request.body())
    return Response(TextReply(content="收到", message=message).render(), media_type="application/xml")
