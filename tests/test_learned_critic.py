"""The learned critic: its four-way mapping, its training examples, and training → save → load →
judge on small dialogues whose improvement shows in what the seeker says (real MiniLM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from rlff_esc.agents.base import OPTIONS, Dialogue
from rlff_esc.agents.embeddings import Encoder
from rlff_esc.agents.learned_critic import (LearnedCritic, Mapping, calibrate_solved_from, fit_learned_critic,
                                            split_failed, train_learned_critic, training_rows)
from rlff_esc.config import load_config
from rlff_esc.data.esconv import read_processed, read_raw
from rlff_esc.data.schema import Case, Profile, Turn
from rlff_esc.errors import RlffError
from tests.critic_fixtures import BETTER, WORSE, write_esconv

PROFILE = Profile(emotion_type="sadness", problem_type="job crisis", situation="I lost my job.")


def test_mapping_is_a_distribution_whose_score_rises_with_predicted_improvement():
    mapping = Mapping(sigma=0.8, solved_from=2.5)
    scores = []
    for y in np.linspace(-3, 5, 33):
        dist = mapping.distribution(float(y))
        assert list(dist) == list(OPTIONS)
        assert abs(sum(dist.values()) - 1) < 1e-9 and min(dist.values()) >= 0
        scores.append(mapping.score(float(y)))
    assert all(b > a for a, b in zip(scores, scores[1:]))
    assert -1 < scores[0] < -0.9 and 0.9 < scores[-1] < 1
    assert max(mapping.distribution(0.0), key=mapping.distribution(0.0).get) == "feels the same"
    assert max(mapping.distribution(-2.0), key=mapping.distribution(-2.0).get) == "feels worse"


def test_calibration_makes_the_requested_share_succeed():
    predicted = np.random.default_rng(0).normal(1.8, 0.4, size=500)
    for share in (0.2, 0.6):
        mapping = Mapping(0.9, calibrate_solved_from(predicted, 0.9, share))
        succeeded = np.mean([mapping.score(float(y)) > 0.5 for y in predicted])
        assert abs(succeeded - share) < 0.01


def _case(seeker_lines, improvement=2.0):
    turns = []
    for text in seeker_lines:
        turns += [Turn(speaker="seeker", text=text), Turn(speaker="supporter", text="I hear you.")]
    return Case(id="x", dataset="esconv", split="train", emotion_type="sadness", problem_type="job crisis",
                situation="I lost my job.", turns=turns,
                survey={"initial_emotion_intensity": 4.0, "final_emotion_intensity": 4.0 - improvement})


def test_training_rows_are_prefixes_with_improvement_accrued_evenly():
    case = _case([f"line {i}" for i in range(8)], improvement=2.0)
    turn_lists, targets, complete, source = training_rows([case], [2.0])
    assert [sum(t.speaker == "seeker" for t in turns) for turns in turn_lists] == [2, 4, 6, 8]
    assert np.allclose(targets, [0.5, 1.0, 1.5, 2.0])
    assert complete.tolist() == [False, False, False, True] and source.tolist() == [0, 0, 0, 0]
    assert all(turns[-1].speaker == "seeker" for turns in turn_lists[:-1])
    assert turn_lists[-1] == case.turns


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    return write_esconv(tmp_path_factory.mktemp("esconv"))


@pytest.fixture(scope="module")
def fitted(fixture_dir, minilm_dir):
    train = read_processed(fixture_dir / "train.txt", split="train").cases
    failed_train, _ = split_failed(read_raw(fixture_dir / "failed" / "FailedESConv-part-a.json").cases)
    return fit_learned_critic(train, failed_train, alpha=1.0, encoder=Encoder(cache_path=None))


def _dialogue(closing: list[str]) -> Dialogue:
    turns = [Turn(speaker="seeker", text="My dad is sick and I'm scared."),
             Turn(speaker="supporter", text="That sounds really hard."),
             Turn(speaker="seeker", text="I keep thinking about it all day.")]
    for text in closing:
        turns += [Turn(speaker="supporter", text="How do you feel now?"), Turn(speaker="seeker", text=text)]
    return Dialogue(profile=PROFILE, turns=turns)


def test_learned_critic_tells_good_conversations_from_poor_ones(fitted):
    good, poor = _dialogue(BETTER[:3]), _dialogue(WORSE[:3])
    start = Dialogue(profile=PROFILE, turns=good.turns[:1])
    j_good, j_poor, j_start, j_empty = fitted.judge([good, poor, start, Dialogue(profile=PROFILE, turns=[])])
    assert j_good.score > 0.5 >= j_poor.score  # success is reachable for good, not for poor
    assert j_good.score > j_start.score  # progress shows
    for j in (j_good, j_poor, j_start, j_empty):
        assert -1 <= j.score <= 1 and abs(sum(j.distribution.values()) - 1) < 1e-9 and j.invalid == 0


def test_save_and_load_give_the_same_judgements(fitted, tmp_path):
    dialogues = [_dialogue(BETTER[:2]), _dialogue(WORSE[1:3])]
    loaded = LearnedCritic.load(fitted.save(tmp_path / "critic"))
    assert loaded.name == fitted.name
    for a, b in zip(fitted.judge(dialogues), loaded.judge(dialogues)):
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_load_names_the_folder_when_it_is_not_a_critic(tmp_path):
    with pytest.raises(RlffError, match="not a learned critic folder"):
        LearnedCritic.load(tmp_path)
    (tmp_path / "critic.json").write_text(json.dumps({"format_version": 0}))
    np.savez(tmp_path / "ridge.npz", coef=np.zeros(768), intercept=np.array(0.0))
    with pytest.raises(RlffError, match="format_version"):
        LearnedCritic.load(tmp_path)


def test_train_learned_critic_stage_saves_records_and_skips(fixture_dir, tmp_path, minilm_dir, monkeypatch):
    monkeypatch.setenv("RLFF_ESC_CACHE", str(tmp_path / "cache"))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({
        "run_dir": str(tmp_path / "run"), "data": {"path": str(fixture_dir), "split": "seed13"},
        "simulate": {"critic": {"kind": "learned", "ridge_alpha": 1.0}},
        "evaluate": {"critic": {"kind": "learned"}}}))
    config = load_config(config_file)
    path = train_learned_critic(config)
    assert path == tmp_path / "run" / "critic"
    meta = json.loads((path / "critic.json").read_text())
    assert meta["train_dialogues"] == 40 and meta["train_failed"] == 8
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["critic"]
    assert stage["train_dialogues"] == 40 and stage["seconds"] > 0
    stamp = (path / "ridge.npz").stat().st_mtime_ns
    assert train_learned_critic(config) == path and (path / "ridge.npz").stat().st_mtime_ns == stamp
    train_learned_critic(config, force=True)
    assert (path / "ridge.npz").stat().st_mtime_ns != stamp
    assert list((tmp_path / "cache" / "embeddings").glob("*.npz"))  # the embedding cache was kept

    from rlff_esc.agents.factory import build_critic

    critic = build_critic(config.evaluate.critic, config)
    assert isinstance(critic, LearnedCritic)
    good, poor = critic.judge([_dialogue(BETTER[:3]), _dialogue(WORSE[:3])])
    assert good.score > poor.score
