"""The one schema every dataset reader produces and every stage reads.

Speakers are always ``seeker`` or ``supporter``; strategies are kept as the dataset names them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Speaker = Literal["seeker", "supporter"]


SPEAKER_LABELS = {"seeker": "Seeker", "supporter": "Supporter"}


class Turn(BaseModel):
    speaker: Speaker
    text: str
    strategy: str | None = None


def transcript(turns: list[Turn]) -> str:
    """A conversation as ``Seeker: …`` / ``Supporter: …`` lines, as the critic, the judge and the reward
    model read it."""
    return "\n".join(f"{SPEAKER_LABELS[t.speaker]}: {t.text}" for t in turns)


class Profile(BaseModel):
    """What a seeker simulator is told about the person it plays."""

    emotion_type: str
    problem_type: str
    situation: str


class Case(BaseModel):
    """One dialogue of a dataset, with the seeker's profile and, where reported, their survey."""

    id: str
    dataset: str
    split: str
    emotion_type: str
    problem_type: str
    situation: str
    turns: list[Turn]
    survey: dict[str, float] = Field(default_factory=dict)

    @property
    def profile(self) -> Profile:
        return Profile(emotion_type=self.emotion_type, problem_type=self.problem_type,
                       situation=self.situation)


class Context(BaseModel):
    """A dialogue prefix ending at a seeker turn, and the gold supporter reply that followed it."""

    id: str
    case_id: str
    split: str
    history: list[Turn]
    profile: Profile
    gold_reply: str
    gold_strategy: str | None = None
