"""JSON and JSON Lines files: strict reading with file:line errors, atomic and append-safe writing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from rlff_esc.errors import DataError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict | DataError]]:
    """Yield (line number, object) per non-blank line, or (line number, DataError) for a bad line,
    so that callers can choose between stopping and skipping."""
    path = Path(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                yield number, DataError(path, number, None, f"bytes are not UTF-8 ({e.reason} at byte {e.start})")
                continue
            except json.JSONDecodeError as e:
                yield number, DataError(path, number, None, f"malformed JSON: {e.msg} (column {e.colno})")
                continue
            if not isinstance(obj, dict):
                obj = DataError(path, number, None, f"expected a JSON object, found {type(obj).__name__}")
            yield number, obj


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object); the first bad line raises its DataError."""
    for number, obj in iter_jsonl(path):
        if isinstance(obj, DataError):
            raise obj
        yield number, obj


def _load_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(path, None, None, f"bytes are not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, None, f"malformed JSON: {e.msg} (column {e.colno})") from None


def read_json_array(path: str | Path) -> list:
    """A file holding one JSON array (the raw ESConv and ExTES layouts); errors name the file and line."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(path, None, None, f"expected a JSON array of dialogues, found {type(data).__name__}")
    return data


def read_json(path: str | Path) -> dict:
    """One JSON object from a file (a summary, a marker); a malformed file raises a DataError naming it."""
    path = Path(path)
    obj = _load_json(path)
    if not isinstance(obj, dict):
        raise DataError(path, None, None, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def _write_atomically(path: Path, write) -> None:
    """``write(file)`` into a temporary file of a unique name beside ``path``, fsync it, then rename it
    over ``path``: readers see the old file or the new one, never a torn one, also with several writers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide run outputs from other users
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records atomically; returns how many were written."""
    count = [0]

    def write(f):
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            count[0] += 1

    _write_atomically(Path(path), write)
    return count[0]


def write_json(path: str | Path, obj) -> None:
    """Write one JSON document atomically (summaries, markers, the manifest)."""
    _write_atomically(Path(path), lambda f: f.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n"))


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append records and fsync, so a batch that returned is on disk even if the process is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def repair_partial_line(path: Path) -> int:
    """Cut a partial last line (a write interrupted by a kill) back to the last newline; returns the
    number of bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        size = f.seek(0, os.SEEK_END)
        keep, block = 0, 1 << 16
        position = size
        while position > 0:  # search backwards for the last newline
            start = max(0, position - block)
            f.seek(start)
            chunk = f.read(position - start)
            index = chunk.rfind(b"\n")
            if index != -1:
                keep = start + index + 1
                break
            position = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep
