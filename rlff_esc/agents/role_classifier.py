"""Does a simulated seeker turn read like a seeker? A role classifier trained on people.

Logistic regression on frozen MiniLM embeddings of ESConv utterances, seeker (1) vs supporter (0),
balanced by sampling the same number of each; accuracy is measured on utterances of held-out
dialogues (other splits). Its in-character rate on simulated seeker turns is the share classified as
seeker: a seeker agent that starts counselling ("Have you tried talking to her?") is caught even when
it avoids the phrases the seeker agent's own rules look for.
"""

from __future__ import annotations

import numpy as np

from rlff_esc.agents.embeddings import Encoder
from rlff_esc.data.schema import Case


def utterances(cases: list[Case], per_role: int | None, seed: int = 13) -> tuple[list[str], np.ndarray]:
    """Up to ``per_role`` seeker and as many supporter utterances (seeded draw), with labels."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, role in ((1, "seeker"), (0, "supporter")):
        pool = [t.text for c in cases for t in c.turns if t.speaker == role and t.text.strip()]
        if per_role is not None and len(pool) > per_role:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), size=per_role, replace=False))]
        texts += pool
        labels += [label] * len(pool)
    return texts, np.array(labels)


class RoleClassifier:
    def __init__(self, encoder: Encoder, C: float = 1.0):
        from sklearn.linear_model import LogisticRegression

        self.encoder = encoder
        self.model = LogisticRegression(C=C, max_iter=2000)
        self.heldout_accuracy: float | None = None

    def fit(self, cases: list[Case], per_role: int | None = 3000) -> "RoleClassifier":
        texts, labels = utterances(cases, per_role)
        self.model.fit(self.encoder.encode(texts, progress=True), labels)
        return self

    def evaluate(self, cases: list[Case], per_role: int | None = 1000) -> dict:
        """Accuracy on (balanced) utterances of dialogues not used for training."""
        texts, labels = utterances(cases, per_role, seed=7)
        predicted = self.model.predict(self.encoder.encode(texts, progress=True))
        self.heldout_accuracy = float(np.mean(predicted == labels))
        return {"heldout_accuracy": round(self.heldout_accuracy, 3),
                "seeker_recall": round(float(np.mean(predicted[labels == 1] == 1)), 3),
                "supporter_recall": round(float(np.mean(predicted[labels == 0] == 0)), 3),
                "n": int(len(labels))}

    def seeker_probability(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.model.predict_proba(self.encoder.encode(texts))[:, 1]

    def in_character_rate(self, seeker_turns: list[str]) -> float:
        """Share of turns classified as a seeker's (probability > 0.5)."""
        if not seeker_turns:
            return float("nan")
        return float(np.mean(self.seeker_probability(seeker_turns) > 0.5))
