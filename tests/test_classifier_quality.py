"""The shipped rules and the development set: size, split, coverage, urgency. Held-out figures: docs/classifier.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.engine import Classifier
from classifier.evaluate import read_examples
from classifier.rules import load_rules
from classifier.taxonomy import default_taxonomy

DEV_SET = Path(__file__).parent / "data" / "classifier_dev.jsonl"


@pytest.fixture(scope="module")
def shipped(jieba_cache: Path) -> Classifier:
    return Classifier.load(cache_dir=jieba_cache)


def test_the_dev_set_is_large_varied_and_split_once() -> None:
    examples = read_examples(DEV_SET)
    labels = [e.label for e in examples]
    assert len(examples) >= 1380
    assert all(labels.count(code) >= 20 for code in default_taxonomy().subcategories)
    assert labels.count("none") >= 100
    assert {e.split for e in examples} == {"train", "heldout"}
    assert len({e.text for e in examples}) == len(examples)


def test_the_shipped_rules_cover_every_subcategory() -> None:
    covered = {k.subcategory for k in load_rules().keywords}
    assert covered == set(default_taxonomy().subcategories)


def test_urgent_risks_are_flagged(shipped: Classifier) -> None:
    for text in (
        "楼道里着火了，好大的烟",
        "闻到很大的煤气味",
        "我家老人走失了，找不到人",
        "井盖没了，有人掉下去受伤了",
    ):
        assert shipped.classify(text).urgent, text
    assert not shipped.classify("小区门口的垃圾桶满了，好几天没人清").urgent
