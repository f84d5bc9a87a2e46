"""Interactive evaluation speed: case-turns per second, systems one at a time against side by side.

    python benchmarks/evaluate_throughput.py --config configs/demo.yaml --cases 32 --turns 8 \
        --systems base,base_reasoning,sft,dismissive,random_reply,retrieval

Runs the PPDPP protocol (seeker, critic and safety layer of the config; no response-quality metrics)
on the first ``--cases`` cases of the config's run directory (which must hold the earlier stages'
outputs: ``rlff-esc run`` up to GRPO for the trained systems), ``evaluate.batch_cases`` at a time as
the evaluation runs them, twice: each system alone, then all of them together
(``evaluate.systems_together``). Prints case-turns (one system reply, the seeker's
reaction and the critic's judgement), seconds and case-turns per second of both, their ratio, the
tokens the seeker's model read and generated, how many transcripts came out identical (batching
changes floating-point sums, so a sampled seeker turn may differ now and then) and the process's peak
memory. Writes nothing to the run directory. Seconds depend on what else the machine is doing: run it
on a quiet machine.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

from rlff_esc.config import load_config
from rlff_esc.evaluate.interactive import evaluation_cases
from rlff_esc.evaluate.run import Agents, run_protocol
from rlff_esc.evaluate.systems import build_systems


def timed(systems, cases, agents, config) -> tuple[dict, float, dict]:
    size, before = config.evaluate.batch_cases, dict(agents.seeker.backend.stats)
    out = {system.name: [] for system in systems}
    start = time.perf_counter()
    for first in range(0, len(cases), size):
        batch = cases[first:first + size]
        done = run_protocol(config, agents, [(system, batch) for system in systems], progress=False)
        for name, records in done.items():
            out[name] += records
    seconds = time.perf_counter() - start
    tokens = {k: agents.seeker.backend.stats[k] - before[k] for k in ("prompt_tokens", "computed_tokens")}
    return out, seconds, tokens


def case_turns(transcripts: dict) -> int:
    return sum(len(t["critic"]) for records in transcripts.values() for t in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "-c", default="configs/demo.yaml")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. models.seeker.batch_size=32")
    parser.add_argument("--cases", type=int, default=32)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--systems", default="base,base_reasoning,sft,dismissive,random_reply,retrieval")
    parser.add_argument("--together-only", action="store_true", help="skip the one-at-a-time run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config, args.set + [f"evaluate.max_cases={args.cases}", f"evaluate.max_turns={args.turns}"])
    cases, source = evaluation_cases(config)
    systems, unavailable = build_systems(config, args.systems.split(","))
    agents = Agents(config)
    agents.seeker, agents.critic, agents.safety  # noqa: B018 -- load the models before timing
    for system in systems:  # load every policy before timing, as the evaluation does before its first turn
        getattr(system, "backend", None)
    print(f"{len(cases)} cases of {source}, <= {args.turns} turns, {config.evaluate.batch_cases} at a time; "
          f"systems: {', '.join(s.name for s in systems)}"
          + (f"; not available: {', '.join(unavailable)}" if unavailable else ""))
    runs = {}
    if not args.together_only:
        alone, seconds, tokens = {}, 0.0, {"prompt_tokens": 0, "computed_tokens": 0}
        for system in systems:
            out, s, t = timed([system], cases, agents, config)
            alone.update(out)
            seconds += s
            tokens = {k: tokens[k] + t[k] for k in tokens}
            print(f"  {system.name:>16}: {case_turns(out)} case-turns in {s:.1f} s")
        runs["one at a time"] = (alone, seconds, tokens)
    runs["side by side"] = timed(systems, cases, agents, config)
    print(f"{'':>14} {'case-turns':>10} {'seconds':>8} {'per second':>10} {'seeker prompt tok':>17} {'computed':>9}")
    for name, (out, seconds, tokens) in runs.items():
        n = case_turns(out)
        print(f"{name:>14} {n:>10} {seconds:>8.1f} {n / seconds:>10.2f} {tokens['prompt_tokens']:>17} "
              f"{tokens['computed_tokens']:>9}")
    if len(runs) == 2:
        (alone, a, _), (together, b, _) = runs.values()
        same = sum(x == y for name in alone for x, y in zip(alone[name], together[name]))
        speedup = (case_turns(together) / b) / (case_turns(alone) / a)
        print(f"speed-up side by side: {speedup:.2f}x; identical transcripts: {same} of {len(cases) * len(systems)}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")


if __name__ == "__main__":
    main()
