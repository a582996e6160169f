"""Scoring a labelled file: accuracy, macro-F1, per-subcategory precision/recall, confusions, non-reports.

A labelled line is `{"text", "label", "also_ok"?}`; `label` null (or "none") marks a non-report.
A prediction counts as right when it is the label or one of `also_ok`.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NONE = "none"


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # a code, or "none"
    also_ok: tuple[str, ...] = ()
    split: str = "train"  # train | heldout, fixed once by scripts/split_dev_set.py


@dataclass
class Report:
    total: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusions: list[tuple[str, str, int]]
    nonreport_precision: float
    nonreport_recall: float
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "nonreport_precision": round(self.nonreport_precision, 4),
            "nonreport_recall": round(self.nonreport_recall, 4),
            "per_subcategory": self.per_class,
            "confusions": [{"label": a, "predicted": b, "count": n} for a, b, n in self.confusions],
        }


def read_examples(path: Path) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            label = row.get("label")
            examples.append(
                Example(
                    text=str(row["text"]),
                    label=NONE if label in (None, "", NONE) else str(label),
                    also_ok=tuple(row.get("also_ok") or ()),
                    split=str(row.get("split", "train")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a labelled example ({exc})") from None
    return examples


def split_examples(examples: list[Example], seed: int, held_out: float = 0.3) -> tuple[list[Example], list[Example]]:
    """Stratified by label, fixed seed: the same file always splits the same way."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    train: list[Example] = []
    test: list[Example] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda e: e.text)
        rng.shuffle(group)
        cut = round(len(group) * held_out)
        test.extend(group[:cut])
        train.extend(group[cut:])
    return train, test


def evaluate(examples: Iterable[Example], predict: Callable[[str], str | None], keep_errors: int = 0) -> Report:
    """`predict` returns a subcategory code, or None for a non-report."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    correct = total = 0
    errors: list[dict[str, Any]] = []
    for example in examples:
        total += 1
        predicted = predict(example.text) or NONE
        if predicted == example.label or predicted in example.also_ok:
            correct += 1
            tp[example.label] += 1
            continue
        fp[predicted] += 1
        fn[example.label] += 1
        confusions[(example.label, predicted)] += 1
        if len(errors) < keep_errors:
            errors.append({"text": example.text, "label": example.label, "predicted": predicted})
    labels = sorted(set(tp) | set(fn) | set(fp))
    per_class = {}
    f1s = []
    for label in labels:
        precision = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        recall = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": tp[label] + fn[label],
        }
        if label != NONE and tp[label] + fn[label] > 0:
            f1s.append(f1)
    none = per_class.get(NONE, {"precision": 0.0, "recall": 0.0})
    return Report(
        total=total,
        accuracy=correct / total if total else 0.0,
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        per_class=per_class,
        confusions=[(a, b, n) for (a, b), n in confusions.most_common(15)],
        nonreport_precision=float(none["precision"]),
        nonreport_recall=float(none["recall"]),
        errors=errors,
    )


def format_report(report: Report, names: dict[str, str]) -> str:
    lines = [
        f"examples            {report.total}",
        f"accuracy            {report.accuracy:.4f}",
        f"macro-F1            {report.macro_f1:.4f}",
        f"non-report          precision {report.nonreport_precision:.4f}  recall {report.nonreport_recall:.4f}",
        "",
        "code  precision  recall  f1      support  name",
    ]
    for label, row in report.per_class.items():
        lines.append(
            f"{label:<5} {row['precision']:>9.3f}  {row['recall']:>6.3f}  {row['f1']:.3f}  {int(row['support']):>7}  "
            f"{names.get(label, '非事件' if label == NONE else '')}"
        )
    lines += ["", "most frequent confusions (label → predicted: count)"]
    lines += [f"  {a} → {b}: {n}" for a, b, n in report.confusions] or ["  none"]
    if report.errors:
        lines += ["", "errors"]
        lines += [f"  [{e['label']} → {e['predicted']}] {e['text']}" for e in report.errors]
    return "\n".join(lines)
