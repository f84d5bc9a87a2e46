"""The strategy planner of the ``strategy`` baseline (the system itself is in :mod:`rlff_esc.evaluate.systems`).

PPDPP's supervised stage trains a small encoder to predict the supporter's next strategy from the
dialogue so far, on ESConv's strategy labels. Ours is the same idea at demo cost: frozen MiniLM
embeddings of the most recent turns (newest first, so truncation drops the oldest) and a multinomial
logistic regression. The strategy system then asks the base model to use the predicted strategy.

The planner is trained once per run (on the run's ESConv train cases) and kept in
``<run>/eval/strategy_planner/`` with its validation accuracy; it is retrained only when the cases
or the planner settings change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from rlff_esc.agents.embeddings import sentence_encoder
from rlff_esc.config import Config
from rlff_esc.data.contexts import build_contexts
from rlff_esc.data.prepare import cap_contexts, read_cases
from rlff_esc.data.schema import Turn
from rlff_esc.errors import RlffError

log = logging.getLogger(__name__)

VALID_EXAMPLES = 200  # validation contexts for the reported accuracy (taken evenly)

def planner_text(history: list[Turn], turns: int) -> str:
    """The planner's input: the last ``turns`` turns, newest first, supporter turns tagged with their
    strategy where known (as in ESConv, and as the strategy system records its own turns)."""
    parts = []
    for t in reversed(history[-turns:]):
        tag = f" [{t.strategy}]" if t.speaker == "supporter" and t.strategy else ""
        parts.append(f"{t.speaker}{tag}: {t.text}")
    return " | ".join(parts)


class StrategyPlanner:
    """MiniLM embeddings → multinomial logistic regression over ESConv strategies."""

    def __init__(self, labels: list[str], coef: np.ndarray, intercept: np.ndarray, *, encoder: str,
                 history_turns: int, max_seq_length: int, metrics: dict | None = None):
        self.labels, self.coef, self.intercept = labels, coef, intercept
        self.encoder_name, self.history_turns, self.max_seq_length = encoder, history_turns, max_seq_length
        self.metrics = metrics or {}
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = sentence_encoder(self.encoder_name, self.max_seq_length)
        return self._encoder

    def predict(self, histories: list[list[Turn]]) -> list[str]:
        texts = [planner_text(h, self.history_turns) for h in histories]
        x = self.encoder.encode(texts, batch_size=32, show_progress_bar=False)
        return [self.labels[i] for i in (x @ self.coef.T + self.intercept).argmax(1)]

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "weights.npz", coef=self.coef, intercept=self.intercept)
        (path / "planner.json").write_text(json.dumps({
            "labels": self.labels, "encoder": self.encoder_name, "history_turns": self.history_turns,
            "max_seq_length": self.max_seq_length, "metrics": self.metrics}, indent=2))

    @classmethod
    def load(cls, path: Path) -> StrategyPlanner:
        meta = json.loads((path / "planner.json").read_text())
        weights = np.load(path / "weights.npz")
        return cls(meta["labels"], weights["coef"], weights["intercept"], encoder=meta["encoder"],
                   history_turns=meta["history_turns"], max_seq_length=meta["max_seq_length"],
                   metrics=meta.get("metrics"))


def train_planner(config: Config) -> StrategyPlanner:
    """Fit the planner on the run's training cases; report accuracy on the validation cases."""
    from sklearn.linear_model import LogisticRegression

    cfg = config.evaluate.planner
    cases = read_cases(_cases_path(config))
    by_split = {s: [c for case in cases if case.split == s for c in build_contexts(case) if c.gold_strategy]
                for s in ("train", "valid")}
    train = cap_contexts(by_split["train"], cfg.max_examples)
    valid = cap_contexts(by_split["valid"], VALID_EXAMPLES)
    if len({c.gold_strategy for c in train}) < 2:
        raise RlffError(f"{_cases_path(config)}: the strategy planner needs training cases with at least two "
                        "strategy labels (ESConv's); this run has none")
    start = time.perf_counter()
    encoder = sentence_encoder(cfg.encoder, cfg.max_seq_length)
    encode = lambda ctxs: encoder.encode([planner_text(c.history, cfg.history_turns) for c in ctxs],  # noqa: E731
                                         batch_size=32, show_progress_bar=False)
    x_train = encode(train)
    y_train = [c.gold_strategy for c in train]
    classifier = LogisticRegression(max_iter=2000, C=1.0).fit(x_train, y_train)
    metrics = {"train_examples": len(train), "seconds": 0.0}
    if valid:
        y_valid = [c.gold_strategy for c in valid]
        predicted = classifier.predict(encode(valid))
        majority = max(set(y_train), key=y_train.count)
        metrics.update(valid_examples=len(valid),
                       valid_accuracy=round(float(np.mean(predicted == np.array(y_valid))), 4),
                       valid_majority_accuracy=round(float(np.mean(np.array(y_valid) == majority)), 4))
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    log.info("strategy planner: %s", metrics)
    planner = StrategyPlanner(list(classifier.classes_), classifier.coef_, classifier.intercept_,
                              encoder=cfg.encoder, history_turns=cfg.history_turns,
                              max_seq_length=cfg.max_seq_length, metrics=metrics)
    planner._encoder = encoder
    return planner


def load_or_train_planner(config: Config) -> StrategyPlanner:
    """The run's planner, trained now unless one trained on the same cases and settings exists."""
    path = config.paths.planner
    key = _planner_key(config)
    meta = path / "planner.json"
    if meta.exists() and json.loads(meta.read_text()).get("metrics", {}).get("key") == key:
        return StrategyPlanner.load(path)
    planner = train_planner(config)
    planner.metrics["key"] = key
    planner.save(path)
    return planner


def _cases_path(config: Config) -> Path:
    path = config.paths.cases
    if not path.exists():
        raise RlffError(f"{path} is missing: the strategy planner trains on the run's cases; "
                        "run `rlff-esc data prepare` first")
    return path


def _planner_key(config: Config) -> str:
    h = hashlib.sha256(_cases_path(config).read_bytes())
    h.update(config.evaluate.planner.model_dump_json().encode())
    return h.hexdigest()[:16]
