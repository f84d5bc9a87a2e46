"""ESConv readers: the processed JSONL layout (``train/valid/test.txt``), the official raw
``ESConv.json`` (also the layout of ``FailedESConv.json``), and the Hugging Face dataset.

Every reader returns :class:`ReadResult`; with ``skip_invalid`` a bad record is counted and skipped,
otherwise it stops the read with a :class:`DataError` naming file, line (or array index) and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rlff_esc.data.schema import Case, Turn
from rlff_esc.errors import DataError
from rlff_esc.jsonl import iter_jsonl, read_json_array

SPEAKERS = {"usr": "seeker", "seeker": "seeker", "speaker": "seeker",
            "sys": "supporter", "supporter": "supporter", "listener": "supporter"}
SURVEY_FIELDS = ("initial_emotion_intensity", "final_emotion_intensity", "empathy", "relevance")


@dataclass
class ReadResult:
    cases: list[Case]
    skipped: list[DataError] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{len(self.cases)} cases"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        parts += [f"{n} {what}" for what, n in self.repaired.items() if n]
        return ", ".join(parts)


def _text(value, path, line, name) -> str:
    if not isinstance(value, str):
        raise DataError(path, line, name, f"expected a string, found {type(value).__name__}")
    return " ".join(value.split())


def parse_dialogue(obj: dict, *, case_id: str, split: str, path, line) -> Case:
    """Build a Case from one ESConv record in either layout; raises DataError on the first defect."""
    for name in ("emotion_type", "problem_type", "situation", "dialog"):
        if name not in obj:
            raise DataError(path, line, name, "missing")
    dialog = obj["dialog"]
    if not isinstance(dialog, list):
        raise DataError(path, line, "dialog", f"expected a list of turns, found {type(dialog).__name__}")
    if not dialog:
        raise DataError(path, line, "dialog", "empty dialogue")
    turns = []
    for i, t in enumerate(dialog):
        where = f"dialog[{i}]"
        if not isinstance(t, dict):
            raise DataError(path, line, where, f"expected an object, found {type(t).__name__}")
        speaker = SPEAKERS.get(t.get("speaker"))
        if speaker is None:
            raise DataError(path, line, f"{where}.speaker",
                            f"unknown speaker {t.get('speaker')!r} (expected one of {sorted(SPEAKERS)})")
        raw_text = t.get("text", t.get("content"))
        if raw_text is None:
            raise DataError(path, line, f"{where}.text", "missing")
        strategy = t.get("strategy") or (t.get("annotation") or {}).get("strategy")
        turns.append(Turn(speaker=speaker, text=_text(raw_text, path, line, f"{where}.text"),
                          strategy=strategy if speaker == "supporter" else None))
    survey = {}
    seeker_survey = (obj.get("survey_score") or {}).get("seeker") or {}
    for name in SURVEY_FIELDS:
        if seeker_survey.get(name) not in (None, ""):
            try:
                survey[name] = float(seeker_survey[name])
            except (TypeError, ValueError):
                raise DataError(path, line, f"survey_score.seeker.{name}",
                                f"expected a number, found {seeker_survey[name]!r}") from None
    return Case(id=case_id, dataset="esconv", split=split,
                emotion_type=_text(obj["emotion_type"], path, line, "emotion_type").lower(),
                problem_type=_text(obj["problem_type"], path, line, "problem_type").lower(),
                situation=_text(obj["situation"], path, line, "situation"),
                turns=turns, survey=survey)


def read_processed(path: str | Path, *, split: str, skip_invalid: bool = False) -> ReadResult:
    """Read one processed split file (JSONL); case ids are ``esconv:<stem>:<0-based line>``."""
    path = Path(path)
    result = ReadResult(cases=[])
    for line, obj in iter_jsonl(path):
        try:
            if isinstance(obj, DataError):
                raise obj
            result.cases.append(parse_dialogue(obj, case_id=f"esconv:{path.stem}:{line - 1}",
                                               split=split, path=path, line=line))
        except DataError as e:
            if not skip_invalid:
                raise
            result.skipped.append(e)
    return result


def read_raw(path: str | Path, *, skip_invalid: bool = False, split: str = "all",
             prefix: str = "esconv:raw") -> ReadResult:
    """Read the official raw layout (one JSON array); records are named by array index."""
    path = Path(path)
    data = read_json_array(path)
    result = ReadResult(cases=[])
    for i, obj in enumerate(data):
        try:
            if not isinstance(obj, dict):
                raise DataError(f"{path}[{i}]", None, None, "expected a JSON object")
            result.cases.append(parse_dialogue(obj, case_id=f"{prefix}:{i}", split=split,
                                               path=f"{path}[{i}]", line=None))
        except DataError as e:
            if not skip_invalid:
                raise
            result.skipped.append(e)
    return result


def read_hub(name: str = "thu-coai/esconv") -> ReadResult:
    """Read the Hugging Face dataset (each row's ``text`` holds one processed-layout record)."""
    from datasets import load_dataset

    result = ReadResult(cases=[])
    splits = {"train": "train", "validation": "valid", "test": "test"}
    for hub_split, ours in splits.items():
        for i, row in enumerate(load_dataset(name, split=hub_split)):
            obj = json.loads(row["text"]) if "text" in row else row
            result.cases.append(parse_dialogue(obj, case_id=f"esconv:{ours}:{i}", split=ours,
                                               path=f"hf://{name}/{hub_split}", line=i + 1))
    return result
