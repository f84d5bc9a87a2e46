"""``rlff-esc run``: the whole pipeline from one config (``--dry-run`` checks it and prints the plan)."""

from __future__ import annotations

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load
from rlff_esc.pipeline import plan, run_pipeline


def run(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
        dry_run: bool = typer.Option(False, "--dry-run", help="validate the config and print the plan; load no model"),
        stage: list[str] | None = typer.Option(None, "--stage", help="run only these stages (repeatable)"),
        force: bool = typer.Option(False, "--force", help="redo stages even if their outputs are up to date")):
    """Run data → critic → SFT → simulate → reward model → GRPO → evaluate, and write the report."""
    cfg = load(config, set_)
    for line in plan(cfg):
        typer.echo(line)
    if dry_run:
        typer.echo("dry run: the config is valid")
        return
    seconds = run_pipeline(cfg, only=stage, force=force)
    typer.echo("\nwall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    report = cfg.paths.report
    if report.exists():
        typer.echo(f"report: {report.resolve()}")
