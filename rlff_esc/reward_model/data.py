"""Reward-model examples from ``trajectories.jsonl`` (the simulate stage's records) and ``contexts.jsonl``.

Every distinct (context, reply) becomes one :class:`Item` whose reward is the mean of the simulated
reward named by ``simulate.reward`` over its rollouts (several seeds of one candidate are averaged,
which lowers the noise of the simulation). Records whose reward is null are skipped and counted.
Pairwise examples: within one context, every two items whose rewards differ by more than a threshold
give (chosen, rejected) with the gap as margin. The held-out split is by dialogue (``case_id``): a
dialogue's contexts are all on one side, so no context, and no near-duplicate context from the same
conversation, is in both train and held-out.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from rlff_esc.data.prepare import read_contexts
from rlff_esc.data.schema import Turn
from rlff_esc.errors import DataError, RlffError
from rlff_esc.jsonl import read_jsonl

REWARDS = ("final", "success", "improvement")


@dataclass
class Item:
    """One reply to one context, with its simulated outcome (averaged over rollouts)."""

    context_id: str
    case_id: str
    history: list[Turn]
    reply: str
    reward: float
    success: float | None  # fraction of rollouts that succeeded; None when no rollout reported it
    rollouts: int


@dataclass
class Pair:
    chosen: int  # indices into the item list the pair was built from
    rejected: int
    margin: float


def _field(record: dict, name: str, kind, path: Path, line: int):
    value = record.get(name)
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        found = "missing" if name not in record else f"found {type(value).__name__}"
        raise DataError(path, line, name, f"expected {expected}, {found}")
    return value


def load_items(trajectories: Path, contexts: Path, reward: str = "final") -> tuple[list[Item], Counter]:
    """Read trajectories into items; returns the items and a Counter of skipped records by reason."""
    if reward not in REWARDS:
        raise RlffError(f"simulate.reward: {reward!r} is not one of {', '.join(REWARDS)}")
    for path, stage in ((trajectories, "rlff-esc simulate"), (contexts, "rlff-esc data prepare")):
        if not path.exists():
            raise RlffError(f"{path} not found: run `{stage}` first")
    by_id = {c.id: c for c in read_contexts(contexts)}
    groups: dict[tuple[str, str], list[tuple[float, float | None]]] = defaultdict(list)
    case_of: dict[str, str] = {}
    skipped: Counter = Counter()
    for line, record in read_jsonl(trajectories):
        context_id = _field(record, "context_id", str, trajectories, line)
        reply = _field(record, "reply", str, trajectories, line)
        rewards = _field(record, "rewards", dict, trajectories, line)
        if context_id not in by_id:
            raise DataError(trajectories, line, "context_id", f"{context_id!r} is not in {contexts}")
        value = rewards.get(reward)
        if value is None:
            skipped[f"reward '{reward}' is null"] += 1
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(trajectories, line, f"rewards.{reward}", f"expected a number, found {value!r}")
        if not reply.strip():
            skipped["empty reply"] += 1
            continue
        success = rewards.get("success")
        if success is not None and (isinstance(success, bool) or not isinstance(success, (int, float))):
            raise DataError(trajectories, line, "rewards.success", f"expected 0 or 1, found {success!r}")
        case_of[context_id] = record.get("case_id") or by_id[context_id].case_id
        groups[(context_id, reply.strip())].append((float(value), None if success is None else float(success)))
    items = []
    for (context_id, reply), outcomes in groups.items():
        successes = [s for _, s in outcomes if s is not None]
        items.append(Item(context_id=context_id, case_id=case_of[context_id], history=by_id[context_id].history,
                          reply=reply, reward=sum(r for r, _ in outcomes) / len(outcomes),
                          success=sum(successes) / len(successes) if successes else None,
                          rollouts=len(outcomes)))
    return items, skipped


def build_pairs(items: list[Item], margin_threshold: float) -> list[Pair]:
    """Within each context, every two items whose rewards differ by more than the threshold."""
    by_context: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_context[item.context_id].append(i)
    pairs = []
    for indices in by_context.values():
        for a, i in enumerate(indices):
            for j in indices[a + 1:]:
                gap = items[i].reward - items[j].reward
                if abs(gap) > margin_threshold:
                    pairs.append(Pair(i, j, gap) if gap > 0 else Pair(j, i, -gap))
    return pairs


def split_by_dialogue(items: list[Item], heldout_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Hold out a random ``heldout_fraction`` of the dialogues (at least one; at least one kept)."""
    cases = sorted({item.case_id for item in items})
    if len(cases) < 2:
        raise RlffError(f"the trajectories cover {len(cases)} dialogue(s); a held-out split by dialogue needs "
                        "at least 2 (simulate more contexts)")
    random.Random(seed).shuffle(cases)
    n_heldout = min(len(cases) - 1, max(1, round(heldout_fraction * len(cases))))
    heldout = set(cases[:n_heldout])
    return ([item for item in items if item.case_id not in heldout],
            [item for item in items if item.case_id in heldout])
