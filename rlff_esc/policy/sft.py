"""SFT warm-up (``rlff-esc policy sft``): teach the base model the ``<think>…</think> reply`` layout.

SmolLM2-135M does not follow the format zero-shot, and GRPO cannot reward a format it never samples,
so a short supervised pass on ESConv gold replies with templated reasoning (see
:mod:`rlff_esc.policy.dataset`) comes first. TRL's ``SFTTrainer`` trains on the completion only
(prompt/completion dataset); the result is saved merged into ``<run>/policy_sft/``.
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

log = logging.getLogger(__name__)


def sft_dir(config: Config) -> Path:
    return config.run_path / "policy_sft"


def run_sft(config: Config, force: bool = False) -> Path:
    """Train the warm-up and return ``<run>/policy_sft``; skipped when done with the same inputs."""
    policy, sft = config.policy, config.policy.sft
    out = sft_dir(config)
    key = model_io.fingerprint(policy=policy.model_dump(exclude={"grpo"}), seed=config.seed,
                               budget=policy.grpo.max_completion_length,  # default max_target_tokens
                               cases=model_io.file_signature(config.run_path / "cases.jsonl"))
    if not force and model_io.is_done(out, key):
        log.info("SFT warm-up already done with these inputs: %s", out)
        return out
    start = time.perf_counter()
    model, tokenizer = model_io.load_for_training(policy.base_model, bf16=policy.grpo.bf16)
    examples = sft_examples(config, tokenizer)
    log.info("SFT warm-up on %d train contexts, %d steps (%s)", len(examples), sft.max_steps,
             "LoRA" if model_io.uses_lora(config) else "full fine-tuning")
    model_io.clear_outputs(out)
    trained = train_on_completions(model, tokenizer, examples, sft, out, seed=config.seed,
                                   peft_config=model_io.peft_config(config, model), bf16=policy.grpo.bf16,
                                   activation_checkpointing=policy.grpo.activation_checkpointing)
    if trained is None:
        return out  # another process of a multi-GPU run wrote it
    seconds = time.perf_counter() - start
    details = {"examples": len(examples), "steps": sft.max_steps, **trained,
               "base_model": resolve_model(policy.base_model), "path": str(out)}
    model_io.mark_done(out, key, **details)
    record_stage(config.run_path, config, "policy_sft", seconds, **details)
    log.info("SFT warm-up done in %.0f s (loss %s → %s): %s", seconds, details["first_loss"], details["last_loss"], out)
    return out


def train_on_completions(model, tokenizer, examples: list[dict], settings, out: Path, *, seed: int, peft_config,
                         bf16: bool, activation_checkpointing: bool) -> dict | None:
    """TRL ``SFTTrainer`` on prompt/completion pairs (the loss on the completion only), saved merged
    into ``out``; ``settings`` is a config section with ``max_steps``, ``learning_rate``,
    ``batch_size``, ``gradient_accumulation_steps`` and ``max_length``. Returns the seconds per step
    and the first and last logged loss, or None on a process of a multi-GPU run that did not write."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(out / "checkpoints"), max_steps=settings.max_steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length,
        completion_only_loss=True, lr_scheduler_type="cosine", warmup_steps=0.1,
        logging_steps=max(1, settings.max_steps // 20), save_strategy="no", report_to="none", seed=seed,
        use_cpu=not bf16, bf16=bf16, dataloader_num_workers=0,
        # TRL's SFT default is on; for a small model on CPU it only costs time (the recomputation, and a
        # backward pass through every layer, not only the top LoRA layers): ~2.4x slower steps on the demo
        activation_checkpointing=activation_checkpointing)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list([{k: e[k] for k in ("prompt", "completion")}
                                                          for e in examples]),
                         peft_config=peft_config, callbacks=[JsonlLogCallback(out / "train_log.jsonl")])
    train_start = time.perf_counter()
    trainer.train()
    seconds_per_step = (time.perf_counter() - train_start) / settings.max_steps
    if not model_io.save_trained(trainer, tokenizer, out):
        return None
    losses = [r["loss"] for r in read_log(out / "train_log.jsonl") if "loss" in r]
    return {"seconds_per_step": round(seconds_per_step, 2), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None}
