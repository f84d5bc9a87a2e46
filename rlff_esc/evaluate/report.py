"""``<run>/report.md`` and its PNG plots, from the combined evaluation metrics.

One function per section. Every number is shown with its 95% bootstrap interval; differences from the
compared system (``evaluate.compare_to``, else ``base``) carry the paired bootstrap p-value. The agents'
identities are printed beside the tables they produced, with a caveat where the critic validity
measurements (README, "The critic") say the numbers carry no signal.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlff_esc.config import Config  # noqa: E402
from rlff_esc.evaluate.comparison import BASELINE  # noqa: E402
from rlff_esc.evaluate.judge import ASPECTS  # noqa: E402
from rlff_esc.evaluate.quality import QUALITY_METRICS  # noqa: E402
from rlff_esc.evaluate.references import REFERENCE_SYSTEMS  # noqa: E402
from rlff_esc.jsonl import iter_jsonl  # noqa: E402

log = logging.getLogger(__name__)

EMBEDDED_LLM_CAVEAT = (
    "**Caveat:** success here is judged by the embedded SmolLM2-135M as the PPDPP critic. Measured "
    "against ESConv's human before/after reports it has no signal (Spearman −0.00 with reported "
    "improvement; it rates failed conversations above kept ones, AUC 0.26; see the README, "
    "\"The critic\"), so these SR and AvgT figures say nothing about the systems. Use the learned critic "
    "(`evaluate.critic.kind: learned`) or a strong LLM critic behind an endpoint.")
EMBEDDED_JUDGE_CAVEAT = (
    "**Caveat:** the judge is the embedded SmolLM2-135M, far too small to rate support quality; its "
    "ratings show that the pipeline runs, not how good the replies are. Point `models.judge` at a "
    "strong model for ratings that mean something.")


# The goal-completion table's metrics: key, column heading, digits shown.
GOAL_METRICS = [("SR", "SR", 3), ("AvgT", "AvgT", 2), ("reward", "mean critic reward", 3),
                ("repetition", "repetition", 2)]


def fmt(cell: dict | None, digits: int = 3) -> str:
    if not cell or cell.get("value") is None:
        return "–"
    return f"{cell['value']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


def fmt_test(test: dict | None, digits: int = 3) -> str:
    if not test or test.get("delta") is None:
        return "–"
    return f"{test['delta']:+.{digits}f} (p={test['p']:.3f})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def write_report(config: Config, combined: dict) -> Path:
    """``report.md``: the sections in order, each from its own function."""
    sections = [header_lines(config, combined), goal_completion_lines(config, combined),
                sr_by_turn_lines(config, combined), ladder_lines(combined["systems"]),
                quality_lines(combined), judge_lines(config, combined), planner_lines(combined),
                training_lines(config), files_lines(config)]
    path = config.paths.report
    path.write_text("\n".join(line for section in sections for line in section))
    return path


def _versus(combined: dict) -> str:
    """The column heading's name of the system the others are tested against."""
    return f"vs {combined['compared_to']}"


def comparison_note(config: Config, combined: dict) -> str:
    """Which system the paired tests are against, and why when it is not ``evaluate.compare_to``."""
    wanted, reference = config.evaluate.compare_to, combined["compared_to"]
    if reference is None:
        return (f"no paired tests: neither `{wanted}` (`evaluate.compare_to`) nor `{BASELINE}` was "
                "evaluated.")
    note = f"Δ and p: the row's system minus `{reference}`, paired bootstrap"
    if reference != wanted:
        note += f" (`{wanted}`, `evaluate.compare_to`, was not evaluated, so `{reference}` instead)"
    return note + "."


def header_lines(config: Config, combined: dict) -> list[str]:
    """The title, the protocol and agents, and the systems that could not be evaluated."""
    systems, agents, run = combined["systems"], combined["agents"], config.run_path
    lines = [f"# RLFF-ESC evaluation: {config.name}", ""]
    first = next(iter(systems.values()), None)
    if first:
        lines += [f"- Cases: {first['cases']} from {first['cases_source']}; at most {combined['max_turns']} "
                  f"supporter turns; success when the critic's mean mapped score > {agents.get('critic_threshold')}.",
                  f"- Seeker: `{agents.get('seeker')}`; critic: `{agents.get('critic')}` ({agents.get('critic_kind')}); "
                  f"judge: `{agents.get('judge')}`.",
                  f"- Response quality on {first['contexts']} test contexts of `{run / 'contexts.jsonl'}`.",
                  f"- Every system reads the last {config.policy.max_history_turns} turns of the dialogue "
                  "(`policy.max_history_turns`, the window the trained policies learnt on).",
                  f"- Intervals: 95% bootstrap over cases/contexts ({combined['bootstrap_samples']} resamples, "
                  f"seed {config.seed}); {comparison_note(config, combined)}", ""]
    lines += [f"- Not evaluated: **{name}**: {why}" for name, why in combined.get("unavailable", {}).items()]
    return lines + [""]


