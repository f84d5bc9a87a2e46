"""Evaluation: the PPDPP protocol (scripted agents, then the real ones over the tiny model), the
statistics, the reference metrics, judge parsing, missing systems and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlff_esc.agents.base import Judgement
from rlff_esc.config import Config
from rlff_esc.data.schema import Case, Profile, Turn
from rlff_esc.errors import DataError, RlffError
from rlff_esc.evaluate.base import Reply
from rlff_esc.evaluate.interactive import EvalCase, outcome_statistics, read_cases_file, run_dialogues
from rlff_esc.evaluate.judge import parse_ratings
from rlff_esc.evaluate.quality import quality_statistics
from rlff_esc.evaluate.systems import SystemUnavailable, build_system
from rlff_esc.jsonl import write_jsonl
from rlff_esc.stats import interval, mean_of, paired_test


# -- scripted agents: the protocol's logic, independent of any model ------------------------------------
class ScriptedSystem:
    def __init__(self, name="scripted"):
        self.name, self.calls, self.identity = name, [], {"model": "scripted"}

    def respond(self, histories, seeds):
        self.calls.append((len(histories), list(seeds)))
        return [Reply(f"reply {len(h)}", {"raw": f"<think>x</think> reply {len(h)}"}) for h in histories]


class ScriptedSeeker:
    name = "scripted-seeker"

    def __init__(self):
        self.seeds = []

    def respond(self, dialogues, seeds):
        self.seeds.append(list(seeds))
        return ["I feel a bit better now" if "happy" in d.profile.situation else "still sad" for d in dialogues]


class ScriptedCritic:
    """'happy' cases are solved at their second judgement; the others never."""

    name = "scripted-critic"

    def __init__(self):
        self.batches = []

    def judge(self, dialogues):
        self.batches.append(len(dialogues))
        out = []
        for d in dialogues:
            exchanges = sum(t.speaker == "supporter" for t in d.turns)
            score = 1.0 if "happy" in d.profile.situation and exchanges >= 2 else -0.5
            out.append(Judgement(score=score, distribution={"issue solved": float(score > 0)}))
        return out


class FlagAll:
    """A safety layer that flags seeker messages mentioning 'crisis'."""

    def screen(self, conversations):
        from rlff_esc.safety.layer import SafetyFlag, Screening

        return [Screening(next((SafetyFlag("suicide", "lexicon", 1.0, "crisis", t, i) for i, t in enumerate(turns)
                                if "crisis" in t), None)) for turns in conversations]

    def safe_reply(self, flag, follow_up=False):
        return "SAFE FOLLOW-UP" if follow_up else "SAFE REPLY"


def _case(id_, situation):
    return EvalCase(id_, Profile(emotion_type="sadness", problem_type="job crisis", situation=situation))


def test_protocol_success_turn_batching_and_paired_seeds():
    cases = [_case("a", "I am happy-ish but stressed"), _case("b", "I lost my job"), _case("c", "my happy dog ran")]
    system, seeker, critic = ScriptedSystem(), ScriptedSeeker(), ScriptedCritic()
    out = run_dialogues([(system, cases)], seeker, critic, max_turns=4, threshold=0.5, seed=7,
                        progress=False)["scripted"]
    assert [t["success_turn"] for t in out] == [2, None, 2]
    assert [t["turns_used"] for t in out] == [2, 4, 2]
    # the seeker opens with the situation; then supporter and seeker alternate
    a = out[0]["turns"]
    assert a[0] == {"speaker": "seeker", "text": "I am happy-ish but stressed"}
    assert [t["speaker"] for t in a] == ["seeker", "supporter", "seeker", "supporter", "seeker"]
    assert [c["turn"] for c in out[1]["critic"]] == [1, 2, 3, 4] and out[1]["final_score"] == -0.5
    assert out[0]["system_notes"][0]["raw"].startswith("<think>")
    # one batched call per role per turn, over the dialogues still running
    assert [n for n, _ in system.calls] == [3, 3, 1, 1] and critic.batches == [3, 3, 1, 1]
    # seeds depend on case and turn, not on the system: a second system meets the same seeker draws
    seeker2 = ScriptedSeeker()
    run_dialogues([(ScriptedSystem("other"), cases)], seeker2, ScriptedCritic(), max_turns=4, threshold=0.5, seed=7,
                  progress=False)
    assert seeker2.seeds == seeker.seeds and len(set(seeker.seeds[0])) == 3


class Dismissive(ScriptedSystem):
    """Fails the 'happy' cases: the critic below solves a case only after a system that is not this one."""

    def respond(self, histories, seeds):
        self.calls.append((len(histories), list(seeds)))
        return [Reply("whatever") for _ in histories]


class CriticOfReplies(ScriptedCritic):
    def judge(self, dialogues):
        self.batches.append(len(dialogues))
        return [Judgement(score=-0.5 if d.turns[-2].text == "whatever" else 1.0, distribution={}) for d in dialogues]


def test_systems_side_by_side_give_what_each_gives_alone():
    """Systems evaluated together: the seeker and the critic get one call per turn for all of them,
    and each system's transcripts are those it gets when evaluated alone."""
    cases = [_case("a", "I am happy-ish but stressed"), _case("b", "I lost my job"), _case("c", "my happy dog ran")]
    alone = {}
    for system in (ScriptedSystem(), Dismissive("dismissive")):
        alone.update(run_dialogues([(system, cases)], ScriptedSeeker(), CriticOfReplies(), max_turns=3,
                                   threshold=0.5, seed=7, progress=False))
    first, second, seeker, critic = ScriptedSystem(), Dismissive("dismissive"), ScriptedSeeker(), CriticOfReplies()
    together = run_dialogues([(first, cases), (second, cases[1:])], seeker, critic, max_turns=3, threshold=0.5,
                             seed=7, progress=False)
    assert together["scripted"] == alone["scripted"]
    assert together["dismissive"] == alone["dismissive"][1:]
    assert [t["success_turn"] for t in together["scripted"]] == [1, 1, 1]
    assert [t["success"] for t in together["dismissive"]] == [False, False]
    # turn 1: 3 + 2 dialogues in one seeker and one critic call; then only the dismissive ones go on
    assert critic.batches == [5, 2, 2] and [len(s) for s in seeker.seeds] == [5, 2, 2]
    assert [n for n, _ in second.calls] == [2, 2, 2] and [n for n, _ in first.calls] == [3]


