"""JSON Lines files: strict reading with file:line errors, and append-safe writing."""

from __future__ import annotations

import json
import os
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


def read_json_array(path: str | Path) -> list:
    """A file holding one JSON array (the raw ESConv and ExTES layouts); errors name the file and line."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(path, None, None, f"bytes are not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, None, f"malformed JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(data, list):
        raise DataError(path, None, None, f"expected a JSON array of dialogues, found {type(data).__name__}")
    return data


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records atomically (temporary file, then rename); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append records and fsync, so a batch that returned is on disk even if the process is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
