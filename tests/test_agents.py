"""Seeker, supporter and critic agents: the rules they apply, over a scripted backend (to pin down
exact behaviour) and over the tiny real model (to run the code path users run)."""

from __future__ import annotations

import math
import sys
import types

import pytest

from rlff_esc.agents.base import OPTION_VALUES, OPTIONS, Dialogue
from rlff_esc.agents.critic import LLMCritic, parse_option
from rlff_esc.agents.factory import build_critic
from rlff_esc.agents.prompts import seeker_messages
from rlff_esc.agents.seeker import SeekerAgent, check_turn, first_sentences
from rlff_esc.agents.supporter import SupporterAgent
from rlff_esc.config import Config, CriticSection
from rlff_esc.data.schema import Profile, Turn
from rlff_esc.errors import ConfigError
from rlff_esc.llm.base import Generation

PROFILE = Profile(emotion_type="anxiety", problem_type="job crisis",
                  situation="I may lose my job if I don't go back to work soon.")


def dialogue(*texts: str) -> Dialogue:
    """Turns alternate seeker, supporter, ... starting with the seeker."""
    return Dialogue(PROFILE, [Turn(speaker="seeker" if i % 2 == 0 else "supporter", text=t)
                              for i, t in enumerate(texts)])


class ScriptedBackend:
    """A backend that answers from a script and records what it was asked (a test double of the
    ChatBackend interface, so the agents' own logic can be checked exactly)."""

    name = "scripted"

    def __init__(self, answers=(), loglikelihoods=()):
        self.answers, self.loglikelihoods = list(answers), list(loglikelihoods)
        self.calls: list[list] = []

    def generate(self, requests):
        self.calls.append(requests)
        return [Generation(text=self.answers.pop(0), prompt_tokens=10, completion_tokens=5) for _ in requests]

    def loglikelihood(self, requests):
        self.calls.append(requests)
        return [self.loglikelihoods.pop(0) for _ in requests]


# -- seeker --------------------------------------------------------------------------------------------

D = dialogue("I'm scared about my job.", "That sounds really stressful. What worries you most?")


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), ("  ...  ", "empty"), ("123 !!", "empty"),
    ("How can I help you today?", "out_of_role"),
    ("I'm here for you, tell me more.", "out_of_role"),
    ("I am here to listen.", "out_of_role"),
    ("It sounds like the seeker is anxious.", "out_of_role"),
    ("I lost my job.\nSupporter: I'm sorry to hear that.", "out_of_role"),
    ("Seeker: I feel bad.", "out_of_role"),
    ("**Therapist:** tell me more", "out_of_role"),
    ("As an AI, I cannot feel.", "out_of_role"),
    ("That sounds really stressful. What worries you most?", "copied"),
    ("that sounds really stressful - what worries you most", "copied"),
    ("I'm scared about my job!", "copied"),
    ("Mostly that I can't pay rent if they let me go.", None),
    ("I feel better now, thank you.", None),
])
def test_check_turn(text, reason):
    assert check_turn(text, D) == reason


def test_first_sentences():
    assert first_sentences("One. Two! Three? Four.") == "One. Two!"
    assert first_sentences("no punctuation at all") == "no punctuation at all"


def test_seeker_prompt_mirrors_roles_and_carries_profile():
    messages = seeker_messages(PROFILE, D.turns)
    assert "anxiety" in messages[0]["content"] and "job crisis" in messages[0]["content"]
    assert PROFILE.situation in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["assistant", "user"]  # the seeker speaks as the assistant


def test_seeker_resamples_bad_turns_with_new_seeds_and_counts():
    # batch of 3: #0 fine at once; #1 out of role, then fine; #2 empty, copied, out of role → gives up
    backend = ScriptedBackend(["I just feel lost.", "How can I help you?", "",
                               "My boss keeps calling me.", "That sounds really stressful. What worries you most?",
                               "Supporter: hello"])
    seeker = SeekerAgent(backend, max_resamples=2)
    out = seeker.respond_counted([D, D, D], seeds=[1, 2, 3])
    assert out.texts == ["I just feel lost.", "My boss keeps calling me.", "Supporter: hello"]
    assert [len(c) for c in backend.calls] == [3, 2, 1]  # only failed turns are asked again, together
    seeds = [r.seed for call in backend.calls for r in call]
    assert seeds[:3] == [1, 2, 3] and len(set(seeds)) == len(seeds)  # a fresh seed per attempt
    assert out.resamples == [0, 1, 2]
    assert seeker.stats == {"calls": 3, "out_of_role": 2, "empty": 1, "copied": 1, "resampled": 2, "gave_up": 1}


def test_seeker_on_tiny_model_returns_one_turn_per_dialogue(tiny_backend):
    seeker = SeekerAgent(tiny_backend, max_new_tokens=8, max_resamples=1)
    out = seeker.respond([D, D], seeds=[5, 6])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert seeker.stats["calls"] == 2
    assert seeker.respond([D, D], seeds=[5, 6]) == out  # same seeds, same turns


# -- supporter ------------------------------------------------------------------------------------------

