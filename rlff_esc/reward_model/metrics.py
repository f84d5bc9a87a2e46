"""Held-out metrics of a scorer against the simulated reward, and the trivial scorers beside it.

* ``pairwise_accuracy``: over held-out pairs (same margin threshold as training), the share where the
  chosen reply scores higher (a tie counts one half), with a 95% bootstrap interval over contexts.
* ``spearman`` / ``kendall``: rank correlation of score and reward over all held-out items;
  ``kendall_within_context``: the mean Kendall tau inside each context, which is what GRPO uses
  (it compares completions of one prompt).
* ``auc_success``: ROC AUC of the score for the ``success`` label (a reply whose rollouts mostly
  succeeded counts as a success); null when the held-out set has only one class.

Trivial scorers: the reply's length in words, and the MiniLM cosine similarity between the reply and
the last seeker turn. A reward model that does not beat them has learned no more than they know.
"""

from __future__ import annotations

import math
from collections import defaultdict

from scipy.stats import kendalltau, spearmanr

from rlff_esc.reward_model.data import Item, Pair
from rlff_esc.stats import auc, interval, ratio_of


def rounded(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _pair_hits(pairs: list[Pair], scores: list[float]) -> list[float]:
    return [1.0 if scores[p.chosen] > scores[p.rejected] else 0.5 if scores[p.chosen] == scores[p.rejected]
            else 0.0 for p in pairs]


def pairwise_accuracy(pairs: list[Pair], scores: list[float]) -> float | None:
    hits = _pair_hits(pairs, scores)
    return sum(hits) / len(hits) if hits else None


def bootstrap_interval(items: list[Item], pairs: list[Pair], scores: list[float], samples: int = 1000,
                       seed: int = 0) -> list[float] | None:
    """95% interval of pairwise accuracy, resampling contexts (pairs of one context are not independent)."""
    by_context: dict[str, list[float]] = defaultdict(list)
    for pair, hit in zip(pairs, _pair_hits(pairs, scores)):
        by_context[items[pair.chosen].context_id].append(hit)
    groups = list(by_context.values())
    if len(groups) < 2:
        return None
    ci = interval(ratio_of([sum(g) for g in groups], [len(g) for g in groups]), len(groups), samples=samples,
                  seed=seed)
    return [round(ci["low"], 4), round(ci["high"], 4)]


def kendall_within_context(items: list[Item], scores: list[float]) -> float | None:
    by_context: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_context[item.context_id].append(i)
    taus = []
    for indices in by_context.values():
        rewards = [items[i].reward for i in indices]
        if len(indices) > 1 and len(set(rewards)) > 1 and len({scores[i] for i in indices}) > 1:
            taus.append(kendalltau([scores[i] for i in indices], rewards).statistic)
    return sum(taus) / len(taus) if taus else None


def evaluate_scores(items: list[Item], pairs: list[Pair], scores: list[float]) -> dict:
    """All metrics of one scorer on one item set (``pairs`` index into ``items``)."""
    rewards = [item.reward for item in items]
    constant = len(set(scores)) < 2 or len(set(rewards)) < 2
    labelled = [(s, item.success >= 0.5) for s, item in zip(scores, items) if item.success is not None]
    classes = {label for _, label in labelled}
    return {
        "pairwise_accuracy": rounded(pairwise_accuracy(pairs, scores)),
        "pairwise_accuracy_ci95": bootstrap_interval(items, pairs, scores),
        "spearman": None if constant else rounded(spearmanr(scores, rewards).statistic),
        "kendall": None if constant else rounded(kendalltau(scores, rewards).statistic),
        "kendall_within_context": rounded(kendall_within_context(items, scores)),
        "auc_success": rounded(auc([s for s, y in labelled if y], [s for s, y in labelled if not y]))
        if len(classes) == 2 else None,
    }


def length_scores(items: list[Item]) -> list[float]:
    return [float(len(item.reply.split())) for item in items]


def similarity_scores(items: list[Item], encoder) -> list[float]:
    """Cosine similarity (MiniLM) between each reply and the last seeker turn of its history."""
    last_seeker = [next((t.text for t in reversed(item.history) if t.speaker == "seeker"), "") for item in items]
    a = encoder.encode(last_seeker, normalize_embeddings=True, convert_to_tensor=True, show_progress_bar=False)
    b = encoder.encode([item.reply for item in items], normalize_embeddings=True, convert_to_tensor=True,
                       show_progress_bar=False)
    return (a * b).sum(dim=-1).tolist()


COLUMNS = ("pairwise_accuracy", "spearman", "kendall", "kendall_within_context", "auc_success")


def format_table(metrics: dict) -> str:
    """The held-out metrics of the reward model and the trivial scorers as a small text table."""
    held = metrics["heldout"]
    header = f"{'scorer':<22}" + "".join(f"{c:>24}" for c in COLUMNS)
    lines = [f"held-out: {held['items']} replies, {held['pairs']} pairs, {held['contexts']} contexts, "
             f"{held['dialogues']} dialogues", header, "-" * len(header)]
    for name, values in metrics["scorers"].items():
        cells = []
        for column in COLUMNS:
            value = values.get(column)
            text = "-" if value is None else f"{value:+.3f}" if column != "pairwise_accuracy" else f"{value:.3f}"
            if column == "pairwise_accuracy" and values.get("pairwise_accuracy_ci95"):
                low, high = values["pairwise_accuracy_ci95"]
                text += f" [{low:.2f},{high:.2f}]"
            cells.append(f"{text:>24}")
        lines.append(f"{name:<22}" + "".join(cells))
    return "\n".join(lines)
