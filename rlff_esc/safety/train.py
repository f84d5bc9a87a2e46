"""Training the crisis classifier (the head on frozen MiniLM vectors, then MiniLM fine-tuned from it) and
choosing each one's threshold, on the dev set only.

Training data: the labelled dev set (``data/dev.jsonl``, 2,160 messages written for this project:
crisis messages of every kind, including plans and methods without crisis words, slang, farewells and
other veiled wording, texting typos and long messages with the risk in the middle; ordinary distress,
idioms, denials, hard words such as "pills" or "bridge" in ordinary use, farewells before a move, other
people's crises, recovery long ago) plus the seeker turns of ESConv's *train* split as negatives (turns
the lexicon flags are left out: ESConv has some real disclosures). Each ESConv turn is cut into the
classifier's windows.

Each threshold is chosen without the hold-out: out-of-fold scores on the dev set (5 folds, near-duplicates
kept in one fold, each message scored on its windows as the classifier scores it; each head fitted with
all the ESConv negatives, each fine-tuning drawing 2,000 of them an epoch) and the false-alarm rate on
ESConv's *valid* split seeker turns (never trained on). It is the lowest threshold at which the
lexicon-or-classifier union flags at most ``max_false_alarms`` of ESConv valid turns and keeps dev
precision at least ``min_precision``; the lowest such threshold has the highest recall. ESConv's *test*
split is left for reporting.

Measured so (``cross_validated`` in the head, 2,160 dev messages): with the fine-tuned model the union
catches 88.8% of dev crisis messages at precision 0.85 and flags 1.4% of ESConv valid turns (the
fine-tuned model alone 87.3% at 0.87). With the head on frozen vectors the union catches 69.6% at
precision 0.80 and flags 1.1% (lexicon alone 13.7% at 0.84 flagging 0.1%). On the former 1,760
messages, without the 400 added since (half of them hard crisis messages, mostly veiled), the union
caught 88.9% at 0.84 flagging 1.5%; on 1,250, 87.6% at 0.83. The
former recipe (4,000 ESConv turns, C 4, no written-out spellings, the former lexicon),
cross-validated the same way on 1,244 of these messages: 65.8% at 0.83 flagging 1.4%; all ESConv
train turns and the written-out spellings gave most of the gain. A hidden layer of 64 units
(scikit-learn's MLPClassifier) reached about the same recall (74.6% against 73.9% for this head on
those 1,244) with half the false alarms, but flagged an ordinary long message (the tests') that
logistic regression passes and is twelve times larger, so it was not kept.

Training takes 23 minutes on two AVX2 cores (3.2 GB), almost all of it the six fine-tunings (five
folds and the final model, about three and a half minutes each); the head's part is MiniLM encoding,
cached on disk for reruns. Everything is deterministic on one machine (lbfgs, fixed ESConv turns,
seeded draws).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from rlff_esc.data.esconv import read_processed
from rlff_esc.data.splits import sha256_file
from rlff_esc.errors import DataError
from rlff_esc.jsonl import read_jsonl
from rlff_esc.safety.classifier import CLASSES, DEV_SET, ENCODER, HEAD_FILE, load_head, window_texts
from rlff_esc.safety.finetune import FinetuneRecipe, finetune, fingerprint, model_folder
from rlff_esc.safety.lexicon import Lexicon

log = logging.getLogger(__name__)

LABELS = ("crisis", "none")
ESCONV_WEIGHT, CRISIS_WEIGHT, C = 0.25, 2.0, 1.0  # chosen on the dev set (train_head)


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


def near_duplicate_groups(vectors: np.ndarray, min_cosine: float = 0.85) -> np.ndarray:
    """A group id per message: messages whose MiniLM vectors are at least ``min_cosine`` alike are linked,
    and linked messages share a group, so that cross-validation never tests a message on its near-twin."""
    parent = np.arange(len(vectors))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(vectors @ vectors.T, 1) >= min_cosine)):
        parent[root(i)] = root(j)
    return np.array([root(i) for i in range(len(vectors))])


def _fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float):
    """Multinomial logistic regression, inverse L2 strength ``c``."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000).fit(x, y, sample_weight=weights)


def _crisis(probabilities: np.ndarray) -> np.ndarray:
    """The probability of any crisis class: 1 - P(none)."""
    return 1.0 - probabilities[:, 0]


