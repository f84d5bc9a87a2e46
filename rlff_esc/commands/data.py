"""``rlff-esc data``: prepare cases and contexts; print dataset statistics."""

from __future__ import annotations

import json
from collections import Counter

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load
from rlff_esc.data.prepare import load_cases, prepare_stage

app = typer.Typer(help="Read ESConv / ExTES into the common schema.", no_args_is_help=True)


@app.command("prepare")
def prepare_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
                skip_invalid: bool = typer.Option(False, "--skip-invalid", help="skip bad records and report them"),
                force: bool = typer.Option(False, "--force", help="write them again even if up to date")):
    """Write cases.jsonl and contexts.jsonl into the run directory."""
    overrides = list(set_ or []) + (["data.skip_invalid=true"] if skip_invalid else [])
    cfg = load(config, overrides)
    summary = prepare_stage(cfg, force=force)
    typer.echo(f"cases    {json.dumps(summary['cases'])}")
    typer.echo(f"contexts {json.dumps(summary['contexts'])}")
    if summary["skipped"]:
        typer.echo(f"skipped  {summary['skipped']} records: {json.dumps(summary['skipped_reasons'])}")
    for what, n in summary["repaired"].items():
        typer.echo(f"repaired {n} {what}")
    typer.echo(f"written to {cfg.run_path}/cases.jsonl and contexts.jsonl")


@app.command("stats")
def stats_cmd(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None):
    """Counts per split, emotion and problem type."""
    cfg = load(config, set_)
    result, _ = load_cases(cfg)
    typer.echo(f"{cfg.data.dataset}: {result.summary()}")
    for split in ("train", "valid", "test"):
        cases = [c for c in result.cases if c.split == split]
        turns = sum(len(c.turns) for c in cases)
        typer.echo(f"\n[{split}] {len(cases)} dialogues, {turns} turns")
        for field in ("emotion_type", "problem_type"):
            counts = Counter(getattr(c, field) for c in cases).most_common()
            typer.echo(f"  {field}: " + ", ".join(f"{k} {v}" for k, v in counts))
