"""Every evaluated system against one: ``evaluate.compare_to`` (the trained policy by default), or
``base`` when that system was not evaluated; no paired tests when neither was.

All systems meet the same cases with the same seeker draws and answer the same test contexts, so each
difference (the row's system minus the compared one) is a paired bootstrap over those items.
"""

from __future__ import annotations

import logging

from rlff_esc.config import Config
from rlff_esc.evaluate import judge as judging
from rlff_esc.evaluate.interactive import outcome_statistics
from rlff_esc.evaluate.quality import quality_statistics
from rlff_esc.jsonl import read_jsonl
from rlff_esc.stats import paired_test

log = logging.getLogger(__name__)

BASELINE = "base"


def compared_system(config: Config, names: list[str]) -> str | None:
    """``evaluate.compare_to`` when it was evaluated, else ``base`` when that was, else None."""
    return next((name for name in (config.evaluate.compare_to, BASELINE) if name in names), None)


def _load_outputs(config: Config, name: str) -> tuple[list[dict], list[dict]]:
    folder = config.paths.eval_system(name)
    read = lambda f: [obj for _, obj in read_jsonl(folder / f)] if (folder / f).exists() else []  # noqa: E731
    return read("transcripts.jsonl"), read("replies.jsonl")


def paired_tests(config: Config, names: list[str], reference: str) -> dict:
    """Each system against ``reference`` on the same cases and contexts: SR, AvgT, reward, repetition,
    every quality metric and the judge's overall rating."""
    ev, boot = config.evaluate, {"samples": config.evaluate.bootstrap_samples, "seed": config.seed + 1}
    ref_t, ref_r = _load_outputs(config, reference)
    ref_stats = _all_statistics(ev.max_turns, ref_t, ref_r)
    tests = {}
    for name in names:
        if name == reference:
            continue
        sys_t, sys_r = _load_outputs(config, name)
        if [t["case_id"] for t in sys_t] != [t["case_id"] for t in ref_t] or \
                [r["context_id"] for r in sys_r] != [r["context_id"] for r in ref_r]:
            log.warning("%s: cases or contexts differ from %s's; no paired test", name, reference)
            continue
        sys_stats = _all_statistics(ev.max_turns, sys_t, sys_r)
        tests[name] = {metric: paired_test(stat, ref_stats[metric][0], n, **boot)
                       for metric, (stat, n) in sys_stats.items()
                       if metric in ref_stats and not metric.startswith("SR@")}
    return tests


def _all_statistics(max_turns: int, transcripts: list[dict], records: list[dict]) -> dict:
    stats = {k: (s, len(transcripts)) for k, s in outcome_statistics(transcripts, max_turns).items()}
    if records:
        stats.update({k: (s, len(records)) for k, s in quality_statistics(records).items()})
        if any(r.get("judge") for r in records):
            stats["judge_overall"] = (judging.judge_statistics(records)["overall"], len(records))
    return stats


def combine(config: Config, evaluated: dict, unavailable: dict) -> dict:
    """All systems' metrics (``base`` first), who played the agents, and the paired tests against the
    system named by ``compared_to`` (None: no paired tests)."""
    evaluated = dict(sorted(evaluated.items(), key=lambda item: item[0] != BASELINE))
    identity = next((m["agents"] for m in evaluated.values() if m.get("agents")), {})
    reference = compared_system(config, list(evaluated))
    return {"systems": evaluated, "unavailable": unavailable, "agents": identity, "compared_to": reference,
            "paired_tests": paired_tests(config, list(evaluated), reference) if reference else {},
            "max_turns": config.evaluate.max_turns, "bootstrap_samples": config.evaluate.bootstrap_samples}
