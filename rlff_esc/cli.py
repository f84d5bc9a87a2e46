"""The ``rlff-esc`` command: one Typer app whose sub-commands are thin wrappers over the library."""

from __future__ import annotations

import logging
import os
import sys

import typer

from rlff_esc.commands import data, models, run
from rlff_esc.errors import RlffError

app = typer.Typer(help="RLFF-ESC: emotional-support policies trained with future-oriented rewards.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.command("run")(run.run)


def main() -> None:
    logging.basicConfig(level=os.environ.get("RLFF_ESC_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app()
    except RlffError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
