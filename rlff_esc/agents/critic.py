"""The LLM critic: PPDPP's four-way judgement of how the seeker feels, over any backend.

Two scoring modes:

* ``sample`` (PPDPP-compatible): ``samples`` answers at ``temperature`` (PPDPP: 10 at 1.1); each names
  one option (:func:`parse_option`), mapped −1.0 / −0.5 / +0.5 / +1.0; the score is the mean over the
  answers that named an option. Answers naming none are counted in ``Judgement.invalid`` and left out,
  never scored 0; a judgement with no valid answer has ``score=None``. Sample seeds come from a hash of
  the prompt, so the same conversation gets the same samples in any batch.
* ``logprob`` (deterministic, one pass): the log-likelihood of each option's text as the critic's
  answer, a softmax over the four, and the expected mapped value. A backend that cannot give
  log-likelihoods (a server without prompt log-probabilities) is found by one probe when the critic is
  built, which then samples instead, so every conversation of a run is judged the same way.
"""

from __future__ import annotations

import logging
import math
import re

from rlff_esc.agents.base import OPTION_VALUES, OPTIONS, Dialogue, Judgement
from rlff_esc.agents.prompts import critic_messages, recent
from rlff_esc.data.schema import Turn
from rlff_esc.llm.base import ChatBackend, GenerationRequest, LoglikelihoodUnsupported
from rlff_esc.seeds import stable_int

log = logging.getLogger(__name__)

# The first option an answer names decides it; the full phrase or its distinctive word counts
# ("better" → feels better). "not solved" / "hasn't been resolved" name no option.
_WORDS = {"worse": "feels worse", "same": "feels the same", "better": "feels better",
          "solved": "issue solved", "resolved": "issue solved"}
_OPTION_WORD = re.compile(r"\b(worse|same|better|solved|resolved)\b")
_NEGATED = re.compile(r"(\bnot|n't|\bnever)\s+(been\s+|yet\s+|fully\s+|completely\s+)*(solved|resolved)\b")


def parse_option(text: str) -> str | None:
    """The option an answer names (the first one it mentions), or None."""
    text = _NEGATED.sub(" ", text.lower().replace("’", "'"))
    match = _OPTION_WORD.search(text)
    return _WORDS[match.group(1)] if match else None


def _seed(prompt: str, index: int) -> int:
    return stable_int(prompt, index)


class LLMCritic:
    def __init__(self, backend: ChatBackend, scoring: str = "logprob", samples: int = 10,
                 temperature: float = 1.1, max_new_tokens: int = 16, max_history_turns: int | None = None):
        if scoring not in ("logprob", "sample"):
            raise ValueError(f"critic scoring must be 'logprob' or 'sample', not {scoring!r}")
        self.backend, self.scoring = backend, scoring
        self.samples, self.temperature, self.max_new_tokens = samples, temperature, max_new_tokens
        self.max_history_turns = max_history_turns
        if scoring == "logprob" and not self._logprob_supported():
            self.scoring = "sample"
        self.name = f"llm-{self.scoring}:{backend.name}"

    def _logprob_supported(self) -> bool:
        probe = critic_messages([Turn(speaker="seeker", text="Hello.")])
        try:
            self.backend.loglikelihood([(probe, OPTIONS[0])])
        except LoglikelihoodUnsupported as e:  # a server without prompt logprobs: PPDPP's sampling
            log.warning("critic scores by sampling, not logprob: %s", e)
            return False
        return True

    def _messages(self, dialogue: Dialogue) -> list[dict]:
        return critic_messages(recent(dialogue.turns, self.max_history_turns))

    def judge(self, dialogues: list[Dialogue]) -> list[Judgement]:
        if not dialogues:
            return []
        return self._by_sampling(dialogues) if self.scoring == "sample" else self._by_logprob(dialogues)

    def _by_logprob(self, dialogues: list[Dialogue]) -> list[Judgement]:
        messages = [self._messages(d) for d in dialogues]
        scores = self.backend.loglikelihood([(m, option) for m in messages for option in OPTIONS])
        judgements = []
        for i in range(len(dialogues)):
            row = scores[i * len(OPTIONS):(i + 1) * len(OPTIONS)]
            top = max(row)
            weights = [math.exp(s - top) for s in row]
            total = sum(weights)
            distribution = {o: w / total for o, w in zip(OPTIONS, weights)}
            score = sum(OPTION_VALUES[o] * p for o, p in distribution.items())
            judgements.append(Judgement(score=score, distribution=distribution))
        return judgements

    def _by_sampling(self, dialogues: list[Dialogue]) -> list[Judgement]:
        requests = []
        for d in dialogues:
            messages = self._messages(d)
            key = repr(messages)
            requests += [GenerationRequest(messages=messages, max_new_tokens=self.max_new_tokens,
                                           temperature=self.temperature, seed=_seed(key, k))
                         for k in range(self.samples)]
        texts = [g.text for g in self.backend.generate(requests)]
        judgements = []
        for i in range(len(dialogues)):
            raw = texts[i * self.samples:(i + 1) * self.samples]
            named = [o for o in map(parse_option, raw) if o is not None]
            distribution = {o: named.count(o) / len(named) for o in OPTIONS} if named else {}
            score = sum(OPTION_VALUES[o] for o in named) / len(named) if named else None
            judgements.append(Judgement(score=score, distribution=distribution, raw=raw,
                                        invalid=len(raw) - len(named)))
        return judgements