def _window_max(crisis: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """Per message: the highest crisis probability over its windows."""
    best = np.zeros(n)
    np.maximum.at(best, owners, crisis)
    return best


def esconv_negatives(esconv: str | Path, lexicon: Lexicon, limit: int = 20000, seed: int = 13) -> list[str]:
    """ESConv train seeker turns the lexicon does not flag (ESConv has some real disclosures), at most
    ``limit``, as the classifier's negatives."""
    turns = [t for t in esconv_seeker_turns(esconv, "train") if lexicon.crisis(t) is None]
    return random.Random(seed).sample(turns, min(limit, len(turns)))


def figures(gold: np.ndarray, flagged: np.ndarray, false_alarms: np.ndarray) -> dict:
    """Dev recall and precision of ``flagged`` and the share of ESConv valid turns flagged."""
    tp, fp = int((flagged & gold).sum()), int((flagged & ~gold).sum())
    return {"dev_recall": round(tp / int(gold.sum()), 4), "dev_precision": round(tp / (tp + fp) if tp + fp else 1.0, 4),
            "esconv_valid_false_alarms": round(float(false_alarms.mean()), 4)}


def choose_threshold(gold, dev_lex, out_of_fold, valid_lex, valid_scores, *, max_false_alarms: float,
                     min_precision: float, groups: int) -> dict:
    """The lowest threshold at which the union flags at most ``max_false_alarms`` of ESConv valid turns
    with dev precision at least ``min_precision`` (the highest recall that does), and its figures."""
    grid = [{"threshold": float(t), **figures(gold, dev_lex | (out_of_fold >= t), valid_lex | (valid_scores >= t))}
            for t in np.round(np.arange(0.05, 0.96, 0.01), 2)]
    ok = [g for g in grid if g["esconv_valid_false_alarms"] <= max_false_alarms
          and g["dev_precision"] >= min_precision]
    chosen = ok[0] if ok else grid[-1]
    if not ok:
        log.warning("no threshold meets %.1f%% ESConv valid false alarms and dev precision %.2f; using %.2f",
                    100 * max_false_alarms, min_precision, chosen["threshold"])
    t = chosen["threshold"]
    return {"threshold": t, "chosen_on": {k: v for k, v in chosen.items() if k != "threshold"},
            "cross_validated": {"folds": 5, "near_duplicate_groups": groups,
                                "lexicon": figures(gold, dev_lex, valid_lex),
                                "classifier": figures(gold, out_of_fold >= t, valid_scores >= t),
                                "union": figures(gold, dev_lex | (out_of_fold >= t), valid_lex | (valid_scores >= t))}}


def train_head(esconv: str | Path, *, dev_file: str | Path = DEV_SET, out: str | Path = HEAD_FILE,
               esconv_negatives_limit: int = 20000, esconv_weight: float = ESCONV_WEIGHT,
               crisis_weight: float = CRISIS_WEIGHT, c: float = C, recipe: FinetuneRecipe = FinetuneRecipe(),
               max_false_alarms: float = 0.015, min_precision: float = 0.80, seed: int = 13) -> dict:
    """Fit the head on frozen MiniLM vectors, fine-tune MiniLM from it (``finetune.py``), choose both
    thresholds, write ``out`` (JSON), keep the fine-tuned model in the cache and return the head. The
    head's weights (an ESConv turn counts ``esconv_weight``, a crisis message ``crisis_weight``, a dev
    negative 1) and ``c`` were chosen on the dev set's grouped out-of-fold scores. Each fold fine-tunes
    its own model from its own probe."""
    from sklearn.model_selection import StratifiedGroupKFold

    from rlff_esc.agents.embeddings import Encoder

    encoder = Encoder(ENCODER)
    lexicon = Lexicon()
    dev = read_labelled(dev_file)
    texts = [r.text for r in dev]
    negatives, _ = window_texts(esconv_negatives(esconv, lexicon, esconv_negatives_limit, seed))
    valid_turns = esconv_seeker_turns(esconv, "valid")
    log.info("training on %d dev messages and %d ESConv train seeker windows; thresholds on %d ESConv valid turns",
             len(dev), len(negatives), len(valid_turns))

    dev_x = encoder.encode(texts, progress=True)
    dev_y = np.array([CLASSES.index(r.category) for r in dev])
    dev_windows, dev_owners = window_texts(texts)
    dev_windows_x = encoder.encode(dev_windows, progress=True)
    neg_x = encoder.encode(negatives, progress=True)
    valid_windows, valid_owners = window_texts(valid_turns)
    valid_x = encoder.encode(valid_windows, progress=True)
    encoder.save()

    def fit(rows: np.ndarray):
        x = np.concatenate([dev_x[rows], neg_x])
        y = np.concatenate([dev_y[rows], np.zeros(len(neg_x), dtype=int)])
        w = np.concatenate([np.where(dev_y[rows] > 0, crisis_weight, 1.0), np.full(len(neg_x), esconv_weight)])
        return _fit(x, y, w, c)

    groups = near_duplicate_groups(dev_x)
    probe_oof, tuned_oof = np.zeros(len(dev)), np.zeros(len(dev))
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(dev_x, dev_y, groups)
    for fold, (train_rows, held) in enumerate(folds, 1):
        rows = np.isin(dev_owners, held)
        probe = fit(train_rows)
        probe_oof[held] = _window_max(_crisis(probe.predict_proba(dev_windows_x[rows])), dev_owners[rows],
                                      len(dev))[held]
        log.info("fold %d of 5: fine-tuning on %d dev messages", fold, len(train_rows))
        tuned = finetune(ENCODER, [texts[i] for i in train_rows], dev_y[train_rows].tolist(), negatives, probe.coef_,
                         probe.intercept_, recipe)
        tuned_oof[held] = _window_max(_crisis(tuned.probabilities([w for w, r in zip(dev_windows, rows) if r])),
                                      dev_owners[rows], len(dev))[held]
    probe = fit(np.arange(len(dev)))
    valid_probe = _window_max(_crisis(probe.predict_proba(valid_x)), valid_owners, len(valid_turns))

    gold = np.array([r.label == "crisis" for r in dev])
    dev_lex = np.array([lexicon.crisis(t) is not None for t in texts])
    valid_lex = np.array([lexicon.crisis(t) is not None for t in valid_turns])
    rule = {"max_false_alarms": max_false_alarms, "min_precision": min_precision}
    n_groups = len(set(groups.tolist()))
    esconv_sha = sha256_file(Path(esconv) / "train.txt")
    head = {
        "about": "Crisis classifier head over MiniLM embeddings, written by `rlff-esc safety train` "
                 "(rlff_esc/safety/train.py); do not edit by hand.",
        "encoder": ENCODER, "classes": list(CLASSES),
        **choose_threshold(gold, dev_lex, probe_oof, valid_lex, valid_probe, groups=n_groups, **rule),
        "rule": rule,
        "trained_on": {"dev_set": Path(dev_file).name, "dev_sha256": sha256_file(dev_file), "dev_messages": len(dev),
                       "esconv_negatives_limit": esconv_negatives_limit, "esconv_train_windows": len(negatives),
                       "esconv_train_sha256": esconv_sha,
                       "esconv_valid_turns": len(valid_turns), "esconv_weight": esconv_weight,
                       "crisis_weight": crisis_weight, "C": c, "seed": seed},
        "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "intercept": _rounded(probe.intercept_), "coef": _rounded(probe.coef_),
    }
    log.info("fine-tuning on all %d dev messages", len(dev))  # from the written (rounded) head, as setup does
    tuned = finetune(ENCODER, texts, dev_y.tolist(), negatives, head["coef"], head["intercept"], recipe)
    valid_tuned = _window_max(_crisis(tuned.probabilities(valid_windows)), valid_owners, len(valid_turns))
    head["finetuned"] = {"recipe": asdict(recipe), "fingerprint": fingerprint(head, recipe),
                         **choose_threshold(gold, dev_lex, tuned_oof, valid_lex, valid_tuned, groups=n_groups, **rule)}
    Path(out).write_text(json.dumps(head) + "\n")
    tuned.save(model_folder(head), _model_meta(head, esconv_sha))
    return head


def finetune_from_head(esconv: str | Path, *, head_file: str | Path = HEAD_FILE, dev_file: str | Path = DEV_SET,
                       force: bool = False) -> Path:
    """Train the fine-tuned model a head names (its probe, recipe, dev set; ESConv train as negatives)
    into the cache, unless it is there; return its folder."""
    head = load_head(head_file)
    folder = model_folder(head)
    if (folder / "meta.json").exists() and not force:
        log.info("the fine-tuned crisis classifier is already in %s", folder)
        return folder
    if sha256_file(dev_file) != head["trained_on"]["dev_sha256"]:
        raise DataError(dev_file, None, None, "the dev set differs from the one the head was trained on; "
                                              "retrain with `rlff-esc safety train`")
    esconv_sha = sha256_file(Path(esconv) / "train.txt")
    if esconv_sha != head["trained_on"].get("esconv_train_sha256"):
        log.warning("%s differs from the ESConv train split the threshold was chosen with; the model will "
                    "differ from the one measured", Path(esconv) / "train.txt")
    dev = read_labelled(dev_file)
    trained_on = head["trained_on"]
    negatives, _ = window_texts(esconv_negatives(esconv, Lexicon(), trained_on["esconv_negatives_limit"],
                                                 trained_on["seed"]))
    recipe = FinetuneRecipe(**head["finetuned"]["recipe"])
    log.info("fine-tuning the crisis classifier on %d dev messages and %d ESConv windows (a few minutes, once)",
             len(dev), len(negatives))
    model = finetune(head["encoder"], [r.text for r in dev], [CLASSES.index(r.category) for r in dev], negatives,
                     head["coef"], head["intercept"], recipe)
    model.save(folder, _model_meta(head, esconv_sha))
    return folder


def _model_meta(head: dict, esconv_sha256: str) -> dict:
    """What is written beside a fine-tuned model: its fingerprint and the ESConv train split it saw."""
    return {"fingerprint": head["finetuned"]["fingerprint"], "esconv_train_sha256": esconv_sha256}


def _rounded(a) -> list:
    """Fitted numbers as JSON lists, to five decimals."""
    return np.round(np.asarray(a, dtype=float), 5).tolist()
