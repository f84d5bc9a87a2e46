"""Small ESConv-layout dialogues whose reported improvement shows in what the seeker says: seekers who
improved end by saying they feel better; seekers who did not keep saying nothing helps. Dialogue
lengths and turn lengths are drawn alike for both, so length alone cannot tell them apart."""

from __future__ import annotations

import json
import random
from pathlib import Path

OPENINGS = ["I lost my job last week and I can't sleep.", "My girlfriend broke up with me out of nowhere.",
            "I'm so stressed about my exams, I feel like I'm failing.", "My dad is sick and I'm scared.",
            "I feel lonely since I moved to a new city.", "My best friend stopped talking to me."]
MIDDLE = ["It has been going on for weeks now.", "I keep thinking about it all day.",
          "I don't know who to talk to about it.", "My family doesn't really understand."]
BETTER = ["Thank you so much, I feel a lot better now.", "That really helps, I feel much calmer.",
          "You're right, I think I can handle this now, thanks!", "I feel relieved, talking helped a lot."]
WORSE = ["Nothing helps, I still feel terrible.", "I don't think that will work, I feel worse.",
         "I'm still just as upset as before.", "Honestly I feel hopeless about it."]
SUPPORTER = ["That sounds really hard.", "How long have you felt this way?",
             "It makes sense that you feel upset.", "Have you thought about talking to someone close?",
             "I understand how painful that is.", "What do you think might help a little?"]


def dialogue(rng: random.Random, improved: bool) -> dict:
    n_middle = rng.randint(3, 6)
    seeker = [rng.choice(OPENINGS)] + [rng.choice(MIDDLE) for _ in range(n_middle)]
    seeker += [rng.choice(BETTER if improved else WORSE) for _ in range(3)]
    dialog = []
    for text in seeker:
        dialog.append({"speaker": "usr", "text": text})
        dialog.append({"speaker": "sys", "text": rng.choice(SUPPORTER), "strategy": "Question"})
    initial = rng.randint(3, 5)
    final = initial - rng.randint(2, 3) if improved else initial
    return {"experience_type": "Current Experience", "emotion_type": "sadness", "problem_type": "job crisis",
            "situation": seeker[0], "dialog": dialog,
            "survey_score": {"seeker": {"initial_emotion_intensity": str(initial),
                                        "final_emotion_intensity": str(final)}}}


def write_esconv(folder: Path, n_per_split: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A processed-layout ESConv folder (train/valid/test.txt) and a raw-layout ``failed/`` file.

    Kept dialogues improve in three of four cases (the others improve by 1 point and end neutrally,
    so improvement varies), failed ones never."""
    rng = random.Random(seed)
    n_per_split = n_per_split or {"train": 40, "valid": 12, "test": 12}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in n_per_split.items():
        rows = []
        for i in range(n):
            improved = i % 4 != 3
            row = dialogue(rng, improved)
            if not improved:  # a kept dialogue always improved a little in ESConv
                s = row["survey_score"]["seeker"]
                s["final_emotion_intensity"] = str(int(s["initial_emotion_intensity"]) - 1)
            rows.append(json.dumps(row))
        (folder / f"{split}.txt").write_text("\n".join(rows) + "\n")
    failed = []
    for _ in range(16):
        row = dialogue(rng, improved=False)
        failed.append({**row, "dialog": [
            {"speaker": "seeker" if t["speaker"] == "usr" else "supporter", "content": t["text"],
             "annotation": {"strategy": t["strategy"]} if "strategy" in t else {}} for t in row["dialog"]]})
    (folder / "failed").mkdir(exist_ok=True)
    (folder / "failed" / "FailedESConv-part-a.json").write_text(json.dumps(failed))
    return folder
