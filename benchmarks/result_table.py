"""The result table in one command: the method, its two ablations, and every system evaluated on them.

    python benchmarks/result_table.py [--config configs/benchmark-cpu.yaml] [--set key=value ...]

1. the main config's stages up to GRPO (data, learned critic, SFT warm-up, simulation, reward model,
   policy), and the reward model's 5-fold cross-validation by dialogue (``cv_metrics.json``: every
   pair scored by a model that never saw its dialogue);
2. each ablation config (``<name>-immediate.yaml`` and ``<name>-no-reasoning.yaml`` beside the main
   config) up to GRPO, each with its own simulation, reward model and policy. An ablation starts from
   copies of the main run's data, critic and SFT warm-up: each stage checks the fingerprint of its
   inputs, so a copy is used only where the ablation's inputs are the same (the immediate-reward
   ablation reuses the warm-up; the one without reasoning trains its own), and its cross-validation;
3. the main config's evaluation, whose ``evaluate.policies`` name the ablations' policies, and its report.

Every stage skips work already done and resumes work a kill interrupted, so an interrupted table is
made by running the same command again. Prints the wall time of every stage when it ran (from the
runs' manifests; also in ``<run>/result_table_times.json``) and where the report is.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from rlff_esc.config import load_config
from rlff_esc.pipeline import STAGES, run_pipeline
from rlff_esc.reward_model.train import cross_validate

ABLATIONS = ("immediate", "no-reasoning")
SHARED = ("cases.jsonl", "contexts.jsonl", "data.stage.json", "critic", "policy_sft")
CV_FOLDS = 5


def copy_shared(source: Path, target: Path) -> None:
    """Seed an ablation's run directory with the main run's outputs it may share (never overwriting)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        if (source / name).exists() and not (target / name).exists():
            (shutil.copytree if (source / name).is_dir() else shutil.copy2)(source / name, target / name)


def train(config) -> None:
    run_pipeline(config, only=[s.name for s in STAGES if s.wanted(config) and s.name != "evaluate"])
    if not (config.paths.reward_model / "cv_metrics.json").exists():
        cross_validate(config, CV_FOLDS)


def stage_seconds(config) -> dict[str, float]:
    """Wall seconds of each stage when it ran (the run's manifest), so that a table made over several
    invocations still shows what each stage cost."""
    manifest = json.loads(config.paths.manifest.read_text()) if config.paths.manifest.exists() else {}
    return {name: stage["seconds"] for name, stage in manifest.get("stages", {}).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "-c", default="configs/benchmark-cpu.yaml")
    parser.add_argument("--set", action="append", default=[], help="override for every config, e.g. seed=7")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main_config = load_config(args.config, args.set)
    configs = {"main": main_config}
    train(main_config)
    for ablation in ABLATIONS:
        path = Path(args.config).with_name(f"{Path(args.config).stem}-{ablation}.yaml")
        configs[ablation] = load_config(path, args.set)
        copy_shared(main_config.run_path, configs[ablation].run_path)
        train(configs[ablation])
    run_pipeline(main_config, only=["evaluate"])
    times = {f"{label}: {stage}": seconds for label, config in configs.items()
             for stage, seconds in stage_seconds(config).items()}
    (main_config.run_path / "result_table_times.json").write_text(json.dumps(times, indent=1))
    print(f"{'stage':>36} {'seconds':>8}")
    for name, seconds in times.items():
        print(f"{name:>36} {seconds:>8.0f}")
    print(f"{'total':>36} {sum(times.values()):>8.0f}")
    print(f"report: {main_config.paths.report}")


if __name__ == "__main__":
    main()
