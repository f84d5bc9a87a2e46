"""Key/value caches of finished sequences, kept for the prompts that continue them.

A conversation's next prompt repeats its last one: the seeker's prompt at turn t+1 is its prompt at
turn t, the reply it gave (cut to two sentences) and the supporter's answer, so most of what the
seeker reads it has read before (in the evaluation the seeker computed about a third of the tokens with
them: README, "Evaluation"). A backend with a budget keeps the key/value cache of every sequence it
generated (prompt and reply, as far as they were run through the model), oldest dropped first once
the budget in tokens is spent; a new prompt starts from the kept sequence with which it shares the
longest beginning and computes only the rest. When the new sequence is kept, the one it started from
goes: everything of it a later prompt could use is the beginning the two share (the rest is the old
reply as generated, which the conversation carries on cut or re-tokenised), so one sequence per
conversation is kept instead of one per turn, and the budget is not filled with older copies.

Kept caches cost memory: SmolLM2-135M keeps 23 KB a token in bfloat16, 46 KB in float32 (30 layers,
3 key/value heads of 64 numbers, keys and values), so a budget of 262,144 tokens is 6 GB in bfloat16.
Size the budget to hold the conversations of one evaluation batch (``evaluate.batch_cases`` × systems):
they come back in the same order every turn, so with less room the oldest-first rule drops each one
just before its next turn (130 cases × 3 systems in one batch with 65,536 tokens: the seeker computed
245k of its 335k prompt tokens; 48 cases, which fit: 39k of 123k).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from rlff_esc.llm.prefix import common_prefix_length


@dataclass
class KeptSequence:
    tokens: list[int]
    keys: list[torch.Tensor]  # per layer: (key/value heads, len(tokens), head size)
    values: list[torch.Tensor]


class KeptSequences:
    """Finished sequences' caches, at most ``budget_tokens`` tokens of them, newest kept."""

    def __init__(self, budget_tokens: int):
        self.budget_tokens = budget_tokens
        self._kept: OrderedDict[tuple[int, ...], KeptSequence] = OrderedDict()
        self._tokens = 0

    def add(self, sequence: KeptSequence, replaces: KeptSequence | None = None) -> None:
        """Keep ``sequence``, newest; drop ``replaces`` (the kept sequence its prompt started from)."""
        old = tuple(replaces.tokens) if replaces is not None else None
        if old is not None and self._kept.get(old) is replaces:
            del self._kept[old]
            self._tokens -= len(old)
        key = tuple(sequence.tokens)
        if key in self._kept:
            self._kept.move_to_end(key)
            return
        self._kept[key] = sequence
        self._tokens += len(key)
        while self._tokens > self.budget_tokens and self._kept:
            dropped, _ = self._kept.popitem(last=False)
            self._tokens -= len(dropped)

    def __len__(self) -> int:
        return len(self._kept)

    def longest_shared(self, tokens: list[int], limit: int) -> tuple[KeptSequence | None, int]:
        """The kept sequence sharing the longest beginning with ``tokens`` and how many tokens it
        shares, at most ``limit``; (None, 0) when none shares any."""
        best, length = None, 0
        for sequence in self._kept.values():
            shared = min(common_prefix_length(sequence.tokens, tokens), limit)
            if shared > length:
                best, length = sequence, shared
        return best, length
