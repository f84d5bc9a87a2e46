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

Where the side-by-side run's time goes, per in-process model (the seeker's and each system's): tokens
run through it per case-turn, its matrix products' GFLOP per case-turn (counted as
``simulate_throughput.py`` counts them), the rate they ran at, and the ceiling all of them set
together: the case-turns a second that this machine's best matmul rate would allow if the models'
matrix products were all that took time (attention, cache writes, sampling, the critic and the safety
layer left out, so no evaluation reaches it).
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
from simulate_throughput import matmul_peak, model_flops

COUNTED = ("prompt_tokens", "computed_tokens", "logit_positions", "seconds")


def local_models(agents, systems) -> dict[int, tuple[str, object]]:
    """Each in-process backend once (systems over one loaded model share it), named by who uses it."""
    named: dict[int, tuple[list[str], object]] = {}
    for name, backend in [("seeker", agents.seeker.backend)] + [(s.name, getattr(s, "backend", None)) for s in systems]:
        if hasattr(backend, "model"):
            named.setdefault(id(backend), ([], backend))[0].append(name)
    return {key: (",".join(names), backend) for key, (names, backend) in named.items()}


def timed(systems, cases, agents, config) -> tuple[dict, float, dict]:
    size, models = config.evaluate.batch_cases, local_models(agents, systems)
    before = {key: dict(backend.stats) for key, (_, backend) in models.items()}
    out = {system.name: [] for system in systems}
    start = time.perf_counter()
    for first in range(0, len(cases), size):
        batch = cases[first:first + size]
        done = run_protocol(config, agents, [(system, batch) for system in systems], progress=False)
        for name, records in done.items():
            out[name] += records
    seconds = time.perf_counter() - start
    work = {key: {k: backend.stats[k] - before[key][k] for k in COUNTED} for key, (_, backend) in models.items()}
    return out, seconds, work


def where_time_goes(models: dict, work: dict, turns: int, seconds: float) -> None:
    """Print each model's share of the side-by-side run and the ceiling their matrix products set."""
    total = 0.0
    print(f"{'model (used by)':>40} {'tokens/case-turn':>16} {'GFLOP/case-turn':>15} {'GFLOP/s':>8} {'seconds':>8}")
    for key, (name, backend) in models.items():
        done = work[key]
        flops = model_flops(backend.model, done["computed_tokens"], done["logit_positions"])
        total += flops
        print(f"{name:>40} {done['computed_tokens'] / turns:>16.1f} {flops / turns / 1e9:>15.2f} "
              f"{flops / max(done['seconds'], 1e-9) / 1e9:>8.1f} {done['seconds']:>8.1f}")
    peak = max(matmul_peak(dtype, device) for dtype, device in {(b.model.dtype, b.device) for _, b in models.values()})
    print(f"all models: {total / turns / 1e9:.2f} GFLOP a case-turn, {total / seconds / 1e9:.1f} GFLOP/s over the run; "
          f"matmul peak here {peak / 1e9:.1f} GFLOP/s, so at most {peak * turns / total:.2f} case-turns a second "
          f"(measured {turns / seconds:.2f})")


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
        alone, seconds, work = {}, 0.0, {}
        for system in systems:
            out, s, w = timed([system], cases, agents, config)
            alone.update(out)
            seconds += s
            for key, done in w.items():
                work[key] = {k: work.get(key, dict.fromkeys(COUNTED, 0))[k] + done[k] for k in COUNTED}
            print(f"  {system.name:>16}: {case_turns(out)} case-turns in {s:.1f} s")
        runs["one at a time"] = (alone, seconds, work)
    runs["side by side"] = timed(systems, cases, agents, config)
    print(f"{'':>14} {'case-turns':>10} {'seconds':>8} {'per second':>10} {'seeker prompt tok':>17} {'computed':>9}")
    seeker = id(agents.seeker.backend)
    for name, (out, seconds, work) in runs.items():
        n = case_turns(out)
        print(f"{name:>14} {n:>10} {seconds:>8.1f} {n / seconds:>10.2f} {work[seeker]['prompt_tokens']:>17} "
              f"{work[seeker]['computed_tokens']:>9}")
    if len(runs) == 2:
        (alone, a, _), (together, b, _) = runs.values()
        same = sum(x == y for name in alone for x, y in zip(alone[name], together[name]))
        speedup = (case_turns(together) / b) / (case_turns(alone) / a)
        print(f"speed-up side by side: {speedup:.2f}x; identical transcripts: {same} of {len(cases) * len(systems)}")
    together, seconds, work = runs["side by side"]
    where_time_goes(local_models(agents, systems), work, case_turns(together), seconds)
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")


if __name__ == "__main__":
    main()
