"""Future-oriented rewards of one candidate, from the critic's scores along its simulated future.

``scores[0]`` judges the context as it was before the candidate; ``scores[t]`` (t ≥ 1) judges the
conversation after the seeker's t-th turn of the future (t = 1 is the reaction to the candidate). A
score is None when the critic gave no valid answer.

* ``final``: the score at the end of the horizon (None when that judgement is invalid).
* ``success``: 1 when any judgement after the candidate is above the success threshold (PPDPP's "issue
  solved" rule: mean above 0.5), else 0.
* ``improvement``: Σ_t γ^(t−1) · (s_t − s_(t−1)), the discounted sum of per-turn changes. An invalid
  score contributes no change, and the next valid one is compared with the last valid before it.

``improvement`` is the default reward for the reward model (``simulate.reward``): it is dense (unlike
``success``, which on a short horizon is mostly 0 for all K candidates and gives ties), it measures the
change the candidate led to rather than how well the seeker already felt in that context, and γ < 1
credits the candidate's own, immediate effect more than later turns that owe more to the supporter
agent. With γ = 1 it equals ``final`` minus the context's score.
"""

from __future__ import annotations


def future_rewards(scores: list[float | None], gamma: float, success_threshold: float) -> dict:
    if len(scores) < 2:
        raise ValueError("need the context's score and at least one score after the candidate")
    final = scores[-1]
    success = int(any(s is not None and s > success_threshold for s in scores[1:]))
    improvement, previous = 0.0, scores[0]
    for t, s in enumerate(scores[1:], start=1):
        if s is None:
            continue
        if previous is not None:
            improvement += gamma ** (t - 1) * (s - previous)
        previous = s
    return {"final": final, "success": success, "improvement": improvement}
