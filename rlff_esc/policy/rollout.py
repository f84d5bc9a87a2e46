"""GRPO's completions from the batched local backend instead of TRL's ``model.generate``
(``policy.grpo.generation: batched``), through TRL's ``rollout_func``; TRL's trainer, loss and logging
are unchanged.

TRL generates a group's completions as separate rows of one padded ``generate`` call: each prompt is
read once per group member, the whole cache is copied at every decoding step, and every row decodes
until the longest is done. :class:`rlff_esc.llm.local.LocalBackend` reads a prompt its group shares
once, writes each step into room its cache keeps, and lets finished rows leave the batch. Sampling is
TRL's (its temperature, top-p and end tokens; no top-k), from the model in eval mode (no dropout, as
on a vLLM server; TRL's own ``generate`` path samples in training mode, LoRA dropout on), with a seed
per completion derived from the run's seed, the step, the process and the row, so that a
resumed run samples what the interrupted one would have.
"""

from __future__ import annotations

from rlff_esc.llm.base import GenerationRequest
from rlff_esc.seeds import stable_int


class BatchedRollout:
    """TRL's ``rollout_func``: ``(prompts, trainer) -> {"prompt_ids", "completion_ids", "logprobs"}``, one
    completion per prompt row (TRL's sampler already repeats each prompt ``num_generations`` times)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.backend = None

    def __call__(self, prompts: list[list[dict]], trainer) -> dict:
        from rlff_esc.llm.local import LocalBackend

        model = trainer.model
        if self.backend is None:  # the trainer's model, so every call samples the current weights
            self.backend = LocalBackend("policy", model=model, tokenizer=trainer.processing_class,
                                        batch_size=len(prompts))
        step, process = trainer.state.global_step, trainer.accelerator.process_index
        requests = [GenerationRequest(messages=p, max_new_tokens=trainer.max_completion_length,
                                      temperature=trainer.temperature, top_p=trainer.top_p,
                                      seed=stable_int(self.seed, "grpo", step, process, row))
                    for row, p in enumerate(prompts)]
        training = model.training
        model.eval()
        try:
            generations = self.backend.generate(requests)
        finally:
            model.train(training)
        return {"prompt_ids": [self.backend.encode_prompt(p) for p in prompts],
                "completion_ids": [g.token_ids for g in generations], "logprobs": None}
