"""``rlff-esc evaluate``: every system through the PPDPP protocol and the quality metrics, then the report."""

from __future__ import annotations

from pathlib import Path

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load


def evaluate(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
             system: list[str] | None = typer.Option(
                 None, "--system", help="a system to evaluate (repeatable): base, base_reasoning, sft, strategy, "
                 "rlff_esc, dismissive, random_reply, retrieval (the reference systems), a name in evaluate.policies, "
                 "or name=path/to/model; default evaluate.systems"),
             cases: Path | None = typer.Option(None, "--cases", help="JSONL of cases (emotion_type, problem_type, "
                                               "situation) instead of the run's test split"),
             max_cases: int | None = typer.Option(None, "--max-cases", min=1, help="evaluate the first N cases"),
             force: bool = typer.Option(False, "--force", help="re-evaluate systems already evaluated")):
    """Write <run>/eval/<system>/ (transcripts, replies, metrics), <run>/eval/metrics.json and <run>/report.md."""
    from rlff_esc.evaluate.run import evaluate as run_evaluation

    cfg = load(config, set_)
    if cases is not None:
        cfg.evaluate.cases_file = str(cases.resolve())
    if max_cases is not None:
        cfg.evaluate.max_cases = max_cases
    combined = run_evaluation(cfg, systems=system, force=force)
    for name, m in combined["systems"].items():
        i = m["interactive"]
        typer.echo(f"{name:>16}  SR {i['SR']['value']:.3f} [{i['SR']['low']:.3f}, {i['SR']['high']:.3f}]  "
                   f"AvgT {i['AvgT']['value']:.2f} [{i['AvgT']['low']:.2f}, {i['AvgT']['high']:.2f}]")
    for name, why in combined["unavailable"].items():
        typer.secho(f"{name:>16}  not evaluated: {why}", fg=typer.colors.YELLOW)
    typer.echo(f"report: {combined['report']}")
