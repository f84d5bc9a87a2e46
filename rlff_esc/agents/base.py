"""What every critic implements, so that simulation and evaluation can use an LLM critic or the
data-grounded learned critic interchangeably.

A critic answers PPDPP's question "has the seeker's issue been solved?" for each dialogue, as an
expected value over the four answers, mapped feels worse / same / better / solved → −1.0 / −0.5 /
+0.5 / +1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rlff_esc.data.schema import Profile, Turn

OPTIONS = ("feels worse", "feels the same", "feels better", "issue solved")
OPTION_VALUES = {"feels worse": -1.0, "feels the same": -0.5, "feels better": 0.5, "issue solved": 1.0}


@dataclass
class Dialogue:
    profile: Profile
    turns: list[Turn]


@dataclass
class Judgement:
    score: float | None  # expected mapped value in [-1, 1]; None when no answer could be parsed
    distribution: dict[str, float] = field(default_factory=dict)  # option → probability
    raw: list[str] = field(default_factory=list)  # raw critic outputs (sample mode)
    invalid: int = 0  # outputs that named no option; excluded, never scored as 0


class Critic(Protocol):
    name: str

    def judge(self, dialogues: list[Dialogue]) -> list[Judgement]:
        ...