def test_prompted_systems_over_one_model_answer_in_one_call(tiny_lm_dir):
    """base and base_reasoning share the base model: each turn both answer in one backend call, and each
    system's transcripts are those it gets alone (float32: batching changes no result)."""
    from serve_fixtures import CountingBackend

    from rlff_esc.evaluate.systems import PromptedSystem
    from rlff_esc.llm.local import LocalBackend

    model = CountingBackend(LocalBackend(str(tiny_lm_dir), batch_size=8, dtype="float32"))

    def systems():
        return [PromptedSystem("base", model, reasoning=False, max_new_tokens=6),
                PromptedSystem("base_reasoning", model, reasoning=True, max_new_tokens=10)]

    cases = [_case("a", "I am happy-ish but stressed"), _case("b", "I lost my job"), _case("c", "my happy dog ran")]
    alone = {}
    for system in systems():
        alone.update(run_dialogues([(system, cases)], ScriptedSeeker(), ScriptedCritic(), max_turns=2, threshold=0.5,
                                   seed=7, progress=False))
    assert model.calls == [3, 3, 3, 3]
    model.calls.clear()
    together = run_dialogues([(s, cases) for s in systems()], ScriptedSeeker(), ScriptedCritic(), max_turns=2,
                             threshold=0.5, seed=7, progress=False)
    assert together == alone
    assert model.calls == [6, 6]  # one call a turn for both systems' three dialogues


def test_safety_flag_replaces_reply_and_is_logged():
    cases = [_case("a", "I am in crisis and want to end it"), _case("b", "I lost my job")]
    system = ScriptedSystem()
    out = run_dialogues([(system, cases)], ScriptedSeeker(), ScriptedCritic(), max_turns=1, threshold=0.5, seed=1,
                        safety=FlagAll(), progress=False)["scripted"]
    assert out[0]["turns"][1]["text"] == "SAFE REPLY"
    assert [(f["turn"], f["category"], f["text"]) for f in out[0]["safety_flags"]] == [
        (1, "suicide", cases[0].profile.situation)]
    assert out[1]["turns"][1]["text"] == "reply 1" and out[1]["safety_flags"] == []
    assert system.calls[0][0] == 1  # the flagged dialogue was not sent to the system


