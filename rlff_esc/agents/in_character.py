"""Is a seeker turn in character? A check learned from who spoke after the same supporter turn.

Examples come from ESConv: at every point where a seeker answered a supporter turn
(:func:`rlff_esc.data.contexts.seeker_answers`) and the supporter spoke next, the seeker's answer is
in character (1) and the supporter's next turn is not (0). Both come from the same place of the same
conversation, so the check learns who is speaking rather than what about: a seeker simulator out of
character is one that talks like the supporter.

Model: TF-IDF of word unigrams and bigrams (``?`` and ``!`` count as words) and logistic regression
(C = 3). Chosen by 5-fold cross-validation by dialogue on the PPDPP train split (10,665 pairs), where
it classified 0.871 of the turns correctly; MiniLM embeddings of the turn (the role classifier's
features) reached 0.72, with the preceding supporter turn's embedding and its product with the turn's
0.72 too, and TF-IDF of the preceding supporter turn added nothing (0.868). Pronouns and question
marks tell the roles apart; a sentence embedding blurs them.

Two figures per set of turns, each with the check's own accuracy on held-out real data
(:meth:`InCharacterCheck.evaluate`):

* ``rate``: the share of turns the check calls a seeker's (real held-out seeker turns: its recall);
* ``pairwise``: the share of points where the turn reads more like a seeker than the supporter's
  real next turn at that point (real seeker turns: the check's pairwise accuracy, 0.922 in that
  cross-validation).
"""

from __future__ import annotations

import numpy as np

from rlff_esc.data.contexts import merge_runs, seeker_answers
from rlff_esc.data.schema import Case
from rlff_esc.stats import interval, mean_of

TOKENS = r"(?u)\b\w+\b|[?!]"


def exchanges(cases: list[Case]) -> tuple[list[str], list[str]]:
    """(the seeker's answers, the supporter's next turns), one pair per point that has both."""
    seeker, supporter = [], []
    for case in cases:
        turns = merge_runs(case.turns)
        for i in seeker_answers(turns):
            if i + 2 < len(turns):
                seeker.append(turns[i + 1].text)
                supporter.append(turns[i + 2].text)
    return seeker, supporter


class InCharacterCheck:
    def __init__(self, C: float = 3.0):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=TOKENS)
        self.model = LogisticRegression(C=C, max_iter=3000)

    def fit(self, cases: list[Case]) -> "InCharacterCheck":
        seeker, supporter = exchanges(cases)
        if not seeker:
            raise ValueError("no seeker answer followed by a supporter turn to learn the in-character check from")
        X = self.vectorizer.fit_transform(seeker + supporter)
        self.model.fit(X, np.r_[np.ones(len(seeker)), np.zeros(len(supporter))])
        return self

    def score(self, turns: list[str]) -> np.ndarray:
        """How much a turn reads like a seeker's (log-odds; above 0: in character)."""
        if not turns:
            return np.zeros(0)
        return self.model.decision_function(self.vectorizer.transform(turns))

    def in_character(self, turns: list[str]) -> np.ndarray:
        return self.score(turns) > 0

    def more_seeker_like(self, turns: list[str], supporter_turns: list[str]) -> np.ndarray:
        """Per point: does the turn read more like a seeker than the supporter's turn there?"""
        return self.score(turns) > self.score(supporter_turns)

    def evaluate(self, cases: list[Case], *, samples: int = 1000, seed: int = 13) -> dict:
        """Accuracy on dialogues it was not trained on, with bootstrap 95% intervals over the turns
        (pairs for the pairwise accuracy)."""
        seeker, supporter = exchanges(cases)
        hit_seeker, hit_supporter = self.in_character(seeker), ~self.in_character(supporter)
        return {"n_pairs": len(seeker),
                "accuracy": rate(np.r_[hit_seeker, hit_supporter], samples, seed),
                "seeker_recall": rate(hit_seeker, samples, seed),
                "supporter_rejected": rate(hit_supporter, samples, seed),
                "pairwise_accuracy": rate(self.more_seeker_like(seeker, supporter), samples, seed)}


def rate(hits: np.ndarray, samples: int = 1000, seed: int = 13) -> dict:
    """The share of true values with its bootstrap 95% interval (``value``, ``low``, ``high``)."""
    return interval(mean_of(np.asarray(hits, dtype=float)), len(hits), samples=samples, seed=seed)
