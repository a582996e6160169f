"""The service's one classifier: loaded once at start, reloaded in place when an admin edits the rules."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from bot.config import Settings
from classifier.engine import Classifier
from classifier.rules import RULES_DIR, load_rules

log = logging.getLogger("gridbot.classifier")


class ClassifierHolder:
    """Thread-safe access to the current Classifier. A failed reload keeps the rules that were working."""

    def __init__(self, settings: Settings) -> None:
        self.rules_dir = Path(settings.classifier.rules_dir) if settings.classifier.rules_dir else RULES_DIR
        self.cache_dir = Path(settings.classifier.cache_dir)
        self.review_below = settings.classifier.review_below
        self._lock = threading.Lock()
        self._current: Classifier | None = None

    def get(self) -> Classifier:
        current = self._current
        if current is None:
            with self._lock:
                if self._current is None:
                    self._current = Classifier.load(rules_dir=self.rules_dir, cache_dir=self.cache_dir)
                current = self._current
        return current

    def reload(self) -> Classifier:
        """Validate the rule files again and swap them in; raises RuleValidationError and changes nothing."""
        rules = load_rules(self.rules_dir)
        with self._lock:
            base = self._current
            self._current = (
                base.with_rules(rules)
                if base is not None
                else Classifier.load(rules_dir=self.rules_dir, cache_dir=self.cache_dir)
            )
            log.info("classifier rules reloaded from %s: %d keywords", self.rules_dir, len(rules.keywords))
            return self._current
