"""The reward-chain ladder: known-quality replies, their pairwise figures, and a resumable run through
the simulation engine on the tiny model."""

from __future__ import annotations

import json

import pytest
import yaml

from rlff_esc.agents.base import Dialogue
from rlff_esc.agents.reaction import NEGATIVE_REACTIONS, POSITIVE_REACTIONS, reaction_scores
from rlff_esc.agents.seeker import seeker_prompt
from rlff_esc.config import load_config
from rlff_esc.data.schema import Profile, Turn
from rlff_esc.data.prepare import read_cases
from rlff_esc.ladder_replies import DISMISSIVE_REPLIES, GENERIC_REPLIES
from rlff_esc.simulate import ladder
from rlff_esc.simulate.ladder import KINDS, ladder_contexts, ladder_figures, ladder_replies, pairwise_accuracy, run_ladder
from test_policy import write_run


def test_pairwise_accuracy_counts_ties_as_half():
    figures = pairwise_accuracy([1.0, 0.5, 0.2, 0.0], [0.0, 0.5, 0.3, -1.0], samples=200, seed=0)
    assert figures["value"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert figures["low"] <= figures["value"] <= figures["high"]


def test_ladder_figures_cover_every_pair_of_the_given_kinds():
    scores = {"gold": [0.3, 0.2, 0.4], "random": [0.1, 0.3, 0.0], "dismissive": [-0.2, -0.1, 0.5]}
    figures = ladder_figures(scores, samples=200, seed=1)
    assert figures["n"] == 3 and set(figures["mean"]) == {"gold", "random", "dismissive"}
    assert set(figures["pairwise"]) == {"gold>random", "gold>dismissive", "random>dismissive"}
    assert figures["pairwise"]["gold>random"]["value"] == pytest.approx(2 / 3)
    assert figures["pairwise"]["gold>dismissive"]["value"] == pytest.approx(2 / 3)
    assert figures["mean"]["gold"]["value"] == pytest.approx(0.3)


def test_one_context_per_dialogue_and_random_replies_come_from_another_dialogue(tmp_path):
    cases = read_cases(write_run(tmp_path / "run") / "cases.jsonl")
    contexts = ladder_contexts(cases, n=10, seed=5, split="train")
    assert len(contexts) == 4 and len({c.case_id for c in contexts}) == 4
    assert ladder_contexts(cases, n=10, seed=5, split="train") == contexts  # seeded, not random
    replies = ladder_replies(contexts, seed=5)
    gold = {c.id: c.gold_reply for c in contexts}
    assert {replies[(c.id, "gold")] for c in contexts} == set(gold.values())
    for c in contexts:
        donor = next(d for d in contexts if d.gold_reply == replies[(c.id, "random")] and d.id != c.id)
        assert donor.case_id != c.case_id
        assert replies[(c.id, "dismissive")] in DISMISSIVE_REPLIES
        assert replies[(c.id, "generic")] in GENERIC_REPLIES


def test_reaction_score_is_mean_positive_minus_mean_negative_likelihood_on_the_seekers_prompt():
    profile = Profile(emotion_type="sadness", problem_type="job crisis", situation="I lost my job.")
    history = [Turn(speaker="seeker", text="I lost my job today."), Turn(speaker="supporter", text="What happened?"),
               Turn(speaker="seeker", text="They closed the office.")]
    kind = Dialogue(profile, history + [Turn(speaker="supporter", text="That sounds like a real shock.")])
    rude = Dialogue(profile, history + [Turn(speaker="supporter", text="Just get over it.")])
    asked = []

    class Backend:
        name, stats = "fake", {}

        def loglikelihood(self, requests):  # positive reactions -1, -2, -3 (mean -2), negative -6; reversed when brushed off
            asked.extend(requests)
            off = [messages[-1]["content"] == "Just get over it." for messages, _ in requests]
            return [-(1.0 + POSITIVE_REACTIONS.index(r)) - 4 * o if r in POSITIVE_REACTIONS else -6.0 + 4 * o
                    for (_, r), o in zip(requests, off)]

    scores = reaction_scores(Backend(), [kind, rude], max_history_turns=2, persona="resistant")
    assert scores == pytest.approx([4.0, -4.0])
    reactions = POSITIVE_REACTIONS + NEGATIVE_REACTIONS
    assert asked == [(seeker_prompt(d, 2, "resistant"), r) for d in (kind, rude) for r in reactions]


@pytest.mark.slow
def test_ladder_runs_through_the_engine_and_resumes(tmp_path, tiny_lm_dir, monkeypatch):
    run = write_run(tmp_path / "run")
    model = {"model": str(tiny_lm_dir), "batch_size": 8}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "run_dir": str(run), "seed": 3, "models": {r: model for r in ("policy", "seeker", "supporter", "critic")},
        "simulate": {"horizon": 1, "futures": 2, "max_new_tokens": 6, "max_resamples": 0,
                     "critic": {"kind": "llm", "scoring": "logprob"}},
        "evaluate": {"bootstrap_samples": 200}}))
    config = load_config(path)
    report = run_ladder(config, n=2)
    records = [json.loads(line) for line in (run / "ladder" / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 2 * len(KINDS) * 2
    gold = {r["context_id"]: r["reply"] for r in records if r["candidate"] == KINDS.index("gold")}
    contexts = {c.id: c for c in ladder_contexts(read_cases(run / "cases.jsonl"), 2, 3)}
    assert gold == {cid: c.gold_reply for cid, c in contexts.items()}  # the fixed reply, not a generation
    assert all(len(r["future"]) == 3 for r in records)  # seeker, supporter, seeker
    assert report["chain"]["n"] == 2 and set(report["chain"]["mean"]) == set(KINDS)
    assert report["reward_model"] is None  # no reward model trained in this run
    assert report["reaction"]["n"] == 2 and set(report["reaction"]["pairwise"]) == set(report["chain"]["pairwise"])
    assert json.loads((run / "ladder" / "ladder.json").read_text())["chain"] == report["chain"]

    def no_models(*args, **kwargs):
        raise AssertionError("a finished ladder must not load a model")

    monkeypatch.setattr("rlff_esc.simulate.run.build_engine", no_models)
    again = run_ladder(config, n=2)
    assert again["chain"] == report["chain"]
    assert again["reaction"] == report["reaction"]  # deterministic: likelihoods, not samples
    assert "| seeker reaction |" in ladder.format_ladder(again)
