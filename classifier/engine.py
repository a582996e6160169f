"""Classify one message: jieba tokens + an Aho-Corasick pass over the text, scored by the keyword rules.

Per message: normalise (NFKC, lower case) → find every rule string in one automaton pass → drop keyword
occurrences inside an exclusion context or after a negation cue in the same clause → add weights per
subcategory (+ combos within N jieba tokens) → decide report / non-report → urgency, confidence, alternatives.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
import unicodedata
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick
import jieba

from classifier.places import PlaceHint, extract_place_hint
from classifier.rules import RULES_DIR, Combo, RuleSet, load_rules
from classifier.taxonomy import Taxonomy, default_taxonomy

USERDICT_DIR = Path(__file__).with_name("userdict")
COMPACT_MIN_FREQ = 10
FALLBACK_SUBCATEGORY = "H08"  # 其他: a concrete request that no rule recognises
_MEANINGFUL = re.compile(r"[\u4e00-\u9fffA-Za-z]")
_CJK = re.compile(r"[\u4e00-\u9fff]")

jieba.setLogLevel(logging.WARNING)


@dataclass(frozen=True)
class Alternative:
    subcategory: str
    score: float


@dataclass
class Classification:
    text: str
    is_report: bool
    category: str | None
    subcategory: str | None
    confidence: float
    urgent: bool
    keywords: list[str]
    alternatives: list[Alternative]
    place_hint: PlaceHint = field(default_factory=PlaceHint)
    reason: str | None = None  # why a message is not a report: empty, greeting, thanks, howto, ad, unclear

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "is_report": self.is_report,
            "category": self.category,
            "subcategory": self.subcategory,
            "confidence": round(self.confidence, 3),
            "urgent": self.urgent,
            "keywords": self.keywords,
            "alternatives": [{"subcategory": a.subcategory, "score": round(a.score, 3)} for a in self.alternatives],
        }
        if details:
            out["place_hint"] = self.place_hint.to_dict()
            out["reason"] = self.reason
        return out


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().strip()


class Classifier:
    def __init__(self, rules: RuleSet, taxonomy: Taxonomy, tokenizer: jieba.Tokenizer) -> None:
        self.rules = rules
        self.taxonomy = taxonomy
        self.tokenizer = tokenizer
        self._keywords: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self._token_keywords: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for kw in rules.keywords:
            target = self._token_keywords if kw.token_only else self._keywords
            target[normalise(kw.text)].append((kw.subcategory, kw.weight))
        self._excludes = {
            (scope, normalise(word)): [normalise(c) for c in contexts]
            for (scope, word), contexts in rules.excludes.items()
        }
        self._negations = {normalise(word) for word in rules.negations}
        self._negation_exceptions = {normalise(word) for word in rules.negation_exceptions}
        self._urgent_global = {normalise(word) for word in rules.urgent.get("*", [])}
        self._urgent_by_sub = {
            code: {normalise(w) for w in words} for code, words in rules.urgent.items() if code != "*"
        }
        self._report_cues = {normalise(word) for word in rules.report_cues}
        self._complaint_cues = {normalise(word) for word in rules.complaint_cues}
        self._combo_words = {normalise(w) for combo in rules.combos for w in combo.words}
        # Combos grouped by their rarest-looking (longest) word: only combos whose key word occurs are checked.
        self._combos_by_word: dict[str, list[Combo]] = defaultdict(list)
        for combo in rules.combos:
            key = max((normalise(w) for w in combo.words), key=len)
            self._combos_by_word[key].append(combo)
        strings = (
            set(self._keywords)
            | self._negations
            | self._negation_exceptions
            | self._complaint_cues
            | self._urgent_global
            | self._report_cues
            | self._combo_words
            | {c for contexts in self._excludes.values() for c in contexts}
            | {w for words in self._urgent_by_sub.values() for w in words}
        )
        self._automaton = ahocorasick.Automaton()
        for string in strings:
            if string:
                self._automaton.add_word(string, string)
        self._automaton.make_automaton()
        self._breaks = set(rules.clause_breaks)

    @classmethod
    def load(
        cls, rules_dir: Path = RULES_DIR, userdict_dir: Path = USERDICT_DIR, cache_dir: Path | None = None
    ) -> Classifier:
        """Validate the rules, then build the tokenizer (jieba's dictionary cache lives in `cache_dir`)."""
        taxonomy = default_taxonomy()
        rules = load_rules(rules_dir, taxonomy)
        cache_dir = cache_dir or Path(tempfile.gettempdir()) / "gridbot-jieba"
        cache_dir.mkdir(parents=True, exist_ok=True)
        tokenizer = jieba.Tokenizer(dictionary=str(compact_dictionary(cache_dir)))
        tokenizer.tmp_dir = str(cache_dir)
        tokenizer.initialize()
        for path in sorted(userdict_dir.glob("*.txt")):
            tokenizer.load_userdict(str(path))
        for kw in rules.keywords:
            if len(kw.text) > 1 and not kw.token_only:
                tokenizer.suggest_freq(kw.text, tune=False) if kw.text in tokenizer.FREQ else tokenizer.add_word(
                    kw.text
                )
        return cls(rules, taxonomy, tokenizer)

    def with_rules(self, rules: RuleSet) -> Classifier:
        """A classifier with new rules and the already-loaded tokenizer (reload without a restart)."""
        _teach_keywords(self.tokenizer, rules)
        return Classifier(rules, self.taxonomy, self.tokenizer)

    # ------------------------------------------------------------------ classification

    def classify(self, text: str) -> Classification:
        norm = normalise(text)
        place = extract_place_hint(norm)
        if not _MEANINGFUL.search(norm):
            return self._not_report(text, place, "empty")
        found: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for end, string in self._automaton.iter(norm):
            found[string].append((end - len(string) + 1, end + 1))
        always = self._always_nonreport(norm, found)
        if always is not None:
            return self._not_report(text, place, always)
        tokens = self.tokenizer.lcut(norm, HMM=False)
        starts = _token_starts(tokens)
        negated = self._negated_spans(norm, found)

        scores: dict[str, float] = defaultdict(float)
        matched: dict[str, list[str]] = defaultdict(list)
        for word, spans in found.items():
            subs = self._keywords.get(word)
            if subs:
                self._score_word(word, spans, subs, found, negated, scores, matched)
        for index, token in enumerate(tokens):
            token_subs = self._token_keywords.get(token)
            if token_subs:
                span = (starts[index], starts[index] + len(token))
                self._score_word(token, [span], token_subs, found, negated, scores, matched)
        candidates = [combo for word in found if word in self._combos_by_word for combo in self._combos_by_word[word]]
        for combo in candidates:
            if _combo_holds(combo.words, combo.within, self._live_spans(combo.subcategory, found, negated), starts):
                scores[combo.subcategory] += combo.weight
                matched[combo.subcategory].append("+".join(combo.words))

        ranked = sorted(scores.items(), key=lambda item: (-item[1], self._risk_rank(item[0]), item[0]))
        ranked = [(code, score) for code, score in ranked if score > 0]
        top_score = ranked[0][1] if ranked else 0.0
        if top_score < self.rules.min_score:
            reason = self._nonreport_reason(norm)
            if reason is not None:
                return self._not_report(text, place, reason)
            cue = any(not _inside_any(span, negated) for word in self._report_cues for span in found.get(word, ()))
            if not cue and (not ranked or top_score < self.rules.cue_needed_below):
                return self._not_report(text, place, "unclear")
            if not ranked:
                ranked = [(FALLBACK_SUBCATEGORY, 0.0)]
        return self._report(text, norm, ranked, matched, found, negated, place)

    def _score_word(
        self,
        word: str,
        spans: list[tuple[int, int]],
        subs: list[tuple[str, float]],
        found: dict[str, list[tuple[int, int]]],
        negated: list[tuple[int, int]],
        scores: dict[str, float],
        matched: dict[str, list[str]],
    ) -> None:
        for code, weight in subs:
            contexts = self._excludes.get((code, word), []) + self._excludes.get(("*", word), [])
            count = 0
            for span in spans:
                if _inside_any(span, negated):
                    continue
                if contexts and any(_inside_any(span, found.get(c, ())) for c in contexts):
                    continue
                count += 1
            if count:
                # Repetition adds a little: "噪音…噪音…" is the same complaint, said with feeling.
                scores[code] += weight * (1 + 0.25 * min(count - 1, 2))
                matched[code].append(word)

    def _live_spans(
        self, code: str, found: dict[str, list[tuple[int, int]]], negated: list[tuple[int, int]]
    ) -> Callable[[str], list[tuple[int, int]]]:
        """Where a combo word counts for `code`: not negated, not inside one of its exclusion contexts."""

        def spans(word: str) -> list[tuple[int, int]]:
            contexts = self._excludes.get((code, word), []) + self._excludes.get(("*", word), [])
            return [
                span
                for span in found.get(word, ())
                if not _inside_any(span, negated)
                and not (contexts and any(_inside_any(span, found.get(c, ())) for c in contexts))
            ]

        return spans

    def _negated_spans(self, norm: str, found: dict[str, list[tuple[int, int]]]) -> list[tuple[int, int]]:
        """From a negation cue to the end of its clause: 不是噪音问题，是楼上漏水 negates only 噪音.

        Two shapes negate less: the contrast 不是丢了是被抢了 ends at its 是 (被抢 counts), and a rhetorical
        question 不是禁渔吗？ denies nothing.
        """
        spans = []
        exceptions = [span for word in self._negation_exceptions for span in found.get(word, ())]
        for cue in self._negations:
            for start, end in found.get(cue, ()):
                if _inside_any((start, end), exceptions):
                    continue
                stop = end
                while stop < len(norm) and norm[stop] not in self._breaks:
                    stop += 1
                if _is_question(norm, end, stop):
                    continue
                contrast = norm.find("是", end + 1, stop)
                spans.append((end, contrast if contrast != -1 else stop))
        return spans

    def _always_nonreport(self, norm: str, found: dict[str, list[tuple[int, int]]]) -> str | None:
        """Ads and forwarded articles are not reports even when they name a problem, unless a resident is
        complaining about them (举报, 被骗 …)."""
        for kind, patterns in self.rules.nonreport_always.items():
            if any(p.search(norm) for p in patterns):
                if any(cue in found for cue in self._complaint_cues):
                    return None
                return kind
        return None

    def _nonreport_reason(self, norm: str) -> str | None:
        for kind, patterns in self.rules.nonreport.items():
            if any(p.search(norm) for p in patterns):
                return kind
        if len(_CJK.findall(norm)) < 2:
            return "unclear"
        return None

    def _risk_rank(self, code: str) -> int:
        sub = self.taxonomy.subcategories.get(code)
        return 0 if sub is not None and sub.default_urgency == "urgent" else 1

    def _report(
        self,
        text: str,
        norm: str,
        ranked: list[tuple[str, float]],
        matched: dict[str, list[str]],
        found: dict[str, list[tuple[int, int]]],
        negated: list[tuple[int, int]],
        place: PlaceHint,
    ) -> Classification:
        code, top = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        strength = 1 - math.exp(-top / 2.5)
        share = top / (top + second) if top > 0 else 0.0
        confidence = strength * (0.4 + 0.6 * share) if top > 0 else 0.1
        total = sum(score for _, score in ranked) or 1.0
        sub = self.taxonomy.subcategories[code]
        cues = self._urgent_global | self._urgent_by_sub.get(code, set())
        urgent = sub.default_urgency == "urgent" or any(
            not _inside_any(span, negated)
            and not any(_inside_any(span, found.get(c, ())) for c in self._excludes.get(("*", cue), ()))
            for cue in cues
            for span in found.get(cue, ())
        )
        return Classification(
            text=text,
            is_report=True,
            category=sub.category,
            subcategory=code,
            confidence=confidence,
            urgent=urgent,
            keywords=list(dict.fromkeys(matched.get(code, []))),
            alternatives=[Alternative(c, s / total) for c, s in ranked[1:6]],
            place_hint=place,
        )

    @staticmethod
    def _not_report(text: str, place: PlaceHint, reason: str) -> Classification:
        return Classification(text, False, None, None, 0.0, False, [], [], place, reason)


def compact_dictionary(cache_dir: Path) -> Path:
    """jieba's dictionary without its rarest words (frequency < 10): 105k of 349k entries.

    Loading the full prefix dictionary takes ~0.9 s even from jieba's cache; the compact one ~0.2 s. The words
    dropped are rare (names, classical terms); governance vocabulary comes from our user dictionary and rules.
    Written once per machine next to jieba's cache, from the installed jieba, so it follows jieba's version.
    """
    source = Path(jieba.__file__).with_name("dict.txt")
    target = cache_dir / f"jieba-dict-min{COMPACT_MIN_FREQ}-{source.stat().st_size}.txt"
    if not target.exists():
        kept = [
            line
            for line in source.read_text(encoding="utf-8").splitlines()
            if len(parts := line.split()) >= 2 and int(parts[1]) >= COMPACT_MIN_FREQ
        ]
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text("\n".join(kept) + "\n", encoding="utf-8")
        os.replace(partial, target)  # atomic: concurrent first starts never read half a file
    return target


def _teach_keywords(tokenizer: jieba.Tokenizer, rules: RuleSet) -> None:
    """Multi-character keywords become dictionary words, so jieba keeps them whole for combos and tokens."""
    for kw in rules.keywords:
        word = normalise(kw.text)
        if len(word) > 1 and not tokenizer.FREQ.get(word):
            tokenizer.add_word(word)


def _is_question(norm: str, start: int, stop: int) -> bool:
    """A clause that ends in 吗/嘛 or a question mark: 不是…吗 asks, it does not deny."""
    clause = norm[start:stop].rstrip()
    return clause.endswith(("吗", "嘛")) or (stop < len(norm) and norm[stop] == "?")


def _token_starts(tokens: list[str]) -> list[int]:
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token)
    return starts


def _inside_any(span: tuple[int, int], outer: Any) -> bool:
    start, end = span
    return any(o_start <= start and end <= o_end for o_start, o_end in outer)


def _combo_holds(
    words: tuple[str, ...],
    within: int,
    live_spans: Callable[[str], list[tuple[int, int]]],
    starts: list[int],
) -> bool:
    positions: list[list[int]] = []
    for word in words:
        spans = live_spans(normalise(word))
        if not spans:
            return False
        positions.append([bisect_right(starts, s[0]) - 1 for s in spans])
    return any(
        all(any(abs(p - anchor) <= within for p in others) for others in positions[1:]) for anchor in positions[0]
    )
