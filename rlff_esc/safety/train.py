"""Training the crisis classifier's head and choosing its threshold, on the dev set only.

Training data: the labelled dev set (``data/dev.jsonl``, written for this project: crisis messages of
every kind, ordinary distress, idioms, denials, hard words such as "pills" or "bridge" in ordinary
use) plus seeker turns of ESConv's *train* split as negatives (turns the lexicon flags are left out:
ESConv has some real disclosures). Each ESConv turn is cut into the classifier's windows.

The threshold is chosen without the hold-out: out-of-fold scores on the dev set (5 folds, each model
trained with all the ESConv negatives) and the false-alarm rate on ESConv's *valid* split seeker turns
(never trained on). It is the lowest threshold at which the lexicon-or-classifier union flags at most
``max_false_alarms`` of ESConv valid turns and keeps dev precision at least ``min_precision``;
the lowest such threshold has the highest recall. ESConv's *test* split is left for reporting.

Training takes about a minute on two cores, most of it MiniLM encoding (cached on disk for reruns);
the fit itself is deterministic (lbfgs, fixed ESConv sample).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from rlff_esc.data.esconv import read_processed
from rlff_esc.data.splits import sha256_file
from rlff_esc.errors import DataError
from rlff_esc.jsonl import read_jsonl
from rlff_esc.safety.classifier import CLASSES, DEV_SET, ENCODER, HEAD_FILE, chunks
from rlff_esc.safety.lexicon import Lexicon

log = logging.getLogger(__name__)

LABELS = ("crisis", "none")


@dataclass
class Labelled:
    text: str
    label: str  # "crisis" or "none"
    category: str  # one of CLASSES ("none" for label none)
    kind: str  # how it is worded: explicit, plan, method, slang, indirect, negation, idiom, distress, ...


def read_labelled(path: str | Path) -> list[Labelled]:
    """A labelled safety set (JSONL: text, label, category, kind); a bad record names file, line, field."""
    rows = []
    for line, obj in read_jsonl(path):
        text, label, category = obj.get("text"), obj.get("label"), obj.get("category")
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, line, "text", f"expected a non-empty string, got {text!r}")
        if label not in LABELS:
            raise DataError(path, line, "label", f"expected one of {list(LABELS)}, got {label!r}")
        if category not in CLASSES or (category == "none") != (label == "none"):
            raise DataError(path, line, "category", f"expected one of {list(CLASSES[1:])} for crisis, 'none' "
                                                    f"for none; got {category!r} with label {label!r}")
        rows.append(Labelled(text, label, category, str(obj.get("kind", ""))))
    if not rows:
        raise DataError(path, None, None, "no labelled messages in the file")
    return rows


def esconv_seeker_turns(folder: str | Path, split: str) -> list[str]:
    """Distinct non-empty seeker turns of one ESConv split file (``train``, ``valid`` or ``test``)."""
    cases = read_processed(Path(folder) / f"{split}.txt", split=split).cases
    return list(dict.fromkeys(t.text.strip() for c in cases for t in c.turns
                              if t.speaker == "seeker" and t.text.strip()))


def _fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000).fit(x, y, sample_weight=weights)


def _window_max(model, vectors: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """Per message: the highest crisis probability (1 - P(none)) over its windows."""
    crisis = 1.0 - model.predict_proba(vectors)[:, 0]
    best = np.zeros(n)
    np.maximum.at(best, owners, crisis)
    return best


def train_head(esconv: str | Path, *, dev_file: str | Path = DEV_SET, out: str | Path = HEAD_FILE,
               esconv_negatives: int = 4000, esconv_weight: float = 0.25, crisis_weight: float = 2.0,
               c: float = 4.0, max_false_alarms: float = 0.015, min_precision: float = 0.80,
               seed: int = 13) -> dict:
    """Train the head, choose its threshold, write ``out`` (JSON) and return it. The weights (an ESConv
    turn counts ``esconv_weight``, a crisis message ``crisis_weight``, a dev negative 1) and ``c`` were
    chosen on the dev set's out-of-fold scores."""
    from sklearn.model_selection import StratifiedKFold

    from rlff_esc.agents.embeddings import Encoder

    encoder = Encoder(ENCODER)
    lexicon = Lexicon()
    dev = read_labelled(dev_file)
    train_turns = [t for t in esconv_seeker_turns(esconv, "train") if lexicon.crisis(t) is None]
    negatives = random.Random(seed).sample(train_turns, min(esconv_negatives, len(train_turns)))
    valid_turns = esconv_seeker_turns(esconv, "valid")
    log.info("training on %d dev messages and %d ESConv train seeker turns; threshold on %d ESConv valid turns",
             len(dev), len(negatives), len(valid_turns))

    dev_x = encoder.encode([r.text for r in dev], progress=True)
    dev_y = np.array([CLASSES.index(r.category) for r in dev])
    neg_windows = [w for t in negatives for w in chunks(t)]
    neg_x = encoder.encode(neg_windows, progress=True)
    valid_windows = [(i, w) for i, t in enumerate(valid_turns) for w in chunks(t)]
    valid_x = encoder.encode([w for _, w in valid_windows], progress=True)
    encoder.save()

    def fit(rows: np.ndarray):
        x = np.concatenate([dev_x[rows], neg_x])
        y = np.concatenate([dev_y[rows], np.zeros(len(neg_x), dtype=int)])
        w = np.concatenate([np.where(dev_y[rows] > 0, crisis_weight, 1.0), np.full(len(neg_x), esconv_weight)])
        return _fit(x, y, w, c)

    out_of_fold = np.zeros(len(dev))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    for train_rows, held in folds.split(dev_x, dev_y):
        out_of_fold[held] = 1.0 - fit(train_rows).predict_proba(dev_x[held])[:, 0]
    model = fit(np.arange(len(dev)))
    valid_scores = _window_max(model, valid_x, np.array([i for i, _ in valid_windows]), len(valid_turns))

    gold = np.array([r.label == "crisis" for r in dev])
    dev_lex = np.array([lexicon.crisis(r.text) is not None for r in dev])
    valid_lex = np.array([lexicon.crisis(t) is not None for t in valid_turns])
    grid = []
    for t in np.round(np.arange(0.05, 0.96, 0.01), 2):
        pred = dev_lex | (out_of_fold >= t)
        tp, fp = int((pred & gold).sum()), int((pred & ~gold).sum())
        grid.append({"threshold": float(t), "dev_recall": tp / int(gold.sum()),
                     "dev_precision": tp / (tp + fp) if tp + fp else 1.0,
                     "esconv_valid_false_alarms": float((valid_lex | (valid_scores >= t)).mean())})
    ok = [g for g in grid if g["esconv_valid_false_alarms"] <= max_false_alarms
          and g["dev_precision"] >= min_precision]
    chosen = ok[0] if ok else grid[-1]
    if not ok:
        log.warning("no threshold meets %.1f%% ESConv valid false alarms and dev precision %.2f; using %.2f",
                    100 * max_false_alarms, min_precision, chosen["threshold"])
    head = {
        "about": "Crisis classifier head over MiniLM embeddings, written by `rlff-esc safety train` "
                 "(rlff_esc/safety/train.py); do not edit by hand.",
        "encoder": ENCODER, "classes": list(CLASSES), "threshold": chosen["threshold"],
        "chosen_on": {k: round(v, 4) for k, v in chosen.items() if k != "threshold"},
        "rule": {"max_false_alarms": max_false_alarms, "min_precision": min_precision},
        "trained_on": {"dev_set": Path(dev_file).name, "dev_sha256": sha256_file(dev_file), "dev_messages": len(dev),
                       "esconv_train_turns": len(negatives), "esconv_valid_turns": len(valid_turns),
                       "esconv_weight": esconv_weight, "crisis_weight": crisis_weight, "C": c,
                       "seed": seed},
        "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "intercept": [round(float(v), 6) for v in model.intercept_],
        "coef": [[round(float(v), 6) for v in row] for row in model.coef_],
    }
    Path(out).write_text(json.dumps(head) + "\n")
    return head
