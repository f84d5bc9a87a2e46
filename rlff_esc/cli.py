"""The ``rlff-esc`` command: one Typer app whose sub-commands are thin wrappers over the library."""

from __future__ import annotations

import logging
import os
import sys

import typer

from rlff_esc import requirements
from rlff_esc.commands import agents, data, models, run
from rlff_esc.commands import evaluate as evaluate_command
from rlff_esc.commands import policy as policy_command
from rlff_esc.commands import rm
from rlff_esc.commands import safety as safety_command
from rlff_esc.commands import serve as serve_command
from rlff_esc.commands import simulate as simulate_command
from rlff_esc.errors import RlffError

app = typer.Typer(help="RLFF-ESC: emotional-support policies trained with future-oriented rewards.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(agents.app, name="agents")
app.add_typer(simulate_command.app, name="simulate")
app.add_typer(rm.app, name="rm")
app.add_typer(policy_command.app, name="policy")
app.add_typer(safety_command.app, name="safety")
app.command("evaluate")(evaluate_command.evaluate)
app.command("chat")(serve_command.chat_cmd)
app.command("serve")(serve_command.serve_cmd)
app.command("run")(run.run)


def main() -> None:
    logging.basicConfig(level=os.environ.get("RLFF_ESC_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        requirements.check()
        app()
    except RlffError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
