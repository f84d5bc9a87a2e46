"""Can the critic and the seeker simulator be trusted? Prints every validity figure of issue P6.

    python benchmarks/agents_validity.py --config configs/demo.yaml [--n 120] [--seeker-n 48]
        [--critic learned --critic llm]

For each critic (the learned one, and the LLM critic over ``models.critic`` in logprob mode) beside
the trivial mean-seeker-turn-length baseline: Spearman with the reported improvement on ESConv
valid+test, AUC for "improved by ≥ 2" vs held-out failed conversations that did not improve, whole
vs first half, correlation with length, and the success rate on kept vs failed conversations. Then
the role classifier's held-out accuracy, and the configured seeker's in-character rate, length and
MiniLM similarity to real seeker turns (also for ``<run>/trajectories.jsonl`` when present).
The LLM critic is slow on CPU (about 4 option scorings of a full dialogue per judgement), hence --n.
Writes the report as JSON to --out (default <run>/agents_validity.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from rlff_esc.agents.validity import format_report, validate_agents
from rlff_esc.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "-c", default="configs/demo.yaml")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. data.split=seed13")
    parser.add_argument("--critic", action="append", choices=["learned", "llm"], help="default: both")
    parser.add_argument("--n", type=int, default=120, help="dialogues for the LLM critic")
    parser.add_argument("--seeker-n", type=int, default=48, help="real points the seeker answers (0 skips)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    config = load_config(args.config, args.set)
    start = time.perf_counter()
    report = validate_agents(config, critics=tuple(args.critic or ("learned", "llm")), n_llm=args.n,
                             n_seeker=args.seeker_n, trajectories_path=config.run_path / "trajectories.jsonl")
    report["seconds"] = round(time.perf_counter() - start, 1)
    out = args.out or config.run_path / "agents_validity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(format_report(report))
    print(f"\n{report['seconds']} s in all; report written to {out}")


if __name__ == "__main__":
    main()
