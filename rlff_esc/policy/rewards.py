"""GRPO reward functions, in the form TRL's ``GRPOTrainer`` calls them: ``f(prompts, completions,
**dataset_columns) -> list[float]``, one call per batch of completions.

* ``reward_model``: the future-oriented reward model (``RewardModelScorer``, batched) on the reply
  alone (``reply_only``), with the context's full history from the ``history`` column. Only
  well-formed completions are scored; the others get the batch's lowest score, so breaking the format
  never beats a poor reply. (Without this gate, a first demo run learned to loop ``</think> …`` past
  the reply: the MiniLM reward model liked the longer text more than the format reward cost.)
  With ``policy.grpo.standardize_reward_model`` (default) the scores are standardized over the batch
  first (mean 0, standard deviation 1): a reward model's scale is arbitrary (a pairwise model's
  logits; the demo's spread about 0.05 within a group), and unscaled it was drowned by the format
  reward's 0/0.5/1, so that six demo steps did not move the reward-model score at all. Standardized,
  ``reward_weights`` mean the same whatever reward model is plugged in. The raw mean is logged as
  ``reward_model/raw_mean``.
* ``format``: :func:`rlff_esc.policy.reasoning.format_reward`; it also logs ``format/compliance``
  (share of well-formed completions) to the training log.
* ``repetition``: minus the share of repeated word trigrams in the completion (small models loop).

A completion **cut off** at ``max_completion_length`` (its last token does not end the turn) counts as
malformed for the first two: format 0 and the batch's lowest reward-model score. A reply cut off
mid-sentence is not one to give a user, and without this rule a 32-step run of
``configs/policy-cpu.yaml`` learned to repeat one sentence up to the cap: the mean-pooled reward model
scored the longer text higher than the repetition penalty cost.

Their weights come from ``policy.grpo.reward_weights``; a weight of 0 leaves the function out (the
format function always runs, so compliance is always logged).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from rlff_esc.config import Config
from rlff_esc.errors import RlffError
from rlff_esc.policy.dataset import history_from_json
from rlff_esc.policy.reasoning import format_reward, reply_of, well_formed



def completion_text(completion) -> str:
    """TRL passes conversational completions as message lists; plain ones as strings."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role") == "assistant")


def cut_off(completion_ids, end_token_ids, n: int) -> list[bool]:
    """Which of ``n`` completions stopped at the length cap instead of ending the turn (TRL keeps the
    end-of-turn token as a finished completion's last id). Without ids or end tokens: none."""
    if completion_ids is None or not end_token_ids:
        return [False] * n
    return [not ids or ids[-1] not in end_token_ids for ids in completion_ids]


class RewardModelReward:
    """Scores replies with any object that has ``.score(histories, replies) -> list[float]``;
    ``standardize``: over the batch's scored replies; ``end_token_ids``: the tokens that end a turn,
    to recognise cut-off completions (see the module docstring)."""

    def __init__(self, scorer, reasoning: bool = True, standardize: bool = False,
                 end_token_ids: set[int] | None = None):
        self.scorer = scorer
        self.reasoning = reasoning
        self.standardize = standardize
        self.end_token_ids = end_token_ids
        self.__name__ = "reward_model"

    def __call__(self, prompts, completions, history, log_metric=None, completion_ids=None, **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions]
        replies = [reply_of(t, self.reasoning) for t in texts]
        cut = cut_off(completion_ids, self.end_token_ids, len(texts))
        scorable = [i for i, t in enumerate(texts) if well_formed(t, self.reasoning) and not cut[i]]
        scores = self.scorer.score([history_from_json(history[i]) for i in scorable], [replies[i] for i in scorable])
        if scores and log_metric is not None:
            log_metric("reward_model/raw_mean", statistics.fmean(scores))
        if self.standardize and scores:
            mean, spread = statistics.fmean(scores), statistics.pstdev(scores)
            scores = [(s - mean) / max(spread, 1e-4) for s in scores]
        floor = min(scores) if scores else 0.0
        out = [floor] * len(replies)
        for i, s in zip(scorable, scores):
            out[i] = float(s)
        return out


class FormatReward:
    def __init__(self, reasoning: bool = True, end_token_ids: set[int] | None = None):
        self.reasoning = reasoning
        self.end_token_ids = end_token_ids
        self.__name__ = "format"

    def __call__(self, prompts, completions, log_metric=None, completion_ids=None, **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions]
        cut = cut_off(completion_ids, self.end_token_ids, len(texts))
        if log_metric is not None:
            ok = sum(well_formed(t, self.reasoning) and not c for t, c in zip(texts, cut))
            log_metric("format/compliance", ok / max(1, len(texts)))
        return [0.0 if c else format_reward(t, self.reasoning) for t, c in zip(texts, cut)]


def repetition_penalty(text: str, n: int = 3) -> float:
    """Minus the share of word n-grams that repeat an earlier one (0.0 for no repetition)."""
    words = text.lower().split()
    grams = [tuple(words[i: i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return -(1.0 - len(set(grams)) / len(grams))


class RepetitionReward:
    def __init__(self):
        self.__name__ = "repetition"

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        return [repetition_penalty(completion_text(c)) for c in completions]


def reward_model_path(config: Config) -> Path:
    return config.paths.scorer


def load_scorer(config: Config):
    """The trained future-oriented reward model (:class:`rlff_esc.reward_model.scoring.RewardModelScorer`)."""
    path = reward_model_path(config)
    if not path.exists():
        raise RlffError(f"{path}: reward model not found (policy.reward_model_path); "
                        "train it with `rlff-esc rm train` first")
    from rlff_esc.reward_model.scoring import RewardModelScorer

    return RewardModelScorer(str(path))


def build_reward_functions(config: Config, scorer=None,
                           end_token_ids: set[int] | None = None) -> tuple[list, list[float]]:
    """Reward callables and their weights, in the same order, for ``GRPOTrainer``; ``end_token_ids``
    (the policy tokenizer's end-of-turn and padding ids) let them recognise cut-off completions."""
    weights = config.policy.grpo.reward_weights
    funcs, used = [], []
    if weights.reward_model:
        funcs.append(RewardModelReward(scorer if scorer is not None else load_scorer(config), config.policy.reasoning,
                                       standardize=config.policy.grpo.standardize_reward_model,
                                       end_token_ids=end_token_ids))
        used.append(weights.reward_model)
    funcs.append(FormatReward(config.policy.reasoning, end_token_ids))
    used.append(weights.format)
    if weights.repetition:
        funcs.append(RepetitionReward())
        used.append(weights.repetition)
    return funcs, used