def test_supporter_returns_reply_only_and_uses_policy_prompt():
    backend = ScriptedBackend(["<think>she is scared; reflect it</think> That sounds frightening.",
                               "<think>unfinished reasoning"])
    supporter = SupporterAgent(backend, reasoning=True, max_new_tokens=20)
    d = dialogue("I'm scared about my job.", "Tell me more.", "They may fire me.")
    out = supporter.respond([d, d], seeds=[0, 1])
    assert out == ["That sounds frightening.", ""]
    assert supporter.stats == {"calls": 2, "empty": 1}
    request = backend.calls[0][0]
    assert "<think>" in request.messages[0]["content"]  # the policy's reasoning prompt
    assert [m["role"] for m in request.messages[1:]] == ["user", "assistant", "user"]
    assert request.max_new_tokens == 20 and request.seed == 0


# -- critic ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, option", [
    ("feels better", "feels better"), ("Feels Worse.", "feels worse"), ("The seeker feels the same", "feels the same"),
    ("issue solved!", "issue solved"), ("I think it's resolved", "issue solved"),
    ("better, maybe even solved", "feels better"),  # the first named option decides
    ("The issue is not solved, but they feel better", "feels better"),
    ("hasn't been resolved yet", None), ("blah blah", None), ("", None),
])
def test_parse_option(text, option):
    assert parse_option(text) == option


def test_sample_mode_averages_valid_answers_and_counts_invalid():
    answers = ["feels better", "???", "issue solved", "feels worse", "nonsense"] + ["gibberish"] * 5
    backend = ScriptedBackend(answers)
    critic = LLMCritic(backend, scoring="sample", samples=5, temperature=1.1)
    good, none_valid = critic.judge([D, dialogue("hi")])
    assert good.score == pytest.approx((0.5 + 1.0 - 1.0) / 3)
    assert good.invalid == 2 and len(good.raw) == 5
    assert good.distribution["feels better"] == pytest.approx(1 / 3)
    assert none_valid.score is None and none_valid.invalid == 5  # never scored as 0
    requests = backend.calls[0]
    assert len(requests) == 10 and all(r.temperature == 1.1 for r in requests)
    assert len({r.seed for r in requests[:5]}) == 5  # different samples of one prompt


def test_logprob_mode_is_softmax_expectation():
    backend = ScriptedBackend(loglikelihoods=[-9.0, -3.0, -2.0, -1.0, -4.0])  # the first answers the probe
    critic = LLMCritic(backend, scoring="logprob")
    assert len(backend.calls) == 1 and critic.scoring == "logprob"
    backend.calls.clear()
    j = critic.judge([D])[0]
    weights = [math.exp(x) for x in (-3.0, -2.0, -1.0, -4.0)]
    expected = sum(w / sum(weights) * OPTION_VALUES[o] for w, o in zip(weights, OPTIONS))
    assert j.score == pytest.approx(expected) and j.invalid == 0
    assert sum(j.distribution.values()) == pytest.approx(1.0)
    assert [c for _, c in backend.calls[0]] == list(OPTIONS)


def test_critics_on_tiny_model(tiny_backend):
    dialogues = [D, dialogue("I failed my exam.", "I'm sorry. How do you feel?", "A bit better, thanks.")]
    logprob = LLMCritic(tiny_backend, scoring="logprob")
    first, again = logprob.judge(dialogues), logprob.judge(dialogues)
    for j, k in zip(first, again):
        assert -1.0 <= j.score <= 1.0 and j.score == pytest.approx(k.score)  # deterministic
    sample = LLMCritic(tiny_backend, scoring="sample", samples=4, max_new_tokens=4)
    judged = sample.judge(dialogues)
    for j in judged:  # the random tiny model rarely names an option: invalid answers are counted
        assert len(j.raw) == 4 and j.invalid == sum(parse_option(r) is None for r in j.raw)
        assert (j.score is None) == (j.invalid == 4)
    assert [j.raw for j in sample.judge(dialogues[::-1])] == [j.raw for j in judged[::-1]]  # batch-independent


# -- factory --------------------------------------------------------------------------------------------

def test_build_critic_llm(tiny_lm_dir):
    config = Config.model_validate({"models": {"critic": {"model": str(tiny_lm_dir)}}})
    critic = build_critic(CriticSection(kind="llm", scoring="sample", samples=3), config)
    assert isinstance(critic, LLMCritic) and critic.scoring == "sample" and critic.samples == 3


def test_build_critic_learned(tmp_path, monkeypatch):
    loaded = []
    module = types.ModuleType("rlff_esc.agents.learned_critic")
    module.LearnedCritic = type("LearnedCritic", (), {"load": classmethod(lambda cls, p: loaded.append(p) or "critic")})
    monkeypatch.setitem(sys.modules, "rlff_esc.agents.learned_critic", module)
    config = Config(run_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="critic.learned_path"):
        build_critic(CriticSection(kind="learned"), config)
    (tmp_path / "run" / "critic").mkdir(parents=True)
    assert build_critic(CriticSection(kind="learned"), config) == "critic"
    assert loaded == [tmp_path / "run" / "critic"]
