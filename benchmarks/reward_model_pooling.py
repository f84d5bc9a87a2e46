"""Does the reward model score the reply or the context? MiniLM pooled over every token against over the
reply's tokens only (``reward_model.pooling``), on one run's trajectories.

For each pooling it reports K-fold cross-validated metrics by dialogue (``rm train --cv-folds``) and,
for a model trained on all the replies, two spreads over the grid of every context × every reply:
the standard deviation of the scores of all the replies to one context (what GRPO's comparisons
within a group see), and of one reply across all the contexts, each averaged.

    rlff-esc simulate -c configs/demo.yaml --set simulate.max_contexts=48
    python benchmarks/reward_model_pooling.py -c configs/demo.yaml --folds 4
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from pathlib import Path

from rlff_esc.config import load_config
from rlff_esc.reward_model.data import load_items
from rlff_esc.reward_model.scoring import RewardModelScorer
from rlff_esc.reward_model.train import cross_validate, fit_and_save


def spreads(folder: Path, items) -> dict:
    scorer = RewardModelScorer(folder)
    histories = {i.context_id: i.history for i in items}
    replies = [i.reply for i in items]
    grid = [scorer.score([history] * len(replies), replies) for history in histories.values()]
    return {"std_over_replies": round(statistics.mean(statistics.pstdev(row) for row in grid), 4),
            "std_over_contexts": round(statistics.mean(statistics.pstdev(col) for col in zip(*grid)), 4)}


def measure(config_path: Path, pooling: str, folds: int, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="rlff-rm-pooling-") as scratch:
        config = load_config(config_path, [*overrides, f"reward_model.pooling={pooling}",
                                           f"reward_model.output_dir={scratch}/cv"])
        run = config.run_path
        cv = cross_validate(config, folds)["scorers"]["reward_model"]
        items, _ = load_items(run / "trajectories.jsonl", run / "contexts.jsonl", config.simulate.reward)
        fit_and_save(config.reward_model, config.seed, items, Path(scratch) / "all", {})
        return {"pooling": pooling, "replies": len(items), "cv": cv, **spreads(Path(scratch) / "all", items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--set", action="append", default=[], help="override a setting, as in the CLI")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = [measure(args.config, pooling, args.folds, args.set) for pooling in ("all", "reply")]
    print(f"{'pooling':<9}{'replies':>8}{'cv pairwise acc [95% CI]':>30}{'std over replies':>18}"
          f"{'std over contexts':>19}")
    for r in results:
        low, high = r["cv"]["pairwise_accuracy_ci95"]
        accuracy = f"{r['cv']['pairwise_accuracy']:.2f} [{low:.2f}, {high:.2f}]"
        print(f"{r['pooling']:<9}{r['replies']:>8}{accuracy:>30}{r['std_over_replies']:>18}"
              f"{r['std_over_contexts']:>19}")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
