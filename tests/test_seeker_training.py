"""The grounded seeker: its examples are the seeker agent's prompt and the real next seeker turn, it
trains with TRL on a tiny model, the folder it writes runs as the seeker from ``models.seeker``, and
the comparison runs on it end to end."""

from __future__ import annotations

import json

import pytest
import yaml

from rlff_esc.agents.base import Dialogue
from rlff_esc.agents.seeker import SeekerAgent
from rlff_esc.agents.seeker_training import train_seeker, training_examples
from rlff_esc.config import load_config
from rlff_esc.data.contexts import merge_runs
from rlff_esc.data.schema import Case, Turn
from rlff_esc.llm.base import Generation
from tests.critic_fixtures import write_esconv


class RecordingBackend:
    """Answers every request with a fixed seeker line and keeps the messages it was sent."""

    name = "recording"

    def __init__(self):
        self.sent = []

    def generate(self, requests):
        self.sent += [r.messages for r in requests]
        return [Generation(text="I still feel stuck at work.") for _ in requests]


def case() -> Case:
    turns = [Turn(speaker="supporter", text="Hello, how are you?"), Turn(speaker="seeker", text="Not good."),
             Turn(speaker="supporter", text="What happened?"), Turn(speaker="seeker", text="I lost my job."),
             Turn(speaker="seeker", text="Yesterday."), Turn(speaker="supporter", text="That is hard."),
             Turn(speaker="supporter", text="How do you feel?"), Turn(speaker="seeker", text="Scared.")]
    return Case(id="esconv:train:0", dataset="esconv", split="train", emotion_type="fear",
                problem_type="job crisis", situation="I lost my job.", turns=turns)


def test_examples_are_the_seeker_agents_prompt_and_the_real_next_seeker_turn():
    examples = training_examples([case()], max_history_turns=2)
    # the answered supporter turns (the opening greeting is left out), consecutive turns merged
    assert [e["completion"] for e in examples] == [[{"role": "assistant", "content": "I lost my job. Yesterday."}],
                                                  [{"role": "assistant", "content": "Scared."}]]
    backend = RecordingBackend()
    agent = SeekerAgent(backend, max_history_turns=2, max_resamples=0)
    merged = merge_runs(case().turns)  # as every context and simulated conversation is
    agent.respond([Dialogue(profile=case().profile, turns=merged[:end]) for end in (3, 5)], seeds=[0, 1])
    assert [e["prompt"] for e in examples] == backend.sent
    assert backend.sent[1][-1] == {"role": "user", "content": "That is hard. How do you feel?"}
    assert backend.sent[1][-2] == {"role": "assistant", "content": "I lost my job. Yesterday."}
    assert len(backend.sent[1]) == 3  # system + the last two turns


def make_config(tmp_path, tiny_lm_dir):
    folder = write_esconv(tmp_path / "esconv", {"train": 6, "valid": 2, "test": 2})
    raw = {"run_dir": str(tmp_path / "run"), "data": {"path": str(folder), "split": "seed13"},
           "simulate": {"max_history_turns": 4, "max_new_tokens": 8},
           "models": {"seeker": {"model": "{run}/seeker"}},
           "seeker_training": {"enabled": True, "base_model": str(tiny_lm_dir), "max_steps": 2, "batch_size": 2,
                               "max_examples": 6, "max_length": 256}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_trained_seeker_is_selected_by_models_seeker_and_runs_as_the_seeker(tmp_path, tiny_lm_dir):
    from rlff_esc.llm.registry import build_backend
    from rlff_esc.manifest import read_manifest
    from rlff_esc.pipeline import plan

    config = make_config(tmp_path, tiny_lm_dir)
    assert config.models.seeker.model == str(config.paths.seeker) == str(tmp_path / "run" / "seeker")
    assert any("models.seeker: local" in line and "trained by the seeker stage" in line for line in plan(config))

    out = train_seeker(config)
    assert out == config.paths.seeker
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()  # merged weights
    stage = json.loads((out / "stage.json").read_text())
    assert stage["steps"] == 2 and stage["examples"] == 6 and stage["max_history_turns"] == 4
    assert read_manifest(config.run_path)["stages"]["seeker"]["path"] == str(out)
    written = (out / "stage.json").stat().st_mtime_ns
    assert train_seeker(config) == out and (out / "stage.json").stat().st_mtime_ns == written  # same inputs: skipped

    backend = build_backend(config.models.seeker)
    assert backend.name == str(out)
    agent = SeekerAgent(backend, max_new_tokens=8, max_resamples=0, max_history_turns=4)
    turns = [Turn(speaker="seeker", text="I lost my job."), Turn(speaker="supporter", text="How do you feel?")]
    replies = agent.respond([Dialogue(profile=case().profile, turns=turns)], seeds=[3])
    assert len(replies) == 1 and isinstance(replies[0], str) and agent.stats["calls"] == 1

    from rlff_esc.agents.seeker_comparison import compare_seekers

    prompted = config.models.seeker.model_copy(update={"model": str(tiny_lm_dir)})
    report = compare_seekers(config, {"prompted": prompted, "grounded": config.models.seeker}, n=3, samples=200)
    assert report["points"] == 3 and report["in_character_check"]["n_pairs"] > 0
    grounded, base = report["models"]["grounded"], report["models"]["prompted"]
    assert grounded["model"] == str(out) and len(grounded["samples"]) == 3
    assert grounded["perplexity_minus_reference"]["delta"] == pytest.approx(
        grounded["perplexity"]["value"] - base["perplexity"]["value"])
    assert "perplexity_minus_reference" not in base
