"""The training log as JSONL (one line per logging step), next to TensorBoard's event files.

JSONL is what :mod:`rlff_esc.policy.plots` draws from and what a person can ``tail``; after a resume,
lines past the checkpoint's step (written by the interrupted run) are dropped so every step appears
once.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from rlff_esc.jsonl import append_jsonl, iter_jsonl, write_jsonl


class JsonlLogCallback(TrainerCallback):
    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            append_jsonl(self.path, [{"step": state.global_step, **_plain(logs)}])


def read_log(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_log(path: Path, last_step: int) -> None:
    """Keep only the lines up to ``last_step`` (the checkpoint a resumed run continues from); a line
    torn by a kill goes too."""
    if Path(path).exists():
        rows = [r for _, r in iter_jsonl(path) if isinstance(r, dict)]
        write_jsonl(path, [r for r in rows if r.get("step", 0) <= last_step])


def _plain(logs: dict) -> dict:
    return {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (int, str)) else v)
            for k, v in logs.items()}
