"""Small trajectory files in the agreed format, whose reward depends on something learnable:
empathetic replies lead to better simulated futures than dismissive ones of the same length."""

from __future__ import annotations

import random
from pathlib import Path

from rlff_esc.jsonl import write_jsonl

SEEKER = ["I lost my job last week and I can't sleep.", "My girlfriend broke up with me out of nowhere.",
          "I'm so stressed about my exams, I feel like I'm failing.", "My dad is sick and I'm scared.",
          "I feel lonely since I moved to a new city.", "My best friend stopped talking to me.",
          "Work has been overwhelming and my boss yells at me.", "I keep arguing with my parents."]
EMPATHETIC = ["That sounds really painful, I'm so sorry you're going through this.",
              "I hear you, it makes sense that you feel hurt and worried.",
              "I'm sorry, that must be so hard. How are you holding up?",
              "You sound exhausted, and your feelings are completely understandable.",
              "It's okay to feel this way; I'm here to listen to you.",
              "I can imagine how lonely and scared that feels for you."]
DISMISSIVE = ["Whatever, everybody has problems like that, so just move on now.",
              "That is not a big deal at all, you should stop complaining.",
              "Honestly it is your own fault, deal with it and stop whining.",
              "Just get over it already, nobody really cares about that stuff.",
              "I don't see why you are making such a fuss about nothing.",
              "Stop being dramatic, it is really not that important anyway."]


def write_fixture_run(run: Path, contexts: int = 40, seed: int = 0, null_rewards: int = 2,
                      noise: float = 0.3) -> Path:
    """Write contexts.jsonl and trajectories.jsonl (4 candidates per context, two contexts per dialogue)."""
    rng = random.Random(seed)
    context_rows, records = [], []
    for c in range(contexts):
        case_id = f"esconv:train:{c // 2}"
        context_id = f"{case_id}:{c % 2}"
        opener = rng.choice(SEEKER)
        history = [{"speaker": "seeker", "text": opener, "strategy": None}]
        if c % 2:
            history += [{"speaker": "supporter", "text": "I'm listening. Tell me more.", "strategy": "Question"},
                        {"speaker": "seeker", "text": rng.choice(SEEKER), "strategy": None}]
        context_rows.append({"id": context_id, "case_id": case_id, "split": "train", "history": history,
                             "profile": {"emotion_type": "sadness", "problem_type": "job crisis",
                                         "situation": opener},
                             "gold_reply": "That sounds hard.", "gold_strategy": "Reflection of feelings"})
        kinds = ["empathetic", "empathetic", "dismissive", "dismissive"]
        rng.shuffle(kinds)
        for candidate, kind in enumerate(kinds):
            reply = rng.choice(EMPATHETIC if kind == "empathetic" else DISMISSIVE)
            final = (0.5 if kind == "empathetic" else -0.5) + rng.uniform(-noise, noise)
            records.append({
                "key": f"{context_id}|{candidate}|0", "context_id": context_id, "case_id": case_id,
                "candidate": candidate, "seed": 0, "raw_candidate": f"<think>be kind</think>{reply}",
                "reasoning": "be kind", "reply": reply,
                "future": [{"speaker": "seeker", "text": "ok"}, {"speaker": "supporter", "text": "mm"}],
                "critic": [{"turn": 0, "score": final, "distribution": {}, "invalid": 0}],
                "rewards": {"final": round(final, 3), "success": int(final > 0.5), "improvement": final},
                "horizon": 1, "models": {"policy": "p", "seeker": "s", "supporter": "s", "critic": "c"},
                "resamples": 0})
    for record in records[:null_rewards]:
        record["rewards"]["final"] = None
    write_jsonl(run / "contexts.jsonl", context_rows)
    write_jsonl(run / "trajectories.jsonl", records)
    return run
