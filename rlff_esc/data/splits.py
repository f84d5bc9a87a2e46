"""Published splits: ESConv's seed-13 70/15/15 files, PPDPP's 1040/130/130 cut of the same shuffle,
and our deterministic 80/10/10 ExTES split, which records the sha256 of the file it was cut from."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from rlff_esc.data.schema import Case
from rlff_esc.errors import DataError

SPLITS = ("train", "valid", "test")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seed13_assignment(n: int) -> list[str]:
    """The ESConv authors' split of the raw array: shuffle with ``random.seed(13)``, first 15% valid,
    next 15% test, the rest train. Returns, per raw index, ``<file>:<position>`` like the split files."""
    order = list(range(n))
    random.seed(13)
    random.shuffle(order)
    n_valid = n_test = int(0.15 * n)
    names = [None] * n
    for pos, raw_index in enumerate(order):
        if pos < n_valid:
            names[raw_index] = f"valid:{pos}"
        elif pos < n_valid + n_test:
            names[raw_index] = f"test:{pos - n_valid}"
        else:
            names[raw_index] = f"train:{pos - n_valid - n_test}"
    return names


def apply_split_file(cases: list[Case], split_file: str | Path) -> list[Case]:
    """Re-label cases by a split file mapping ``train/valid/test`` to lists of ``<file>:<line>``."""
    split_file = Path(split_file)
    spec = json.loads(split_file.read_text())
    where = {}
    for split in SPLITS:
        if split not in spec:
            raise DataError(split_file, None, split, "missing")
        for key in spec[split]:
            where[f"esconv:{key}"] = split
    missing = [c.id for c in cases if c.id not in where]
    if missing:
        raise DataError(split_file, None, None,
                        f"{len(missing)} cases are not assigned (first: {missing[0]}); "
                        "is this split made for these files?")
    return [c.model_copy(update={"split": where[c.id]}) for c in cases]


def extes_split(cases: list[Case], source_sha256: str, seed: int = 13) -> dict:
    """Deterministic 80/10/10 split of ExTES by array index; publish the returned dict as JSON."""
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    n_valid = n_test = len(cases) // 10
    return {"source_sha256": source_sha256, "seed": seed,
            "valid": sorted(order[:n_valid]), "test": sorted(order[n_valid:n_valid + n_test]),
            "train": sorted(order[n_valid + n_test:])}


def apply_extes_split(cases: list[Case], split: dict, source_sha256: str) -> list[Case]:
    if split["source_sha256"] != source_sha256:
        raise DataError("ExTES split", None, "source_sha256",
                        f"the split was cut from a file with sha256 {split['source_sha256'][:12]}…, "
                        f"this file has {source_sha256[:12]}…")
    where = {i: name for name in SPLITS for i in split[name]}
    return [c.model_copy(update={"split": where.get(int(c.id.split(":")[1]), "unused")}) for c in cases]
