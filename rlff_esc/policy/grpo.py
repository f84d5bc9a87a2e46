"""GRPO (``rlff-esc policy train``) with TRL's ``GRPOTrainer`` against the future-oriented reward model.

Starts from the SFT warm-up (``<run>/policy_sft``) when ``policy.sft.enabled``, else from
``policy.base_model``. Rewards: see :mod:`rlff_esc.policy.rewards`. Checkpoints (TRL/HF layout) go to
``<run>/policy/checkpoints/checkpoint-N`` every ``save_steps``; an interrupted run resumes from the
last one. The finished policy is saved merged (plain HF folder) into ``<run>/policy/`` with
``train_log.jsonl``, TensorBoard events in ``tensorboard/``, ``training_curves.png`` and
``check.json`` (format compliance and reward-model score on held-out contexts, before and after, and
their paired comparison).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from rlff_esc.config import Config
from rlff_esc.errors import RlffError
from rlff_esc.manifest import record_stage
from rlff_esc.policy import model_io
from rlff_esc.policy.check import compare_checks, describe_comparison, policy_check
from rlff_esc.policy.dataset import grpo_prompts
from rlff_esc.policy.logs import JsonlLogCallback, truncate_log
from rlff_esc.policy.plots import plot_training_curves
from rlff_esc.policy.rewards import build_reward_functions, load_scorer, reward_model_path
from rlff_esc.policy.sft import sft_dir

log = logging.getLogger(__name__)


def policy_dir(config: Config) -> Path:
    return config.run_path / "policy"


def start_model(config: Config) -> str:
    """The model GRPO starts from: the warm-up's output when enabled, else the base model."""
    if config.policy.sft.enabled:
        path = sft_dir(config)
        if not (path / "config.json").exists():
            raise RlffError(f"{path}: the SFT warm-up is enabled (policy.sft.enabled) but has not run; "
                            "run `rlff-esc policy sft` first, or set policy.sft.enabled: false")
        return str(path)
    return config.policy.base_model