def goal_completion_lines(config: Config, combined: dict) -> list[str]:
    """The main table: SR, AvgT, mean critic reward and repetition with their intervals, and each one's
    paired difference from the compared system."""
    systems, tests = combined["systems"], combined["paired_tests"]
    tested = GOAL_METRICS if combined["compared_to"] else []
    lines = ["## Goal completion (interactive, PPDPP protocol)", ""]
    if combined["agents"].get("critic_kind") == "llm" and config.models.critic.model.startswith("embedded:"):
        lines += [EMBEDDED_LLM_CAVEAT, ""]
    rows = []
    for name, m in systems.items():
        i, t = m["interactive"], tests.get(name, {})
        rows.append([name] + [fmt(i.get(k), digits) for k, _, digits in GOAL_METRICS] +
                    [fmt_test(t.get(k), digits) for k, _, digits in tested] +
                    [str(m.get("empty_replies", 0)), str(m.get("safety_flags", 0)),
                     "–" if m.get("well_formed") is None else f"{m['well_formed']:.2f}"])
    lines += _table(["system"] + [label for _, label, _ in GOAL_METRICS] +
                    [f"Δ{k} {_versus(combined)} (p)" for k, _, _ in tested] +
                    ["empty replies", "safety flags", "think format ok"], rows)
    return lines + ["", "Repetition: per dialogue, the share of the system's turns after its first that repeat "
                    "one of its earlier turns (equal, or a difflib ratio ≥ 0.8 once lower-cased and without "
                    "punctuation); mean over the dialogues with at least two system turns.", ""]


def sr_by_turn_lines(config: Config, combined: dict) -> list[str]:
    """SR within each turn, as a table and as ``sr_by_turn.png``."""
    systems, max_turns = combined["systems"], combined["max_turns"]
    rows = [[name] + [fmt(m["interactive"].get(f"SR@{k}"), 2) for k in range(1, max_turns + 1)]
            for name, m in systems.items()]
    plot = plot_sr_by_turn(systems, max_turns, config.run_path / "sr_by_turn.png")
    return (["SR within each turn (cumulative), 95% intervals:", ""] +
            _table(["system"] + [f"@{k}" for k in range(1, max_turns + 1)], rows) +
            ["", f"![SR by turn]({plot.name})", ""])


def quality_lines(combined: dict) -> list[str]:
    """Reference metrics against the gold reply, and their paired differences."""
    systems, tests = combined["systems"], combined["paired_tests"]
    if not any(m.get("quality") for m in systems.values()):
        return []
    lines = ["## Response quality (against the gold supporter reply)", "",
             "BLEU (sacrebleu), ROUGE-L and Distinct in 0–100; cosine: MiniLM; length: words. "
             "Distinct-n intervals lean low: a resample repeats replies, and repeats are never distinct.", ""]
    rows = [[name] + [fmt(m["quality"].get(k), 2) for k in QUALITY_METRICS]
            for name, m in systems.items() if m.get("quality")]
    lines += _table(["system"] + list(QUALITY_METRICS), rows)
    rows = [[name] + [fmt_test(t.get(k), 2) for k in QUALITY_METRICS] for name, t in tests.items()]
    if rows:
        lines += ["", f"Paired differences from `{combined['compared_to']}` (Δ, p):", ""]
        lines += _table(["system"] + [f"Δ{k} {_versus(combined)}" for k in QUALITY_METRICS], rows)
    return lines + [""]


def judge_lines(config: Config, combined: dict) -> list[str]:
    """The judge's ratings per aspect, the paired difference in its overall rating, and unparsed counts."""
    systems, tests = combined["systems"], combined["paired_tests"]
    if not any(m.get("judge") for m in systems.values()):
        return []
    lines = ["## Judge ratings (1–5)", "", f"Judge: `{combined['agents'].get('judge')}`.", ""]
    if config.models.judge.model.startswith("embedded:smollm2"):
        lines += [EMBEDDED_JUDGE_CAVEAT, ""]
    tested = combined["compared_to"] is not None
    rows = []
    for name, m in systems.items():
        if m.get("judge"):
            unparsed = sum(m.get("judge_unparsed", {}).values())
            total = m.get("judge_rated", 0) * len(ASPECTS)
            delta = [fmt_test(tests.get(name, {}).get("judge_overall"), 2)] if tested else []
            rows.append([name] + [fmt(m["judge"].get(k), 2) for k in ASPECTS] + delta + [f"{unparsed}/{total}"])
    delta = [f"Δoverall {_versus(combined)} (p)"] if tested else []
    lines += _table(["system"] + list(ASPECTS) + delta + ["unparsed"], rows)
    return lines + [""]


