"""Plan how a batch of prompts computes each shared beginning once.

Simulation asks for much that repeats: the K candidates of a context have the same prompt; the
seeker's prompts for those candidates differ only after the context's history; the critic's prompts
for them share the conversation up to the candidate, and each is scored with four option texts. The
batch's prompts form a tree of shared beginnings (the trie of their token sequences, compressed), and
:func:`plan_prefixes` turns it into levels: level 0 computes the beginnings shared at the top, each
next level extends a cache row of the level before it by the tokens its rows share next, and the
caller finally runs each row's own remainder on top of the last level. Each shared stretch is
computed once, its key/value cache copied to the rows below it.

A shared stretch shorter than ``min_length`` tokens is not worth a level of its own (every level is a
forward pass, padded to its longest stretch): its rows compute it with what follows. ``limits[i]``
caps how many tokens of row i may be shared, so that the positions whose logits the caller needs
stay in the row's own remainder.

Each level's rows are padded to its longest; when their lengths differ widely, :func:`length_groups`
splits them into forward passes of rows of similar length.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Segment:
    """Tokens ``[start, end)`` of ``rows``, the same in each, computed once on top of the cache row
    ``parent`` of the level before (-1 at level 0). ``start == end``: the rows only carry the parent
    row on (they share nothing further at this level)."""
    rows: list[int]
    parent: int
    start: int
    end: int


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_prefixes(seqs: list[list[int]], limits: list[int], min_length: int = 8,
                  max_levels: int = 4) -> list[list[Segment]]:
    """Levels of shared segments for ``seqs`` (empty when nothing worth sharing)."""
    if not seqs:
        return []
    order = sorted(range(len(seqs)), key=seqs.__getitem__)  # rows sharing a beginning are neighbours
    shared = [min(common_prefix_length(seqs[a], seqs[b]), limits[a], limits[b]) for a, b in zip(order, order[1:])]

    def below(lo: int, hi: int, depth: int) -> list[tuple[int, int, int | None]]:
        """The runs of ``order[lo..hi]`` that share a worthwhile stretch after ``depth`` tokens, as
        (lo, hi, end); single rows as (i, i, None)."""
        if lo == hi:
            return [(lo, hi, None)]
        least = min(shared[lo:hi])  # every row of the run shares this many tokens
        if least - depth >= min_length:
            return [(lo, hi, least)]
        runs, start = [], lo  # split where neighbours share least: each part may share more
        for i in range(lo, hi):
            if shared[i] == least:
                runs.append((start, i))
                start = i + 1
        runs.append((start, hi))
        return [run for a, b in runs for run in below(a, b, depth)]

    levels: list[list[Segment]] = []
    pending = [(-1, lo, hi, end) for lo, hi, end in below(0, len(order) - 1, 0)]  # (parent, run, end)
    while len(levels) < max_levels and any(end is not None for *_, end in pending):
        level: list[Segment] = []
        carried: dict[int, int] = {}  # parent → its carrying segment at this level
        after = []
        for parent, lo, hi, end in pending:
            depth = levels[-1][parent].end if levels else 0
            rows = [order[i] for i in range(lo, hi + 1)]
            if end is None:  # shares nothing more: carry the parent's cache row on
                if parent not in carried:
                    carried[parent] = len(level)
                    level.append(Segment([], parent, depth, depth))
                level[carried[parent]].rows += rows
                after.append((carried[parent], lo, hi, None))
            else:
                after += [(len(level), a, b, e) for a, b, e in below(lo, hi, end)]
                level.append(Segment(rows, parent, depth, end))
        levels.append(level)
        pending = after
    return levels


def length_groups(lengths: list[int], group_cost: int) -> list[list[int]]:
    """Indices of ``lengths`` in groups to run as separate forward passes, each left-padded to its
    longest: the split of the rows sorted by length that computes least, counting rows × longest token
    slots per group and ``group_cost`` more for each group. Exact, by dynamic programming over the cut
    points. Empty rows (a level's rows that only carry their parent on) join the first group."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    empty = [i for i in order if lengths[i] == 0]
    order = order[len(empty):]
    best = [0] + [None] * len(order)  # best[j]: least cost of the first j sorted rows, cut at cut[j]
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(j):
            cost = best[i] + (j - i) * lengths[order[j - 1]] + group_cost
            if best[j] is None or cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(order)
    while j > 0:
        groups.append(order[cut[j]: j])
        j = cut[j]
    groups = groups[::-1] or [[]]
    return [empty + groups[0]] + groups[1:]
