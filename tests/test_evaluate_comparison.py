"""The paired tests against ``evaluate.compare_to`` (``base`` when that system was not evaluated; none
when neither was) and the report's statement of the compared system, on fake systems and agents."""

from __future__ import annotations

import pytest

from rlff_esc.agents.base import Judgement
from rlff_esc.config import Config
from rlff_esc.data.schema import Profile
from rlff_esc.evaluate.base import Reply
from rlff_esc.evaluate.comparison import combine
from rlff_esc.evaluate.interactive import EvalCase, run_dialogues
from rlff_esc.evaluate.report import write_report
from rlff_esc.evaluate.run import system_summary
from rlff_esc.jsonl import write_jsonl

CASES = [EvalCase(f"c{i}", Profile(emotion_type="sadness", problem_type="job crisis",
                                   situation=f"case {i}: I lost my job")) for i in range(10)]
HELPFUL = ["Tell me what happened at work. (helpful)", "What would make this week a little easier? (helpful)",
           "Who could you talk to about the money? (helpful)", "You have kept going through a hard month. (helpful)"]


class FakeSystem:
    """Distinct helpful replies in the cases ``helps`` accepts (by the case number), "I see." otherwise."""

    def __init__(self, name, helps):
        self.name, self.helps = name, helps

    def respond(self, histories, seeds):
        return [Reply(HELPFUL[len(h) // 2] if self.helps(int(h[0].text.split()[1].rstrip(":"))) else "I see.")
                for h in histories]


class FakeSeeker:
    name = "fake-seeker"

    def respond(self, dialogues, seeds):
        return ["okay" for _ in dialogues]


class FakeCritic:
    """Success at the second exchange when both replies were helpful; otherwise -1."""

    name = "fake-critic"

    def judge(self, dialogues):
        helped = [sum("(helpful)" in t.text for t in d.turns if t.speaker == "supporter") for d in dialogues]
        return [Judgement(score=1.0 if n >= 2 else -1.0, distribution={}) for n in helped]


SYSTEMS = {"rlff_esc": FakeSystem("rlff_esc", lambda i: True),  # SR 1, AvgT 2, reward 1, repetition 0
           "base": FakeSystem("base", lambda i: False),  # SR 0, AvgT 4, reward -1, repetition 1
           "other": FakeSystem("other", lambda i: i % 2 == 0)}  # half of each


def _combined(tmp_path, names, compare_to=None):
    """Talk the cases through with the named fake systems, save their transcripts where the
    evaluation does, and combine them as ``evaluate`` does."""
    config = Config(run_dir=str(tmp_path / "run"), seed=5)
    config.evaluate.max_turns, config.evaluate.bootstrap_samples = 4, 300
    if compare_to:
        config.evaluate.compare_to = compare_to
    evaluated = {}
    together = run_dialogues([(SYSTEMS[name], CASES) for name in names], FakeSeeker(), FakeCritic(), max_turns=4,
                             threshold=0.5, seed=config.seed, progress=False)
    for name, transcripts in together.items():
        write_jsonl(config.paths.eval_system(name) / "transcripts.jsonl", transcripts)
        evaluated[name] = {"cases": len(CASES), "cases_source": "fake", "contexts": 0,
                           **system_summary(config, transcripts, [])}
    return config, combine(config, evaluated, {})


def test_every_system_is_tested_against_the_trained_policy_when_it_was_evaluated(tmp_path):
    config, combined = _combined(tmp_path, ["other", "rlff_esc", "base"])
    assert combined["compared_to"] == "rlff_esc" and list(combined["systems"])[0] == "base"
    tests = combined["paired_tests"]
    assert set(tests) == {"base", "other"}
    assert set(tests["base"]) == {"SR", "AvgT", "reward", "repetition"}  # no SR@k; no quality without replies
    deltas = {metric: tests["base"][metric]["delta"] for metric in tests["base"]}
    assert deltas == pytest.approx({"SR": -1.0, "AvgT": 2.0, "reward": -2.0, "repetition": 1.0})  # base − rlff_esc
    assert tests["base"]["SR"]["p"] == 0.0
    other = {metric: tests["other"][metric]["delta"] for metric in tests["other"]}
    assert other == pytest.approx({"SR": -0.5, "AvgT": 1.0, "reward": -1.0, "repetition": 0.5})
    assert 0 < tests["other"]["SR"]["p"] < 0.05

    report = write_report(config, combined).read_text()
    assert "Δ and p: the row's system minus `rlff_esc`, paired bootstrap." in report
    assert "| system | SR | AvgT | mean critic reward | repetition | ΔSR vs rlff_esc (p) | ΔAvgT vs rlff_esc (p) " \
           "| Δreward vs rlff_esc (p) | Δrepetition vs rlff_esc (p) |" in report
    assert ("| base | 0.000 [0.000, 0.000] | 4.00 [4.00, 4.00] | -1.000 [-1.000, -1.000] | 1.00 [1.00, 1.00] "
            "| -1.000 (p=0.000) | +2.00 (p=0.000) | -2.000 (p=0.000) | +1.00 (p=0.000) |") in report
    assert "| rlff_esc | 1.000 [1.000, 1.000] | 2.00 [2.00, 2.00] | 1.000 [1.000, 1.000] | 0.00 [0.00, 0.00] " \
           "| – | – | – | – |" in report
    assert "not evaluated" not in report


def test_the_configured_system_is_the_one_compared_to(tmp_path):
    _, combined = _combined(tmp_path, ["rlff_esc", "base", "other"], compare_to="other")
    assert combined["compared_to"] == "other" and set(combined["paired_tests"]) == {"base", "rlff_esc"}
    assert combined["paired_tests"]["rlff_esc"]["SR"]["delta"] == pytest.approx(0.5)


def test_base_is_compared_to_when_the_trained_policy_was_not_evaluated(tmp_path):
    config, combined = _combined(tmp_path, ["other", "base"])
    assert combined["compared_to"] == "base" and set(combined["paired_tests"]) == {"other"}
    assert combined["paired_tests"]["other"]["SR"]["delta"] == pytest.approx(0.5)  # other − base
    report = write_report(config, combined).read_text()
    assert ("Δ and p: the row's system minus `base`, paired bootstrap (`rlff_esc`, `evaluate.compare_to`, "
            "was not evaluated, so `base` instead).") in report
    assert "| ΔSR vs base (p) |" in report and "| other | 0.500" in report


def test_no_paired_tests_when_neither_system_was_evaluated(tmp_path):
    config, combined = _combined(tmp_path, ["other"])
    assert combined["compared_to"] is None and combined["paired_tests"] == {}
    report = write_report(config, combined).read_text()
    assert "no paired tests: neither `rlff_esc` (`evaluate.compare_to`) nor `base` was evaluated." in report
    assert "ΔSR" not in report and "| other | 0.500" in report


def test_changing_the_compared_system_reruns_no_system_but_redoes_the_comparison(tmp_path):
    from rlff_esc.evaluate.run import _shared_inputs, _stage_inputs

    first, second = Config(run_dir=str(tmp_path / "run")), Config(run_dir=str(tmp_path / "run"))
    second.evaluate.compare_to = "base"
    inputs = [_shared_inputs(config, CASES, []) for config in (first, second)]
    assert inputs[0] == inputs[1]  # each system's fingerprint: unchanged
    assert _stage_inputs(first, inputs[0]) != _stage_inputs(second, inputs[1])  # the combined metrics: redone