def test_a_flagged_dialogue_stays_in_safe_mode():
    cases = [_case("a", "I am in crisis and want to end it"), _case("b", "I lost my job")]
    system = ScriptedSystem()
    out = run_dialogues([(system, cases)], ScriptedSeeker(), ScriptedCritic(), max_turns=3, threshold=0.5, seed=1,
                        safety=FlagAll(), progress=False)["scripted"]
    supporter = [t["text"] for t in out[0]["turns"] if t["speaker"] == "supporter"]
    assert supporter == ["SAFE REPLY", "SAFE FOLLOW-UP", "SAFE FOLLOW-UP"]
    assert [f["turn"] for f in out[0]["safety_flags"]] == [1]
    assert [n for n, _ in system.calls] == [1, 1, 1]  # only the other dialogue reached the system


def test_outcome_metrics_and_intervals():
    transcripts = [{"success": True, "success_turn": 1, "final_score": 1.0},
                   {"success": True, "success_turn": 3, "final_score": 0.6},
                   {"success": False, "success_turn": None, "final_score": None},
                   {"success": False, "success_turn": None, "final_score": -1.0}]
    for t in transcripts:
        t.update(turns=[], safety_flags=[])
    stats = outcome_statistics(transcripts, max_turns=8)
    values = {k: interval(s, 4, samples=500, seed=0) for k, s in stats.items()}
    assert values["SR"]["value"] == 0.5
    assert values["AvgT"]["value"] == (1 + 3 + 8 + 8) / 4  # a failure counts as max_turns
    assert values["SR@1"]["value"] == 0.25 and values["SR@2"]["value"] == 0.25 and values["SR@3"]["value"] == 0.5
    assert values["reward"]["value"] == pytest.approx((1.0 + 0.6 - 1.0) / 3)  # no score: left out, not 0
    assert values["SR"]["low"] <= 0.5 <= values["SR"]["high"] and values["SR"]["low"] < values["SR"]["high"]
    assert values["AvgT"] == interval(stats["AvgT"], 4, samples=500, seed=0)  # seeded: reproducible


def test_paired_test_separates_real_differences():
    rng = np.random.default_rng(0)
    base = rng.random(60) < 0.2
    better = base | (rng.random(60) < 0.6)
    clear = paired_test(mean_of(better), mean_of(base), 60, samples=1000, seed=1)
    assert clear["delta"] > 0.3 and clear["p"] < 0.01 and clear["low"] > 0
    same = paired_test(mean_of(base), mean_of(base), 60, samples=1000, seed=1)
    assert same["delta"] == 0 and same["p"] == 1.0


def test_reference_metrics_match_sacrebleu_and_definitions():
    import sacrebleu

    records = [{"reply": "i am so sorry to hear that", "gold": "i am sorry to hear that", "rouge_l": 90.0, "cosine": 0.9},
               {"reply": "that sounds hard", "gold": "that must be so hard for you", "rouge_l": 50.0, "cosine": 0.5},
               {"reply": "that sounds hard", "gold": "have you talked to a friend", "rouge_l": 0.0, "cosine": 0.1}]
    stats = quality_statistics(records)
    whole = np.arange(3)[None, :]
    replies, golds = [r["reply"] for r in records], [r["gold"] for r in records]
    for n in (1, 2, 4):
        expected = sacrebleu.metrics.BLEU(max_ngram_order=n).corpus_score(replies, [golds]).score
        assert stats[f"BLEU-{n}"](whole)[0] == pytest.approx(expected)
    # 13 words, 9 distinct ("that" is shared); bigrams: 6 + 2 + 2 = 10, distinct 6 + 2 = 8
    assert stats["Distinct-1"](whole)[0] == pytest.approx(100 * 9 / 13)
    assert stats["Distinct-2"](whole)[0] == pytest.approx(100 * 8 / 10)
    assert stats["length"](whole)[0] == pytest.approx(13 / 3)
    assert stats["cosine"](whole)[0] == pytest.approx(0.5)


def test_judge_parsing_is_lenient_and_counts_failures():
    text = "Empathy: 4\nidentification - 3/5\n**Suggestions**: 2\nFluency: 5\nOverall: 4"
    assert parse_ratings(text) == {"empathy": 4, "identification": 3, "suggestions": 2, "fluency": 5, "overall": 4}
    assert parse_ratings("Empathy: 7\nOverall 10\nFluency: 4.5") == {
        "empathy": None, "identification": None, "suggestions": None, "fluency": None, "overall": None}
    assert parse_ratings("I think this reply is good.")["overall"] is None


