"""``rlff-esc simulate``: play candidate replies forward and judge them; ``simulate merge`` joins shards."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlff_esc.commands.common import DEFAULT_CONFIG, ConfigOption, SetOption, load

app = typer.Typer(help="Simulate future trajectories of K candidate replies per training context.",
                  invoke_without_command=True)


@app.callback()
def simulate_cmd(ctx: typer.Context, config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None,
                 shard: str | None = typer.Option(None, "--shard", help="i/n: simulate only shard i (from 0) of n; "
                                                  "writes trajectories.shard-i-of-n.jsonl"),
                 force: bool = typer.Option(False, "--force", help="start the trajectory file over")):
    """Write <run>/trajectories.jsonl (resumes where an earlier run stopped)."""
    if ctx.invoked_subcommand is not None:
        return
    from rlff_esc.simulate.run import simulate

    summary = simulate(load(config, set_), shard=shard, force=force)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=2))


@app.command("merge")
def merge_cmd(out: Path = typer.Argument(..., help="merged file, e.g. runs/x/trajectories.jsonl"),
              files: list[Path] = typer.Argument(..., help="shard files to join"),
              force: bool = typer.Option(False, "--force", help="overwrite OUT if it exists")):
    """Join shard files; a key found twice is an error naming the key and both places."""
    from rlff_esc.simulate.store import merge

    n = merge(out, files, overwrite=force)
    typer.echo(f"merged {n} trajectories from {len(files)} files into {out}")
