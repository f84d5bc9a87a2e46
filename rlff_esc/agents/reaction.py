"""The seeker's expected reaction to a reply, read from the seeker model's likelihoods instead of from a
sampled turn.

The chain *seeker → critic* samples the seeker's next turn and has the critic read it, so every reward
carries the sampling noise of the seeker model. This asks the same model, prompted exactly as the seeker
agent, how likely it would answer with fixed reactions: feeling helped and understood, against feeling
unheard. The score is the mean log-likelihood of the positive reactions minus that of the negative ones
(nats; only differences between replies to the same context mean anything). It is deterministic and
needs no generation: the six reactions share their prompt's forward pass (the ladder's 192 replies took
18 minutes on two AVX2 cores beside another job; not yet timed quiet).

On the reward-chain ladder's 48 contexts with SmolLM2-135M it ranks ESConv's gold reply above a
brush-off far more often than the sampled chain does, but no more often above another dialogue's gold
reply (README, "The ladder"): it hears tone, not relevance. The reactions were written once, by us, and
not tuned; a policy trained against them could learn to prime them, so it is a diagnostic, not a reward.
"""

from __future__ import annotations

from statistics import mean

from rlff_esc.agents.base import Dialogue
from rlff_esc.agents.seeker import seeker_prompt
from rlff_esc.llm.base import ChatBackend

POSITIVE_REACTIONS = (
    "Thank you, that really helps.",
    "Yes, that is exactly how I feel.",
    "That makes sense. I think I can try that.",
)
NEGATIVE_REACTIONS = (
    "You are not really listening to me.",
    "That does not help at all.",
    "I don't think you understand what I am going through.",
)


def reaction_scores(backend: ChatBackend, dialogues: list[Dialogue], *, max_history_turns: int | None,
                    persona: str = "cooperative") -> list[float]:
    """Per dialogue (ending with the supporter's reply): mean log p(positive) − mean log p(negative)."""
    reactions, split = POSITIVE_REACTIONS + NEGATIVE_REACTIONS, len(POSITIVE_REACTIONS)
    prompts = [seeker_prompt(d, max_history_turns, persona) for d in dialogues]
    scores = backend.loglikelihood([(p, r) for p in prompts for r in reactions])
    rows = [scores[i:i + len(reactions)] for i in range(0, len(scores), len(reactions))]
    return [mean(row[:split]) - mean(row[split:]) for row in rows]
