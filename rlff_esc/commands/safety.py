"""``rlff-esc safety``: train the crisis classifier (its head and recipe are written into the package,
``data/head.json``) and fine-tune the model a head names into the model cache."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The crisis safety layer: train its classifier.", no_args_is_help=True)


@app.command("train")
def train_cmd(esconv: Path = typer.Option(..., "--esconv", help="processed ESConv folder (train.txt, valid.txt)"),
              out: Path | None = typer.Option(None, "--out", help="head JSON; default: the packaged data/head.json")):
    """Fit the head on the dev set and ESConv train seeker turns and fine-tune MiniLM from it, each fold
    too; choose both thresholds on the dev set and ESConv valid seeker turns (about 20 minutes)."""
    from rlff_esc.safety.classifier import HEAD_FILE
    from rlff_esc.safety.train import train_head

    _check_esconv(esconv, "train.txt", "valid.txt")
    head = train_head(esconv, out=out or HEAD_FILE)
    typer.echo(f"frozen-encoder head: threshold {head['threshold']}: {head['chosen_on']}")
    typer.echo(f"fine-tuned: threshold {head['finetuned']['threshold']}: {head['finetuned']['chosen_on']}; "
               f"written to {out or HEAD_FILE}")


@app.command("finetune")
def finetune_cmd(esconv: Path = typer.Option(..., "--esconv", help="processed ESConv folder (train.txt)"),
                 force: bool = typer.Option(False, help="train again even if the cache has the model")):
    """Fine-tune the model the packaged head names into the model cache, unless it is there (a few
    minutes, once; `make setup` runs it)."""
    from rlff_esc.safety.train import finetune_from_head

    _check_esconv(esconv, "train.txt")
    typer.echo(f"crisis classifier -> {finetune_from_head(esconv, force=force)}")


def _check_esconv(esconv: Path, *files: str) -> None:
    from rlff_esc.errors import RlffError

    missing = [f for f in files if not (esconv / f).exists()]
    if missing:
        raise RlffError(f"--esconv: {esconv} has no {' and '.join(missing)} (the processed ESConv folder)")
