"""Loading a policy for training and saving it so that any backend can load it by path.

Training uses LoRA by default (CPU) or full fine-tuning; either way the saved ``policy_sft/`` and
``policy/`` folders hold *merged full weights* in Hugging Face format, so ``load_causal_lm(path)``,
``LocalBackend``, vLLM and the chat server need no PEFT code. Intermediate TRL checkpoints keep TRL's
own layout (adapter only under LoRA) because resuming reads them back through the trainer.

Both training stages build their folder in ``<folder>.partial/`` with checkpoints every
``save_steps`` and swap it in once complete (:class:`rlff_esc.stages.StagedFolder`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from rlff_esc.config import Config
from rlff_esc.llm.embedded import resolve_model

log = logging.getLogger(__name__)


def uses_lora(config: Config) -> bool:
    return config.policy.lora.enabled and not config.policy.full_finetune


def peft_config(config: Config, model=None):
    """LoRA settings for TRL's ``peft_config=``; ``lora.top_layers`` needs the model's layer count."""
    return lora_adapters(config.policy.lora, model) if uses_lora(config) else None


def lora_adapters(lora, model=None):
    """PEFT's LoRA settings from a ``lora`` config section (:class:`rlff_esc.config.LoraSection`)."""
    from peft import LoraConfig

    layers, targets = None, lora.target_modules
    if lora.top_layers is not None and model is not None:
        total = model.config.num_hidden_layers
        layers = list(range(max(0, total - lora.top_layers), total))
        if isinstance(targets, str):  # PEFT wants explicit names with layers_to_transform
            targets = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                              if isinstance(module, torch.nn.Linear) and ".layers." in name})
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=targets, layers_to_transform=layers, task_type="CAUSAL_LM")


def load_for_training(name: str, bf16: bool = False, attention: str = "auto"):
    """Model and tokenizer for a TRL trainer (right padding for training, a pad token set); ``attention``
    is ``policy.attention``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlff_esc.llm import attention as grouped

    path = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32,
                                                 attn_implementation=grouped.implementation_on(device)
                                                 if attention == "auto" else None)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def end_token_ids(model, tokenizer) -> set[int]:
    """The ids a finished completion can end with, as TRL's GRPOTrainer sees it: the model's
    end-of-turn ids and the padding id."""
    from rlff_esc.llm.local import eos_token_ids

    pad = {tokenizer.pad_token_id} if tokenizer.pad_token_id is not None else set()
    return eos_token_ids(model, tokenizer) | pad


def save_merged(model, tokenizer, path: Path) -> None:
    """Merge LoRA adapters (if any) into the weights and save a plain HF folder at ``path``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(path)


def save_trained(trainer, tokenizer, path: Path) -> bool:
    """Save a finished trainer's model merged into ``path``; True on the process that wrote it.

    One process: merge in memory. Several processes or DeepSpeed ZeRO-3 (weights sharded): let the
    trainer gather and save (adapter or full weights) into ``path/final``, then the main process
    reloads that folder and merges it (for LoRA, on top of the model training started from).
    """
    if not (trainer.is_deepspeed_enabled or trainer.accelerator.num_processes > 1):
        save_merged(trainer.model, tokenizer, path)
        return True
    staging = path / "final"
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        return False
    dtype = torch.bfloat16 if trainer.args.bf16 else torch.float32  # the precision it trained in
    if (staging / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(staging), dtype=dtype)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(staging), dtype=dtype)
    save_merged(model, tokenizer, path)
    shutil.rmtree(staging, ignore_errors=True)
    return True


def train_resumable(trainer, staged, log_file: Path, *, lm_head: str = "auto") -> int:
    """Train, continuing from the staged folder's last checkpoint when there is one (the log's lines
    past that step, written by the interrupted run, are dropped); returns the step it resumed from.
    ``lm_head``: the training loss's LM head (``policy.lm_head``, :mod:`rlff_esc.policy.lm_head`)."""
    from rlff_esc.policy.lm_head import labelled_positions
    from rlff_esc.policy.logs import truncate_log

    resume = staged.last_checkpoint()
    step = int(resume.name.rsplit("-", 1)[1]) if resume else 0
    if resume is not None:
        log.info("resuming from %s (step %d of %d)", resume, step, trainer.args.max_steps)
    truncate_log(log_file, step)
    with labelled_positions(lm_head):
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return step
