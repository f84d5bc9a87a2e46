"""The trained crisis classifier (classes ``none`` and the four crisis categories): MiniLM fine-tuned with a
linear head (``finetune.py``; the weights are trained once into the model cache), starting from a head
fitted on frozen MiniLM sentence embeddings. Both come from ``rlff-esc safety train`` (``train.py``) on the
labelled dev set and ESConv seeker turns; the frozen-encoder head (multinomial logistic regression, 5 × 385
numbers), the fine-tuning recipe and each one's threshold chosen on the dev set are kept as JSON in
``data/head.json`` with the hash of the set they were trained on. A message whose texting shorthand or
typos can be written out is scored on both spellings (``texting.py``).

MiniLM reads 128 tokens, so a long message is cut into windows of whole sentences of at most
``CHUNK_WORDS`` words (a sentence longer than that is cut by words), overlapping by one sentence; the
message's score is the highest window's. Messages up to that length are one window, exactly as trained.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from rlff_esc.errors import ConfigError
from rlff_esc.safety.texting import written_out

HERE = Path(__file__).resolve().parent
HEAD_FILE = HERE / "data" / "head.json"
DEV_SET = HERE / "data" / "dev.jsonl"
CATEGORIES = ("suicide", "self_harm", "harm_to_others", "abuse")
CLASSES = ("none",) + CATEGORIES
CHUNK_WORDS = 60  # about 80 MiniLM tokens: inside its 128-token window with room for long words
ENCODER = "embedded:minilm"


def chunks(text: str, max_words: int = CHUNK_WORDS) -> list[str]:
    """Windows of whole sentences, each at most ``max_words`` words, overlapping by one sentence."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]
    pieces: list[list[str]] = []
    for s in sentences:  # cut overlong sentences by words
        words = s.split()
        pieces += [words[i:i + max_words] for i in range(0, len(words), max_words)]
    if sum(len(p) for p in pieces) <= max_words:
        return [text.strip()] if text.strip() else []
    windows, current = [], []
    for piece in pieces:
        if current and sum(len(p) for p in current) + len(piece) > max_words:
            windows.append(" ".join(w for p in current for w in p))
            current = [current[-1]] if len(current[-1]) + len(piece) <= max_words else []
        current.append(piece)
    windows.append(" ".join(w for p in current for w in p))
    return windows


def message_windows(text: str, max_words: int = CHUNK_WORDS) -> list[str]:
    """The windows of a message and, when texting shorthand or typos were written out, of the written-out
    message too (``texting.written_out``): the message scores the highest of them all."""
    plain = written_out(text)
    texts = [text] if plain == text else [text, plain]
    return list(dict.fromkeys(w for t in texts for w in chunks(t, max_words)))


def window_texts(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Every message's windows (:func:`message_windows`) and which message each is of."""
    pairs = [(i, w) for i, t in enumerate(texts) for w in message_windows(t)]
    return [w for _, w in pairs], np.array([i for i, _ in pairs], dtype=int)


@dataclass
class ChunkScore:
    crisis: float  # 1 - P(none): the probability of any crisis category
    category: str  # the most probable crisis category
    chunk: str  # the window that scored highest


class CrisisClassifier:
    """``score(texts)`` → one :class:`ChunkScore` per message (the highest of its windows), to compare
    with ``threshold``. ``finetuned`` (the default) scores with the fine-tuned model; false, with the
    head over frozen MiniLM vectors (for comparison). Nothing a person writes is cached."""

    def __init__(self, head_file: str | Path = HEAD_FILE, *, threshold: float | None = None, finetuned: bool = True):
        head = load_head(head_file)
        if finetuned:
            from rlff_esc.safety.finetune import load_finetuned

            self.probabilities: Callable[[list[str]], np.ndarray] = load_finetuned(head).probabilities
            chosen = head["finetuned"]["threshold"]
        else:
            self.probabilities = partial(_probe_probabilities, head)
            chosen = head["threshold"]
        self.threshold = chosen if threshold is None else threshold

    def score(self, texts: list[str]) -> list[ChunkScore | None]:
        windows, owners = window_texts(texts)
        out: list[ChunkScore | None] = [None] * len(texts)
        if not windows:
            return out
        probs = self.probabilities(windows)
        for i, window, p in zip(owners.tolist(), windows, probs):
            crisis = float(1.0 - p[0])
            if out[i] is None or crisis > out[i].crisis:
                out[i] = ChunkScore(crisis, CLASSES[1 + int(p[1:].argmax())], window)
        return out


def _probe_probabilities(head: dict, texts: list[str]) -> np.ndarray:
    """Class probabilities of the frozen-encoder head."""
    from rlff_esc.agents.embeddings import encode_uncached

    logits = encode_uncached(texts, head["encoder"]) @ np.asarray(head["coef"], dtype=np.float32).T
    logits += np.asarray(head["intercept"], dtype=np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def load_head(path: str | Path) -> dict:
    path = Path(path)
    try:
        head = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"safety classifier head {path}: cannot read it ({e}); train one with "
                          f"`rlff-esc safety train`") from None
    missing = [k for k in ("classes", "coef", "intercept", "threshold", "encoder") if k not in head]
    if missing or tuple(head.get("classes", ())) != CLASSES:
        raise ConfigError(f"safety classifier head {path}: missing {missing} or classes not {list(CLASSES)}; "
                          f"retrain with `rlff-esc safety train`")
    return head
