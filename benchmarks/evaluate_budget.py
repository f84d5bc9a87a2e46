"""Does the demo's evaluation of every system fit its budget (<= 180 s on a quiet 2-core CPU)?

    python benchmarks/evaluate_budget.py --config configs/demo.yaml [--set evaluate.max_cases=8 ...]

Re-evaluates every configured system (``force``) in the config's run directory, which must already
hold the earlier stages' outputs (``rlff-esc run`` up to GRPO), and prints the interactive protocol's
case-turns per second (the systems side by side), per system the seconds and tokens of its replies to
the test contexts, and the total against the budget. Tokens do not
depend on what else the machine is doing; seconds do, so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import logging
import time

from rlff_esc.config import load_config
from rlff_esc.evaluate.run import evaluate

BUDGET_S = 180


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "-c", default="configs/demo.yaml")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. evaluate.max_cases=8")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config, args.set)
    start = time.perf_counter()
    combined = evaluate(config, force=True)
    total = time.perf_counter() - start
    ev = config.evaluate
    print(f"{ev.max_cases} cases x <= {ev.max_turns} turns, {ev.quality_max_contexts} contexts, "
          f"{ev.judge_max_contexts if ev.judge else 0} judged")
    groups = {tuple(m["evaluated_together"]["systems"]): m["evaluated_together"] for m in combined["systems"].values()}
    for names, together in groups.items():
        print(f"interactive, {', '.join(names)} side by side: {together['case_turns']} case-turns in "
              f"{together['seconds']:.1f} s ({together['case_turns_per_second']:.2f} per second)")
    print(f"{'system':>16} {'quality s':>9} {'prompt tok':>10} {'generated':>9}  SR")
    for name, m in combined["systems"].items():
        tokens = m["quality_tokens"] or {"prompt_tokens": 0, "completion_tokens": 0}
        print(f"{name:>16} {m['seconds']['quality']:>9.1f} {tokens['prompt_tokens']:>10} "
              f"{tokens['completion_tokens']:>9}  {m['interactive']['SR']['value']:.3f}")
    for name, why in combined["unavailable"].items():
        print(f"{name:>16} not evaluated: {why}")
    print(f"total {total:.1f} s (budget {BUDGET_S} s: {'within' if total <= BUDGET_S else 'OVER'})")


if __name__ == "__main__":
    main()
