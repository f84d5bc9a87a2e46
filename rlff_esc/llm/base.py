"""The interface every backend implements, in the spirit of lm-evaluation-harness: a batch in, a
batch out, so that callers never care whether a model runs in-process or behind HTTP.

Agents build :class:`GenerationRequest` objects; each carries its own sampling settings, so one call
can mix greedy critic prompts with sampled seeker turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rlff_esc.errors import BackendError

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass
class GenerationRequest:
    messages: list[Message]
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Generation:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" (end token or stop string) or "length"
    token_ids: list[int] | None = None  # the sampled tokens, with the end token that stopped them (local backend)


class LoglikelihoodUnsupported(BackendError):
    """The backend gives no log-probabilities of a given continuation; score by sampling instead."""


@runtime_checkable
class ChatBackend(Protocol):
    name: str  # model id, recorded in every output that this backend produced
    # running counters since the backend was built: at least "prompt_tokens" and "completion_tokens"
    # (tokens asked for, by generate and loglikelihood alike)
    stats: dict

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """One generation per request, in order."""
        ...

    def loglikelihood(self, requests: list[tuple[list[Message], str]]) -> list[float]:
        """Log-probability of each continuation as the assistant's answer to the conversation."""
        ...
