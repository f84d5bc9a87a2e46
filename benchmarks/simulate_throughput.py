"""Throughput of the batched simulation engine against a one-call-at-a-time loop (as PPDPP runs it).

Same contexts, seeds and embedded model for all, in one process:

* sequential_unshared: one trajectory at a time, each agent call carrying one request (the logprob
  critic's four options go in one call, as one judgement), on a backend that computes every prompt
  whole (``share_prefixes: false``): the loop as PPDPP runs it;
* sequential: the same loop on the backend as configured, which computes a beginning shared inside
  one call once (the critic's four options share their conversation);
* batched: all trajectories advance together through :class:`rlff_esc.simulate.engine.Engine`;
* batched_host_sampling (a model on a GPU only): the same, drawing each row's next token on the host
  one row at a time, as on a CPU, instead of all rows at once on the device.

Reported: trajectories per minute; tokens per second processed (prompt + generated, loglikelihood
passes included: the tokens the agents asked for, the same for both loops); the tokens the model
actually ran (``computed_tokens``: padding left out, a shared prompt beginning counted once) and the
padding run beside them (``padding_tokens``); and
model-FLOP utilisation MFU = model FLOPs ÷ time ÷ peak, where the peak is the best matmul rate in the
model's number type (bfloat16 or float32, :mod:`rlff_esc.llm.precision`) measured in the same run on the
same machine. Model FLOPs are counted from the work done, not the
work asked for: 2 × (parameters outside the embedding) per computed token + 2 × vocabulary × hidden
size per position whose logits were computed (attention scores are left out, so this is a lower
bound). Not a timed test: run it by hand, on a quiet machine if the figures are to mean anything.

    python benchmarks/simulate_throughput.py --contexts 8 --candidates 4 --futures 1 --horizon 1

On a GPU, ``--no-sequential`` times the batched engine with device and with host sampling only.
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


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of an n×n matmul in ``dtype`` on ``device``, now (a GPU gets a larger matrix to fill it)."""
    n = 8192 if device.type == "cuda" else n
    a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
    torch.matmul(a, b)  # warm-up
    best = 0.0
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        _synchronize(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_flops(model, computed_tokens: int, logit_positions: int) -> float:
    """FLOPs of the work done: the transformer's matmuls per token, the output layer (if any) per logit
    position."""
    layer = model.get_output_embeddings()
    output = layer.weight if layer is not None else None
    body = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name and p is not output)
    return 2.0 * body * computed_tokens + (2.0 * output.numel() * logit_positions if output is not None else 0.0)


def timed(engine, runs) -> dict:
    local = {id(m.backend): m.backend for m in engine.meters}.values()
    before = [dict(b.stats) for b in local]
    start = time.perf_counter()
    records = [r for items in runs for r in engine.run(items)]
    seconds = time.perf_counter() - start
    done = {key: sum(b.stats[key] - s[key] for b, s in zip(local, before))
            for key in ("computed_tokens", "padding_tokens", "logit_positions")}
    prompt = sum(m.prompt_tokens for m in engine.meters)
    completion = sum(m.completion_tokens for m in engine.meters)
    return {"records": records, "seconds": seconds, "prompt_tokens": prompt, "completion_tokens": completion, **done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="its run_dir must hold contexts.jsonl")
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct", help="every agent's model")
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. run_dir=runs/x")
    parser.add_argument("--contexts", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--futures", type=int, default=1, help="futures per candidate (the config's is not used)")
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--candidate-max-new-tokens", type=int, default=32)
    parser.add_argument("--max-history-turns", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64, help="local backend rows decoded together")
    parser.add_argument("--critic", choices=["logprob", "sample"], default="logprob")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="the model's number type (auto: bfloat16 where the hardware has it)")
    parser.add_argument("--no-sequential", action="store_true",
                        help="skip the two one-at-a-time loops (slow on a GPU): batched runs only")
    parser.add_argument("--out", default="runs/benchmarks/simulate_throughput.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    role_model = {"model": args.model, "batch_size": args.batch_size, "dtype": args.dtype}
    overrides = [f"models.{role}={json.dumps(role_model)}" for role in ("policy", "seeker", "supporter", "critic")]
    overrides += [f"simulate.candidates={args.candidates}", f"simulate.futures={args.futures}",
                  f"simulate.horizon={args.horizon}",
                  f"simulate.max_new_tokens={args.max_new_tokens}",
                  f"simulate.candidate_max_new_tokens={args.candidate_max_new_tokens}",
                  f"simulate.max_history_turns={args.max_history_turns}",
                  f"policy.max_history_turns={args.max_history_turns}",
                  "simulate.critic.kind=llm", f"simulate.critic.scoring={args.critic}",
                  f"simulate.critic.max_history_turns={args.max_history_turns}", "simulate.policy_path=null"]
    config = load_config(args.config, [*args.set, *overrides])
    contexts = read_contexts(config.run_path / "contexts.jsonl", config.simulate.contexts_split)[: args.contexts]
    items = make_items(config, contexts)
    spec = policy_spec(config)

    engine = build_engine(config, spec)
    backend = engine.policy.backend  # every role shares this one loaded model
    model = backend.model
    peak_before = matmul_peak(model.dtype, model.device)
    runs = {}
    sequential = [] if args.no_sequential else [("sequential_unshared", False, [[it] for it in items]),
                                                ("sequential", True, [[it] for it in items])]
    settings = [*sequential, ("batched", True, [items])]
    sampling = backend.sampling
    if sampling == "device":
        settings.append(("batched_host_sampling", True, [items]))
    for name, share, batches in settings:
        backend.share_prefixes = share
        backend.sampling = "host" if name == "batched_host_sampling" else sampling
        runs[name] = timed(build_engine(config, spec), batches)
        print(f"{name}: {len(items)} trajectories in {runs[name]['seconds']:.1f} s", flush=True)
    peak = max(peak_before, matmul_peak(model.dtype, model.device))

    records = {name: run.pop("records") for name, run in runs.items()}
    report = {"trajectories": len(items), "params": sum(p.numel() for p in model.parameters()),
              "dtype": str(model.dtype).removeprefix("torch."),
              "matmul_peak_gflops": round(peak / 1e9, 1), "threads": torch.get_num_threads(), "args": vars(args)}
    for name, run in runs.items():
        tokens = run["prompt_tokens"] + run["completion_tokens"]
        same = sum(a["future"] == b["future"] and a["raw_candidate"] == b["raw_candidate"]
                   for a, b in zip(records[name], records["batched"]))
        report[name] = {**run, "seconds": round(run["seconds"], 1),
                        "trajectories_per_min": round(len(items) / run["seconds"] * 60, 2),
                        "tokens_per_s": round(tokens / run["seconds"], 1),
                        "computed_tokens_per_s": round(run["computed_tokens"] / run["seconds"], 1),
                        "mfu": round(model_flops(model, run["computed_tokens"], run["logit_positions"])
                                     / run["seconds"] / peak, 4),
                        "trajectories_identical_to_batched": same}
    for key, slower in (("speedup", "sequential"), ("speedup_vs_unshared", "sequential_unshared"),
                        ("device_sampling_speedup", "batched_host_sampling")):
        if slower in runs:
            report[key] = round(runs[slower]["seconds"] / runs["batched"]["seconds"], 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
