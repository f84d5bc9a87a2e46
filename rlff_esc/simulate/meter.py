"""Count the tokens a backend processes (prompt + generated), for the progress bar and the benchmark.

A thin wrapper so that any backend (local or HTTP) is metered the same way. ``loglikelihood`` requests
report no token counts, so they are counted with the backend's tokenizer when it has one (the local
backend), and not at all otherwise.
"""

from __future__ import annotations

import time

from rlff_esc.llm.base import ChatBackend, Generation, GenerationRequest, Message


class MeteredBackend:
    def __init__(self, backend: ChatBackend):
        self.backend = backend
        self.name = backend.name
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.seconds = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        start = time.perf_counter()
        out = self.backend.generate(requests)
        self.seconds += time.perf_counter() - start
        self.prompt_tokens += sum(g.prompt_tokens for g in out)
        self.completion_tokens += sum(g.completion_tokens for g in out)
        return out

    def loglikelihood(self, requests: list[tuple[list[Message], str]]) -> list[float]:
        start = time.perf_counter()
        out = self.backend.loglikelihood(requests)
        self.seconds += time.perf_counter() - start
        tokenizer, render = getattr(self.backend, "tokenizer", None), getattr(self.backend, "render", None)
        if tokenizer is not None and render is not None:
            self.prompt_tokens += sum(len(tokenizer(render(m) + c, add_special_tokens=False)["input_ids"])
                                      for m, c in requests)
        return out
