"""The callback's writer without HTTP: how long storing and handling one message takes, and what it runs.

    .venv/bin/python bench/writer_bench.py [--messages 2000] [--batch 16] [--residents 0] [--profile FILE]
                                           [--rules DIR]

Builds the same state as the service (SQLite file in a temp folder, demo district, shipped classifier rules),
parses signed-text XML with wechatpy as the callback does, and feeds the jobs to `bot.ingest.process_batch`
in batches, the way the writer thread takes them off its queue. The texts are the ones bench/callback_bench.py
sends. `--residents 0` gives every message its own new resident (as the wrk load does); `--residents N` makes
N residents take turns, so drafts grow over several messages.

Prints µs per message for the whole batch path (wall clock, and CPU time of the thread, which other processes
on the machine disturb less) and for the classifier alone, and SQL statements per message (counted on the
engine). `--profile FILE` writes a cProfile of the handling loop (read it with pstats).
"""

from __future__ import annotations

import argparse
import cProfile
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from wechatpy import parse_message  # noqa: E402

from bench.callback_bench import sample_texts  # noqa: E402
from bot.app import create_app  # noqa: E402
from bot.config import AppSettings, ClassifierSettings, DatabaseSettings, MediaSettings, Settings  # noqa: E402
from bot.database import prepare_database  # noqa: E402
from bot.ingest import Job, process_batch  # noqa: E402
from bot.wechat import dedupe_key, to_inbound  # noqa: E402

XML = (
    "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
    "<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
    "<MsgId>{msg_id}</MsgId></xml>"
)


def make_jobs(texts: list[str], count: int, residents: int, start: int) -> list[Job]:
    jobs = []
    ts = int(time.time())
    for n in range(start, start + count):
        openid = f"oWRITER{n % residents if residents else n}"
        raw = XML.format(openid=openid, ts=ts, text=texts[n % len(texts)], msg_id=8_000_000_000 + n)
        message = parse_message(raw)
        jobs.append(Job(raw=raw, message=message, inbound=to_inbound(message), key=dedupe_key(message)))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--residents", type=int, default=0, help="0: a new resident per message")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--rules", type=Path, default=None, help="classifier rules folder (default: the shipped rules)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gridbot-writer-"))
    settings = Settings(
        app=AppSettings(demo=True, timers="off"),
        database=DatabaseSettings(url=f"sqlite:///{work / 'bench.db'}"),
        media=MediaSettings(root=str(work / "media")),
        classifier=ClassifierSettings(
            cache_dir=str(ROOT / "var" / "cache"), rules_dir=str(args.rules) if args.rules else None
        ),
    )
    app = create_app(settings, timers=False)
    state: Any = app.state
    prepare_database(settings, state.engine)
    classifier = state.classifier.get()
    texts = sample_texts()

    statements: Counter[str] = Counter()

    @event.listens_for(state.engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements[statement.split(None, 1)[0].upper()] += 1

    # Warm-up: grid index, classifier caches, compiled statement cache.
    for i in range(0, 200, args.batch):
        process_batch(state, make_jobs(texts, args.batch, args.residents, 10_000_000 + i), defer_after=float("inf"))

    classify_us = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for text in texts * 5:
            classifier.classify(text)
        classify_us.append((time.perf_counter() - started) / (len(texts) * 5) * 1e6)

    per_message, cpu_per_message = [], []
    for round_no in range(args.rounds):
        jobs = make_jobs(texts, args.messages, args.residents, round_no * args.messages)
        batches = [jobs[i : i + args.batch] for i in range(0, len(jobs), args.batch)]
        statements.clear()
        profiler = cProfile.Profile() if args.profile and round_no == args.rounds - 1 else None
        started, cpu_started = time.perf_counter(), time.thread_time()
        if profiler:
            profiler.enable()
        for batch in batches:
            process_batch(state, batch, defer_after=float("inf"))
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
        if not profiler:
            per_message.append(elapsed / len(jobs) * 1e6)
            cpu_per_message.append(cpu / len(jobs) * 1e6)
        failed = [j for j in jobs if j.future.exception() is not None]
        if failed:
            raise SystemExit(f"{len(failed)} messages failed: {failed[0].future.exception()!r}")

    with state.engine.connect() as conn:
        cases = conn.exec_driver_sql("select count(*) from cases").scalar()
        stored = conn.exec_driver_sql("select count(*), sum(status = 'failed') from inbound_messages").one()
    total = sum(statements.values())
    print(f"messages per round: {args.messages}, batch {args.batch}, residents {args.residents or 'all new'}")
    runs = ", ".join(f"{u:.0f}" for u in per_message)
    print(f"writer path: {statistics.median(per_message):.0f} µs/message wall (runs: {runs})")
    runs = ", ".join(f"{u:.0f}" for u in cpu_per_message)
    cpu = statistics.median(cpu_per_message)
    print(f"writer path: {cpu:.0f} µs/message CPU of the writer thread (min {min(cpu_per_message):.0f}; runs: {runs})")
    print(f"classifier alone: {statistics.median(classify_us):.0f} µs/message")
    print(
        f"SQL statements per message (last round): {total / args.messages:.2f} — "
        + ", ".join(f"{k} {v / args.messages:.2f}" for k, v in statements.most_common())
    )
    print(f"stored {stored[0]} messages ({stored[1] or 0} failed), {cases} cases")
    state.ingest.close()
    state.engine.dispose()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
