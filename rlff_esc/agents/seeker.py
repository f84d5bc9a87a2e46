"""The seeker agent: role-plays the help-seeker of a case and reacts to the supporter.

Small chat models drift out of the seeker's role: they start counselling ("How can I help?"), write
both sides with labels ("Supporter: ..."), answer nothing, or parrot the last message. A turn like that
would make the critic judge a conversation that never happened, so each turn is checked with simple,
documented rules (:func:`check_turn`) and re-sampled with a fresh seed, at most ``max_resamples``
times, all failed turns of a batch together. A turn still bad after that is kept as it is (the
trajectory is not dropped) and counted as ``gave_up``. ``respond_counted`` returns each turn's number
of re-samples with the turns; ``.stats`` counts every outcome, where the reasons count rejected
attempts, so ``out_of_role + empty + copied`` can exceed ``resampled``.

The rules, in order:

* ``empty``: no letter in the text.
* ``out_of_role``: a speaker label at the start of a line (``Supporter:``, ``Seeker:``, ``Therapist:``,
  ...), a counsellor's phrase ("how can I help", "I'm here for you", "I'm here to listen", "as an
  AI", ...) or talk about "the seeker".
* ``copied``: after lower-casing and dropping punctuation, the turn matches the supporter's last
  message or the seeker's own previous turn with a similarity ratio of at least 0.8 (difflib).

A kept turn is cut to its first two sentences: the prompt asks for one or two.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

from rlff_esc.agents.base import Dialogue
from rlff_esc.agents.prompts import recent, seeker_messages
from rlff_esc.llm.base import ChatBackend, GenerationRequest
from rlff_esc.seeds import stable_int

ROLE_LABEL = re.compile(
    r"(^|\n)\W*(supporter|seeker|therapist|counsel+or|assistant|user|patient|client|helper)\W*:",
    re.IGNORECASE)
COUNSELLOR = re.compile(
    r"\b(how (can|may) i (help|support|assist)|what can i do for you|i'?m here (for you|to (help|listen|support))"
    r"|i am here (for you|to (help|listen|support))|is there anything (else )?i can (do|help)"
    r"|as an ai\b|as a (counsel+or|therapist|supporter)|the seeker)", re.IGNORECASE)
COPY_RATIO = 0.8


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def similar(a: str, b: str) -> bool:
    """Near copies: equal, or at least ``COPY_RATIO`` alike (difflib), once lower-cased and without
    punctuation. The ``copied`` rule here; evaluation's test of a repeated system turn."""
    a, b = _normal(a), _normal(b)
    return bool(a) and bool(b) and (a == b or SequenceMatcher(None, a, b).ratio() >= COPY_RATIO)


def check_turn(text: str, dialogue: Dialogue) -> str | None:
    """Why a seeker turn must be re-sampled (``empty`` / ``out_of_role`` / ``copied``), or None."""
    if not re.search(r"[^\W\d_]", text):
        return "empty"
    if ROLE_LABEL.search(text) or COUNSELLOR.search(text):
        return "out_of_role"
    last_supporter = next((t.text for t in reversed(dialogue.turns) if t.speaker == "supporter"), "")
    last_own = next((t.text for t in reversed(dialogue.turns) if t.speaker == "seeker"), "")
    if similar(text, last_supporter) or similar(text, last_own):
        return "copied"
    return None


def first_sentences(text: str, n: int = 2) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return " ".join(parts[:n]).strip()


def resample_seed(seed: int, attempt: int) -> int:
    """A new seed per attempt, stable across runs (attempt 0 keeps the caller's seed)."""
    return seed if attempt == 0 else stable_int(seed, "resample", attempt)


def seeker_prompt(dialogue: Dialogue, max_history_turns: int | None, persona: str = "cooperative") -> list[dict]:
    """What the seeker model reads: the agent sends it, the grounded seeker is trained on it (with the
    default persona; :mod:`rlff_esc.agents.seeker_training`) and the seeker comparison scores real turns
    after it."""
    return seeker_messages(dialogue.profile, recent(dialogue.turns, max_history_turns), persona)


@dataclass(frozen=True)
class SeekerTurns:
    """One seeker turn per dialogue and how many times each was re-sampled (0: kept at once)."""

    texts: list[str]
    resamples: list[int]


class SeekerAgent:
    """Answers as the seeker of each dialogue (whose last turn is the supporter's)."""

    def __init__(self, backend: ChatBackend, max_new_tokens: int = 64, temperature: float = 0.9,
                 max_resamples: int = 2, top_p: float = 0.95, max_history_turns: int | None = None,
                 persona: str = "cooperative"):
        self.backend, self.persona = backend, persona
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.max_resamples = max_resamples
        self.max_history_turns = max_history_turns
        self.stats: Counter = Counter()

    @property
    def name(self) -> str:
        return self.backend.name

    def _request(self, dialogue: Dialogue, seed: int) -> GenerationRequest:
        return GenerationRequest(
            messages=seeker_prompt(dialogue, self.max_history_turns, self.persona),
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p, seed=seed)

    def respond(self, dialogues: list[Dialogue], seeds: list[int]) -> list[str]:
        return self.respond_counted(dialogues, seeds).texts

    def respond_counted(self, dialogues: list[Dialogue], seeds: list[int]) -> SeekerTurns:
        """The turns with their re-sample counts, which the simulation records per trajectory."""
        texts = [""] * len(dialogues)
        attempts = [0] * len(dialogues)
        pending = list(range(len(dialogues)))
        self.stats["calls"] += len(dialogues)
        for attempt in range(self.max_resamples + 1):
            if not pending:
                break
            generations = self.backend.generate(
                [self._request(dialogues[i], resample_seed(seeds[i], attempt)) for i in pending])
            failed = []
            for i, g in zip(pending, generations):
                texts[i], attempts[i] = g.text.strip(), attempt
                problem = check_turn(texts[i], dialogues[i])
                if problem:
                    self.stats[problem] += 1
                    failed.append(i)
            pending = failed
        self.stats["gave_up"] += len(pending)
        self.stats["resampled"] += sum(1 for a in attempts if a > 0)
        return SeekerTurns([first_sentences(t) for t in texts], attempts)
