"""Throughput of the batched simulation engine against a one-call-at-a-time loop (as PPDPP runs it).

Same contexts, seeds and embedded model for both, in one process:

* sequential: one trajectory at a time, each agent call carrying one request (the logprob critic's
  four options go in one call, as one judgement);
* batched: all trajectories advance together through :class:`rlff_esc.simulate.engine.Engine`.

Reported: trajectories per minute, tokens per second processed (prompt + generated, loglikelihood
passes included), and model-FLOP utilisation MFU = 2 × parameters × tokens ÷ time ÷ peak, where the
peak is the best fp32 matmul rate measured in the same run on the same machine. Not a timed test: run
it by hand, on a quiet machine if the figures are to mean anything.

    python benchmarks/simulate_throughput.py --contexts 4 --candidates 4 --horizon 1
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from rlff_esc.config import load_config
from rlff_esc.data.prepare import read_contexts
from rlff_esc.simulate.run import build_engine, make_items, policy_spec


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n×n matmul on this machine, now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def timed(engine, runs) -> dict:
    start = time.perf_counter()
    records = [r for items in runs for r in engine.run(items)]
    seconds = time.perf_counter() - start
    prompt = sum(m.prompt_tokens for m in engine.meters)
    completion = sum(m.completion_tokens for m in engine.meters)
    return {"records": records, "seconds": seconds, "prompt_tokens": prompt, "completion_tokens": completion}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="its run_dir must hold contexts.jsonl")
    parser.add_argument("--contexts", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--candidate-max-new-tokens", type=int, default=32)
    parser.add_argument("--max-history-turns", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64, help="local backend rows decoded together")
    parser.add_argument("--critic", choices=["logprob", "sample"], default="logprob")
    parser.add_argument("--out", default="runs/benchmarks/simulate_throughput.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    model = {"model": "embedded:smollm2-135m-instruct", "batch_size": args.batch_size}
    overrides = [f"models.{role}={json.dumps(model)}" for role in ("policy", "seeker", "supporter", "critic")]
    overrides += [f"simulate.candidates={args.candidates}", f"simulate.horizon={args.horizon}",
                  f"simulate.max_new_tokens={args.max_new_tokens}",
                  f"simulate.candidate_max_new_tokens={args.candidate_max_new_tokens}",
                  f"simulate.max_history_turns={args.max_history_turns}",
                  f"policy.max_history_turns={args.max_history_turns}",
                  "simulate.critic.kind=llm", f"simulate.critic.scoring={args.critic}",
                  f"simulate.critic.max_history_turns={args.max_history_turns}", "simulate.policy_path=null"]
    config = load_config(args.config, overrides)
    contexts = read_contexts(config.run_path / "contexts.jsonl", config.simulate.contexts_split)[: args.contexts]
    items = make_items(config, contexts)
    spec = policy_spec(config)

    peak_before = matmul_peak()
    sequential_engine = build_engine(config, spec)
    params = sum(p.numel() for p in sequential_engine.policy.backend.model.parameters())
    sequential = timed(sequential_engine, [[it] for it in items])
    print(f"sequential: {len(items)} trajectories in {sequential['seconds']:.1f} s", flush=True)
    batched = timed(build_engine(config, spec), [items])
    print(f"batched: {len(items)} trajectories in {batched['seconds']:.1f} s", flush=True)
    peak = max(peak_before, matmul_peak())

    same = sum(a["future"] == b["future"] and a["raw_candidate"] == b["raw_candidate"]
               for a, b in zip(sequential.pop("records"), batched.pop("records")))
    report = {"trajectories": len(items), "identical_trajectories": same, "params": params,
              "matmul_peak_gflops": round(peak / 1e9, 1), "threads": torch.get_num_threads(), "args": vars(args)}
    for name, run in (("sequential", sequential), ("batched", batched)):
        tokens = run["prompt_tokens"] + run["completion_tokens"]
        report[name] = {**run, "seconds": round(run["seconds"], 1),
                        "trajectories_per_min": round(len(items) / run["seconds"] * 60, 2),
                        "tokens_per_s": round(tokens / run["seconds"], 1),
                        "mfu": round(2 * params * tokens / run["seconds"] / peak, 4)}
    report["speedup"] = round(sequential["seconds"] / batched["seconds"], 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
