"""The supporter agent: continues a conversation as the system after the candidate reply.

It stands in for the policy in the simulated future, so it uses the policy's own prompt and reasoning
format (:mod:`rlff_esc.policy.reasoning`); what it returns, and what the other agents see, is the reply
only. By default it is the starting policy; any backend can serve it.
"""

from __future__ import annotations

from collections import Counter

from rlff_esc.agents.base import Dialogue
from rlff_esc.llm.base import ChatBackend, GenerationRequest
from rlff_esc.policy.reasoning import policy_prompt, reply_only


class SupporterAgent:
    def __init__(self, backend: ChatBackend, reasoning: bool = False, max_new_tokens: int = 64,
                 temperature: float = 0.9, top_p: float = 0.95, max_history_turns: int | None = None):
        self.backend, self.reasoning = backend, reasoning
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.max_history_turns = max_history_turns
        self.stats: Counter = Counter()  # calls, empty (replies that were empty after removing <think>)

    @property
    def name(self) -> str:
        return self.backend.name

    def respond(self, dialogues: list[Dialogue], seeds: list[int]) -> list[str]:
        requests = [GenerationRequest(
            messages=policy_prompt(d.turns, self.reasoning, self.max_history_turns),
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p, seed=s)
            for d, s in zip(dialogues, seeds)]
        replies = [reply_only(g.text) for g in self.backend.generate(requests)]
        self.stats["calls"] += len(replies)
        self.stats["empty"] += sum(1 for r in replies if not r)
        return replies
