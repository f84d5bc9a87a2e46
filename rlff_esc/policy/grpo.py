"""GRPO (``rlff-esc policy train``) with TRL's ``GRPOTrainer`` against the future-oriented reward model.

Starts from the SFT warm-up (``<run>/policy_sft``) when ``policy.sft.enabled``, else from
``policy.base_model``. Rewards: see :mod:`rlff_esc.policy.rewards`. Training runs in
``<run>/policy.partial/`` with checkpoints (TRL/HF layout) in ``checkpoints/checkpoint-N`` every
``save_steps``; an interrupted run resumes from the last one, and the previous policy stays in place
until the new one is complete. The finished policy is saved merged (plain HF folder) into
``<run>/policy/`` with ``train_log.jsonl``, TensorBoard events in ``tensorboard/``,
``training_curves.png`` and ``check.json`` (format compliance and reward-model score on held-out
contexts, before and after, and their paired comparison).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rlff_esc.config import Config
from rlff_esc.errors import RlffError
from rlff_esc.jsonl import read_json, write_json
from rlff_esc.manifest import record_stage
from rlff_esc.policy import model_io
from rlff_esc.policy.check import compare_checks, describe_comparison, policy_check
from rlff_esc.policy.dataset import grpo_prompts
from rlff_esc.policy.logs import JsonlLogCallback
from rlff_esc.policy.plots import plot_training_curves
from rlff_esc.policy.rewards import build_reward_functions, load_scorer
from rlff_esc.policy.rollout import BatchedRollout
from rlff_esc.processes import is_main_process
from rlff_esc.stages import StagedFolder, file_digest, folder_digest, model_digest

log = logging.getLogger(__name__)


def start_model(config: Config) -> str:
    """The model GRPO starts from: the warm-up's output when enabled, else the base model."""
    if config.policy.sft.enabled:
        path = config.paths.policy_sft
        if not (path / "config.json").exists():
            raise RlffError(f"{path}: the SFT warm-up is enabled (policy.sft.enabled) but has not run; "
                            "run `rlff-esc policy sft` first, or set policy.sft.enabled: false")
        return str(path)
    return config.policy.base_model


def grpo_inputs(config: Config, source: str, scorer=None) -> dict:
    """What the policy and its checks depend on: settings, the start model's and the reward model's
    weights, the contexts (a ``scorer`` passed in by a test stands for itself)."""
    policy = config.policy
    return {"policy": policy.model_dump(mode="json", exclude={"sft": True, "reward_model_path": True, "attention": True,
                                                              "lm_head": True, "base_model": True,
                                                              "grpo": {"save_steps"}}),
            "seed": config.seed, "source": model_digest(source), "contexts": file_digest(config.paths.contexts),
            "reward_model": f"given: {type(scorer).__qualname__}" if scorer is not None else folder_digest(config.paths.scorer)}


def trl_config(config: Config, out: Path):
    """Our GRPO section → TRL's ``GRPOConfig`` (every knob the paper-scale configs need passes through)."""
    from trl import GRPOConfig

    g = config.policy.grpo
    return GRPOConfig(
        output_dir=str(out / "checkpoints"), max_steps=g.max_steps, learning_rate=g.learning_rate,
        per_device_train_batch_size=g.per_device_batch_size, gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.group_size, max_completion_length=g.max_completion_length, temperature=g.temperature,
        beta=g.beta, epsilon=g.epsilon, num_iterations=g.num_iterations, loss_type=g.loss_type, reward_weights=None,
        use_vllm=g.use_vllm, vllm_mode=g.vllm_mode, bf16=config.policy.bf16, use_cpu=not config.policy.bf16,
        activation_checkpointing=config.policy.activation_checkpointing,
        save_strategy="steps", save_steps=g.save_steps, save_total_limit=2, logging_steps=g.logging_steps, report_to="none",
        seed=config.seed, dataloader_num_workers=0, log_completions=False)


