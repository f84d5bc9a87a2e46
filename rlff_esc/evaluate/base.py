"""What every system under evaluation is: a batch of dialogue histories in, one :class:`Reply` per
history out. Trained policies, prompted base models and the reference systems all implement it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rlff_esc.data.schema import Turn


@dataclass
class Reply:
    """What the system says, and what to keep beside it in the transcript (the raw output with its
    reasoning, the strategy it was told to use, whether the think format held)."""
    text: str
    note: dict = field(default_factory=dict)


class System(Protocol):
    name: str
    identity: dict  # what the system is (model, prompt), recorded beside its results

    def respond(self, histories: list[list[Turn]], seeds: list[int]) -> list[Reply]:
        """One reply per history; histories end with a seeker turn."""
        ...