def planner_lines(combined: dict) -> list[str]:
    """The strategy planner's validation accuracy, when the ``strategy`` system was evaluated."""
    planner = combined["systems"].get("strategy", {}).get("identity", {}).get("planner_metrics")
    if not planner:
        return []
    return ["## Strategy planner", "",
            f"MiniLM + logistic regression on {planner.get('train_examples')} ESConv training contexts; "
            f"next-strategy accuracy on {planner.get('valid_examples')} validation contexts: "
            f"{planner.get('valid_accuracy')} (majority class: {planner.get('valid_majority_accuracy')}).", ""]


def training_lines(config: Config) -> list[str]:
    """The GRPO reward curves, when the run has a training log."""
    curves = plot_training(config.paths.policy / "train_log.jsonl", config.run_path / "training_rewards.png")
    return ["## Training", "", f"![training rewards]({curves.name})", ""] if curves else []


def files_lines(config: Config) -> list[str]:
    run = config.run_path
    return ["## Files", "", f"- combined metrics: `{run / 'eval' / 'metrics.json'}`",
            f"- per system: `{run / 'eval'}/<system>/` (transcripts.jsonl, replies.jsonl, metrics.json)", ""]


def ladder_checks(systems: dict) -> dict | None:
    """Whether SR and AvgT order the reference systems as they must (SR: dismissive < random_reply <
    retrieval, AvgT the reverse), and whether the 95% intervals of dismissive and retrieval overlap.
    None unless all three were evaluated."""
    if not all(name in systems for name in REFERENCE_SYSTEMS):
        return None
    sr, avgt = ([systems[n]["interactive"][metric] for n in REFERENCE_SYSTEMS] for metric in ("SR", "AvgT"))
    return {"SR_ordered": sr[0]["value"] < sr[1]["value"] < sr[2]["value"],
            "AvgT_ordered": avgt[0]["value"] > avgt[1]["value"] > avgt[2]["value"],
            "SR_intervals_overlap": _overlap(sr[0], sr[2]), "AvgT_intervals_overlap": _overlap(avgt[0], avgt[2])}


def _overlap(a: dict, b: dict) -> bool:
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def ladder_lines(systems: dict) -> list[str]:
    """The report's statement of :func:`ladder_checks`."""
    present = [n for n in REFERENCE_SYSTEMS if n in systems]
    if not present:
        return []
    lines = ["### Reference systems", "",
             "`dismissive` answers from a written list of brush-offs, `random_reply` with a random training "
             "supporter reply (fluent, off-topic), `retrieval` with the training reply whose conversation is "
             "nearest by MiniLM (human-written, on topic). Their quality is known, so SR must order them "
             "dismissive < random_reply < retrieval, and AvgT the reverse.", ""]
    checks = ladder_checks(systems)
    if checks is None:
        missing = ", ".join(f"`--system {n}`" for n in REFERENCE_SYSTEMS if n not in systems)
        return lines + [f"Evaluate the others too ({missing}) to check the order.", ""]
    for metric, sign, digits in (("SR", "<", 3), ("AvgT", ">", 2)):
        cells = [systems[n]["interactive"][metric] for n in REFERENCE_SYSTEMS]
        order = f" {sign} ".join(REFERENCE_SYSTEMS)
        values = ", ".join(f"{n} {fmt(c, digits)}" for n, c in zip(REFERENCE_SYSTEMS, cells))
        overlap = "overlap" if checks[f"{metric}_intervals_overlap"] else "do not overlap"
        ordered = "**yes**" if checks[f"{metric}_ordered"] else "**no**"
        lines.append(f"- {metric} orders them as it must ({order}): {ordered} "
                     f"({values}); the 95% intervals of dismissive and retrieval {overlap}.")
    if not (checks["SR_ordered"] and checks["AvgT_ordered"]) or checks["SR_intervals_overlap"]:
        lines += ["", "This protocol (seeker, critic and number of cases) does not separate support of known "
                  "quality, so the SR and AvgT of the other systems are no evidence of their quality either."]
    return lines + [""]


def plot_sr_by_turn(systems: dict, max_turns: int, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    turns = list(range(1, max_turns + 1))
    for name, m in systems.items():
        values = [m["interactive"][f"SR@{k}"]["value"] or 0.0 for k in turns]
        ax.plot(turns, values, marker="o", label=name)
    ax.set(xlabel="turn", ylabel="success rate (cumulative)", title="SR by turn", ylim=(-0.02, 1.02))
    ax.set_xticks(turns)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training(log_path: Path, path: Path) -> Path | None:
    """Reward curves from the GRPO log: every numeric key that names a reward (its mean, not its std)."""
    if not log_path.exists():
        return None
    rows = [obj for _, obj in iter_jsonl(log_path) if isinstance(obj, dict) and "step" in obj]
    keys = sorted({k for r in rows for k, v in r.items()
                   if "reward" in k and "std" not in k and isinstance(v, (int, float))})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        ax.plot(*zip(*points), marker=".", label=key)
    ax.set(xlabel="step", ylabel="reward", title="GRPO training rewards")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
