"""Recall and precision of the safety layer on the frozen hold-out, and its false-alarm rate on ESConv
seeker turns that no part of the layer was trained or tuned on (the *test* split).

Seven hold-outs, each frozen by hash in ``<name>.frozen.json`` beside it; this script is their only
reader, and it refuses a file whose hash differs. ``safety_holdout.jsonl`` (194 messages) was written
before the classifier was trained; ``safety_holdout_v2.jsonl`` (240 messages) and ``_v3`` to ``_v7``
(320 messages each) were each written later by someone who had not read the detector, its
lexicon, its dev set or the earlier hold-outs, and frozen before any detector was scored on it.
Nothing was tuned on any of them: the classifier and its thresholds come from the dev set and ESConv
train/valid (rlff_esc/safety/train.py). Once a hold-out's misses have been read it is no longer blind;
the newest one is the default.

Five rows: the lexicon alone, the fine-tuned classifier alone, their union (what the layer does), and
for comparison the head over frozen MiniLM vectors alone and with the lexicon. ESConv seeker turns are
counted as negatives by assumption; ESConv has some real disclosures, so the flagged turns are printed
for a person to read.

    python benchmarks/safety_eval.py [--holdout FILE] [--esconv DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rlff_esc.data.splits import sha256_file
from rlff_esc.safety.classifier import CrisisClassifier
from rlff_esc.safety.language import is_english
from rlff_esc.safety.layer import SafetyLayer
from rlff_esc.safety.train import esconv_seeker_turns, read_labelled

ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = ROOT / "benchmarks" / "data" / "safety_holdout_v7.jsonl"
ESCONV = ROOT.parent / "shared" / "data" / "esconv"


def metrics(predicted: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(predicted, gold))
    fp = sum(p and not g for p, g in zip(predicted, gold))
    fn = sum(g and not p for p, g in zip(predicted, gold))
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None, "tp": tp, "fp": fp, "fn": fn, "n": len(gold)}


def check_frozen(path: Path) -> dict:
    """The hold-out's freezing record; exits when the file's hash is not the frozen one."""
    frozen = path.with_name(path.stem + ".frozen.json")
    record = json.loads(frozen.read_text())
    actual = sha256_file(path)
    if actual != record["sha256"]:
        sys.exit(f"{path}: sha256 {actual} differs from the frozen {record['sha256']} ({frozen}); "
                 f"the hold-out must not change after freezing")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--esconv", type=Path, default=ESCONV, help="processed ESConv folder (its test.txt is read)")
    ap.add_argument("--holdout", type=Path, default=HOLDOUT, help="a frozen hold-out (default: the newest)")
    ap.add_argument("--out", type=Path, help="default runs/safety_eval/<hold-out name>.json")
    args = ap.parse_args()
    out = args.out or ROOT / "runs" / "safety_eval" / f"{args.holdout.stem}.json"

    frozen = check_frozen(args.holdout)
    rows = read_labelled(args.holdout)
    esconv = esconv_seeker_turns(args.esconv, "test") if (args.esconv / "test.txt").exists() else []
    if not esconv:
        print(f"ESConv not found at {args.esconv}: reporting the hold-out only")
    layer = SafetyLayer()
    texts = [r.text for r in rows] + esconv
    start = time.perf_counter()
    lexicon = [layer.lexicon.crisis(t) is not None for t in texts]
    scores = layer.classifier.score(texts)
    seconds = time.perf_counter() - start
    classifier = [s is not None and s.crisis >= layer.classifier.threshold for s in scores]
    frozen_encoder = CrisisClassifier(finetuned=False)
    head_only = [s is not None and s.crisis >= frozen_encoder.threshold for s in frozen_encoder.score(texts)]
    n = len(rows)
    gold = [r.label == "crisis" for r in rows]
    results = {"holdout_sha256": frozen["sha256"], "frozen_on": frozen["frozen_on"],
               "threshold": layer.classifier.threshold, "frozen_encoder_threshold": frozen_encoder.threshold,
               "holdout": n, "holdout_crisis": sum(gold),
               "esconv_test_turns": len(esconv), "ms_per_message": round(1000 * seconds / len(texts), 2),
               "not_english": {"holdout": sum(not is_english(t) for t in texts[:n]),
                               "esconv_test": sum(not is_english(t) for t in esconv)},
               "rows": {}}
    print(f"hold-out {args.holdout.name}: sha256 {frozen['sha256']} (frozen {frozen['frozen_on']}), "
          f"{n} messages ({sum(gold)} crisis); ESConv test seeker turns: {len(esconv)}; "
          f"threshold {layer.classifier.threshold}")
    for name, pred in (("lexicon", lexicon), ("frozen-encoder classifier", head_only),
                       ("frozen-encoder union", [a or b for a, b in zip(lexicon, head_only)]),
                       ("classifier", classifier), ("union", [a or b for a, b in zip(lexicon, classifier)])):
        kinds = sorted({r.kind for r in rows})
        by_kind = {}
        for kind in kinds:
            idx = [i for i, r in enumerate(rows) if r.kind == kind]
            crisis = [i for i in idx if gold[i]]
            calm = [i for i in idx if not gold[i]]
            by_kind[kind] = {"caught": f"{sum(pred[i] for i in crisis)}/{len(crisis)}" if crisis else None,
                             "false_alarms": f"{sum(pred[i] for i in calm)}/{len(calm)}" if calm else None}
        flagged = [t for t, p in zip(esconv, pred[n:]) if p]
        results["rows"][name] = {
            "holdout": metrics(pred[:n], gold),
            "esconv_false_alarm_rate": round(len(flagged) / len(esconv), 4) if esconv else None,
            "esconv_flagged": len(flagged), "by_kind": by_kind,
            "missed": [rows[i].text for i in range(n) if gold[i] and not pred[i]],
            "false_alarms": [rows[i].text for i in range(n) if pred[i] and not gold[i]],
        }
        r = results["rows"][name]
        h = r["holdout"]
        rate = f"{100 * r['esconv_false_alarm_rate']:.2f}% ({len(flagged)}/{len(esconv)})" if esconv else "n/a"
        print(f"\n[{name}] hold-out recall {h['recall']} precision {h['precision']} (TP {h['tp']} FP {h['fp']} "
              f"FN {h['fn']}); ESConv test false alarms {rate}")
        print("   by kind: " + "; ".join(f"{k} {v['caught'] or ''}{' FA ' + v['false_alarms'] if v['false_alarms'] else ''}"
                                         for k, v in by_kind.items()))
        if name == "union":
            for t in r["missed"]:
                print(f"   missed: {t[:150]}")
            for t in r["false_alarms"]:
                print(f"   false alarm: {t[:150]}")
            print(f"   ESConv test turns flagged, for review ({len(flagged)}):")
            for t in flagged[:30]:
                print(f"      {t[:150]}")
    print(f"\nnot English (unscreened): hold-out {results['not_english']['holdout']}, "
          f"ESConv test {results['not_english']['esconv_test']}/{len(esconv)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"{len(texts)} messages scored in {seconds:.1f} s; results in {out}")


if __name__ == "__main__":
    main()
