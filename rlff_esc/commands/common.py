"""Options every command shares: ``--config`` and ``--set section.key=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rlff_esc.config import Config, load_config

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="experiment YAML", show_default=True)]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="override a setting, e.g. --set simulate.horizon=2 (repeatable)")]
DEFAULT_CONFIG = Path("configs/demo.yaml")


def load(config: Path, overrides: list[str] | None) -> Config:
    return load_config(config, overrides or [])
