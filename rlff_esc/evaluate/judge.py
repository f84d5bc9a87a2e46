"""Judge ratings of replies: empathy, identification of the problem, helpfulness of suggestions,
fluency and overall, each 1–5, from the ``models.judge`` backend.

The judge writes one ``Aspect: N`` line per aspect (greedy). Parsing is lenient (any case, any
punctuation between the name and the number, "4/5"); an aspect with no rating in 1–5 is *unparsed*:
left out of the mean and counted, never scored as a default. The judge's model id is reported beside
its ratings, because a rating means only as much as the model that gave it.
"""

from __future__ import annotations

import re

from tqdm import tqdm

from rlff_esc.agents.prompts import recent
from rlff_esc.data.schema import Context, transcript
from rlff_esc.llm.base import ChatBackend, GenerationRequest
from rlff_esc.stats import Statistic, mean_of

ASPECTS = {
    "empathy": ("Empathy", "does the reply show warmth and understanding of how the seeker feels?"),
    "identification": ("Identification", "does the reply show that the supporter understood the seeker's problem?"),
    "suggestions": ("Suggestions", "are any suggestions helpful and fitting (or is it right to give none yet)?"),
    "fluency": ("Fluency", "is the reply fluent, natural and easy to read?"),
    "overall": ("Overall", "how good is the reply as emotional support overall?"),
}
JUDGE_SYSTEM = ("You are an expert in emotional-support conversations. You rate a supporter's reply "
                "strictly and answer only with the requested ratings.")
JUDGE_PROMPT = (
    "Conversation so far:\n{transcript}\n\nThe supporter's next reply:\n{reply}\n\n"
    "Rate this reply from 1 (very poor) to 5 (excellent) on each aspect:\n{aspects}\n\n"
    "Answer with exactly five lines, in this form:\n{form}"
)
HISTORY_TURNS = 6  # the judge reads the recent turns: enough to judge a reply, cheap to prompt


def judge_messages(history, reply: str) -> list[dict]:
    aspects = "\n".join(f"- {label}: {question}" for label, question in ASPECTS.values())
    form = "\n".join(f"{label}: <1-5>" for label, _ in ASPECTS.values())
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": JUDGE_PROMPT.format(transcript=transcript(recent(history, HISTORY_TURNS)),
                                                            reply=reply or "(no reply)", aspects=aspects,
                                                            form=form)}]


def parse_ratings(text: str) -> dict[str, int | None]:
    """Aspect → rating 1–5, or None where the text gives none."""
    ratings = {}
    for key, (label, _) in ASPECTS.items():
        m = re.search(rf"{label[:5]}\w*\W{{0,12}}?\b([1-5])(?:\.0)?\b(?!\s*\.\d)", text, re.IGNORECASE)
        ratings[key] = int(m.group(1)) if m else None
    return ratings


def rate(backend: ChatBackend, contexts: list[Context], replies: list[str], *, max_new_tokens: int,
         batch: int = 32, label: str = "", progress: bool = True) -> list[dict]:
    """One ``{"ratings", "raw"}`` per reply."""
    out = []
    for start in tqdm(range(0, len(contexts), batch), desc=f"judge {label}".strip(), unit="batch",
                      disable=not progress):
        requests = [GenerationRequest(messages=judge_messages(c.history, r), max_new_tokens=max_new_tokens,
                                      temperature=0.0)
                    for c, r in zip(contexts[start: start + batch], replies[start: start + batch])]
        out += [{"ratings": parse_ratings(g.text), "raw": g.text} for g in backend.generate(requests)]
    return out


def judge_statistics(records: list[dict]) -> dict[str, Statistic]:
    """Mean rating per aspect, indexed like ``records``; unrated replies and unparsed ratings are left out."""
    return {key: mean_of([r["judge"]["ratings"][key] if r.get("judge") else None for r in records])
            for key in ASPECTS}


def unparsed_counts(records: list[dict]) -> dict[str, int]:
    rated = [r["judge"] for r in records if r.get("judge")]
    return {key: sum(j["ratings"][key] is None for j in rated) for key in ASPECTS}
