"""Training examples for the policy: warm-up targets (SFT) and GRPO prompts, both in TRL's
conversational format, built from the run directory's ESConv contexts (train split only).

The warm-up reasoning is templated, not generated: SmolLM2-135M cannot write useful reasoning yet, so
it learns the *layout* from a short, truthful sentence built from the case's gold labels::

    <think>The seeker feels {emotion} about {problem}. Plan: {strategy hint}.</think> {gold reply}

``{strategy hint}`` is a short phrase per ESConv strategy (:data:`STRATEGY_HINTS`), naming the gold
strategy the human supporter used next. Two lessons from the demo's held-out check shaped it:

* it is labelled (``Plan:``) and never written in the first person, so it reads unlike a reply. With
  first-person hints ("I should reflect their feelings back to them.") the warmed-up model wrote
  hint-like replies and closed them with a second ``</think>``: a third of its outputs broke the format;
* it is short (about 18 tokens), because every reasoning token is generated again at each GRPO step
  and must fit the completion budget with the reply.

Only examples whose whole target fits ``policy.sft.max_target_tokens`` (by default
``policy.grpo.max_completion_length``) tokens are used (:func:`fits_budget`): a policy taught long gold
replies is cut off when GRPO and the held-out check generate with that budget.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlff_esc.config import Config
from rlff_esc.data.contexts import build_contexts
from rlff_esc.data.prepare import cap_contexts, read_cases, read_contexts
from rlff_esc.data.schema import Context, Turn
from rlff_esc.errors import RlffError
from rlff_esc.policy.reasoning import compose, policy_prompt

STRATEGY_HINTS = {
    "question": "ask a gentle question to understand more",
    "restatement or paraphrasing": "restate what they said so they feel heard",
    "reflection of feelings": "reflect their feelings back",
    "self-disclosure": "share a similar experience so they feel less alone",
    "affirmation and reassurance": "offer affirmation and reassurance",
    "providing suggestions": "offer a practical suggestion",
    "information": "give some useful information",
}
DEFAULT_HINT = "respond warmly and keep them talking"


def warmup_reasoning(context: Context) -> str:
    profile = context.profile
    hint = STRATEGY_HINTS.get((context.gold_strategy or "").strip().lower(), DEFAULT_HINT)
    return f"The seeker feels {profile.emotion_type.lower()} about {profile.problem_type.lower()}. Plan: {hint}."


def warmup_target(context: Context, reasoning: bool) -> str:
    return compose(warmup_reasoning(context), context.gold_reply) if reasoning else context.gold_reply.strip()


def _run_file(config: Config, name: str) -> Path:
    path = config.run_path / name
    if not path.exists():
        raise RlffError(f"{path}: not found; run `rlff-esc data prepare -c <config>` first")
    return path


def fits_budget(target: str, tokenizer, budget: int) -> bool:
    """Does ``target`` and the end-of-turn token that follows it fit ``budget`` generated tokens?"""
    return len(tokenizer(target, add_special_tokens=False)["input_ids"]) + 1 <= budget


def sft_examples(config: Config, tokenizer=None) -> list[dict]:
    """Prompt/completion pairs from every train-split dialogue in ``cases.jsonl`` (more variety than
    the capped ``contexts.jsonl``), spread evenly and capped at ``policy.sft.max_examples``. With a
    ``tokenizer``, only targets that fit the token budget (``policy.sft.max_target_tokens``) are kept."""
    policy = config.policy
    cases = [c for c in read_cases(_run_file(config, "cases.jsonl")) if c.split == "train"]
    contexts = [x for c in cases for x in build_contexts(c) if x.gold_reply.strip()]
    if tokenizer is not None:
        budget = policy.sft.max_target_tokens or policy.grpo.max_completion_length
        contexts = [x for x in contexts if fits_budget(warmup_target(x, policy.reasoning), tokenizer, budget)]
    if not contexts:
        raise RlffError(f"{config.run_path}/cases.jsonl: no train-split contexts for the SFT warm-up"
                        + (" within policy.sft.max_target_tokens" if tokenizer is not None else ""))
    contexts = cap_contexts(contexts, policy.sft.max_examples)
    return [{"prompt": policy_prompt(c.history, policy.reasoning, policy.max_history_turns),
             "completion": [{"role": "assistant", "content": warmup_target(c, policy.reasoning)}],
             "context_id": c.id} for c in contexts]


def grpo_prompts(config: Config, split: str = "train") -> list[dict]:
    """Conversational prompts (no final assistant turn) with the columns the reward functions read:
    ``context_id`` and ``history`` (the full context history as JSON, for the reward model)."""
    policy = config.policy
    contexts = read_contexts(_run_file(config, "contexts.jsonl"), split=split)
    if not contexts:
        raise RlffError(f"{config.run_path}/contexts.jsonl: no {split}-split contexts for GRPO")
    return [{"prompt": policy_prompt(c.history, policy.reasoning, policy.max_history_turns),
             "context_id": c.id,
             "history": json.dumps([t.model_dump() for t in c.history])} for c in contexts]


def history_from_json(text: str) -> list[Turn]:
    return [Turn.model_validate(t) for t in json.loads(text)]
