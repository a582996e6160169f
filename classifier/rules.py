"""Keyword rules as data: loading and validation, with errors that name file, line and keyword.

Layout of a rules folder (see docs/classifier.md):
- `_common.yaml`: negation cues, clause breaks, urgent cues, report cues, non-report patterns, keywords that
  two subcategories may share, contexts that cancel a keyword everywhere;
- `A.yaml` … `H.yaml`: per subcategory, weighted `keywords` (substrings of the text), `tokens` (whole jieba
  tokens only, for short or ambiguous words), `combos` (all words within N tokens), `exclude` (contexts that
  cancel a keyword), `urgent` (cues that make this subcategory urgent).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from classifier.taxonomy import Taxonomy, default_taxonomy

RULES_DIR = Path(__file__).with_name("rules")
# libyaml's composer is ~8x faster than the pure-Python one; it keeps line numbers just the same.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
COMMON_FILE = "_common.yaml"
MAX_WEIGHT = 20.0


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Keyword:
    text: str
    subcategory: str
    weight: float
    token_only: bool
    where: Where


@dataclass(frozen=True)
class Combo:
    subcategory: str
    words: tuple[str, ...]
    within: int
    weight: float
    where: Where


@dataclass
class RuleSet:
    keywords: list[Keyword] = field(default_factory=list)
    combos: list[Combo] = field(default_factory=list)
    # (subcategory or "*", keyword) → contexts in which that keyword does not count
    excludes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    urgent: dict[str, list[str]] = field(default_factory=dict)  # "*" → global cues
    negations: list[str] = field(default_factory=list)
    negation_exceptions: list[str] = field(default_factory=list)  # 是不是: a question, not a denial
    clause_breaks: str = "，。；！？,.;!?\n"
    report_cues: list[str] = field(default_factory=list)
    nonreport: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)
    # Patterns that make a message a non-report whatever keywords it contains (ads, forwarded articles),
    # unless it also carries one of `complaint_cues` (举报, 被骗 …: a resident reporting the ad).
    nonreport_always: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)
    complaint_cues: list[str] = field(default_factory=list)
    shared: dict[str, set[str]] = field(default_factory=dict)
    min_score: float = 2.0
    cue_needed_below: float = 1.5  # weaker evidence than this, with no report cue: not a report
    files: list[str] = field(default_factory=list)


class RuleValidationError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid classifier rules:\n  " + "\n  ".join(problems))
        self.problems = problems


class _Reader:
    """Walks a composed YAML node tree so every value keeps its line number."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.file = path.name
        self.path = path
        self.problems = problems

    def where(self, node: Node) -> Where:
        return Where(self.file, node.start_mark.line + 1)

    def error(self, node: Node, message: str) -> None:
        self.problems.append(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def compose(self) -> Node | None:
        try:
            return yaml.compose(self.path.read_text(encoding="utf-8"), Loader=_LOADER)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 0
            self.problems.append(f"{self.path}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})")
            return None

    def items(self, node: Node, what: str, unique: bool = True) -> Iterator[tuple[ScalarNode, Node]]:
        """The pairs of a mapping. YAML lets a repeated key silently replace the first one; here it is an error
        (unless the caller reports repeats in its own words, as keyword lists do)."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping")
            return
        seen: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or not key.value.strip():
                self.error(key, f"{what}: keys must be non-empty words")
                continue
            if unique and key.value in seen:
                self.error(key, f"{what}: '{key.value}' appears twice (first at line {seen[key.value]}); merge them")
                continue
            seen.setdefault(key.value, key.start_mark.line + 1)
            yield key, value

    def strings(self, node: Node, what: str) -> list[tuple[str, Node]]:
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what} must be a list")
            return []
        out: list[tuple[str, Node]] = []
        for item in node.value:
            if isinstance(item, ScalarNode) and item.value.strip():
                out.append((item.value.strip(), item))
            else:
                self.error(item, f"{what}: every item must be a non-empty word")
        return out

    def number(self, node: Node, what: str, low: float, high: float) -> float | None:
        value: float | None = None
        if isinstance(node, ScalarNode) and not node.style:  # plain scalars only: "4" in quotes is text
            try:
                value = float(node.value)
            except ValueError:
                value = None
        if value is None or value != value or not low < value <= high:
            self.error(
                node, f"{what}: weight must be a number in ({low:g}, {high:g}], not {getattr(node, 'value', '?')!r}"
            )
            return None
        return float(value)


def load_rules(rules_dir: Path = RULES_DIR, taxonomy: Taxonomy | None = None) -> RuleSet:
    """Read and validate every rule file; raise RuleValidationError listing all problems found."""
    taxonomy = taxonomy or default_taxonomy()
    problems: list[str] = []
    rules = RuleSet()
    common = rules_dir / COMMON_FILE
    if not rules_dir.is_dir():
        raise RuleValidationError([f"{rules_dir}: no such folder"])
    if common.is_file():
        _read_common(_Reader(common, problems), rules, taxonomy)
        rules.files.append(common.name)
    for path in sorted(rules_dir.glob("*.yaml")):
        if path.name == COMMON_FILE:
            continue
        _read_category(_Reader(path, problems), rules, taxonomy)
        rules.files.append(path.name)
    problems.extend(_duplicate_claims(rules))
    if problems:
        raise RuleValidationError(problems)
    return rules


def _read_common(reader: _Reader, rules: RuleSet, taxonomy: Taxonomy) -> None:
    root = reader.compose()
    if root is None:
        return
    for key, value in reader.items(root, "the common rules"):
        name = key.value
        if name == "negations":
            rules.negations = [word for word, _ in reader.strings(value, "negations")]
        elif name == "negation_exceptions":
            rules.negation_exceptions = [word for word, _ in reader.strings(value, "negation_exceptions")]
        elif name == "report_cues":
            rules.report_cues = [word for word, _ in reader.strings(value, "report_cues")]
        elif name == "urgent":
            rules.urgent["*"] = [word for word, _ in reader.strings(value, "urgent")]
        elif name == "clause_breaks":
            rules.clause_breaks = str(value.value) if isinstance(value, ScalarNode) else rules.clause_breaks
        elif name == "min_score":
            rules.min_score = reader.number(value, "min_score", 0, MAX_WEIGHT) or rules.min_score
        elif name == "cue_needed_below":
            rules.cue_needed_below = reader.number(value, "cue_needed_below", 0, MAX_WEIGHT) or 0.0
        elif name == "complaint_cues":
            rules.complaint_cues = [word for word, _ in reader.strings(value, "complaint_cues")]
        elif name in ("nonreport", "nonreport_always"):
            target = rules.nonreport if name == "nonreport" else rules.nonreport_always
            for kind, patterns in reader.items(value, name):
                compiled = []
                for pattern, node in reader.strings(patterns, f"nonreport.{kind.value}"):
                    try:
                        # The text is NFKC-normalised before matching (，→ ,), so the pattern is too.
                        compiled.append(re.compile(unicodedata.normalize("NFKC", pattern)))
                    except re.error as exc:
                        reader.error(node, f"{name}.{kind.value}: malformed pattern {pattern!r} ({exc})")
                target[kind.value] = compiled
        elif name == "shared":
            _read_shared(reader, value, rules, taxonomy)
        elif name == "exclude":
            _read_excludes(reader, value, "*", rules)
        else:
            reader.error(key, f"unknown section '{name}'")


def _read_category(reader: _Reader, rules: RuleSet, taxonomy: Taxonomy) -> None:
    root = reader.compose()
    if root is None:
        return
    category = reader.path.stem
    if category not in taxonomy.categories:
        reader.error(root, f"file name {reader.file} does not name a category ({', '.join(taxonomy.categories)})")
        return
    for key, value in reader.items(root, reader.file):
        if key.value == "category":
            if value.value != category:
                reader.error(value, f"category {value.value!r} does not match the file name {reader.file}")
            continue
        if key.value == "shared":
            _read_shared(reader, value, rules, taxonomy)
            continue
        if key.value != "subcategories":
            reader.error(key, f"unknown section '{key.value}'")
            continue
        for code_node, body in reader.items(value, "subcategories"):
            code = code_node.value
            sub = taxonomy.subcategories.get(code)
            if sub is None:
                reader.error(code_node, f"unknown subcategory code '{code}'")
                continue
            if sub.category != category:
                reader.error(code_node, f"subcategory {code} belongs in {sub.category}.yaml, not {reader.file}")
                continue
            _read_subcategory(reader, code, body, rules)


def _read_shared(reader: _Reader, node: Node, rules: RuleSet, taxonomy: Taxonomy) -> None:
    """`keyword: [code, code]`: those subcategories may all list the keyword (weights and contexts decide)."""
    if isinstance(node, MappingNode) and not node.value:
        return
    for word, codes in reader.items(node, "shared"):
        listed = reader.strings(codes, f"shared.{word.value}")
        unknown = [code for code, _ in listed if code not in taxonomy.subcategories]
        if unknown:
            reader.error(word, f"shared keyword '{word.value}': unknown code(s) {', '.join(unknown)}")
        rules.shared.setdefault(word.value, set()).update(code for code, _ in listed)


def _read_subcategory(reader: _Reader, code: str, body: Node, rules: RuleSet) -> None:
    for section, value in reader.items(body, code):
        name = section.value
        if name in ("keywords", "tokens"):
            for word, weight_node in reader.items(value, f"{code}.{name}", unique=False):
                weight = reader.number(weight_node, f"{code} keyword '{word.value}'", 0, MAX_WEIGHT)
                if weight is not None:
                    rules.keywords.append(
                        Keyword(word.value.strip(), code, weight, name == "tokens", reader.where(word))
                    )
        elif name == "combos":
            if not isinstance(value, SequenceNode):
                reader.error(value, f"{code}.combos must be a list")
                continue
            for item in value.value:
                _read_combo(reader, code, item, rules)
        elif name == "exclude":
            _read_excludes(reader, value, code, rules)
        elif name == "urgent":
            rules.urgent.setdefault(code, []).extend(word for word, _ in reader.strings(value, f"{code}.urgent"))
        else:
            reader.error(section, f"{code}: unknown section '{name}'")


def _read_combo(reader: _Reader, code: str, item: Node, rules: RuleSet) -> None:
    fields = {key.value: value for key, value in reader.items(item, f"{code} combo")}
    words = reader.strings(fields["words"], f"{code} combo words") if "words" in fields else []
    if len(words) < 2:
        reader.error(item, f"{code} combo needs 'words' with at least two words")
        return
    within = reader.number(fields["within"], f"{code} combo within", 0, 50) if "within" in fields else 8.0
    weight = reader.number(fields["weight"], f"{code} combo weight", 0, MAX_WEIGHT) if "weight" in fields else None
    unknown = set(fields) - {"words", "within", "weight"}
    if unknown:
        reader.error(item, f"{code} combo: unknown field(s) {', '.join(sorted(unknown))}")
    if within is None or weight is None:
        if weight is None and "weight" not in fields:
            reader.error(item, f"{code} combo needs a weight")
        return
    rules.combos.append(Combo(code, tuple(w for w, _ in words), int(within), weight, reader.where(item)))


def _read_excludes(reader: _Reader, node: Node, scope: str, rules: RuleSet) -> None:
    for word, contexts in reader.items(node, f"{scope} exclude"):
        listed = reader.strings(contexts, f"exclude '{word.value}'")
        for context, context_node in listed:
            if word.value not in context:
                reader.error(
                    context_node,
                    f"keyword '{word.value}': exclusion context '{context}' does not contain the keyword, "
                    "so it can never apply",
                )
        rules.excludes.setdefault((scope, word.value), []).extend(context for context, _ in listed)


def _duplicate_claims(rules: RuleSet) -> list[str]:
    problems = []
    first: dict[str, Keyword] = {}
    for keyword in rules.keywords:
        seen = first.get(keyword.text)
        if seen is None:
            first[keyword.text] = keyword
            continue
        if seen.subcategory == keyword.subcategory:
            problems.append(
                f"{keyword.where}: keyword '{keyword.text}' is listed twice for {keyword.subcategory} "
                f"(also at {seen.where})"
            )
            continue
        shared = rules.shared.get(keyword.text, set())
        if not {seen.subcategory, keyword.subcategory} <= shared:
            problems.append(
                f"{keyword.where}: keyword '{keyword.text}' is claimed by {seen.subcategory} ({seen.where}) and "
                f"{keyword.subcategory}; list it under 'shared' in {COMMON_FILE} or keep it in one subcategory"
            )
    return problems
