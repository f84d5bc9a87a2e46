"""The safety layer: crisis screening of whole conversations, screening of the policy's replies, and the
safe-messaging reply that replaces the policy's.

A 135M policy trained on ESConv has never learnt what to do when someone says they want to die, so a
conversation in which any seeker message signals a crisis (suicidal intent, self-harm, harm to others,
abuse) is answered by a fixed reply that follows safe-messaging practice instead: acknowledge,
encourage reaching out now, and give crisis resources for the configured country.

* **Every user turn is screened**, not only the last: once a turn is flagged the conversation stays in
  safe mode (every later turn gets the safe reply) until it is reset, and the flagged turn never
  reaches the policy. A server sees the whole conversation in each request, so the state needs no
  storage: a conversation is in safe mode while it contains a flagged turn.
* A message is flagged by the **lexicon** (``lexicon.py``: explicit phrases and slang) or by the
  **trained classifier** (``classifier.py``: MiniLM + logistic regression, long messages in windows).
* **The policy's reply is screened** for methods or encouragement of harm (``lexicon.UNSAFE_REPLY``)
  and replaced when it breaks one.
* Messages that are not English are not screened by either (both are English only): they are
  reported as such (:attr:`Screening.unscreened`) rather than passed as safe in silence.

Measured by ``benchmarks/safety_eval.py`` on a frozen hold-out (README, "Safety layer"). Recall matters
more than precision here: a false alarm costs one unneeded list of phone numbers; a miss can cost far
more. Flags are logged without the person's words unless ``log_text`` is on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlff_esc.config import SafetySection
from rlff_esc.errors import ConfigError
from rlff_esc.jsonl import append_jsonl
from rlff_esc.safety.classifier import HEAD_FILE, CrisisClassifier
from rlff_esc.safety.language import is_english
from rlff_esc.safety.lexicon import Lexicon

log = logging.getLogger(__name__)

RESOURCES_FILE = Path(__file__).resolve().parent / "crisis_resources.json"
UNSAFE_REPLY = "unsafe_reply"  # the category of a flagged policy reply
COUNTRY_ALIASES = {"GB": "UK", "USA": "US"}
NOT_SCREENED = "not screened: the safety layer only understands English"


@dataclass
class SafetyFlag:
    category: str  # one of classifier.CATEGORIES, or UNSAFE_REPLY for a policy reply
    source: str  # "lexicon", "classifier" or "reply"
    score: float  # the classifier's crisis probability (1.0 for a lexicon hit)
    matched: str  # the lexicon pattern ("" for the classifier: its window is the person's words)
    text: str  # the flagged message
    user_turn: int | None = None  # which user turn of the conversation (0-based), when screening one

    def to_dict(self, with_text: bool = True) -> dict:
        d = asdict(self)
        if not with_text:
            d.pop("text")
        return d


@dataclass
class Screening:
    """One conversation's state: ``flag`` is its first flagged user turn (safe mode while set);
    ``unscreened`` lists the user turns that were not screened because they are not English."""

    flag: SafetyFlag | None
    unscreened: list[int] = field(default_factory=list)

    def follow_up(self, user_turns: int) -> bool:
        """Whether the flagged turn is an earlier one (the safe reply was already given)."""
        return self.flag is not None and self.flag.user_turn is not None and self.flag.user_turn < user_turns - 1


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
    UNSAFE_REPLY: "I'm sorry, I can't give that reply. If you are going through something very hard, or "
                  "thinking about hurting yourself or someone else, you deserve support from a person.",
}
URGING = {
    "suicide": "Please reach out to someone right now:",
    "self_harm": "Please consider talking to someone today, and keep yourself safe:",
    "harm_to_others": "Please step away from the situation and talk to someone right now:",
    "abuse": "You can talk to someone confidentially, right now:",
    UNSAFE_REPLY: "You can talk to someone right now:",
}
FOLLOW_UP = ("I'm still here with you, and I'm still worried about what you told me earlier. I can't "
             "replace a person who can help right now, so please reach out:")
CLOSING = ("If you are in immediate danger, call {emergency}. I'm still here to listen, and if you can, "
           "let someone you trust know how you are feeling.")


class SafetyLayer:
    """``screen`` conversations, ``check`` single messages, ``screen_replies`` the policy's replies,
    ``safe_reply`` for a flag. Load once, reuse; verdicts on messages already seen are remembered (by
    hash, not text; at most ``cache_size``) so re-screening a growing conversation costs one new turn."""

    def __init__(self, *, country: str = "US", classifier: bool = True, threshold: float | None = None,
                 lexicon: bool = True, head_file: str | Path = HEAD_FILE, resources_file: str | Path | None = None,
                 log_path: str | Path | None = None, log_text: bool = False, cache_size: int = 4096):
        self.lexicon = Lexicon()
        self.use_lexicon = lexicon
        self.classifier = CrisisClassifier(head_file, threshold=threshold) if classifier else None
        self.log_path, self.log_text, self.cache_size = log_path, log_text, cache_size
        self.resources = _load_resources(resources_file or RESOURCES_FILE)
        self.country = COUNTRY_ALIASES.get(country.upper(), country.upper())
        if self.country not in self.resources:
            log.warning("no crisis resources for country %r; using the generic ones", country)
        self._verdicts: OrderedDict[str, SafetyFlag | None] = OrderedDict()

    @classmethod
    def from_config(cls, cfg: SafetySection, base_dir: Path | None = None) -> SafetyLayer | None:
        """The layer a config asks for, or None when ``enabled`` is false. Relative paths in the
        config are resolved against ``base_dir`` (the config file's folder) when given."""
        if not cfg.enabled:
            return None

        def where(p):
            return None if p is None else (Path(base_dir) / p if base_dir else Path(p))

        return cls(country=cfg.country, classifier=cfg.classifier, threshold=cfg.threshold, lexicon=cfg.lexicon,
                   resources_file=where(cfg.resources_file), log_path=where(cfg.log_path), log_text=cfg.log_text)

    # -- screening -----------------------------------------------------------------------------------
    def screen(self, conversations: list[list[str]]) -> list[Screening]:
        """Each conversation is its user turns in order; its screening holds the first flagged turn."""
        texts = list(dict.fromkeys(t for turns in conversations for t in turns))
        verdict = dict(zip(texts, self.check(texts)))
        out = []
        for turns in conversations:
            first = next((i for i, t in enumerate(turns) if verdict[t] is not None), None)
            flag = None if first is None else SafetyFlag(**{**asdict(verdict[turns[first]]), "user_turn": first})
            out.append(Screening(flag, [i for i, t in enumerate(turns) if t.strip() and not is_english(t)]))
        return out

    def check(self, texts: list[str]) -> list[SafetyFlag | None]:
        """One flag (or None) per message, in order; new flags are logged."""
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        todo = list({k: t for k, t in zip(keys, texts) if k not in self._verdicts}.items())
        found = self._detect([t for _, t in todo])
        for (key, _), flag in zip(todo, found):
            self._verdicts[key] = flag and SafetyFlag(**{**asdict(flag), "text": ""})  # no words kept
        self._log([f for f in found if f is not None])
        flags = []
        for key, text in zip(keys, texts):
            self._verdicts.move_to_end(key)
            cached = self._verdicts[key]
            flags.append(None if cached is None else SafetyFlag(**{**asdict(cached), "text": text}))
        while len(self._verdicts) > self.cache_size:
            self._verdicts.popitem(last=False)
        return flags

    def _detect(self, texts: list[str]) -> list[SafetyFlag | None]:
        flags: list[SafetyFlag | None] = [None] * len(texts)
        if self.use_lexicon:
            for i, text in enumerate(texts):
                hit = self.lexicon.crisis(text)
                if hit:
                    flags[i] = SafetyFlag(hit[0], "lexicon", 1.0, hit[1], text)
        if self.classifier is not None:
            todo = [i for i, f in enumerate(flags) if f is None and texts[i].strip()]
            for i, s in zip(todo, self.classifier.score([texts[i] for i in todo])):
                if s is not None and s.crisis >= self.classifier.threshold:
                    flags[i] = SafetyFlag(s.category, "classifier", round(s.crisis, 4), "", texts[i])
        return flags

    def screen_replies(self, replies: list[str]) -> list[SafetyFlag | None]:
        """A flag for each policy reply that gives a method or encourages harm; None where it is safe."""
        flags = []
        for reply in replies:
            pattern = self.lexicon.unsafe_reply(reply)
            flags.append(pattern and SafetyFlag(UNSAFE_REPLY, "reply", 1.0, pattern, reply))
        self._log([f for f in flags if f is not None])
        return flags

    def _log(self, flags: list[SafetyFlag]) -> None:
        for f in flags:
            log.warning("safety flag: %s (%s, score %.2f)%s", f.category, f.source, f.score,
                        f": {f.text[:200]!r}" if self.log_text else "")
        if flags and self.log_path:
            append_jsonl(self.log_path, [{"time": time.time(), **f.to_dict(with_text=self.log_text)} for f in flags])

    # -- the reply -----------------------------------------------------------------------------------
    def safe_reply(self, flag: SafetyFlag, follow_up: bool = False) -> str:
        """The safe-messaging reply for a flag, with this layer's country's resources; ``follow_up``
        for the later turns of a conversation in safe mode."""
        res = self.resources.get(self.country, self.resources["default"])
        lines = list(res.get("abuse", [])) if flag.category == "abuse" else []
        lines += res["crisis"]
        items = "\n".join(f"- {line}" for line in lines)
        opening = FOLLOW_UP if follow_up else f"{OPENINGS[flag.category]} {URGING[flag.category]}"
        return f"{opening}\n{items}\n" + CLOSING.format(emergency=res["emergency"])


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

