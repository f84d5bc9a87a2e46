"""The trajectory store: ``trajectories.jsonl``, append-only, one record per (context, candidate, seed,
future).

Crash safety rests on three rules. (1) The engine appends a whole batch with
:func:`rlff_esc.jsonl.append_jsonl` (write, flush, fsync) only after the batch is complete, so every
record on disk is final. (2) A run killed mid-append (``kill -9``) can leave a partial last line
without its newline: :func:`open_store` cuts the file back to its last newline before anything is
appended, so the interrupted records are simply simulated again. (3) On restart the keys already on
disk are skipped. Together: no record lost, none duplicated.

Each record carries ``settings``, a fingerprint of everything that changes a trajectory (the models'
weights, the critic, horizon, sampling, seed...). Resuming a file made with other settings is refused
rather than mixed, naming the inputs that changed: ``<file>.inputs.json`` beside it keeps the inputs
behind each fingerprint. One process writes a file at a time (the caller holds a lock).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from rlff_esc.errors import DataError, RlffError
from rlff_esc.jsonl import iter_jsonl, read_json, read_jsonl, repair_partial_line, write_json, write_jsonl
from rlff_esc.seeds import stable_int
from rlff_esc.stages import changed_inputs

log = logging.getLogger(__name__)


def trajectory_key(context_id: str, candidate: int, seed: int, future: int = 0) -> str:
    """The first future of a candidate keeps the key it had before ``simulate.futures`` existed."""
    return f"{context_id}|{candidate}|{seed}" + (f"|{future}" if future else "")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n), with 0 ≤ i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise RlffError(f"--shard {text!r}: expected i/n, e.g. 0/4 (shards are numbered from 0)") from None
    if n < 1 or not 0 <= i < n:
        raise RlffError(f"--shard {text!r}: need 0 <= i < n (shards are numbered from 0)")
    return i, n


def in_shard(context_id: str, shard: tuple[int, int] | None) -> bool:
    """Contexts go to shards by a stable hash of their id, so the n shards are disjoint and cover all."""
    return shard is None or stable_int("shard", context_id) % shard[1] == shard[0]


def open_store(path: Path, settings: str) -> dict[str, dict]:
    """Prepare ``path`` for appending and return the records already in it, by key.

    A partial last line is repaired (see the module docstring); a malformed line elsewhere, a
    duplicate key or a record made with other settings raises, naming the file and line."""
    removed = repair_partial_line(path)
    if removed:
        log.warning("%s: removed a partial last line (%d bytes) left by an interrupted run; "
                    "its trajectories will be simulated again", path, removed)
    records: dict[str, dict] = {}
    if not path.exists():
        return records
    for line, obj in iter_jsonl(path):
        if isinstance(obj, DataError):
            raise obj
        key = obj.get("key")
        if not isinstance(key, str):
            raise DataError(path, line, "key", "missing trajectory key")
        if key in records:
            raise DataError(path, line, "key", f"duplicate trajectory key {key!r}")
        if obj.get("settings") != settings:
            raise RlffError(f"{path}:{line}: trajectory {key!r} was simulated with other settings "
                            f"(fingerprint {obj.get('settings')} ≠ {settings}); resume with the same config, "
                            "use --force to start over, or choose another run_dir")
        records[key] = obj
    return records


def inputs_path(path: Path) -> Path:
    return path.with_suffix(".inputs.json")


def record_inputs(path: Path, settings: str, inputs: dict) -> None:
    """Keep the inputs behind a settings fingerprint beside the file, so a refusal can name what changed."""
    known = read_json(inputs_path(path)) if inputs_path(path).exists() else {}
    if settings not in known:
        write_json(inputs_path(path), {**known, settings: inputs})


def check_inputs(path: Path, settings: str, inputs: dict) -> None:
    """Refuse a file whose trajectories were simulated with other inputs, naming the ones that changed."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        first = f.readline()
    try:
        found = json.loads(first).get("settings")
    except (ValueError, AttributeError):
        return  # a torn or malformed first line: open_store names it
    if found == settings:
        return
    old = read_json(inputs_path(path)).get(found) if inputs_path(path).exists() else None
    changed = ", ".join(changed_inputs(old, inputs)) if old else "not recorded"
    raise RlffError(f"{path}: its trajectories were simulated with other settings (changed: {changed}); "
                    "resume with the same config and models, use --force to simulate them again, or choose "
                    "another run_dir")


def merge(out: Path, files: list[Path], overwrite: bool = False) -> int:
    """Join shard files into ``out`` (atomically); duplicate keys or mixed settings are refused."""
    if not files:
        raise RlffError("simulate merge: no input files given")
    if out.exists() and not overwrite and out.resolve() not in {f.resolve() for f in files}:
        raise RlffError(f"{out} exists; pass --force to overwrite it")
    seen: dict[str, str] = {}
    settings: dict[str, str] = {}
    records = []
    for path in files:
        if not path.exists():
            raise RlffError(f"{path}: file not found")
        for line, obj in read_jsonl(path):
            key = obj.get("key")
            if not isinstance(key, str):
                raise DataError(path, line, "key", "missing trajectory key")
            where = f"{path}:{line}"
            if key in seen:
                raise RlffError(f"duplicate trajectory key {key!r}: in {seen[key]} and again in {where}")
            seen[key] = where
            settings.setdefault(obj.get("settings"), where)
            records.append(obj)
    if len(settings) > 1:
        raise RlffError("simulate merge: the files were simulated with different settings: "
                        + "; ".join(f"{s} (first at {w})" for s, w in settings.items()))
    return write_jsonl(out, records)


def settings_fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
