"""Response quality on the run's test contexts, against the gold supporter reply.

BLEU-1/2/4 are sacrebleu's corpus BLEU with the maximum n-gram order set to 1, 2 and 4 (13a
tokenisation, exponential smoothing), reported 0–100; ROUGE-L is the F-measure of rouge_score
(0–100); Distinct-n is the share of distinct n-grams among all n-grams of a system's replies (0–100,
lower-cased words); cosine is the MiniLM embedding similarity of reply and gold reply; length is the
mean number of words. All offline.

BLEU and Distinct are corpus-level, so their bootstrap statistics recompute them from per-reply
parts (n-gram match counts, n-gram lists) for each resample.
"""

from __future__ import annotations

import re

import numpy as np

from rlff_esc.data.schema import Context
from rlff_esc.evaluate.interactive import turn_seed
from rlff_esc.stats import Statistic, mean_of

BLEU_ORDERS = (1, 2, 4)
QUALITY_METRICS = ("BLEU-1", "BLEU-2", "BLEU-4", "ROUGE-L", "Distinct-1", "Distinct-2", "cosine", "length")


def generate_replies(system, contexts: list[Context], *, seed: int) -> list[dict]:
    """One reply per context (greedy, all in one call), with the system's notes, as records for
    ``replies.jsonl``."""
    replies = system.respond([c.history for c in contexts], [turn_seed(seed, c.id, 0, "quality") for c in contexts])
    return [{"context_id": c.id, "reply": reply.text, "gold": c.gold_reply, "gold_strategy": c.gold_strategy,
             "notes": reply.note} for c, reply in zip(contexts, replies)]


def add_similarity(records: list[dict], encoder) -> None:
    """MiniLM cosine of each reply with its gold reply, and ROUGE-L, stored per record."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    replies = encoder.encode([r["reply"] for r in records], batch_size=32, normalize_embeddings=True,
                             show_progress_bar=False)
    golds = encoder.encode([r["gold"] for r in records], batch_size=32, normalize_embeddings=True,
                           show_progress_bar=False)
    for r, a, b in zip(records, replies, golds):
        r["cosine"] = float(np.dot(a, b))
        r["rouge_l"] = 100 * scorer.score(r["gold"], r["reply"])["rougeL"].fmeasure


def words(text: str) -> list[str]:
    return re.findall(r"\w+(?:'\w+)?|[^\w\s]", text.lower())


def _bleu(order: int, replies: list[str], golds: list[str]) -> Statistic:
    from sacrebleu.metrics import BLEU

    bleu = BLEU(max_ngram_order=order)
    # sacrebleu's own per-segment statistics (what its paired bootstrap uses): hyp_len, ref_len,
    # correct n-grams per order, total n-grams per order.
    parts = np.array(bleu._extract_corpus_statistics(replies, [golds]), dtype=float)

    def statistic(idx: np.ndarray) -> np.ndarray:
        return np.array([bleu._compute_score_from_stats(row.astype(int).tolist()).score
                         for row in parts[idx].sum(1)])

    return statistic


def _distinct(n: int, replies: list[str]) -> Statistic:
    grams = [list(zip(*[words(r)[i:] for i in range(n)])) for r in replies]

    def statistic(idx: np.ndarray) -> np.ndarray:
        out = []
        for row in idx:
            pool = [g for i in row for g in grams[i]]
            out.append(100 * len(set(pool)) / len(pool) if pool else np.nan)
        return np.array(out)

    return statistic


def quality_statistics(records: list[dict]) -> dict[str, Statistic]:
    """Bootstrap statistics of every quality metric over the contexts (needs :func:`add_similarity`)."""
    replies, golds = [r["reply"] for r in records], [r["gold"] for r in records]
    stats = {f"BLEU-{n}": _bleu(n, replies, golds) for n in BLEU_ORDERS}
    stats["ROUGE-L"] = mean_of([r["rouge_l"] for r in records])
    stats["Distinct-1"], stats["Distinct-2"] = _distinct(1, replies), _distinct(2, replies)
    stats["cosine"] = mean_of([r["cosine"] for r in records])
    stats["length"] = mean_of([len(r["reply"].split()) for r in records])
    return stats
