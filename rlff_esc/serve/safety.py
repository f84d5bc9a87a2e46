"""Crisis detection on what a seeker writes, and the safe-messaging reply that replaces the policy's.

A 135M policy trained on ESConv has never learnt what to do when someone says they want to die, so a
message that signals a crisis (suicidal intent, self-harm, harm to others, abuse) is answered by a
fixed reply that follows safe-messaging practice instead: acknowledge, encourage reaching out now,
and give crisis resources for the configured country.

Detection is the union of two signals, both written in ``safety_prototypes.json`` (kept apart from
the labelled evaluation set in ``tests/data/safety_set.jsonl``):

* a **lexicon** of explicit phrases (regular expressions), precise where people say it plainly;
* **MiniLM prototypes**: each sentence of the message is embedded and compared with crisis prototypes
  and with "safe" anchors (ordinary distress, idioms such as "this exam is killing me"). A sentence
  flags when its nearest crisis prototype is at least ``threshold`` similar and beats the nearest safe
  anchor by ``margin``. This catches indirect wording ("I don't see the point of going on").

Measured by ``benchmarks/safety_eval.py`` (numbers in the P7 note): on hand-written messages it
catches the explicit and many indirect ones, misses many that only describe a method or plan, and
flags about 2% of ordinary ESConv seeker turns. Recall matters more than precision here: a false alarm costs one unneeded list of phone numbers; a
miss can cost far more. Every flag is logged and, if ``log_path`` is set, appended to a JSONL file.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rlff_esc.config import SafetyConfig
from rlff_esc.errors import ConfigError
from rlff_esc.jsonl import append_jsonl

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PROTOTYPES_FILE = HERE / "safety_prototypes.json"
RESOURCES_FILE = HERE / "crisis_resources.json"
CATEGORIES = ("suicide", "self_harm", "harm_to_others", "abuse")
COUNTRY_ALIASES = {"GB": "UK", "USA": "US"}


@dataclass
class SafetyFlag:
    category: str  # one of CATEGORIES
    source: str  # "lexicon" or "prototype"
    score: float  # prototype similarity (1.0 for a lexicon hit)
    matched: str  # the lexicon pattern or the nearest prototype
    text: str  # the message that was flagged

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SentenceScore:
    crisis: float  # cosine similarity to the nearest crisis prototype
    safe: float  # cosine similarity to the nearest safe anchor
    category: str  # the nearest crisis prototype's category
    prototype: str


# The replies, written for this project after common safe-messaging guidance: take the person
# seriously and say so, no judgement or lecturing, no details about methods, urge contact with a
# person *now*, give concrete numbers, and stay in the conversation.
OPENINGS = {
    "suicide": "I'm really glad you told me, and I'm taking what you said seriously. It sounds like you "
               "are in a lot of pain right now, and you deserve support from a person who can help.",
    "self_harm": "Thank you for trusting me with this. Hurting yourself is a sign of how much pain you are "
                 "carrying, and you don't have to carry it alone.",
    "harm_to_others": "It sounds like you are feeling overwhelmed and very angry right now. Those feelings "
                      "are real, and it matters that nobody gets hurt, you included.",
    "abuse": "I'm so sorry this is happening to you. It is not your fault, and you deserve to be safe.",
}
URGING = {
    "suicide": "Please reach out to someone right now:",
    "self_harm": "Please consider talking to someone today, and keep yourself safe:",
    "harm_to_others": "Please step away from the situation and talk to someone right now:",
    "abuse": "You can talk to someone confidentially, right now:",
}
CLOSING = ("If you are in immediate danger, call {emergency}. I'm still here to listen, and if you can, "
           "let someone you trust know how you are feeling.")


class SafetyLayer:
    """``check`` a batch of messages; ``safe_reply`` for each flag. Load once, reuse."""

    def __init__(self, *, country: str = "US", threshold: float = 0.50, margin: float = 0.10,
                 lexicon: bool = True, embedder: str | None = "embedded:minilm",
                 resources_file: str | Path | None = None, log_path: str | Path | None = None,
                 prototypes_file: str | Path = PROTOTYPES_FILE):
        spec = json.loads(Path(prototypes_file).read_text())
        self.threshold, self.margin, self.log_path = threshold, margin, log_path
        self.patterns = [(cat, re.compile(p, re.IGNORECASE)) for cat, ps in spec["lexicon"].items()
                         for p in ps] if lexicon else []
        self.resources = _load_resources(resources_file or RESOURCES_FILE)
        self.country = COUNTRY_ALIASES.get(country.upper(), country.upper())
        if self.country not in self.resources:
            log.warning("no crisis resources for country %r; using the generic ones", country)
        self.encoder = None
        if embedder:
            from sentence_transformers import SentenceTransformer

            from rlff_esc.llm.embedded import resolve_model

            self.encoder = SentenceTransformer(resolve_model(embedder), device="cpu")
            crisis = [(cat, t) for cat, ts in spec["crisis"].items() for t in ts]
            self.crisis_labels = crisis
            self.crisis_vectors = self._embed([t for _, t in crisis])
            self.safe_vectors = self._embed(spec["safe"])

    @classmethod
    def from_config(cls, cfg: SafetyConfig, base_dir: Path | None = None) -> SafetyLayer | None:
        """The layer a config asks for, or None when ``enabled`` is false. Relative paths in the
        config are resolved against ``base_dir`` (the config file's folder) when given."""
        if not cfg.enabled:
            return None

        def where(p):
            return None if p is None else (Path(base_dir) / p if base_dir else Path(p))

        return cls(country=cfg.country, threshold=cfg.threshold, margin=cfg.margin, lexicon=cfg.lexicon,
                   embedder=cfg.embedder, resources_file=where(cfg.resources_file), log_path=where(cfg.log_path))

    # -- detection -----------------------------------------------------------------------------------
    def check(self, texts: list[str]) -> list[SafetyFlag | None]:
        """One flag (or None) per message, in order; every flag is logged."""
        flags: list[SafetyFlag | None] = [self._lexicon(t) for t in texts]
        if self.encoder is not None:
            todo = [i for i, f in enumerate(flags) if f is None and texts[i].strip()]
            for i, flag in zip(todo, self._prototypes([texts[i] for i in todo])):
                flags[i] = flag
        found = [f for f in flags if f is not None]
        for f in found:
            log.warning("safety flag: %s (%s, score %.2f, matched %r): %r",
                        f.category, f.source, f.score, f.matched, f.text[:200])
        if found and self.log_path:
            append_jsonl(self.log_path, [{"time": time.time(), **f.to_dict()} for f in found])
        return flags

    def _lexicon(self, text: str) -> SafetyFlag | None:
        for category, pattern in self.patterns:
            if pattern.search(text):
                return SafetyFlag(category, "lexicon", 1.0, pattern.pattern, text)
        return None

    def _prototypes(self, texts: list[str]) -> list[SafetyFlag | None]:
        flags: list[SafetyFlag | None] = []
        for text, sentences in zip(texts, self.prototype_scores(texts)):
            hits = [s for s in sentences if s.crisis >= self.threshold and s.crisis - s.safe >= self.margin]
            top = max(hits, key=lambda s: s.crisis, default=None)
            flags.append(top and SafetyFlag(top.category, "prototype", round(top.crisis, 4), top.prototype, text))
        return flags

    def prototype_scores(self, texts: list[str]) -> list[list[SentenceScore]]:
        """Per message, per sentence: similarity to the nearest crisis prototype and safe anchor."""
        pieces = [(i, s) for i, text in enumerate(texts) for s in split_sentences(text)]
        if not pieces:
            return [[] for _ in texts]
        vectors = self._embed([s for _, s in pieces])
        crisis_sim = vectors @ self.crisis_vectors.T
        safe_best = (vectors @ self.safe_vectors.T).max(axis=1)
        out: list[list[SentenceScore]] = [[] for _ in texts]
        for row, (i, _) in enumerate(pieces):
            j = int(crisis_sim[row].argmax())
            category, prototype = self.crisis_labels[j]
            out[i].append(SentenceScore(float(crisis_sim[row, j]), float(safe_best[row]), category, prototype))
        return out

    def _embed(self, texts: list[str]):
        return self.encoder.encode(texts, batch_size=64, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)

    # -- the reply -----------------------------------------------------------------------------------
    def safe_reply(self, flag: SafetyFlag) -> str:
        """The safe-messaging reply for a flag, with this layer's country's resources."""
        res = self.resources.get(self.country, self.resources["default"])
        lines = list(res.get("abuse", [])) if flag.category == "abuse" else []
        lines += res["crisis"]
        items = "\n".join(f"- {line}" for line in lines)
        return (f"{OPENINGS[flag.category]} {URGING[flag.category]}\n{items}\n"
                + CLOSING.format(emergency=res["emergency"]))


def split_sentences(text: str) -> list[str]:
    """A message cut into sentences: the prototypes are single sentences, and a long message could
    otherwise dilute one alarming sentence among ordinary ones."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
    return parts if len(parts) > 1 else [text.strip()]


def _load_resources(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"serve.safety.resources_file: cannot read {path}: {e}") from None
    if "default" not in data:
        raise ConfigError(f"{path}: needs a 'default' entry (the resources shown for unknown countries)")
    for country, entry in data.items():
        if country.startswith("_"):
            continue
        if not isinstance(entry, dict) or not entry.get("crisis") or "emergency" not in entry:
            raise ConfigError(f"{path}: field '{country}': needs 'emergency' and a non-empty 'crisis' list")
    return data
