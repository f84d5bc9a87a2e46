"""``rlff-esc safety``: train the crisis classifier's head (written into the package, ``data/head.json``)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The crisis safety layer: train its classifier.", no_args_is_help=True)


@app.command("train")
def train_cmd(esconv: Path = typer.Option(..., "--esconv", help="processed ESConv folder (train.txt, valid.txt)"),
              out: Path | None = typer.Option(None, "--out", help="head JSON; default: the packaged data/head.json")):
    """Train the head on the dev set and ESConv train seeker turns; choose the threshold on the dev set
    and ESConv valid seeker turns."""
    from rlff_esc.errors import RlffError
    from rlff_esc.safety.classifier import HEAD_FILE
    from rlff_esc.safety.train import train_head

    if not (esconv / "train.txt").exists() or not (esconv / "valid.txt").exists():
        raise RlffError(f"--esconv: {esconv} has no train.txt and valid.txt (the processed ESConv folder)")
    head = train_head(esconv, out=out or HEAD_FILE)
    typer.echo(f"threshold {head['threshold']}: {head['chosen_on']}; written to {out or HEAD_FILE}")