def run_grpo(config: Config, force: bool = False, scorer=None, callbacks: list | None = None) -> Path:
    """Train the policy and return ``<run>/policy``. ``scorer`` replaces the trained reward model (tests);
    ``callbacks`` are extra ``TrainerCallback``s. Resumes from the last checkpoint unless ``force``."""
    source = start_model(config)
    staged = StagedFolder(config.paths.policy, grpo_inputs(config, source, scorer))
    if not force and staged.done():
        log.info("GRPO already done with these inputs: %s", staged.out)
        return staged.out
    start = time.perf_counter()
    work = staged.open(force)
    if scorer is None and config.policy.grpo.reward_weights.reward_model:
        scorer = load_scorer(config)
    check_before = _check_before(config, source, scorer, work)
    trainer, reward_weights = build_trainer(config, source, scorer, work, callbacks)
    train_start = time.perf_counter()
    resumed_at = model_io.train_resumable(trainer, staged, work / "train_log.jsonl", lm_head=config.policy.lm_head)
    seconds_per_step = (time.perf_counter() - train_start) / max(1, trainer.state.global_step - resumed_at)
    if not model_io.save_trained(trainer, trainer.processing_class, work):
        return staged.out  # another process of a multi-GPU run writes the model, the plot and the check
    plot_training_curves(work / "train_log.jsonl", work / "training_curves.png")
    checks, comparison = _checks(config, scorer, work, staged.out, check_before)
    details = {"source": source, "steps": trainer.state.global_step, "resumed_at_step": resumed_at,
               "seconds_per_step": round(seconds_per_step, 2), "reward_weights": reward_weights,
               "check": {k: _summary(v) for k, v in checks.items()}, "check_comparison": comparison,
               "path": str(staged.out)}
    out = staged.commit(**details)
    seconds = time.perf_counter() - start
    record_stage(config.run_path, config, "policy_grpo", seconds, **details)
    log.info("GRPO done in %.0f s (%.1f s/step): %s", seconds, seconds_per_step, out)
    _log_checks(checks, comparison)
    return out


def build_trainer(config: Config, source: str, scorer, work: Path, callbacks: list | None):
    """TRL's ``GRPOTrainer`` on the train prompts, logging into ``work``; with the reward weights by
    reward function name (for the record)."""
    from datasets import Dataset
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback
    from trl import GRPOTrainer

    g = config.policy.grpo
    model, tokenizer = model_io.load_for_training(source, bf16=config.policy.bf16, attention=config.policy.attention)
    reward_funcs, weights = build_reward_functions(config, scorer=scorer,
                                                   end_token_ids=model_io.end_token_ids(model, tokenizer))
    args = trl_config(config, work)
    args.reward_weights = weights
    prompts = grpo_prompts(config, "train")
    logging_callbacks = [JsonlLogCallback(work / "train_log.jsonl")]
    if is_main_process():  # one event file, from the process that logs
        logging_callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(str(work / "tensorboard"))))
    batched = g.generation == "batched" and not g.use_vllm
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward_funcs, args=args, processing_class=tokenizer,
        rollout_func=BatchedRollout(config.seed) if batched else None,
        train_dataset=Dataset.from_list(prompts), peft_config=model_io.peft_config(config, model),
        callbacks=[*logging_callbacks, *(callbacks or [])])
    log.info("GRPO on %d train prompts: %d steps, %d completions per step, group %d (%s; sampled by %s)", len(prompts),
             g.max_steps, g.per_device_batch_size * g.gradient_accumulation_steps, g.group_size,
             "LoRA" if model_io.uses_lora(config) else "full fine-tuning",
             "vLLM" if g.use_vllm else "the batched backend" if batched else "transformers' generate")
    return trainer, dict(zip([f.__name__ for f in reward_funcs], weights))


def _check_before(config: Config, source: str, scorer, work: Path) -> dict | None:
    """The start model's held-out check, measured once (by the main process of a multi-process launch):
    a resumed run reads it back from ``work``."""
    if not is_main_process():
        return None
    path = work / "check_before.json"
    check = read_json(path).get("check") if path.exists() else _check(config, source, scorer, "before")
    write_json(path, {"check": check})
    return check


def _checks(config: Config, scorer, work: Path, final: Path, before: dict | None) -> tuple[dict, dict | None]:
    """The trained policy's held-out check beside the start model's and their paired comparison, written
    to ``check.json``; ``final`` is where the policy will be once committed."""
    after = _check(config, str(work), scorer, "after")
    if after:
        after["model"] = str(final)
    checks = {"before": before, "after": after}
    comparison = compare_checks(after, before) if before and after else None
    write_json(work / "check.json", {**checks, "comparison": comparison})
    return checks, comparison


def _log_checks(checks: dict, comparison: dict | None) -> None:
    for when, c in checks.items():
        if c:
            log.info("held-out check %s: format compliance %.2f (cut off at the length cap %.2f), "
                     "mean RM score %s (n=%d)", when, c["format_compliance"], c["cut_off"], c["mean_reward"], c["n"])
    if comparison:
        log.info("held-out mean RM score after − before: %s", describe_comparison(comparison))


def _check(config: Config, model_path: str, scorer, when: str) -> dict | None:
    n = config.policy.grpo.check_contexts
    if n == 0:
        return None
    log.info("held-out check (%s) of %s on %d valid contexts", when, model_path, n)
    return policy_check(config, model_path, n, scorer=scorer)


def _summary(check: dict | None) -> dict | None:
    return None if check is None else {k: check[k] for k in ("n", "format_compliance", "cut_off", "mean_reward")}
