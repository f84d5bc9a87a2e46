"""Tokens/s of the local backend: 16 requests in one batched call against 16 single calls.

    python benchmarks/backend_batching.py [--n 16] [--tokens 48]
"""

import argparse
import time

from rlff_esc.llm.base import GenerationRequest
from rlff_esc.llm.local import LocalBackend


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    backend = LocalBackend(args.model, batch_size=args.n)
    system = {"role": "system", "content": "You are a caring listener."}
    requests = [GenerationRequest([system, {"role": "user", "content": f"Day {i}: I feel sad about my exams."}],
                                  max_new_tokens=args.tokens, temperature=0.9, seed=i) for i in range(args.n)]
    backend.generate(requests[:2])  # warm-up
    rates = {}
    for mode in ("batched", "single"):
        start = time.perf_counter()
        outs = backend.generate(requests) if mode == "batched" else [backend.generate([r])[0] for r in requests]
        seconds = time.perf_counter() - start
        tokens = sum(o.completion_tokens for o in outs)
        rates[mode] = tokens / seconds
        print(f"{mode:8s} {tokens:5d} tokens in {seconds:6.1f} s = {rates[mode]:6.1f} tokens/s")
    print(f"speed-up {rates['batched'] / rates['single']:.1f}x")


if __name__ == "__main__":
    main()
