"""ExTES reader (Zheng et al. 2023): ``{scene, description, content: [{"User": …} | {"AI": …,
"AI Strategy": …}]}`` in one JSON array, supplied by the user (the data has no redistribution licence).

Known defects are repaired where the intent is clear and counted: a turn holding both ``User`` and
``AI`` is split into two turns; a missing or off-list strategy becomes ``Others``. A dialogue that
cannot be repaired (no turns, no text, unknown keys only) is skipped with ``skip_invalid`` or stops
the read otherwise.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rlff_esc.data.esconv import ReadResult, _text
from rlff_esc.data.schema import Case, Turn
from rlff_esc.errors import DataError
from rlff_esc.jsonl import read_json_array

STRATEGIES = (
    "Reflective Statements", "Clarification", "Emotional Validation", "Empathetic Statements",
    "Affirmation", "Offer Hope", "Avoid Judgment and Criticism", "Suggest Options",
    "Collaborative Planning", "Provide Different Perspectives", "Reframe Negative Thoughts",
    "Share Information", "Normalize Experiences", "Promote Self-Care Practices", "Stress Management",
    "Others",
)
_CANONICAL = {s.lower(): s for s in STRATEGIES}


def _turns(content, path, where, repaired: Counter) -> list[Turn]:
    if not isinstance(content, list):
        raise DataError(path, None, f"{where}.content", f"expected a list of turns, found {type(content).__name__}")
    if not content:
        raise DataError(path, None, f"{where}.content", "empty dialogue")
    turns = []
    for i, t in enumerate(content):
        at = f"{where}.content[{i}]"
        if not isinstance(t, dict) or not ({"User", "AI"} & t.keys()):
            raise DataError(path, None, at, "expected an object with 'User' or 'AI'")
        if "User" in t and "AI" in t:
            repaired["turns holding both User and AI split"] += 1
        if "User" in t:
            turns.append(Turn(speaker="seeker", text=_text(t["User"], path, None, f"{at}.User")))
        if "AI" in t:
            raw = t.get("AI Strategy")
            strategy = _CANONICAL.get(raw.strip().lower()) if isinstance(raw, str) else None
            if strategy is None:
                repaired["missing or off-list strategies set to Others"] += 1
                strategy = "Others"
            turns.append(Turn(speaker="supporter", text=_text(t["AI"], path, None, f"{at}.AI"),
                              strategy=strategy))
    return turns


def read_extes(path: str | Path, *, skip_invalid: bool = False) -> ReadResult:
    """Read ``ExTES.json``; case ids are ``extes:<array index>`` and every split is ``all``."""
    path = Path(path)
    data = read_json_array(path)
    result, repaired = ReadResult(cases=[]), Counter()
    for i, obj in enumerate(data):
        where = f"[{i}]"
        try:
            if not isinstance(obj, dict):
                raise DataError(path, None, where, "expected a JSON object")
            for name in ("scene", "description", "content"):
                if name not in obj:
                    raise DataError(path, None, f"{where}.{name}", "missing")
            turns = _turns(obj["content"], path, where, repaired)
            scene = _text(obj["scene"], path, None, f"{where}.scene")
            result.cases.append(Case(
                id=f"extes:{i}", dataset="extes", split="all", emotion_type="unspecified",
                problem_type=scene.lower(),
                situation=_text(obj["description"], path, None, f"{where}.description"), turns=turns))
        except DataError as e:
            if not skip_invalid:
                raise
            result.skipped.append(e)
    result.repaired = dict(repaired)
    return result