def test_cases_file_errors_name_file_line_and_field(tmp_path):
    good = tmp_path / "cases.jsonl"
    write_jsonl(good, [{"emotion_type": "anger", "problem_type": "breakup", "situation": "She left."},
                       {"id": "x", "emotion_type": "fear", "problem_type": "job", "situation": "Layoffs."}])
    cases = read_cases_file(good)
    assert [c.id for c in cases] == ["cases.jsonl:1", "x"] and cases[1].profile.situation == "Layoffs."
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"emotion_type": "anger", "problem_type": "x", "situation": "ok"}) + "\n" +
                   json.dumps({"emotion_type": "anger", "situation": "ok"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'problem_type': missing"):
        read_cases_file(bad)
    bad.write_text(json.dumps({"emotion_type": "anger", "problem_type": "x", "situation": 3}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: field 'situation'"):
        read_cases_file(bad)


def test_cli_reports_a_bad_cases_file_without_traceback(tmp_path):
    bad = tmp_path / "cases.jsonl"
    bad.write_text('{"emotion_type": "anger", "problem_type": "x"}\n')
    config = tmp_path / "c.yaml"
    config.write_text(f"run_dir: {tmp_path / 'run'}\n")
    done = subprocess.run([sys.executable, "-c", "from rlff_esc.cli import main; main()", "evaluate", "-c",
                           str(config), "--cases", str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cases.jsonl:1: field 'situation': missing" in done.stderr and "Traceback" not in done.stderr


def test_missing_model_folder_names_path_and_stage(tmp_path):
    config = Config(run_dir=str(tmp_path / "run"))
    with pytest.raises(SystemUnavailable, match=r"no trained model at .*run/policy\b.*GRPO stage"):
        build_system(config, "rlff_esc")
    with pytest.raises(SystemUnavailable, match=r"policy_sft.*SFT stage"):
        build_system(config, "sft")
    with pytest.raises(RlffError, match="unknown system 'nope'"):
        build_system(config, "nope")


def test_policy_by_path_takes_its_training_settings_from_its_run(tmp_path):
    ablation = tmp_path / "ablation-run"
    (ablation / "policy").mkdir(parents=True)
    (ablation / "policy" / "model.safetensors").write_bytes(b"")  # loaded only when the system first answers
    (ablation / "manifest.json").write_text(json.dumps({"config": {"policy": {"reasoning": False,
                                                                              "max_history_turns": 3}}}))
    config = Config(run_dir=str(tmp_path / "run"))
    system = build_system(config, f"no_reasoning={ablation / 'policy'}")
    assert system.name == "no_reasoning" and system.reasoning is False and system.history_turns == 3
    assert system.max_new_tokens == config.evaluate.max_new_tokens  # no thinking budget without reasoning


# -- the real agents over the tiny model: the code path `rlff-esc evaluate` runs ------------------------
def _write_run(run: Path) -> None:
    strategies = ["Question", "Reflection of feelings", "Providing Suggestions", "Affirmation and Reassurance"]
    cases = []
    for i in range(14):
        split = "train" if i < 8 else ("valid" if i < 10 else "test")
        turns = []
        for k in range(4):
            turns.append(Turn(speaker="seeker", text=f"I feel awful about my exam number {k}, case {i}."))
            turns.append(Turn(speaker="supporter", text=f"That sounds hard. Tell me more ({k}).",
                              strategy=strategies[(i + k) % 4]))
        cases.append(Case(id=f"t:{i}", dataset="esconv", split=split, emotion_type="sadness",
                          problem_type="academic pressure", situation=f"I failed my exam {i} and I feel awful.",
                          turns=turns))
    from rlff_esc.data.contexts import build_contexts

    write_jsonl(run / "cases.jsonl", [c.model_dump() for c in cases])
    write_jsonl(run / "contexts.jsonl", [x.model_dump() for c in cases for x in build_contexts(c)])


@pytest.mark.slow
def test_evaluate_end_to_end_with_real_agents_on_tiny_model(tmp_path, tiny_lm_dir):
    from rlff_esc.config import CriticSection, ModelSpec
    from rlff_esc.evaluate.run import evaluate

    run = tmp_path / "run"
    _write_run(run)
    tiny = ModelSpec(model=str(tiny_lm_dir), batch_size=8)
    config = Config(run_dir=str(run), seed=3)
    for role in ("policy", "seeker", "supporter", "critic", "judge"):
        setattr(config.models, role, tiny)
    ev = config.evaluate
    ev.max_turns, ev.max_new_tokens, ev.reasoning_max_new_tokens = 2, 8, 12
    ev.seeker_max_new_tokens, ev.judge_max_new_tokens = 8, 12
    ev.systems, ev.bootstrap_samples = ["base", "strategy", "sft", f"tiny_policy={tiny_lm_dir}"], 200
    ev.planner.max_examples, ev.judge_max_contexts, ev.max_cases, ev.quality_max_contexts = 20, 3, 2, 8
    # the tiny critic's scores are arbitrary; a threshold it can cross makes both outcomes possible
    ev.critic = CriticSection(kind="llm", scoring="logprob", success_threshold=-0.6)

    combined = evaluate(config, progress=False)

    assert set(combined["systems"]) == {"base", "strategy", "tiny_policy"}
    assert "policy_sft" in combined["unavailable"]["sft"]
    base = combined["systems"]["base"]
    assert base["cases"] == 2 and base["contexts"] == 8
    assert base["agents"]["critic"].startswith("llm-logprob:") and base["agents"]["judge"] == str(tiny_lm_dir)
    transcripts = [json.loads(x) for x in (run / "eval" / "base" / "transcripts.jsonl").read_text().splitlines()]
    assert len(transcripts) == 2 and all(t["turns"][0]["speaker"] == "seeker" for t in transcripts)
    assert all(len(t["critic"]) == t["turns_used"] for t in transcripts)
    assert set(base["quality"]) >= {"BLEU-1", "BLEU-4", "ROUGE-L", "Distinct-2", "cosine", "length"}
    assert base["judge_rated"] == 3 and sum(base["judge_unparsed"].values()) <= 15
    strategy_notes = [json.loads(x)["notes"] for x in (run / "eval" / "strategy" / "replies.jsonl").read_text().splitlines()]
    assert all(n["strategy"] in {"Question", "Reflection of feelings", "Providing Suggestions",
                                 "Affirmation and Reassurance"} for n in strategy_notes)
    # rlff_esc (evaluate.compare_to) was not evaluated: the others are tested against base
    assert combined["compared_to"] == "base" and set(combined["paired_tests"]) == {"strategy", "tiny_policy"}
    assert 0 <= combined["paired_tests"]["strategy"]["SR"]["p"] <= 1
    report = (run / "report.md").read_text()
    assert "| base |" in report and "sft" in report and "Caveat" not in report.split("## Response")[0]
    assert "`rlff_esc`, `evaluate.compare_to`, was not evaluated, so `base` instead" in report
    assert (run / "sr_by_turn.png").stat().st_size > 0
    assert json.loads((run / "manifest.json").read_text())["stages"]["evaluate"]["systems"] == list(combined["systems"])

    # a second run with the same inputs loads the saved results and runs nothing
    mtime = (run / "eval" / "base" / "transcripts.jsonl").stat().st_mtime_ns
    again = evaluate(config, systems=["base"], progress=False)
    assert (run / "eval" / "base" / "transcripts.jsonl").stat().st_mtime_ns == mtime
    assert again["systems"]["base"]["interactive"] == base["interactive"]
    assert set(again["systems"]) == {"base", "strategy", "tiny_policy"}  # earlier results stay in the report


def test_training_reward_plot_reads_whatever_reward_keys_the_log_has(tmp_path):
    from rlff_esc.evaluate.report import plot_training

    log = tmp_path / "train_log.jsonl"
    write_jsonl(log, [{"step": s, "reward": 0.1 * s, "reward_std": 0.3, "rewards/format/mean": 0.5, "loss": 1.0}
                      for s in range(1, 5)])
    assert plot_training(log, tmp_path / "curves.png") == tmp_path / "curves.png"
    assert (tmp_path / "curves.png").stat().st_size > 0
    write_jsonl(log, [{"step": 1, "loss": 1.0}])
    assert plot_training(log, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert plot_training(tmp_path / "missing.jsonl", tmp_path / "x.png") is None
