"""The seeker comparison's figures on small hand-made cases: held-out points, the perplexity of real
turns (against a forward pass done by hand), the in-character check and the turn figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlff_esc.agents.embeddings import Encoder
from rlff_esc.agents.in_character import InCharacterCheck, exchanges, rate
from rlff_esc.agents.seeker import seeker_prompt
from rlff_esc.agents.seeker_comparison import (Point, held_out_points, perplexity_of, real_turn_nll,
                                               turn_figures)
from rlff_esc.data.esconv import read_processed
from rlff_esc.data.schema import Case, Turn
from tests.critic_fixtures import write_esconv


def case(i: int = 0) -> Case:
    turns = [Turn(speaker="supporter", text="Hi."), Turn(speaker="seeker", text="Hello."),
             Turn(speaker="supporter", text=f"What is wrong {i}?"), Turn(speaker="seeker", text=f"I am sad {i}."),
             Turn(speaker="supporter", text=f"Why {i}?"), Turn(speaker="seeker", text=f"My dog died {i}."),
             Turn(speaker="supporter", text=f"I am sorry {i}.")]
    return Case(id=f"c{i}", dataset="esconv", split="test", emotion_type="sadness", problem_type="loss",
                situation="My dog died.", turns=turns)


def test_held_out_points_answer_a_supporter_turn_that_the_supporter_followed():
    points = held_out_points([case(i) for i in range(6)], n=4, seed=2)
    assert len(points) == 4 and len({p.case_id for p in points}) == 4
    for p in points:
        i = p.case_id[1:]
        last = p.dialogue.turns[-1]
        assert last.speaker == "supporter"
        assert (last.text, p.real, p.supporter_next) in [(f"What is wrong {i}?", f"I am sad {i}.", f"Why {i}?"),
                                                        (f"Why {i}?", f"My dog died {i}.", f"I am sorry {i}.")]


def test_perplexity_pools_tokens_over_points():
    statistic = perplexity_of(np.array([2.0, 4.0, 6.0]), np.array([1.0, 3.0, 2.0]))
    assert statistic(np.array([[0, 1], [2, 2]])) == pytest.approx([np.exp(6 / 4), np.exp(12 / 4)])


def test_real_turn_nll_is_the_models_negative_log_likelihood_of_the_real_turn(tiny_backend):
    points = held_out_points([case(i) for i in range(2)], n=2, seed=0)
    nll, tokens = real_turn_nll(tiny_backend, points, max_history_turns=2)
    tok, model = tiny_backend.tokenizer, tiny_backend.model
    for p, got_nll, got_tokens in zip(points, nll, tokens):
        prompt = tok.apply_chat_template(seeker_prompt(p.dialogue, 2), tokenize=False, add_generation_prompt=True)
        context = tok(prompt, add_special_tokens=False)["input_ids"]
        turn = tok(p.real, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([context + turn])).logits[0].float()
        logprobs = torch.log_softmax(logits, -1)
        expected = -sum(float(logprobs[len(context) - 1 + k, t]) for k, t in enumerate(turn))
        assert got_tokens == len(turn) and got_nll == pytest.approx(expected, rel=1e-4)


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    folder = write_esconv(tmp_path_factory.mktemp("esconv"))
    train = read_processed(folder / "train.txt", split="train").cases
    return InCharacterCheck().fit(train), read_processed(folder / "test.txt", split="test").cases


def test_in_character_check_tells_seekers_from_supporters_and_scores_itself(check):
    model, held_out = check
    seeker, supporter = exchanges(held_out)
    result = model.evaluate(held_out, samples=200)
    assert result["n_pairs"] == len(seeker) == len(supporter) > 0
    hits_seeker, hits_supporter = model.in_character(seeker), ~model.in_character(supporter)
    assert result["seeker_recall"]["value"] == pytest.approx(hits_seeker.mean())
    assert result["accuracy"]["value"] == pytest.approx(np.r_[hits_seeker, hits_supporter].mean())
    assert result["accuracy"]["value"] > 0.9  # the fixture's seekers and supporters use disjoint lines
    assert model.in_character(["I feel lonely since I moved to a new city.",
                               "How long have you felt this way?"]).tolist() == [True, False]


def test_rate_is_the_share_with_an_interval_around_it():
    r = rate(np.array([True, False, True, True]), samples=500)
    assert r["value"] == 0.75 and r["low"] <= 0.75 <= r["high"] and r["low"] < r["high"]


def test_turn_figures_on_a_hand_made_case(check, minilm_dir):
    model, _ = check
    real = ["My dad is sick and I'm scared.", "I lost my job last week.", "My girlfriend left me.",
            "I feel lonely in this city."]
    points = [Point(dialogue=None, real=r, supporter_next="How long have you felt this way?", case_id=str(i))
              for i, r in enumerate(real)]
    encoder = Encoder(cache_path=None)
    same = turn_figures(real, points, model, encoder, samples=200, seed=0)
    assert same["similarity"]["value"] == pytest.approx(1.0, abs=1e-3)
    vectors = encoder.encode(real)
    off_diagonal = (vectors @ vectors.T).sum() - len(real) * 1.0
    assert same["chance"]["value"] == pytest.approx(off_diagonal / (len(real) * (len(real) - 1)), abs=1e-3)
    assert same["words"]["value"] == np.mean([len(r.split()) for r in real])
    assert same["in_character"]["value"] == 1.0 and same["pairwise"]["value"] == 1.0
    counselling = turn_figures(["How long have you felt this way?"] * 4, points, model, encoder, samples=200, seed=0)
    assert counselling["in_character"]["value"] == 0.0 and counselling["pairwise"]["value"] == 0.0
    assert counselling["similarity_above_chance"]["value"] < same["similarity_above_chance"]["value"]
