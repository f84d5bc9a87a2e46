"""Count the tokens a backend processes (prompt + generated) and the time it takes, for the progress bar
and the benchmark.

A thin wrapper so that any backend (local or HTTP) is metered the same way: from what each call adds to
the backend's own ``stats`` counters, which also count ``loglikelihood`` requests (whose results carry
no token counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rlff_esc.llm.base import ChatBackend, Generation, GenerationRequest, Message


class MeteredBackend:
    def __init__(self, backend: ChatBackend):
        self.backend = backend
        self.name = backend.name
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.seconds = 0.0

    @property
    def stats(self) -> dict:
        return self.backend.stats

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return self._metered(self.backend.generate, requests)

    def loglikelihood(self, requests: list[tuple[list[Message], str]]) -> list[float]:
        return self._metered(self.backend.loglikelihood, requests)

    def _metered(self, call: Callable, requests: list):
        stats = self.backend.stats
        prompt, completion, start = stats["prompt_tokens"], stats["completion_tokens"], time.perf_counter()
        out = call(requests)
        self.seconds += time.perf_counter() - start
        self.prompt_tokens += stats["prompt_tokens"] - prompt
        self.completion_tokens += stats["completion_tokens"] - completion
        return out
