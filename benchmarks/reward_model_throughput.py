"""Reward-model speed on this machine: scoring throughput (replies/s) and training time per 1,000 pairs.

Training is measured on a few pairs (one epoch, TRL RewardTrainer, pairwise loss) and scaled linearly
to 1,000 pairs, which is what a longer run costs once the trainer is set up; the set-up (model load,
trainer construction) is reported separately. Inputs are ESConv-like: real contexts from a run's
contexts.jsonl when given (--contexts), otherwise synthetic histories of similar length.

    python benchmarks/reward_model_throughput.py                 # MiniLM, SmolLM2, SmolLM2 + LoRA
    python benchmarks/reward_model_throughput.py --backbones embedded:minilm --pairs 64 --replies 256

A backbone suffixed ``+lora`` trains LoRA adapters (r=16) instead of the full model.

Where scoring's time goes: tokenising against the forward passes, the tokens a reply and the GFLOP of
the model's matrix products per reply (counted as ``simulate_throughput.model_flops`` counts them:
attention scores left out, so a lower bound), the rate they ran at, and the ceiling that this machine's
matmul peak (``simulate_throughput.matmul_peak``) sets on replies a second at these lengths.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path

import torch

from rlff_esc.config import RewardModelSection
from rlff_esc.data.prepare import read_contexts
from rlff_esc.reward_model.data import Item, Pair
from rlff_esc.reward_model.inputs import as_turns
from rlff_esc.reward_model.model import load_backbone, save_reward_model
from rlff_esc.reward_model.scoring import RewardModelScorer
from rlff_esc.reward_model.train import fit_pairwise
from simulate_throughput import matmul_peak, model_flops

SENTENCES = ["I have been feeling really down since I lost my job.", "My partner and I keep fighting about money.",
             "I can't sleep because I worry about my exams all night.", "Nobody at work seems to notice me.",
             "That sounds exhausting. How long has this been going on?", "I'm sorry you're dealing with this."]
REPLIES = ["That sounds really hard, I'm sorry you're going through it.", "Have you talked to anyone about it?",
           "It makes sense that you feel overwhelmed.", "Maybe a short walk could help you clear your head today."]


def make_items(n: int, contexts: Path | None, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    if contexts is not None:
        histories = [c.history for c in read_contexts(contexts)]
    else:
        histories = [as_turns("\n".join(f"{'Seeker' if i % 2 == 0 else 'Supporter'}: {rng.choice(SENTENCES)}"
                                         for i in range(7))) for _ in range(32)]
    return [Item(context_id=str(i // 2), case_id=str(i // 2), history=histories[(i // 2) % len(histories)],
                 reply=rng.choice(REPLIES) + " " + rng.choice(REPLIES), reward=rng.random(), success=None,
                 rollouts=1) for i in range(n)]


def measure(backbone: str, pairs: int, replies: int, settings: RewardModelSection, contexts: Path | None,
            dtypes: list[str]) -> dict:
    name, _, variant = backbone.partition("+")
    rm = settings.model_copy(update={"backbone": name, "lora": variant == "lora", "epochs": 1.0})
    start = time.perf_counter()
    model, tokenizer, head = load_backbone(name, rm.lora, rm.lora_r, rm.lora_alpha, rm.train_layers, rm.pooling)
    load_seconds = time.perf_counter() - start
    items = make_items(2 * pairs, contexts)
    train_pairs = [Pair(2 * i, 2 * i + 1, 0.5) for i in range(pairs)]
    start = time.perf_counter()
    model = fit_pairwise(model, tokenizer, items, train_pairs, rm, seed=0)
    train_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        save_reward_model(model, tokenizer, Path(folder), {"backbone": name, "head": head, "objective": "pairwise",
                                                           "max_length": rm.max_length})
        del model
        to_score = make_items(replies, contexts, seed=1)
        histories, texts = [i.history for i in to_score], [i.reply for i in to_score]
        per_second, time_split = {}, {}
        for dtype in dtypes:
            scorer = RewardModelScorer(folder, batch_size=rm.score_batch_size, dtype=dtype)
            scorer.score(histories[:rm.score_batch_size], texts[:rm.score_batch_size])  # warm-up
            start = time.perf_counter()
            sequences = scorer.encode(histories, texts)
            tokenised = time.perf_counter()
            scorer.score_ids(sequences)
            done = time.perf_counter()
            key = f"{dtype} ({str(scorer.model.dtype).removeprefix('torch.')})"
            per_second[key] = round(replies / (done - start), 1)
            time_split[key] = where_time_goes(scorer, sequences, tokenised - start, done - tokenised)
    return {"backbone": backbone, "pairs_measured": pairs, "load_s": round(load_seconds, 1),
            "train_s_per_1000_pairs": round(train_seconds / pairs * 1000, 1),
            "replies_scored": replies, "replies_per_s": per_second, "time_split": time_split}


def where_time_goes(scorer: RewardModelScorer, sequences: list[list[int]], tokenise_s: float,
                    forward_s: float) -> dict:
    """Tokens and matmul GFLOP a reply, the rate the forward passes reached, and the peak's ceiling."""
    tokens = sum(len(s) for s in sequences) / len(sequences)
    gflop = model_flops(scorer.model, tokens, 0) / 1e9
    peak = matmul_peak(scorer.model.dtype, scorer.model.device) / 1e9
    return {"tokens_per_reply": round(tokens, 1), "gflop_per_reply": round(gflop, 2),
            "tokenise_s": round(tokenise_s, 2), "forward_s": round(forward_s, 2),
            "gflop_per_s": round(gflop * len(sequences) / forward_s, 1), "peak_gflop_per_s": round(peak, 1),
            "ceiling_replies_per_s": round(peak / gflop, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["embedded:minilm", "embedded:smollm2-135m-instruct",
                                                           "embedded:smollm2-135m-instruct+lora"])
    parser.add_argument("--pairs", type=int, default=32, help="pairs trained per backbone (then scaled to 1,000)")
    parser.add_argument("--replies", type=int, default=128, help="replies scored per backbone")
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=8, help="training pairs per step")
    parser.add_argument("--train-layers", type=int, help="full fine-tuning: train only the top k layers + head")
    parser.add_argument("--contexts", type=Path, help="a run's contexts.jsonl for realistic histories")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "auto"],
                        help="number types to score in (auto: bfloat16 where the hardware has it)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = RewardModelSection(max_length=args.max_length, batch_size=args.batch_size,
                                 train_layers=args.train_layers)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}; max_length {args.max_length}, "
          f"training batch {args.batch_size} pairs, scoring batch {settings.score_batch_size}, "
          f"layers trained: {'all' if args.train_layers is None else f'top {args.train_layers} + head'}")
    results = [measure(b, args.pairs, args.replies, settings, args.contexts, args.dtypes) for b in args.backbones]
    print(f"\n{'backbone':<40}{'load s':>8}{'train s / 1000 pairs':>22}  replies / s")
    for r in results:
        rates = ", ".join(f"{v} in {k}" for k, v in r["replies_per_s"].items())
        print(f"{r['backbone']:<40}{r['load_s']:>8}{r['train_s_per_1000_pairs']:>22}  {rates}")
    print(f"(training measured on {args.pairs} pairs, one epoch, and scaled linearly)")
    print(f"\nwhere scoring's time goes\n{'backbone, number type':<52}{'tokens':>8}{'GFLOP':>7}{'tokenise s':>12}"
          f"{'forward s':>11}{'GFLOP/s':>9}{'peak':>7}{'ceiling replies/s':>19}")
    for r in results:
        for key, t in r["time_split"].items():
            print(f"{r['backbone'] + ', ' + key:<52}{t['tokens_per_reply']:>8}{t['gflop_per_reply']:>7}"
                  f"{t['tokenise_s']:>12}{t['forward_s']:>11}{t['gflop_per_s']:>9}{t['peak_gflop_per_s']:>7}"
                  f"{t['ceiling_replies_per_s']:>19}")
    print("(GFLOP: the matrix products a reply, attention scores left out; ceiling: the replies a second the "
          "matmul peak would allow if they were all that took time)")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
