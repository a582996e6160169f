"""Load /wechat/mp with signed text messages: the full Gridbot path next to a bare wechatpy endpoint.

    .venv/bin/python bench/callback_bench.py [--seconds 20] [--connections 16 64] [--workers 1]

Needs wrk (Debian package `wrk`). Both servers run under uvicorn with one worker on 127.0.0.1, one after the
other, loaded by the same wrk script: unique MsgIds, a rotating set of resident messages from the development
set, each from its own openid. The full path verifies, parses, stores the message, runs the conversation
(classification, drafts, sometimes a case) and commits before it answers. SQLite file in a temp folder with
the demo district; timers off. Prints requests/s and latency percentiles, and checks afterwards that every
answered message is stored exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"

LUA = r"""
local texts = {%(texts)s}
local counter = 0
local thread_id = 0
local run_offset = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  thread_id = id
  run_offset = tonumber(args[1]) or 0
end
request = function()
  counter = counter + 1
  local n = run_offset + thread_id * 10000000 + counter
  local text = texts[(n %% #texts) + 1]
  local body = "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBENCH" .. n ..
    "]]></FromUserName><CreateTime>%(ts)s</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[" ..
    text .. "]]></Content><MsgId>" .. (7000000000 + n) .. "</MsgId></xml>"
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "text/xml"}, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "JSON {\"requests\": %%d, \"seconds\": %%f, \"non2xx\": %%d, \"errors\": %%d, " ..
    "\"p50\": %%f, \"p90\": %%f, \"p99\": %%f, \"max\": %%f}\n",
    summary.requests, summary.duration / 1e6, summary.errors.status, errors,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def signed_path() -> tuple[str, str]:
    sys.path.insert(0, str(ROOT))
    from wechatpy.utils import WeChatSigner

    ts, nonce = str(int(time.time())), "bench"
    signer = WeChatSigner()
    signer.add_data(TOKEN, ts, nonce)
    return f"/wechat/mp?signature={signer.signature}&timestamp={ts}&nonce={nonce}", ts


def sample_texts(limit: int = 200) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "tests/data/classifier_dev.jsonl").read_text("utf-8").splitlines()]
    texts = [r["text"] for r in rows if r.get("label") and 10 <= len(r["text"]) <= 80 and "]]" not in r["text"]]
    step = max(1, len(texts) // limit)
    return texts[::step][:limit]


_runs = iter(range(1, 1000))


def run_wrk(port: int, connections: int, seconds: int, script: Path) -> dict[str, float]:
    """One wrk run; each run numbers its messages from its own offset, so no MsgId repeats across runs."""
    offset = next(_runs) * 100_000_000
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2" if connections >= 2 else "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            str(offset),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"^JSON (.*)$", out, re.M)
    if not found:
        raise SystemExit(out)
    figures = json.loads(found.group(1))
    figures["rps"] = figures["requests"] / figures["seconds"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    path, ts = signed_path()
    texts = ", ".join(json.dumps(t, ensure_ascii=False) for t in sample_texts())
    work = Path(tempfile.mkdtemp(prefix="gridbot-bench-"))
    script = work / "load.lua"
    script.write_text(LUA % {"texts": texts, "ts": ts, "path": path}, encoding="utf-8")
    db = work / "bench.db"
    env = {
        **os.environ,
        "GRIDBOT_DATABASE__URL": f"sqlite:///{db}",
        "GRIDBOT_MEDIA__ROOT": str(work / "media"),
        "GRIDBOT_WECHAT__TOKEN": TOKEN,
        "GRIDBOT_APP__TIMERS": "off",
        "GRIDBOT_APP__LOG_LEVEL": "warning",
        "BENCH_TOKEN": TOKEN,
    }
    subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)

    servers = {
        "bare wechatpy parse + reply": ["bench.bare_wechat_app:app"],
        "gridbot /wechat/mp (full path)": ["bot.asgi:app"],
    }
    results: dict[str, dict[int, dict[str, float]]] = {}
    for name, target in servers.items():
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                *target,
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_up(port, proc)
            warm = run_wrk(port, 4, 2, script)
            results[name] = {c: run_wrk(port, c, args.seconds, script) for c in args.connections}
            results[name][0] = warm
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    header = ("endpoint", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "non-2xx")
    print(f"{header[0]:<34} " + " ".join(f"{h:>8}" for h in header[1:]))
    for name, by_conn in results.items():
        for conns, f in by_conn.items():
            if conns == 0:
                continue
            print(
                f"{name:<34} {conns:>5} {f['rps']:>8.0f} {f['p50']:>8.1f} {f['p90']:>8.1f} {f['p99']:>8.1f} "
                f"{f['max']:>8.1f} {int(f['non2xx']) + int(f['errors']):>8}"
            )
    full = results["gridbot /wechat/mp (full path)"]
    bare = results["bare wechatpy parse + reply"]
    for conns in args.connections:
        print(f"full / bare at c={conns}: {full[conns]['rps'] / bare[conns]['rps']:.2f}")
    with sqlite3.connect(db) as conn:
        stored = conn.execute("select count(*), count(distinct dedupe_key) from inbound_messages").fetchone()
        cases = conn.execute("select count(*) from cases").fetchone()[0]
    answered = sum(int(f["requests"]) - int(f["non2xx"]) - int(f["errors"]) for f in full.values())
    print(f"answered 200 (warm-up included): {answered}; stored: {stored[0]} ({stored[1]} distinct); cases: {cases}")
    if stored[1] < answered:
        print("LOST: fewer distinct messages stored than answered")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
