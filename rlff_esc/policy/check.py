"""The held-out check of a policy: does it follow the format, and what does the reward model think of
its replies? Greedy generations on the first ``n`` valid-split contexts, with the same prompts as
training (``policy_prompt``), through the registry's local backend.

``format_compliance`` is the share of well-formed outputs that end their turn within
``max_completion_length``; ``mean_reward`` the mean reward-model score of ``reply_only``. As in
training, an output with no reply or cut off at the length cap gets the batch's lowest score.
:func:`compare_checks` says whether one policy beats another on the same contexts: the paired
difference in mean score with a bootstrap interval (a few dozen contexts leave wide intervals).
"""

from __future__ import annotations

import statistics

from rlff_esc.config import Config
from rlff_esc.data.prepare import read_contexts
from rlff_esc.errors import RlffError
from rlff_esc.llm.base import GenerationRequest
from rlff_esc.llm.registry import load_local
from rlff_esc.policy.reasoning import policy_prompt, reply_of, well_formed
from rlff_esc.stats import mean_of, paired_test


def policy_check(config: Config, model_path: str, n: int, scorer=None, split: str = "valid") -> dict:
    """Format compliance and mean RM score of ``model_path`` on ``n`` held-out contexts. ``scorer``
    defaults to the trained reward model; pass one to reuse it (it is loaded once per stage)."""
    policy = config.policy
    contexts = read_contexts(config.paths.contexts, split=split)[:n]
    if not contexts:
        raise RlffError(f"{config.run_path}/contexts.jsonl: no {split}-split contexts to check the policy on")
    if scorer is None:
        from rlff_esc.policy.rewards import load_scorer

        scorer = load_scorer(config)
    backend = load_local(config.models.policy, model_path)
    requests = [GenerationRequest(messages=policy_prompt(c.history, policy.reasoning, policy.max_history_turns),
                                  max_new_tokens=policy.grpo.max_completion_length, temperature=0.0)
                for c in contexts]
    generations = backend.generate(requests)
    texts = [g.text for g in generations]
    finished = [g.finish_reason != "length" for g in generations]
    replies = [reply_of(t, policy.reasoning) for t in texts]
    scorable = [i for i, r in enumerate(replies) if r and finished[i]]
    scored = scorer.score([contexts[i].history for i in scorable], [replies[i] for i in scorable])
    floor = min(scored) if scored else 0.0
    scores = [floor] * len(replies)
    for i, s in zip(scorable, scored):
        scores[i] = float(s)
    compliant = [well_formed(t, policy.reasoning) and f for t, f in zip(texts, finished)]
    return {"model": model_path, "split": split, "n": len(contexts),
            "format_compliance": sum(compliant) / len(texts),
            "cut_off": sum(not f for f in finished) / len(texts),
            "mean_reward": statistics.fmean(scores),
            "mean_completion_tokens": backend.stats["completion_tokens"] / len(texts),
            "seconds": round(backend.stats["seconds"], 1),
            "examples": [{"context_id": c.id, "output": t, "reply": r, "score": s}
                         for c, t, r, s in zip(contexts, texts, replies, scores)]}


def compare_checks(after: dict, before: dict, samples: int = 2000, seed: int = 0) -> dict:
    """``after`` − ``before`` on the contexts both checks scored (paired by context id): the mean
    reward-model score's difference with a 95% bootstrap interval and p-value, and the compliance of each."""
    scores_before = {e["context_id"]: e["score"] for e in before["examples"]}
    paired = [(e["score"], scores_before[e["context_id"]]) for e in after["examples"]
              if e["context_id"] in scores_before]
    test = paired_test(mean_of([a for a, _ in paired]), mean_of([b for _, b in paired]), len(paired),
                       samples=samples, seed=seed)
    return {"n": len(paired), "mean_reward_before": before["mean_reward"], "mean_reward_after": after["mean_reward"],
            "mean_reward_difference": test["delta"], "ci95": [test["low"], test["high"]], "p": test["p"],
            "format_compliance_before": before["format_compliance"],
            "format_compliance_after": after["format_compliance"]}


def describe_comparison(comparison: dict) -> str:
    """One line for logs and the CLI: the difference, its interval and n."""
    low, high = comparison["ci95"]
    if comparison["mean_reward_difference"] is None:
        return f"undefined (n={comparison['n']})"
    return (f"{comparison['mean_reward_difference']:+.3f} (95% CI {low:+.3f} to {high:+.3f}, "
            f"p={comparison['p']:.3f}, n={comparison['n']} paired contexts)")
