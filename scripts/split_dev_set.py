"""Merge labelled parts into tests/data/classifier_dev.jsonl and fix each line's split once (seed 20261122).

Run once when the set is assembled. Lines that already carry a "split" keep it, so regression lines appended
later (always "split": "train") never move a held-out line into training.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

SEED = 20261122
HELD_OUT = 0.3


def main(parts: list[Path], out: Path) -> None:
    rows: list[dict] = []
    if out.exists():
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen = {row["text"] for row in rows}
    for part in parts:
        for line in part.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row["text"] not in seen:
                    rows.append(row)
                    seen.add(row["text"])
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if "split" not in row:
            by_label[str(row.get("label"))].append(row)
    rng = random.Random(SEED)
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda r: r["text"])
        rng.shuffle(group)
        cut = round(len(group) * HELD_OUT)
        for index, row in enumerate(group):
            row["split"] = "heldout" if index < cut else "train"
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    counts = defaultdict(int)
    for row in rows:
        counts[row["split"]] += 1
    print(f"{out}: {len(rows)} lines, {dict(counts)}")


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]], Path("tests/data/classifier_dev.jsonl"))
