"""Classifier speed: messages per second on one core after warm-up, and cold start.

    .venv/bin/python bench/classifier_bench.py [--seconds 5] [--cold-runs 5]

Messages are the 20–80 character lines of tests/data/classifier_dev.jsonl. Cold start is a fresh Python
process doing `import classifier.engine`, `Classifier.load()` and one classification, with jieba's dictionary
cache already present (the first start on a machine builds it), median of several runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "classifier_dev.jsonl"
CACHE = ROOT / "var" / "cache"

COLD = f"""
import time
t0 = time.perf_counter()
from pathlib import Path
from classifier.engine import Classifier
model = Classifier.load(cache_dir=Path({str(CACHE)!r}))
model.classify("华兴小区3号楼门口的井盖丢了，晚上太危险")
print(time.perf_counter() - t0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from classifier.engine import Classifier

    texts = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [t for t in texts if 20 <= len(t) <= 80]
    model = Classifier.load(cache_dir=CACHE)
    for text in texts:  # warm-up
        model.classify(text)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for text in texts:
            model.classify(text)
        done += len(texts)
    elapsed = time.perf_counter() - start
    rate = done / elapsed

    subprocess.run([sys.executable, "-c", COLD], cwd=ROOT, check=True, capture_output=True)  # builds caches
    colds = [
        float(
            subprocess.run(
                [sys.executable, "-c", COLD], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout.strip()
        )
        for _ in range(args.cold_runs)
    ]
    print(f"messages:        {len(texts)} distinct, 20–80 characters, mean {statistics.mean(map(len, texts)):.0f}")
    print(f"throughput:      {rate:,.0f} messages/s on one core ({elapsed / done * 1e6:.0f} µs each)")
    print(f"cold start:      median {statistics.median(colds):.3f} s, max {max(colds):.3f} s over {len(colds)} runs")


if __name__ == "__main__":
    main()
