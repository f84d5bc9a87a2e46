"""A bounded load test of ``rlff-esc serve`` on loopback: many concurrent clients for a fixed time.

The server runs as its own process exactly as a user starts it (``rlff-esc serve --no-auth``, safety
layer on, SmolLM2-135M by default), with a small ``serve.max_pending`` so that admission control is
exercised. Each client sends chat requests in a loop (one in ten a crisis message, answered by the
safety layer without the policy) and, when refused with 503, waits ``Retry-After`` seconds.

Every request must end answered (200) or refused (503); anything else counts as an error. The
server's resident memory is sampled every second (``VmRSS``) and its peak read from ``VmHWM``.

    python benchmarks/serve_load.py --clients 100 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = ["I had a rough day at work and I can't switch off.", "My sister and I keep arguing about our mum.",
            "I feel lonely since I moved here.", "I'm nervous about my exams next week."]
CRISIS = "I have decided to end my life this weekend."


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def client(n: int, url: str, deadline: float, results: list, rng: random.Random) -> None:
    async with httpx.AsyncClient(timeout=300) as http:
        i = 0
        while time.monotonic() < deadline:
            text = CRISIS if rng.random() < 0.1 else rng.choice(MESSAGES)
            body = {"messages": [{"role": "user", "content": text}], "max_tokens": 8, "seed": n * 1000 + i}
            start = time.monotonic()
            try:
                r = await http.post(url, json=body)
                status, retry = r.status_code, float(r.headers.get("retry-after", 0) or 0)
            except httpx.HTTPError as e:
                status, retry = type(e).__name__, 0.0
            results.append((status, time.monotonic() - start))
            i += 1
            if status == 503:
                await asyncio.sleep(retry)


async def run_clients(url: str, clients: int, seconds: float, pid: int, rss: list) -> list:
    results: list = []
    deadline = time.monotonic() + seconds

    async def sample():
        while time.monotonic() < deadline:
            rss.append(memory_kib(pid, "VmRSS"))
            await asyncio.sleep(1)

    rng = random.Random(0)
    await asyncio.gather(sample(), *(client(n, url, deadline, results, random.Random(rng.random()))
                                     for n in range(clients)))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-pending", type=int, default=32)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "serve_load.json")
    args = ap.parse_args()

    port = free_port()
    cmd = [sys.executable, "-m", "rlff_esc", "serve", "--policy", args.policy, "--no-auth", "--port", str(port),
           "--set", f"serve.max_pending={args.max_pending}", "--set", "serve.max_batch=16"]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RLFF_ESC_LOG": "WARNING"})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                sys.exit(f"the server exited: {server.stderr.read()[-2000:]}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        rss_start = memory_kib(server.pid, "VmRSS")
        rss: list[int] = []
        results = asyncio.run(run_clients(base + "/v1/chat/completions", args.clients, args.seconds, server.pid, rss))
        peak = memory_kib(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)

    answered = [t for s, t in results if s == 200]
    errors = [s for s, _ in results if s not in (200, 503)]
    half = len(rss) // 2
    report = {
        "policy": args.policy, "clients": args.clients, "seconds": args.seconds, "max_pending": args.max_pending,
        "requests": len(results), "answered": len(answered), "refused_503": sum(s == 503 for s, _ in results),
        "errors": len(errors), "error_kinds": sorted({str(s) for s in errors}),
        "answered_latency_s": {"p50": round(float(np.percentile(answered, 50)), 2),
                               "p95": round(float(np.percentile(answered, 95)), 2)} if answered else None,
        "rss_mib": {"after_start": round(rss_start / 1024), "max_first_half": round(max(rss[:half] or [0]) / 1024),
                    "max_second_half": round(max(rss[half:] or [0]) / 1024), "peak": round(peak / 1024)},
    }
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
