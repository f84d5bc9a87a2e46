"""The context builder: one training/evaluation context per seeker turn that a supporter answered."""

from __future__ import annotations

from rlff_esc.data.schema import Case, Context, Turn


def merge_runs(turns: list[Turn]) -> list[Turn]:
    """Join consecutive turns of one speaker, so that seeker and supporter alternate."""
    merged: list[Turn] = []
    for t in turns:
        if merged and merged[-1].speaker == t.speaker:
            prev = merged[-1]
            strategy = prev.strategy or t.strategy
            merged[-1] = Turn(speaker=t.speaker, text=f"{prev.text} {t.text}", strategy=strategy)
        else:
            merged.append(t)
    return merged


def seeker_answers(turns: list[Turn]) -> list[int]:
    """Positions ``i`` (of merged turns) where a real seeker answered a supporter turn: ``turns[i]`` is
    the supporter's and ``turns[i + 1]`` the seeker's answer. The opening turn is left out: a seeker
    simulator always answers a conversation under way."""
    return [i for i in range(1, len(turns) - 1)
            if turns[i].speaker == "supporter" and turns[i + 1].speaker == "seeker"]


def build_contexts(case: Case) -> list[Context]:
    """Contexts end at a seeker turn; the supporter turn after it is the gold reply."""
    turns = merge_runs(case.turns)
    contexts = []
    for i, turn in enumerate(turns[:-1]):
        if turn.speaker == "seeker" and turns[i + 1].speaker == "supporter":
            contexts.append(Context(
                id=f"{case.id}#{i}", case_id=case.id, split=case.split, history=turns[: i + 1],
                profile=case.profile, gold_reply=turns[i + 1].text, gold_strategy=turns[i + 1].strategy))
    return contexts
