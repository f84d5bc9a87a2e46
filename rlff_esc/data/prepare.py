"""``data prepare``: read the configured dataset, apply the split, write cases and contexts."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from rlff_esc.config import Config
from rlff_esc.data import esconv, extes, splits
from rlff_esc.data.contexts import build_contexts
from rlff_esc.data.schema import Case, Context
from rlff_esc.errors import DataError, RlffError
from rlff_esc.jsonl import read_jsonl, write_jsonl

log = logging.getLogger(__name__)


def load_cases(config: Config) -> tuple[esconv.ReadResult, dict[str, str]]:
    """Read the dataset named by ``config.data`` with its split; returns the read and file hashes."""
    data = config.data
    skip = data.skip_invalid
    if data.dataset == "esconv" and data.path == "hub":
        return esconv.read_hub(), {"hub": "thu-coai/esconv"}
    path = config.resolve(data.path)
    if not path.exists():
        raise RlffError(f"data.path: {path} does not exist (set data.path in the config)")
    hashes: dict[str, str] = {}
    if data.dataset == "extes":
        digest = splits.sha256_file(path)
        hashes[str(path)] = digest
        result = extes.read_extes(path, skip_invalid=skip)
        split_file = path.with_name(path.stem + ".split.json")
        spec = json.loads(split_file.read_text()) if split_file.exists() else splits.extes_split(result.cases, digest)
        result.cases = splits.apply_extes_split(result.cases, spec, digest)
        hashes["extes_split"] = json.dumps({k: spec[k] for k in ("source_sha256", "seed")})
        return result, hashes
    if path.is_dir():
        result = esconv.ReadResult(cases=[])
        for name in splits.SPLITS:
            file = path / f"{name}.txt"
            if not file.exists():
                raise RlffError(f"data.path: {path} has no {name}.txt (expected ESConv's processed split files)")
            hashes[str(file)] = splits.sha256_file(file)
            part = esconv.read_processed(file, split=name, skip_invalid=skip)
            result.cases += part.cases
            result.skipped += part.skipped
    else:
        hashes[str(path)] = splits.sha256_file(path)
        result = esconv.read_raw(path, skip_invalid=skip)
        names = splits.seed13_assignment(len(result.cases) + len(result.skipped))
        by_index = {int(c.id.rsplit(":", 1)[1]): c for c in result.cases}
        result.cases = [c.model_copy(update={"id": f"esconv:{names[i]}", "split": names[i].split(":")[0]})
                        for i, c in sorted(by_index.items())]
    if data.split == "ppdpp":
        split_file = (path if path.is_dir() else path.parent) / "splits" / "ppdpp_split.json"
        if not split_file.exists():
            raise RlffError(f"data.split: ppdpp needs {split_file}; use split: seed13 or supply the file")
        hashes[str(split_file)] = splits.sha256_file(split_file)
        result.cases = splits.apply_split_file(result.cases, split_file)
    return result, hashes


def source_files(config: Config) -> list[Path]:
    """The files a read of ``config.data`` depends on (dataset and split files); none for the hub."""
    data = config.data
    if data.dataset == "esconv" and data.path == "hub":
        return []
    path = config.resolve(data.path)
    if data.dataset == "extes":
        return [path, path.with_name(path.stem + ".split.json")]
    files = [path / f"{name}.txt" for name in splits.SPLITS] if path.is_dir() else [path]
    if data.split == "ppdpp":
        files.append((path if path.is_dir() else path.parent) / "splits" / "ppdpp_split.json")
    return files


def data_inputs(config: Config) -> dict:
    """What cases.jsonl and contexts.jsonl depend on: the data settings and the source files' content."""
    from rlff_esc.stages import file_digest

    return {"data": config.data.model_dump(mode="json", exclude={"path"}),
            "files": {p.name: file_digest(p) for p in source_files(config)},
            "hub": config.data.path == "hub"}


def prepare_stage(config: Config, force: bool = False) -> dict:
    """The data stage: :func:`prepare` unless cases and contexts were written from the same inputs."""
    from rlff_esc.manifest import record_stage
    from rlff_esc.stages import fingerprint, is_done, mark_done, read_marker

    paths, inputs = config.paths, data_inputs(config)
    key = fingerprint(inputs)
    if not force and is_done(paths.data_marker, key) and paths.cases.exists() and paths.contexts.exists():
        log.info("data: %s and %s already written from these inputs", paths.cases, paths.contexts)
        return {**read_marker(paths.data_marker)["summary"], "skipped_stage": True}
    start = time.perf_counter()
    summary = prepare(config)
    mark_done(paths.data_marker, key, inputs, summary=summary)
    record_stage(paths.root, config, "data", time.perf_counter() - start, **summary)
    return summary


def cap_contexts(contexts: list[Context], limit: int | None) -> list[Context]:
    """Keep at most ``limit`` contexts, spread evenly over the list (so over many dialogues)."""
    if limit is None or len(contexts) <= limit:
        return contexts
    step = len(contexts) / limit
    return [contexts[int(i * step)] for i in range(limit)]


def prepare(config: Config) -> dict:
    """Write ``cases.jsonl`` and ``contexts.jsonl`` into the run directory; returns counts."""
    result, hashes = load_cases(config)
    for e in result.skipped:
        log.warning("skipped: %s", e)
    contexts: list[Context] = []
    for split in splits.SPLITS:
        in_split = [x for c in result.cases if c.split == split for x in build_contexts(c)]
        contexts += cap_contexts(in_split, config.data.max_contexts.get(split))
    paths = config.paths
    write_jsonl(paths.cases, (c.model_dump() for c in result.cases))
    write_jsonl(paths.contexts, (c.model_dump() for c in contexts))
    skipped_reasons = Counter(e.problem.split(" (")[0] for e in result.skipped)
    return {"cases": dict(Counter(c.split for c in result.cases)),
            "contexts": dict(Counter(c.split for c in contexts)),
            "skipped": len(result.skipped), "skipped_reasons": dict(skipped_reasons),
            "repaired": result.repaired, "data_hashes": hashes}


def read_cases(path: Path) -> list[Case]:
    return [_validated(Case, obj, path, line) for line, obj in read_jsonl(path)]


def read_contexts(path: Path, split: str | None = None) -> list[Context]:
    contexts = [_validated(Context, obj, path, line) for line, obj in read_jsonl(path)]
    return [c for c in contexts if split is None or c.split == split]


def _validated(model, obj, path, line):
    from pydantic import ValidationError

    try:
        return model.model_validate(obj)
    except ValidationError as e:
        first = e.errors()[0]
        raise DataError(path, line, ".".join(map(str, first["loc"])), first["msg"]) from None
