"""When a stage's work is done, and where a run's files are: one rule for every stage.

A stage's *inputs* are the settings that change its output and the content (sha256) of the files and
model folders it reads, never their paths or modification times, which change when nothing else
does. Their hash is the stage's fingerprint. A stage whose marker (``stage.json``) holds the same
fingerprint is skipped: no model is loaded and no file is written. When the fingerprint differs, the
marker's recorded inputs say which one changed. Hashing costs little next to the work it saves:
sha256 reads about 1.5 GB/s on one core of a 2-core development machine, 0.35 s for SmolLM2-135M's
517 MB of weights.

A folder a stage writes is built in ``<folder>.partial/`` (its training checkpoints included) and
swapped in only once complete (:class:`StagedFolder`): a kill leaves the previous output whole, and
the next run resumes from the last checkpoint in the partial folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rlff_esc.errors import DataError
from rlff_esc.jsonl import read_json, write_json
from rlff_esc.processes import on_main_process

if TYPE_CHECKING:
    from rlff_esc.config import Config, CriticSection

log = logging.getLogger(__name__)

MARKER = "stage.json"
# Files of a model folder that record how it was made, not what it computes, and folders of its making.
_RECORDS = {MARKER, "train_log.jsonl", "check.json", "check_before.json", "training_curves.png", "metrics.json",
            "cv_metrics.json"}
_MAKING = {"checkpoints", "tensorboard"}


class RunPaths:
    """Every path of a run directory, and the outputs a config may place elsewhere."""

    def __init__(self, config: Config):
        self.config = config
        self.root = config.run_path

    manifest = property(lambda self: self.root / "manifest.json")
    cases = property(lambda self: self.root / "cases.jsonl")
    contexts = property(lambda self: self.root / "contexts.jsonl")
    data_marker = property(lambda self: self.root / "data.stage.json")
    policy_sft = property(lambda self: self.root / "policy_sft")
    seeker = property(lambda self: self.root / "seeker")
    policy = property(lambda self: self.root / "policy")
    eval = property(lambda self: self.root / "eval")
    planner = property(lambda self: self.root / "eval" / "strategy_planner")
    report = property(lambda self: self.root / "report.md")
    ladder = property(lambda self: self.root / "ladder")

    def learned_critic(self, critic: CriticSection | None = None) -> Path:
        """The learned critic a critic section reads (default: simulate's): ``learned_path`` or ``<run>/critic``."""
        critic = critic or self.config.simulate.critic
        return self.config.resolve(critic.learned_path) if critic.learned_path else self.root / "critic"

    @property
    def reward_model(self) -> Path:
        """Where the reward-model stage writes: ``reward_model.output_dir`` or ``<run>/reward_model``."""
        out = self.config.reward_model.output_dir
        return self.config.resolve(out) if out else self.root / "reward_model"

    @property
    def scorer(self) -> Path:
        """The reward model GRPO trains against: ``policy.reward_model_path`` or the stage's output."""
        path = self.config.policy.reward_model_path
        return self.config.resolve(path) if path else self.reward_model

    def trajectories(self, shard: tuple[int, int] | None = None) -> Path:
        return self.root / ("trajectories.jsonl" if shard is None else
                            f"trajectories.shard-{shard[0]}-of-{shard[1]}.jsonl")

    def eval_system(self, name: str) -> Path:
        return self.eval / name


# -- fingerprints ------------------------------------------------------------------------------------------

def fingerprint(inputs) -> str:
    """A short stable hash of anything JSON can write (sorted keys)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str | None:
    """sha256 of a file's bytes; None when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=4096)
def _stat_file_digest(path: str, size: int, mtime_ns: int) -> str:
    """A file's digest, computed once per process for a given size and modification time (the roles of
    a run often share one model)."""
    return file_digest(path)


def folder_digest(path: str | Path) -> str | None:
    """sha256 over the names and bytes of a model folder's files, leaving out the records of its making
    (marker, logs, checks, checkpoints); None when it does not exist."""
    path = Path(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = f.relative_to(path)
        if relative.parts[0] in _MAKING or str(relative) in _RECORDS:
            continue
        stat = f.stat()
        h.update(f"{relative}\0{_stat_file_digest(str(f), stat.st_size, stat.st_mtime_ns)}\n".encode())
    return h.hexdigest()[:16]


def model_digest(name: str) -> str:
    """What a model name stands for: the content digest of a local folder, else the name itself (a hub
    id, or a model an HTTP server serves)."""
    from rlff_esc.llm.embedded import resolve_model

    path = Path(resolve_model(name))
    return folder_digest(path) if path.is_dir() else name


# ModelSpec fields that change speed or where a model runs, never what it says.
PERFORMANCE_FIELDS = {"base_urls", "api_key_env", "max_concurrency", "timeout_s", "max_retries", "batch_size", "device",
                      "share_prefixes", "keep_tokens"}


def model_inputs(spec) -> dict:
    """A role's :class:`~rlff_esc.config.ModelSpec` as an input: the settings that change what it says,
    and for a local model the digest of its weights in place of its name."""
    inputs = spec.model_dump(mode="json", exclude=PERFORMANCE_FIELDS)
    if spec.backend == "local":
        inputs["model"] = {"weights": model_digest(spec.model)}
    return inputs


def changed_inputs(old: dict | None, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the inputs that differ between two input dicts (all of them when ``old`` is None)."""
    if not isinstance(old, dict):
        return [prefix.rstrip(".") or "(all inputs)"]
    names = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += changed_inputs(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}")
    return names


# -- markers -----------------------------------------------------------------------------------------------

def read_marker(marker: Path) -> dict | None:
    """A stage marker, or None when missing or unreadable (a stage is then simply not done)."""
    if not marker.exists():
        return None
    try:
        return read_json(marker)
    except DataError as e:
        log.warning("%s; the stage counts as not done", e)
        return None


def is_done(marker: Path, key: str) -> bool:
    record = read_marker(marker)
    return bool(record) and record.get("complete") is True and record.get("fingerprint") == key


def mark_done(marker: Path, key: str, inputs: dict, **details) -> None:
    write_json(marker, {"fingerprint": key, "complete": True, "inputs": inputs, **details})


def describe_change(marker: Path, inputs: dict) -> str:
    """Which inputs changed since the marker was written, for a log line or an error message."""
    record = read_marker(marker)
    return ", ".join(changed_inputs(record.get("inputs") if record else None, inputs))


class StagedFolder:
    """A stage's output folder ``out``, built in ``out.partial`` and swapped in once complete.

    The partial folder's marker holds the fingerprint it was started with: a later run with the same
    inputs continues in it (from its last training checkpoint), one with other inputs starts it over.
    The swap is two renames; a kill between them is finished by the next run (a complete partial
    folder is never lost). Under a multi-process launch only the main process touches the folders;
    the others wait until it has."""

    def __init__(self, out: Path, inputs: dict):
        self.out, self.inputs, self.key = Path(out), inputs, fingerprint(inputs)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self._old = self.out.with_name(self.out.name + ".old")
        on_main_process(self._finish_swap)

    def done(self) -> bool:
        return is_done(self.out / MARKER, self.key)

    def open(self, force: bool = False) -> Path:
        """The partial folder to write into, kept when it was started with the same inputs."""
        on_main_process(lambda: self._open(force))
        return self.partial

    def _open(self, force: bool) -> None:
        started = read_marker(self.partial / MARKER)
        if self.partial.exists() and (force or not started or started.get("fingerprint") != self.key):
            if started and not force:
                log.info("%s was started with other inputs (%s changed): starting over", self.partial,
                         describe_change(self.partial / MARKER, self.inputs))
            shutil.rmtree(self.partial)
            started = None
        self.partial.mkdir(parents=True, exist_ok=True)
        if started is None:
            write_json(self.partial / MARKER, {"fingerprint": self.key, "complete": False, "inputs": self.inputs})

    def last_checkpoint(self) -> Path | None:
        """The newest ``checkpoint-N`` a trainer saved in the partial folder."""
        from transformers.trainer_utils import get_last_checkpoint

        folder = self.partial / "checkpoints"
        found = get_last_checkpoint(str(folder)) if folder.is_dir() else None
        return Path(found) if found else None

    def commit(self, **details) -> Path:
        """Mark the partial folder complete (its checkpoints dropped) and swap it in for ``out``."""
        shutil.rmtree(self.partial / "checkpoints", ignore_errors=True)
        mark_done(self.partial / MARKER, self.key, self.inputs, **details)
        self._finish_swap()
        return self.out

    def _finish_swap(self) -> None:
        record = read_marker(self.partial / MARKER)
        if record and record.get("complete") is True:
            if self.out.exists():
                shutil.rmtree(self._old, ignore_errors=True)
                os.replace(self.out, self._old)
            os.replace(self.partial, self.out)
        if self._old.exists():
            shutil.rmtree(self._old)
