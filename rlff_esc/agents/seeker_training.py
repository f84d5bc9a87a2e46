"""The grounded seeker: a seeker simulator fine-tuned on what ESConv's seekers wrote.

A chat model told to play a seeker (the prompted seeker) answers like an assistant: cooperative,
generic, often out of role. The grounded seeker is the same model taught, on ESConv train
dialogues, to write the real seeker's next turn. Each example is one point where a seeker answered
a supporter turn (:func:`rlff_esc.data.contexts.seeker_answers`):

* prompt: exactly what the seeker agent sends (:func:`rlff_esc.agents.seeker.seeker_prompt`, the
  conversation up to that supporter turn, cut to ``simulate.max_history_turns``), so the trained
  model is a drop-in seeker;
* completion: the real seeker's turn there (consecutive seeker messages merged).

Training is TRL's ``SFTTrainer`` with the loss on the completion only, LoRA by default
(``seeker_training``), through the policy warm-up's step (:func:`rlff_esc.policy.sft.train_on_completions`).
The model is saved with merged weights in ``<run_dir>/seeker/``, a Hugging Face folder any backend
loads; ``models.seeker.model: "{run}/seeker"`` selects it. Examples longer than
``seeker_training.max_length`` tokens are left out rather than cut (a cut would drop the real turn).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from rlff_esc.agents.base import Dialogue
from rlff_esc.agents.seeker import seeker_prompt
from rlff_esc.config import Config
from rlff_esc.data.contexts import merge_runs, seeker_answers
from rlff_esc.data.prepare import cap_contexts
from rlff_esc.data.schema import Case
from rlff_esc.errors import RlffError

log = logging.getLogger(__name__)


def training_examples(cases: list[Case], max_history_turns: int | None) -> list[dict]:
    """One prompt/completion pair per point where a seeker answered a supporter turn."""
    examples = []
    for case in cases:
        turns = merge_runs(case.turns)
        for i in seeker_answers(turns):
            dialogue = Dialogue(profile=case.profile, turns=turns[: i + 1])
            examples.append({"prompt": seeker_prompt(dialogue, max_history_turns),
                             "completion": [{"role": "assistant", "content": turns[i + 1].text}],
                             "case_id": case.id})
    return examples


def fits(example: dict, tokenizer, max_length: int) -> bool:
    ids = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True)
    return len(ids["input_ids"] if isinstance(ids, dict) else ids) <= max_length


def train_seeker(config: Config, force: bool = False) -> Path:
    """Train on the configured dataset's train split, save to ``<run_dir>/seeker``, record stage
    "seeker" in the manifest. Skipped when the folder holds a seeker trained on the same inputs."""
    from transformers import AutoTokenizer

    from rlff_esc.data.prepare import load_cases
    from rlff_esc.llm.embedded import resolve_model
    from rlff_esc.manifest import record_stage
    from rlff_esc.policy import model_io
    from rlff_esc.policy.sft import train_on_completions
    from rlff_esc.stages import StagedFolder, model_digest

    settings, out = config.seeker_training, config.paths.seeker
    start = time.perf_counter()
    result, _ = load_cases(config)
    train = [c for c in result.cases if c.split == "train"]
    examples = training_examples(train, config.simulate.max_history_turns)
    if not examples:
        raise RlffError(f"data.path: no train-split seeker turns to train the seeker on ({len(train)} train dialogues)")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(settings.base_model))
    examples = cap_contexts([e for e in examples if fits(e, tokenizer, settings.max_length)], settings.max_examples)
    if not examples:
        raise RlffError(f"seeker_training.max_length: no example fits {settings.max_length} tokens")
    digest = hashlib.sha256(json.dumps([(e["prompt"], e["completion"]) for e in examples]).encode()).hexdigest()
    staged = StagedFolder(out, {"settings": settings.model_dump(mode="json", exclude={"save_steps"}),
                                "seed": config.seed, "examples": digest,
                                "base_model": model_digest(settings.base_model)})
    if not force and staged.done():
        log.info("grounded seeker already trained with these inputs: %s", out)
        return out
    log.info("training the grounded seeker on %d real seeker turns of %d train dialogues, %d steps",
             len(examples), len({e["case_id"] for e in examples}), settings.max_steps)
    work = staged.open(force)
    model, tokenizer = model_io.load_for_training(settings.base_model, bf16=settings.bf16)
    peft = model_io.lora_adapters(settings.lora, model) if settings.lora.enabled else None
    trained = train_on_completions(model, tokenizer, examples, settings, staged, work, seed=config.seed,
                                   peft_config=peft, bf16=settings.bf16, activation_checkpointing=False)
    if trained is None:
        return out  # another process of a multi-GPU run writes it
    details = {"examples": len(examples), "steps": settings.max_steps, **trained,
               "base_model": resolve_model(settings.base_model), "path": str(out),
               "max_history_turns": config.simulate.max_history_turns}
    staged.commit(**details)
    seconds = time.perf_counter() - start
    record_stage(config.run_path, config, "seeker", seconds, **details)
    log.info("grounded seeker trained in %.0f s (loss %s → %s): %s", seconds, details["first_loss"],
             details["last_loss"], out)
    return out
