"""Precision and recall of the safety layer on the labelled safety set, plus ESConv seeker turns as
negatives (read from the ESConv files at run time; none of their text is stored in the repo).

The set (tests/data/safety_set.jsonl) has three splits. ``dev`` (with ESConv *valid* seeker turns) is
where the threshold and margin were first chosen (``--grid``). ``test`` (with ESConv *test* seeker
turns) was measured once, blind, for the first version of the detector; its misses were then seen and
the lexicon extended, so it is a second dev split now. ``holdout`` was written after that first
report and before the extension, and is what the current detector is reported on (ESConv *test*
seeker turns again serve as its negatives). The prototypes and lexicon
(rlff_esc/serve/safety_prototypes.json) contain none of the set's messages.

ESConv seeker turns are counted as negatives by assumption; ESConv has some real mentions of
suicidal thoughts, so the flagged turns are printed for a person to read.

    python benchmarks/safety_eval.py --split holdout
    python benchmarks/safety_eval.py --split dev --grid
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rlff_esc.data.esconv import read_processed
from rlff_esc.serve.safety import CATEGORIES, SafetyLayer

ROOT = Path(__file__).resolve().parents[1]
SAFETY_SET = ROOT / "tests" / "data" / "safety_set.jsonl"
ESCONV = ROOT.parent / "shared" / "data" / "esconv"
ESCONV_FILE = {"dev": "valid.txt", "test": "test.txt", "holdout": "test.txt"}


def load_set(split: str, path: Path = SAFETY_SET) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["split"] == split]


def esconv_seeker_turns(folder: Path, split: str, limit: int | None = None) -> list[str]:
    """Distinct seeker turns of one ESConv split (dev → valid, test and holdout → test)."""
    cases = read_processed(folder / ESCONV_FILE[split], split=split).cases
    turns = list(dict.fromkeys(t.text for c in cases for t in c.turns if t.speaker == "seeker" and t.text.strip()))
    return turns[:limit] if limit else turns


def metrics(predicted: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(predicted, gold))
    fp = sum(p and not g for p, g in zip(predicted, gold))
    fn = sum(g and not p for p, g in zip(predicted, gold))
    return {"precision": tp / (tp + fp) if tp + fp else float("nan"), "recall": tp / (tp + fn) if tp + fn else
            float("nan"), "tp": tp, "fp": fp, "fn": fn, "n": len(gold)}


def decide(lexicon_hits: list[bool], scores, threshold: float, margin: float,
           use_lexicon: bool = True, use_prototypes: bool = True) -> list[bool]:
    out = []
    for lex, sentences in zip(lexicon_hits, scores):
        proto = any(s.crisis >= threshold and s.crisis - s.safe >= margin for s in sentences)
        out.append((use_lexicon and lex) or (use_prototypes and proto))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test", "holdout"], default="holdout")
    ap.add_argument("--esconv", type=Path, default=ESCONV, help="processed ESConv folder")
    ap.add_argument("--max-esconv", type=int, default=None, help="cap on ESConv seeker turns")
    ap.add_argument("--threshold", type=float, default=None, help="default: serve.safety.threshold")
    ap.add_argument("--margin", type=float, default=None, help="default: serve.safety.margin")
    ap.add_argument("--grid", action="store_true", help="print recall / false alarms over thresholds and margins")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default runs/safety_eval/<split>.json)")
    args = ap.parse_args()

    from rlff_esc.config import SafetyConfig

    defaults = SafetyConfig()
    threshold = defaults.threshold if args.threshold is None else args.threshold
    margin = defaults.margin if args.margin is None else args.margin
    layer = SafetyLayer(threshold=threshold, margin=margin)
    hand = load_set(args.split)
    esconv = esconv_seeker_turns(args.esconv, args.split, args.max_esconv) if args.esconv.exists() else []
    if not esconv:
        print(f"ESConv not found at {args.esconv}: reporting the hand-written set only")
    texts = [r["text"] for r in hand] + esconv
    gold = [r["label"] == "crisis" for r in hand] + [False] * len(esconv)
    start = time.perf_counter()
    lexicon_hits = [layer._lexicon(t) is not None for t in texts]
    scores = layer.prototype_scores(texts)
    seconds = time.perf_counter() - start
    n_hand = len(hand)

    if args.grid:
        print(f"{'threshold':>9} {'margin':>6} {'recall':>6} {'hand FP':>7} {'ESConv flagged':>14}")
        for t in (0.40, 0.45, 0.50, 0.55, 0.60, 0.65):
            for m in (-0.05, 0.0, 0.05, 0.10, 0.15):
                pred = decide(lexicon_hits, scores, t, m)
                hm = metrics(pred[:n_hand], gold[:n_hand])
                flagged = sum(pred[n_hand:])
                print(f"{t:9.2f} {m:6.2f} {hm['recall']:6.2f} {hm['fp']:7d} "
                      f"{flagged:6d} ({flagged / max(1, len(esconv)):.1%})")

    results = {"split": args.split, "threshold": threshold, "margin": margin, "hand_written": n_hand,
               "hand_crisis": sum(gold[:n_hand]), "esconv_turns": len(esconv),
               "seconds_per_1000_messages": round(1000 * seconds / len(texts), 2), "detectors": {}}
    for name, lex, proto in (("lexicon", True, False), ("prototypes", False, True), ("combined", True, True)):
        pred = decide(lexicon_hits, scores, threshold, margin, lex, proto)
        per_category = {}
        for cat in CATEGORIES:
            idx = [i for i, r in enumerate(hand) if r["category"] == cat]
            per_category[cat] = f"{sum(pred[i] for i in idx)}/{len(idx)}"
        results["detectors"][name] = {
            "hand_written": metrics(pred[:n_hand], gold[:n_hand]),
            "hand_written_plus_esconv": metrics(pred, gold),
            "esconv_flag_rate": sum(pred[n_hand:]) / len(esconv) if esconv else None,
            "recall_by_category": per_category,
            "missed": [hand[i]["text"] for i in range(n_hand) if gold[i] and not pred[i]],
            "false_alarms_hand": [hand[i]["text"] for i in range(n_hand) if pred[i] and not gold[i]],
        }
        r = results["detectors"][name]
        h, a = r["hand_written"], r["hand_written_plus_esconv"]
        print(f"\n[{name}] hand-written: precision {h['precision']:.2f} recall {h['recall']:.2f} "
              f"(TP {h['tp']} FP {h['fp']} FN {h['fn']}, n={h['n']}); with ESConv negatives: precision "
              f"{a['precision']:.2f} recall {a['recall']:.2f} (FP {a['fp']}, n={a['n']}); ESConv flag rate "
              f"{(r['esconv_flag_rate'] or 0):.1%}; recall by category {per_category}")
        for t in r["missed"]:
            print(f"   missed: {t}")
        for t in r["false_alarms_hand"]:
            print(f"   false alarm: {t}")
    combined = decide(lexicon_hits, scores, threshold, margin)
    flagged = [texts[i] for i in range(n_hand, len(texts)) if combined[i]]
    results["esconv_flagged"] = flagged
    print(f"\nESConv seeker turns flagged by the combined detector ({len(flagged)}), for manual review:")
    for t in flagged[:40]:
        print(f"   {t[:160]}")
    out = args.out or ROOT / "runs" / "safety_eval" / f"{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"\n{len(texts)} messages scored in {seconds:.1f} s; results in {out}")


if __name__ == "__main__":
    main()
