"""The evaluation ladder: reference systems that need no policy and whose order of quality is known.

- ``dismissive``: a reply from :data:`rlff_esc.ladder_replies.DISMISSIVE_REPLIES`;
- ``random_reply``: a training supporter reply drawn at random: fluent and supportive in tone, but
  written for someone else's conversation;
- ``retrieval``: the training supporter reply whose preceding conversation is nearest to this one
  (MiniLM cosine over the last ``policy.max_history_turns`` turns, the window every system reads):
  human-written and on topic.

Run through the same protocol, SR must order them dismissive < random_reply < retrieval and AvgT the
reverse; the report says whether it does. A draw depends on the turn's seed only, so a run is
reproducible and every reference system answers the same seeker draws as the other systems.

The training replies are the gold replies of the contexts of the run's ``cases.jsonl`` train split,
at most ``evaluate.reference_max_contexts`` of them, spread evenly over the dialogues. Retrieval
embeds those conversations once per evaluation, on first use; the shared MiniLM encoder caches the
vectors on disk, so a later evaluation only embeds its own dialogues.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np

from rlff_esc.config import Config
from rlff_esc.data.contexts import build_contexts
from rlff_esc.data.prepare import cap_contexts, read_cases
from rlff_esc.data.schema import Context, Turn
from rlff_esc.errors import RlffError
from rlff_esc.evaluate.base import Reply
from rlff_esc.ladder_replies import DISMISSIVE_REPLIES

REFERENCE_SYSTEMS = ("dismissive", "random_reply", "retrieval")
ENCODER = "embedded:minilm"


def draw(seed: int, n: int) -> int:
    """An index below ``n`` fixed by the seed."""
    return random.Random(seed).randrange(n)


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


class ListSystem:
    """One reply per turn from a fixed list, drawn by the turn's seed."""

    def __init__(self, name: str, replies: list[str], identity: dict):
        self.name, self.replies = name, list(replies)
        self.identity = {**identity, "replies": len(self.replies), "replies_digest": _digest(self.replies)}

    def respond(self, histories: list[list[Turn]], seeds: list[int]) -> list[Reply]:
        return [Reply(self.replies[draw(seed, len(self.replies))]) for seed in seeds]


def conversation_text(history: list[Turn], turns: int | None) -> str:
    """What retrieval compares: the last ``turns`` turns, newest first (the encoder's length limit
    then drops the oldest words)."""
    recent = history[-turns:] if turns else history
    return " | ".join(f"{t.speaker}: {t.text}" for t in reversed(recent))


class RetrievalSystem:
    """The gold reply of the training context whose conversation is nearest (cosine) to the
    dialogue's; the same dialogue always gets the same reply, whatever the seed."""

    name = "retrieval"

    def __init__(self, contexts: list[Context], encoder, history_turns: int | None, identity: dict):
        self.contexts, self.encoder, self.history_turns = contexts, encoder, history_turns
        self.identity = {**identity, "history_turns": history_turns,
                         "replies_digest": _digest([c.gold_reply for c in contexts])}
        self._index: np.ndarray | None = None

    def _vectors(self, histories: list[list[Turn]]) -> np.ndarray:
        return self.encoder.encode([conversation_text(h, self.history_turns) for h in histories])

    def respond(self, histories: list[list[Turn]], seeds: list[int]) -> list[Reply]:
        if self._index is None:
            self._index = self._vectors([c.history for c in self.contexts])
        nearest = (self._vectors(histories) @ self._index.T).argmax(1)
        return [Reply(self.contexts[i].gold_reply) for i in nearest]


def training_contexts(config: Config) -> tuple[list[Context], str]:
    """The contexts whose gold replies the reference systems draw on, and where they came from."""
    path = config.run_path / "cases.jsonl"
    if not path.exists():
        raise RlffError(f"{path} is missing: random_reply and retrieval answer with the run's training "
                        "replies; run `rlff-esc data prepare` first")
    contexts = [x for case in read_cases(path) if case.split == "train" for x in build_contexts(case)]
    if not contexts:
        raise RlffError(f"{path}: no train-split dialogues for random_reply and retrieval to draw on")
    return cap_contexts(contexts, config.evaluate.reference_max_contexts), f"{path} (split train)"


def build_reference(config: Config, name: str):
    """The reference system ``name`` (one of :data:`REFERENCE_SYSTEMS`)."""
    if name == "dismissive":
        return ListSystem(name, list(DISMISSIVE_REPLIES), {"source": "rlff_esc.ladder_replies.DISMISSIVE_REPLIES"})
    contexts, source = training_contexts(config)
    if name == "random_reply":
        return ListSystem(name, [c.gold_reply for c in contexts], {"source": source})
    from rlff_esc.agents.embeddings import shared_encoder

    return RetrievalSystem(contexts, shared_encoder(ENCODER), config.policy.max_history_turns,
                           {"source": source, "contexts": len(contexts), "encoder": ENCODER})
