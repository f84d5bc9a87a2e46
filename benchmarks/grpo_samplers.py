"""Do stock TRL and the batched backend sample GRPO's completions from the same distribution?

    python benchmarks/grpo_samplers.py [--config configs/policy-cpu.yaml] [--prompts 32] [--completions 8]

Builds the two GRPO trainers of ``benchmarks/grpo_speed.py`` on the config's trained warm-up
(``stock``: TRL's ``model.generate``, in training mode as TRL calls it, so LoRA dropout is on, and
transformers' attention; ``rlff_esc``: the batched backend, in eval mode, and the grouped-head
attention) and, before any training step, samples with each trainer's own generation call (TRL's
``_generate``, what a training step calls): ``--prompts`` train prompts × ``--completions`` each, in
calls of the config's per-device batch, one call a "step" as in training. Both sets are then read by
one model, the warm-up in eval mode:

* completion tokens, the share ended by an end token (not cut off at ``max_completion_length``);
* format compliance, as the format reward counts it (well-formed and not cut off);
* the reward model's score of the well-formed, ended replies (what GRPO climbs, its raw scale);
* the mean log-probability per token at the sampling temperature.

Each is averaged per prompt and compared paired by prompt: rlff_esc − stock with a bootstrap 95%
interval and p. Samplers that agree leave every difference within noise. The runs' step times are
not comparable here; ``benchmarks/grpo_speed.py`` times them. Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from grpo_speed import MODES, scratch_config

from rlff_esc.policy.dataset import grpo_prompts, history_from_json
from rlff_esc.policy.grpo import build_trainer, start_model
from rlff_esc.policy.reasoning import reply_of, well_formed
from rlff_esc.policy.rewards import cut_off, load_scorer
from rlff_esc.stats import mean_of, paired_test

METRICS = ("completion tokens", "ended", "format compliance", "reward-model score", "log-probability per token")


def sample(trainer, rows: list[dict], batch: int) -> list[list[int]]:
    """Completion ids for ``rows`` (each prompt already repeated), ``batch`` rows a call, the trainer's
    step counter advanced per call as a training step would."""
    completions = []
    for step, at in enumerate(range(0, len(rows), batch)):
        trainer.state.global_step = step
        _, ids, *_ = trainer._generate([r["prompt"] for r in rows[at: at + batch]])
        completions.extend(ids)
    trainer.state.global_step = 0
    return completions


@torch.no_grad()
def logprob_per_token(model, prompt_ids: list[int], completion: list[int], temperature: float) -> float:
    ids = torch.tensor([prompt_ids + completion])
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1: -1].float() / temperature
    return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None]).mean())


def measure(trainer, scorer, rows: list[dict], completions: list[list[int]], reasoning: bool) -> dict[str, np.ndarray]:
    """Per completion: the five figures of :data:`METRICS` (the score NaN where the reply is not scorable);
    ``reasoning``: ``policy.reasoning``, what the format reward expects."""
    texts = trainer.processing_class.batch_decode(completions, skip_special_tokens=True)
    ended = ~np.array(cut_off(completions, set(trainer.eos_token_ids), len(completions)))
    formed = np.array([well_formed(t, reasoning) for t in texts]) & ended
    scorable = np.flatnonzero(formed)
    scores = np.full(len(rows), np.nan)
    scores[scorable] = scorer.score([history_from_json(rows[i]["history"]) for i in scorable],
                                    [reply_of(texts[i], reasoning) for i in scorable])
    prompt_ids = trainer._tokenize_prompts([r["prompt"] for r in rows])[0]
    model = trainer.model
    model.eval()
    logps = np.array([logprob_per_token(model, p, c, trainer.temperature) for p, c in zip(prompt_ids, completions)])
    model.train()
    lengths = np.array([len(c) for c in completions], float)
    return dict(zip(METRICS, (lengths, ended.astype(float), formed.astype(float), scores, logps)))


def per_prompt(values: np.ndarray, k: int) -> np.ndarray:
    """The mean over each prompt's ``k`` completions (NaN where none has a value)."""
    groups = values.reshape(-1, k)
    counts = (~np.isnan(groups)).sum(1)
    return np.where(counts > 0, np.nansum(groups, 1) / np.maximum(counts, 1), np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/policy-cpu.yaml")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--completions", type=int, default=8, help="completions per prompt")
    parser.add_argument("--set", action="append", default=[], help="override for both trainers, e.g. seed=7")
    parser.add_argument("--output", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results, per_mode = {}, {}
    for mode in MODES:
        config, scratch = scratch_config(args.config, mode, args.set)
        scorer = load_scorer(config)
        trainer, _ = build_trainer(config, start_model(config), scorer, scratch / "work", None)
        torch.manual_seed(config.seed)  # TRL's generate draws from the global generator
        rows = [r for r in grpo_prompts(config, "train")[: args.prompts] for _ in range(args.completions)]
        start = time.perf_counter()
        completions = sample(trainer, rows, config.policy.grpo.per_device_batch_size)
        seconds = time.perf_counter() - start
        logging.info("%s: %d completions sampled in %.0f s; reading them", mode, len(completions), seconds)
        values = measure(trainer, scorer, rows, completions, config.policy.reasoning)
        per_mode[mode] = {m: per_prompt(v, args.completions) for m, v in values.items()}
        results[mode] = {"sampling_seconds": round(seconds, 1), **{m: float(np.nanmean(v)) for m, v in values.items()}}
        del trainer
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.prompts} prompts × {args.completions} completions, one fixed model")
    print(f"{'':>26} {'stock':>8} {'rlff_esc':>8}   rlff_esc − stock, paired by prompt")
    for m in METRICS:
        a, b = per_mode["rlff_esc"][m], per_mode["stock"][m]
        both = ~np.isnan(a) & ~np.isnan(b)
        test = paired_test(mean_of(a[both]), mean_of(b[both]), int(both.sum()), samples=2000, seed=0)
        results.setdefault("difference", {})[m] = test
        print(f"{m:>26} {results['stock'][m]:>8.3f} {results['rlff_esc'][m]:>8.3f}   {test['delta']:+.3f} "
              f"[{test['low']:+.3f}, {test['high']:+.3f}] p={test['p']:.3f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"prompts": args.prompts, "completions": args.completions, **results},
                                                indent=1))


if __name__ == "__main__":
    main()
