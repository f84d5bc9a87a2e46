"""``rlff-esc models``: prepare the embedded models for offline use."""

from __future__ import annotations

import typer

from rlff_esc.llm.embedded import MINILM, SMOLLM2, minilm_path, prepare_smollm2

app = typer.Typer(help="Embedded models (offline defaults).", no_args_is_help=True)


@app.command("prepare")
def prepare_cmd(force: bool = typer.Option(False, help="convert again even if cached")):
    """Convert SmolLM2's GGUF into a cached fp32 Hugging Face folder; locate MiniLM."""
    typer.echo(f"{SMOLLM2} -> {prepare_smollm2(force=force)}")
    typer.echo(f"{MINILM} -> {minilm_path()}")
