"""The policy sees one prompt for one conversation wherever it answers: the warm-up, GRPO, simulation,
the held-out check, evaluation and serving all build it with ``policy_prompt``."""

from __future__ import annotations

from collections import Counter

import pytest

from rlff_esc.config import ModelSpec
from rlff_esc.data.prepare import read_contexts
from rlff_esc.data.schema import Turn
from rlff_esc.evaluate.systems import build_system
from rlff_esc.llm.base import Generation
from rlff_esc.policy import check
from rlff_esc.policy.dataset import grpo_prompts, sft_examples
from rlff_esc.policy.reasoning import history_window, policy_prompt
from rlff_esc.serve.responder import build_responder
from rlff_esc.simulate.engine import Item
from rlff_esc.simulate.run import build_engine
from test_policy import make_config


class Recorder:
    """A policy that records the messages it is asked to answer and answers in the reasoning format."""

    name = "recorder"

    def __init__(self):
        self.prompts: list[list[dict]] = []
        self.stats = Counter()

    def generate(self, requests):
        self.prompts += [r.messages for r in requests]
        return [Generation("<think>They feel low.</think> That sounds hard.", 5, 5) for _ in requests]


def test_history_window_starts_with_the_seeker():
    turns = [Turn(speaker="seeker" if i % 2 == 0 else "supporter", text=str(i)) for i in range(7)]
    assert [t.text for t in history_window(turns, 4)] == ["4", "5", "6"]
    assert [t.text for t in history_window(turns, 3)] == ["4", "5", "6"]
    assert [t.text for t in history_window(turns, 100)] == [str(i) for i in range(7)]
    assert [t.text for t in history_window(turns, None)] == [str(i) for i in range(7)]


@pytest.mark.slow
def test_every_stage_shows_the_policy_the_same_prompt(tmp_path, tiny_lm_dir, monkeypatch):
    config = make_config(tmp_path, str(tiny_lm_dir), max_history_turns=2)
    config.models.seeker = config.models.supporter = config.models.critic = ModelSpec(model=str(tiny_lm_dir))
    config.simulate.horizon = 0
    config.simulate.critic.kind = "llm"
    warmup = {e["context_id"]: e["prompt"] for e in sft_examples(config)}
    context = max((c for c in read_contexts(config.run_path / "contexts.jsonl", split="train") if c.id in warmup),
                  key=lambda c: len(c.history))
    expected = policy_prompt(context.history, config.policy.reasoning, config.policy.max_history_turns)
    assert [m["content"] for m in expected[1:]] == [context.history[-1].text]  # the window cuts the history

    grpo = next(p["prompt"] for p in grpo_prompts(config) if p["context_id"] == context.id)

    engine = build_engine(config, ModelSpec(model=str(tiny_lm_dir)))
    engine.policy = simulated = Recorder()
    engine.run([Item(context, candidate=0, seed=1)])

    monkeypatch.setattr(check, "load_local", lambda *a, **k: checked)
    checked = Recorder()
    valid = read_contexts(config.run_path / "contexts.jsonl", split="valid")
    check.policy_check(config, "unused", n=len(valid), scorer=_ConstantScorer())

    system = build_system(config, "base_reasoning")
    system.backend = evaluated = Recorder()
    system.respond([context.history], [0])

    served = Recorder()
    responder = build_responder("unused", config, backend=served)
    responder.safety = None
    responder.respond([[{"role": "user" if t.speaker == "seeker" else "assistant", "content": t.text}
                        for t in context.history]], seeds=[0])

    assert grpo == warmup[context.id] == simulated.prompts[0] == evaluated.prompts[0] == served.prompts[0] == expected
    assert checked.prompts == [policy_prompt(c.history, config.policy.reasoning, config.policy.max_history_turns)
                               for c in valid]


class _ConstantScorer:
    def score(self, histories, replies):
        return [0.0] * len(replies)
