"""Validity measures: AUC and figures on known scores, the critic path against the length baseline,
the held-out failed set, realism points, and the role classifier on real MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from rlff_esc.agents.base import Dialogue, Judgement
from rlff_esc.agents.embeddings import Encoder
from rlff_esc.agents.role_classifier import RoleClassifier
from rlff_esc.agents.validity import (auc, critic_validity, first_half, length_baseline, mean_seeker_length,
                                      realism_points, score_figures, seeker_realism, validity_set)
from rlff_esc.data.esconv import read_processed, read_raw
from rlff_esc.data.schema import Case, Turn
from tests.critic_fixtures import write_esconv


def test_auc_counts_pairs_and_ties():
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5
    assert auc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5
    assert np.isnan(auc(np.array([1.0]), np.array([])))


def test_score_figures_on_known_scores():
    rng = np.random.default_rng(0)
    improvements = rng.integers(1, 5, size=200).astype(float)
    scores = improvements / 4 + rng.normal(0, 0.1, size=200) - 0.2
    failed = rng.normal(-0.8, 0.1, size=30)
    f = score_figures(scores, failed, improvements, half_scores=scores - 0.3, lengths=-improvements)
    assert f["spearman"] > 0.8 and f["spearman_ci95"][0] > 0.7 and f["spearman_p"] < 1e-10
    assert f["auc"] == 1.0 and f["auc_n"] == {"improved_by_2+": int((improvements >= 2).sum()), "did_not_improve": 30}
    assert f["progress"] == {"whole_above_half": 1.0, "mean_difference": pytest.approx(0.3), "n": 200}
    assert f["length_spearman"] < -0.8
    assert f["success_rate"]["failed"] == 0.0
    unanswered = scores.copy()
    unanswered[:5] = np.nan
    assert score_figures(unanswered, failed, improvements)["n"] == 195


class LengthCritic:
    """A real (if trivial) Critic: longer seeker turns → higher score, squashed into [−1, 1]."""

    name = "length"

    def judge(self, dialogues: list[Dialogue]) -> list[Judgement]:
        return [Judgement(score=float(np.tanh(mean_seeker_length(d.turns) / 10 - 1))) for d in dialogues]


@pytest.fixture(scope="module")
def fixture_cases(tmp_path_factory):
    folder = write_esconv(tmp_path_factory.mktemp("esconv"))
    cases = [c for s in ("train", "valid", "test") for c in read_processed(folder / f"{s}.txt", split=s).cases]
    return cases, read_raw(folder / "failed" / "FailedESConv-part-a.json").cases


def test_validity_set_holds_out_the_odd_failed_conversations_that_did_not_improve(fixture_cases):
    cases, failed = fixture_cases
    vset = validity_set(cases, failed)
    assert len(vset.kept) == 24 and {c.split for c in vset.kept} == {"valid", "test"}
    assert [c.id for c in vset.failed] == [c.id for c in failed[1::2]]
    failed[1].survey["final_emotion_intensity"] = failed[1].survey["initial_emotion_intensity"] - 1
    assert failed[1].id not in [c.id for c in validity_set(cases, failed).failed]


def test_critic_validity_of_a_length_critic_matches_the_length_baseline(fixture_cases):
    vset = validity_set(*fixture_cases)
    by_critic, baseline = critic_validity(LengthCritic(), vset), length_baseline(vset)
    assert by_critic["critic"] == "length" and by_critic["n"] == len(vset.kept)
    for key in ("spearman", "auc"):  # tanh is monotone: ranks, hence both figures, agree
        assert by_critic[key] == pytest.approx(baseline[key])
    assert by_critic["progress"]["n"] == len(vset.kept)


def test_first_half_and_realism_points_come_from_the_case():
    turns = [Turn(speaker="supporter", text="Hi, how are you?")]
    for i in range(4):
        turns += [Turn(speaker="seeker", text=f"seeker {i}"), Turn(speaker="seeker", text=f"more {i}"),
                  Turn(speaker="supporter", text=f"supporter {i}")]
    case = Case(id="c", dataset="esconv", split="test", emotion_type="sadness", problem_type="x",
                situation="s", turns=turns)
    assert first_half(case).turns == turns[:6]
    points = realism_points([case] * 5, n=3, seed=1)
    assert len(points) == 3
    for dialogue, real, case_id in points:
        last = dialogue.turns[-1]
        assert last.speaker == "supporter" and case_id == "c"
        i = int(last.text.split()[-1])
        assert real == f"seeker {i + 1} more {i + 1}"  # the seeker's merged answer to that turn


@pytest.fixture(scope="module")
def role_classifier(fixture_cases, minilm_dir):
    cases, _ = fixture_cases
    return RoleClassifier(Encoder(cache_path=None)).fit([c for c in cases if c.split == "train"], per_role=200)


def test_role_classifier_separates_seekers_from_supporters(role_classifier, fixture_cases):
    cases, _ = fixture_cases
    result = role_classifier.evaluate([c for c in cases if c.split != "train"], per_role=50)
    assert result["heldout_accuracy"] > 0.9
    assert role_classifier.in_character_rate(["I can't stop crying since my sister left.",
                                              "My boss yelled at me again today and I feel awful."]) == 1.0
    assert role_classifier.in_character_rate(["How long have you been feeling this way?",
                                              "It sounds like you are going through a lot."]) == 0.0


def test_seeker_realism_pairs_simulated_with_real_turns(role_classifier):
    real = ["My dad is sick and I'm scared.", "I lost my job last week.", "My girlfriend left me.",
            "I feel lonely in this city."]
    same = seeker_realism(real, real, role_classifier, Encoder(cache_path=None))
    assert same["similarity_same"] == pytest.approx(1.0, abs=1e-3)
    assert same["similarity_shuffled"] < 0.9
    assert same["mean_words_simulated"] == same["mean_words_real"] and same["n"] == 4
    supporterish = ["How long have you felt this way?"] * 4
    other = seeker_realism(supporterish, real, role_classifier, Encoder(cache_path=None))
    assert other["in_character_rate"] == 0.0 and other["similarity_same"] < 0.6
