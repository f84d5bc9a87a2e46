"""``manifest.json`` in every run directory: what was run, with what, on which data, and how long.

Each stage records itself when it finishes (a skipped stage writes nothing). Several processes may
record into one manifest at once (simulation shards): each read-modify-write holds a file lock, so no
entry is lost.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from filelock import FileLock

from rlff_esc.config import Config
from rlff_esc.jsonl import read_json, write_json
from rlff_esc.processes import process_count

PACKAGES = ("rlff-esc", "torch", "transformers", "trl", "peft", "accelerate", "datasets",
            "sentence-transformers", "pydantic", "vllm")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "manifest.json"
    return read_json(path) if path.exists() else {}


def manifest_lock(run_dir: Path) -> FileLock:
    return FileLock(str(Path(run_dir) / ".manifest.json.lock"))


def record_stage(run_dir: Path, config: Config, stage: str, seconds: float, **details) -> dict:
    """Merge one finished stage into the manifest (config, versions and commit are refreshed), with the
    number of processes that ran it (several under a multi-process launch)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with manifest_lock(run_dir):
        manifest = read_manifest(run_dir)
        manifest.update({
            "config": config.model_dump(mode="json"),
            "seed": config.seed,
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "git_commit": git_commit(),
        })
        manifest.setdefault("stages", {})[stage] = {
            "seconds": round(seconds, 2), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "processes": process_count(), **details}
        write_json(run_dir / "manifest.json", manifest)
    return manifest
