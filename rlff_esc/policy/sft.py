"""SFT warm-up (``rlff-esc policy sft``): teach the base model the ``<think>…</think> reply`` layout.

SmolLM2-135M does not follow the format zero-shot, and GRPO cannot reward a format it never samples,
so a short supervised pass on ESConv gold replies with templated reasoning (see
:mod:`rlff_esc.policy.dataset`) comes first. TRL's ``SFTTrainer`` trains on the completion only
(prompt/completion dataset); the result is saved merged into ``<run>/policy_sft/``. Training runs in
``<run>/policy_sft.partial/`` with a checkpoint every ``policy.sft.save_steps``: a killed warm-up
resumes from the last one, and the previous warm-up stays in place until the new one is complete.
:func:`train_on_completions` is that training step alone; the grounded seeker uses it too.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rlff_esc.config import Config
from rlff_esc.llm.embedded import resolve_model
from rlff_esc.manifest import record_stage
from rlff_esc.policy import model_io
from rlff_esc.policy.dataset import sft_examples
from rlff_esc.policy.logs import JsonlLogCallback, read_log
from rlff_esc.stages import StagedFolder, file_digest, model_digest

log = logging.getLogger(__name__)


def sft_inputs(config: Config) -> dict:
    """What the warm-up's weights depend on (checkpoint frequency and memory settings do not count)."""
    policy = config.policy
    return {"policy": policy.model_dump(mode="json", include={"reasoning", "full_finetune", "max_history_turns",
                                                              "lora", "sft"}, exclude={"sft": {"save_steps"}}),
            "budget": policy.grpo.max_completion_length,  # the default of sft.max_target_tokens
            "bf16": policy.bf16, "seed": config.seed,
            "base_model": model_digest(policy.base_model), "cases": file_digest(config.paths.cases)}


def run_sft(config: Config, force: bool = False):
    """Train the warm-up and return ``<run>/policy_sft``; skipped when done with the same inputs."""
    policy, sft = config.policy, config.policy.sft
    staged = StagedFolder(config.paths.policy_sft, sft_inputs(config))
    if not force and staged.done():
        log.info("SFT warm-up already done with these inputs: %s", staged.out)
        return staged.out
    start = time.perf_counter()
    work = staged.open(force)
    model, tokenizer = model_io.load_for_training(policy.base_model, bf16=policy.bf16, attention=policy.attention)
    examples = sft_examples(config, tokenizer)
    log.info("SFT warm-up on %d train contexts, %d steps (%s)", len(examples), sft.max_steps,
             "LoRA" if model_io.uses_lora(config) else "full fine-tuning")
    trained = train_on_completions(model, tokenizer, examples, sft, staged, work, seed=config.seed,
                                   peft_config=model_io.peft_config(config, model), bf16=policy.bf16,
                                   activation_checkpointing=policy.activation_checkpointing,
                                   lm_head=policy.lm_head)
    if trained is None:
        return staged.out  # another process of a multi-GPU run writes it
    details = {"examples": len(examples), "steps": sft.max_steps, **trained,
               "base_model": resolve_model(policy.base_model), "path": str(staged.out)}
    out = staged.commit(**details)
    seconds = time.perf_counter() - start
    record_stage(config.run_path, config, "policy_sft", seconds, **details)
    log.info("SFT warm-up done in %.0f s (loss %s → %s): %s", seconds, details["first_loss"], details["last_loss"], out)
    return out


def train_on_completions(model, tokenizer, examples: list[dict], settings, staged: StagedFolder, work: Path, *,
                         seed: int, peft_config, bf16: bool, activation_checkpointing: bool,
                         lm_head: str = "auto") -> dict | None:
    """TRL ``SFTTrainer`` on prompt/completion pairs (the loss on the completion only) in the partial
    folder ``work`` of ``staged``, checkpointed every ``settings.save_steps`` and resumed from the last
    checkpoint, saved merged into ``work``. ``settings`` is a config section with ``max_steps``,
    ``learning_rate``, ``batch_size``, ``gradient_accumulation_steps``, ``max_length`` and
    ``save_steps``; ``lm_head``: see :func:`rlff_esc.policy.model_io.train_resumable`. Returns
    the step it resumed at, seconds per step and the first and last logged loss, or None on a process
    of a multi-GPU run that did not write."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(work / "checkpoints"), max_steps=settings.max_steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length,
        completion_only_loss=True, lr_scheduler_type="cosine", warmup_steps=0.1,
        logging_steps=max(1, settings.max_steps // 20), save_strategy="steps", save_steps=settings.save_steps,
        save_total_limit=2, report_to="none", seed=seed, use_cpu=not bf16, bf16=bf16, dataloader_num_workers=0,
        # TRL's SFT default is on; for a small model on CPU it only costs time (the recomputation, and a
        # backward pass through every layer, not only the top LoRA layers): ~2.4x slower steps on the demo
        activation_checkpointing=activation_checkpointing)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list([{k: e[k] for k in ("prompt", "completion")}
                                                          for e in examples]),
                         peft_config=peft_config, callbacks=[JsonlLogCallback(work / "train_log.jsonl")])
    train_start = time.perf_counter()
    resumed_at = model_io.train_resumable(trainer, staged, work / "train_log.jsonl", lm_head=lm_head)
    seconds_per_step = (time.perf_counter() - train_start) / max(1, settings.max_steps - resumed_at)
    if not model_io.save_trained(trainer, tokenizer, work):
        return None
    losses = [r["loss"] for r in read_log(work / "train_log.jsonl") if "loss" in r]
    return {"resumed_at_step": resumed_at, "seconds_per_step": round(seconds_per_step, 2),
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}
