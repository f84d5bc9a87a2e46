"""GRPO step time of stock TRL against rlff-esc's levers, at identical settings.

    python benchmarks/grpo_speed.py [--config configs/benchmark-cpu.yaml] [--steps 10] [--check-contexts 48]

Both runs start from the config's trained warm-up and train against its trained reward model (run
`python benchmarks/result_table.py` or `rlff-esc run` first), with the same seed, LoRA, group, batch
and lengths, one after the other in this process. ``stock``: TRL's ``model.generate`` and
transformers' attention and TRL's LM head (``policy.grpo.generation: transformers``, ``policy.attention:
sdpa``, ``policy.lm_head: trl``); ``rlff_esc``: the batched backend's sampling and, on CPU, the
grouped-head attention and the head over labelled positions only (the settings' defaults). Each
writes into a scratch copy of the run (nothing in the run directory changes).

Printed per mode: seconds per step (the first step included), the reward model's raw mean score of
the step's completions (``reward_model/raw_mean``: what GRPO climbs, on the reward model's own
scale), format compliance and the mean completion length, each averaged over the steps; then the
ratio of step times and, for the learning curves, the per-step difference of the raw reward-model
score (rlff_esc − stock) with its bootstrap 95% interval: the samples differ (another sampler), so
the curves are compared in expectation.
With ``--check-contexts N`` each trained policy also gets the held-out check (greedy, N valid contexts,
reward-model score and format compliance; ``rlff_esc.policy.check``), and the two trained policies are
compared on the same contexts: what each training reached, rather than what its samples scored.
``benchmarks/grpo_samplers.py`` compares the two samplers' draws from one fixed model.
Not a timed test: run it by hand on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rlff_esc.config import load_config
from rlff_esc.policy.check import compare_checks, describe_comparison
from rlff_esc.policy.grpo import run_grpo
from rlff_esc.policy.logs import read_log
from rlff_esc.stats import interval, mean_of

MODES = {"stock": ["policy.grpo.generation=transformers", "policy.attention=sdpa", "policy.lm_head=trl"],
         "rlff_esc": ["policy.grpo.generation=batched", "policy.attention=auto", "policy.lm_head=auto"]}


def scratch_config(config_path: str, mode: str, extra: list[str], steps: int = 1, check_contexts: int = 0):
    """The config's GRPO with the mode's settings, in a scratch copy of its run (the data files only):
    starting from the run's warm-up, against its reward model. Returns the config and the scratch folder."""
    main = load_config(config_path, extra)
    scratch = Path(tempfile.mkdtemp(prefix=f"grpo-{mode}-"))
    for name in ("cases.jsonl", "contexts.jsonl"):
        shutil.copy(main.run_path / name, scratch / name)
    start = main.paths.policy_sft if main.policy.sft.enabled else main.policy.base_model
    config = load_config(config_path, [*extra, f"run_dir={scratch}", "policy.sft.enabled=false",
                                       f"policy.base_model={start}", f"policy.reward_model_path={main.paths.scorer}",
                                       f"policy.grpo.max_steps={steps}", f"policy.grpo.save_steps={steps}",
                                       f"policy.grpo.check_contexts={check_contexts}", *MODES[mode]])
    return config, scratch


def run_mode(config_path: str, mode: str, steps: int, extra: list[str], check_contexts: int = 0) -> dict:
    """GRPO for ``steps`` steps with the mode's settings; its step time, learning curve and (with
    ``check_contexts``) the held-out check before and after."""
    config, scratch = scratch_config(config_path, mode, extra, steps, check_contexts)
    out = run_grpo(config, force=True)
    rows = [r for r in read_log(out / "train_log.jsonl") if "reward" in r]
    result = {"seconds_per_step": json.loads((out / "stage.json").read_text())["seconds_per_step"],
              "reward_model": [r.get("reward_model/raw_mean", r["rewards/reward_model/mean"]) for r in rows],
              "format_compliance": float(np.mean([r["format/compliance"] for r in rows])),
              "completion_length": float(np.mean([r["completions/mean_length"] for r in rows]))}
    if check_contexts:
        result["check"] = json.loads((out / "check.json").read_text())
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/benchmark-cpu.yaml")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], help="override for both runs, e.g. seed=7")
    parser.add_argument("--check-contexts", type=int, default=0,
                        help="held-out check of each trained policy on this many valid contexts (0: none)")
    parser.add_argument("--output", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = {mode: run_mode(args.config, mode, args.steps, args.set, args.check_contexts) for mode in MODES}
    print(f"{'mode':>13} {'s/step':>7} {'RM score':>9} {'compliance':>10} {'completion tokens':>17}")
    for mode, r in results.items():
        print(f"{mode:>13} {r['seconds_per_step']:>7.2f} {np.mean(r['reward_model']):>9.3f} "
              f"{r['format_compliance']:>10.2f} {r['completion_length']:>17.1f}")
    ratio = results["rlff_esc"]["seconds_per_step"] / results["stock"]["seconds_per_step"]
    difference = np.array(results["rlff_esc"]["reward_model"]) - np.array(results["stock"]["reward_model"])
    curve = interval(mean_of(difference), len(difference), samples=1000, seed=0)
    print(f"step time rlff_esc / stock: {ratio:.2f}")
    print(f"reward-model score per step, rlff_esc − stock: {curve['value']:+.3f} "
          f"[{curve['low']:+.3f}, {curve['high']:+.3f}] over {len(difference)} steps")
    trained = None
    if args.check_contexts:
        for mode, r in results.items():
            print(f"held-out check, {mode}: {describe_comparison(r['check']['comparison'])} after − before; "
                  f"format compliance {r['check']['before']['format_compliance']:.2f} → "
                  f"{r['check']['after']['format_compliance']:.2f}")
        trained = compare_checks(results["rlff_esc"]["check"]["after"], results["stock"]["check"]["after"])
        print(f"held-out check, rlff_esc − stock after training: {describe_comparison(trained)}")
    if args.output:
        Path(args.output).write_text(json.dumps({"steps": args.steps, "results": results, "ratio": ratio,
                                                 "reward_difference": curve, "trained_difference": trained},
                                                indent=1))


if __name__ == "__main__":
    main()