def last_checkpoint(out: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    found = get_last_checkpoint(str(folder)) if folder.exists() else None
    return Path(found) if found else None


def trl_config(config: Config, out: Path):
    """Our GRPO section → TRL's ``GRPOConfig`` (every knob the paper-scale configs need passes through)."""
    from trl import GRPOConfig

    g = config.policy.grpo
    return GRPOConfig(
        output_dir=str(out / "checkpoints"), max_steps=g.max_steps, learning_rate=g.learning_rate,
        per_device_train_batch_size=g.per_device_batch_size, gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.group_size, max_completion_length=g.max_completion_length, temperature=g.temperature,
        beta=g.beta, epsilon=g.epsilon, num_iterations=g.num_iterations, loss_type=g.loss_type, reward_weights=None,
        use_vllm=g.use_vllm, vllm_mode=g.vllm_mode, bf16=g.bf16, use_cpu=not g.bf16,
        activation_checkpointing=g.activation_checkpointing,
        save_strategy="steps", save_steps=g.save_steps, logging_steps=g.logging_steps, report_to="none",
        seed=config.seed, dataloader_num_workers=0, log_completions=False)


def run_grpo(config: Config, force: bool = False, scorer=None, callbacks: list | None = None) -> Path:
    """Train the policy and return ``<run>/policy``. ``scorer`` replaces the trained reward model (tests);
    ``callbacks`` are extra ``TrainerCallback``s. Resumes from the last checkpoint unless ``force``."""
    from datasets import Dataset
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback
    from trl import GRPOTrainer

    policy, g = config.policy, config.policy.grpo
    out = policy_dir(config)
    source = start_model(config)
    key = model_io.fingerprint(policy=policy.model_dump(exclude={"sft"}), seed=config.seed, source=source,
                               source_sig=model_io.file_signature(Path(source)),
                               reward_model=None if scorer is not None else model_io.file_signature(reward_model_path(config)),
                               contexts=model_io.file_signature(config.run_path / "contexts.jsonl"))
    if not force and model_io.is_done(out, key):
        log.info("GRPO already done with these inputs: %s", out)
        return out
    resume = None if force else last_checkpoint(out)
    previous = json.loads((out / "fingerprint.json").read_text()).get("fingerprint") if (out / "fingerprint.json").exists() else None
    if resume is not None and previous != key:
        log.info("inputs changed since %s was written: starting over", resume)
        resume = None
    if resume is None:
        model_io.clear_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fingerprint.json").write_text(json.dumps({"fingerprint": key}))

    start = time.perf_counter()
    scorer = scorer if scorer is not None else (load_scorer(config) if g.reward_weights.get("reward_model") else None)
    if resume is None:
        check_before = _check(config, source, scorer, "before")
        (out / "check_before.json").write_text(json.dumps(check_before, indent=2))
    else:  # measured by the interrupted run
        path = out / "check_before.json"
        check_before = json.loads(path.read_text()) if path.exists() else None
    model, tokenizer = model_io.load_for_training(source, bf16=g.bf16)
    reward_funcs, weights = build_reward_functions(config, scorer=scorer,
                                                   end_token_ids=model_io.end_token_ids(model, tokenizer))
    args = trl_config(config, out)
    args.reward_weights = weights
    prompts = grpo_prompts(config, "train")
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward_funcs, args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_list(prompts), peft_config=model_io.peft_config(config, model),
        callbacks=[JsonlLogCallback(out / "train_log.jsonl"),
                   TensorBoardCallback(tb_writer=SummaryWriter(str(out / "tensorboard"))), *(callbacks or [])])
    resume_step = int(resume.name.rsplit("-", 1)[1]) if resume else 0
    if resume is not None:
        log.info("resuming GRPO from %s (step %d of %d)", resume, resume_step, g.max_steps)
        truncate_log(out / "train_log.jsonl", resume_step)
    log.info("GRPO on %d train prompts: %d steps, %d completions per step, group %d (%s)", len(prompts), g.max_steps,
             g.per_device_batch_size * g.gradient_accumulation_steps, g.group_size,
             "LoRA" if model_io.uses_lora(config) else "full fine-tuning")
    train_start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds_per_step = (time.perf_counter() - train_start) / max(1, trainer.state.global_step - resume_step)
    if not model_io.save_trained(trainer, tokenizer, out):
        return out  # another process of a multi-GPU run writes the model, the plot and the check
    plot_training_curves(out / "train_log.jsonl", out / "training_curves.png")
    check_after = _check(config, str(out), scorer, "after")
    checks = {"before": check_before, "after": check_after}
    comparison = compare_checks(check_after, check_before) if check_before and check_after else None
    (out / "check.json").write_text(json.dumps({**checks, "comparison": comparison}, indent=2))
    seconds = time.perf_counter() - start
    details = {"source": source, "steps": trainer.state.global_step, "resumed_from": str(resume) if resume else None,
               "seconds_per_step": round(seconds_per_step, 2), "reward_weights": dict(zip(
                   [f.__name__ for f in reward_funcs], weights)),
               "check": {k: _summary(v) for k, v in checks.items()}, "check_comparison": comparison,
               "path": str(out)}
    model_io.mark_done(out, key, **details)
    record_stage(config.run_path, config, "policy_grpo", seconds, **details)
    log.info("GRPO done in %.0f s (%.1f s/step): %s", seconds, seconds_per_step, out)
    for when, c in checks.items():
        if c:
            log.info("held-out check %s: format compliance %.2f (cut off at the length cap %.2f), "
                     "mean RM score %s (n=%d)", when, c["format_compliance"], c["cut_off"], c["mean_reward"], c["n"])
    if comparison:
        log.info("held-out mean RM score after − before: %s", describe_comparison(comparison))
    return out


def _check(config: Config, model_path: str, scorer, when: str) -> dict | None:
    from accelerate import PartialState

    n = config.policy.grpo.check_contexts
    if n == 0 or not PartialState().is_main_process:  # one process measures, in a multi-GPU run too
        return None
    log.info("held-out check (%s) of %s on %d valid contexts", when, model_path, n)
    return policy_check(config, model_path, n, scorer=scorer)


def _summary(check: dict | None) -> dict | None:
    return None if check is None else {k: check[k] for k in ("n", "format_compliance", "cut_off", "mean_reward")}
