"""Seconds per step of the SFT warm-up and of GRPO on the demo config (run by hand, on a quiet machine).

    python benchmarks/policy_steps.py [--steps 3] [--config configs/demo.yaml]

Uses a scratch copy of the demo run's cases/contexts and its reward model (run `rlff-esc run` first, or
pass --reward-model); writes nothing into the demo run directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from rlff_esc.config import load_config
from rlff_esc.policy.grpo import run_grpo
from rlff_esc.policy.sft import run_sft


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--reward-model", default=None, help="default: <demo run>/reward_model")
    args = parser.parse_args()
    demo = load_config(args.config)
    scratch = Path(tempfile.mkdtemp(prefix="policy-bench-"))
    for name in ("cases.jsonl", "contexts.jsonl"):
        shutil.copy(demo.run_path / name, scratch / name)
    rm = args.reward_model or str(demo.run_path / "reward_model")
    config = load_config(args.config, [f"run_dir={scratch}", f"policy.reward_model_path={rm}",
                                       f"policy.sft.max_steps={args.steps}", f"policy.grpo.max_steps={args.steps}",
                                       "policy.grpo.check_contexts=0", f"policy.grpo.save_steps={args.steps}"])
    for stage, run in (("sft", run_sft), ("grpo", run_grpo)):
        out = run(config, force=True)
        details = json.loads((out / "stage.json").read_text())
        print(f"{stage}: {details['seconds_per_step']} s/step over {args.steps} steps")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
