"""The evaluation ladder: the reference systems, the repetition metric and the report's statement of
whether SR and AvgT order the reference systems as they must."""

from __future__ import annotations

import pytest

from rlff_esc.config import Config
from rlff_esc.data.schema import Case, Turn
from rlff_esc.errors import RlffError
from rlff_esc.evaluate.interactive import outcome_statistics, repetition, turn_seed
from rlff_esc.evaluate.references import ListSystem, RetrievalSystem, conversation_text, training_contexts
from rlff_esc.evaluate.run import system_summary
from rlff_esc.evaluate.systems import build_system
from rlff_esc.jsonl import write_jsonl
from rlff_esc.ladder_replies import DISMISSIVE_REPLIES, GENERIC_REPLIES
from rlff_esc.stats import interval

# Three training dialogues on distinct topics, each with a reply that names its topic.
TOPICS = {
    "exam": ("I failed my final maths exam and my parents are furious with me.",
             "Failing an exam feels awful, but one test does not decide your future. Could you retake it?"),
    "dog": ("My dog died last week. He was with me for twelve years and the house feels empty.",
            "Losing a pet who shared twelve years of your life is real grief. What do you miss most about him?"),
    "job": ("I was laid off from my job at the factory and I can't pay the rent this month.",
            "Losing your job and worrying about rent at once is a lot. Have you looked into unemployment benefits?"),
}


def _write_cases(run, valid_reply="A VALID-SPLIT REPLY", test_reply="A TEST-SPLIT REPLY"):
    cases = [Case(id=f"train:{topic}", dataset="esconv", split="train", emotion_type="sadness",
                  problem_type=topic, situation=seeker,
                  turns=[Turn(speaker="seeker", text=seeker), Turn(speaker="supporter", text=reply)])
             for topic, (seeker, reply) in TOPICS.items()]
    for split, reply in (("valid", valid_reply), ("test", test_reply)):
        cases.append(Case(id=f"{split}:0", dataset="esconv", split=split, emotion_type="anger", problem_type="x",
                          situation="Something happened.", turns=[Turn(speaker="seeker", text="Something happened."),
                                                                  Turn(speaker="supporter", text=reply)]))
    write_jsonl(run / "cases.jsonl", [c.model_dump() for c in cases])


def _seeker(text):
    return [Turn(speaker="seeker", text=text)]


def test_dismissive_replies_come_from_the_list_and_follow_the_seed(tmp_path):
    system = build_system(Config(run_dir=str(tmp_path / "run")), "dismissive")  # needs no data and no model
    seeds = [turn_seed(13, f"case{i}", turn, "system") for i in range(20) for turn in (1, 2)]
    replies = [r.text for r in system.respond([_seeker("hello")] * len(seeds), seeds)]
    assert set(replies) <= set(DISMISSIVE_REPLIES) and len(set(replies)) > 3
    assert [r.text for r in system.respond([_seeker("anything else")] * len(seeds), seeds)] == replies  # the seed decides
    assert system.identity["replies"] == len(DISMISSIVE_REPLIES)
    assert not set(DISMISSIVE_REPLIES) & set(GENERIC_REPLIES)


def test_random_reply_draws_training_replies_only(tmp_path):
    run = tmp_path / "run"
    _write_cases(run)
    config = Config(run_dir=str(run))
    system = build_system(config, "random_reply")
    seeds = list(range(40))
    replies = [r.text for r in system.respond([_seeker("hi")] * 40, seeds)]
    gold = {reply for _, reply in TOPICS.values()}
    assert set(replies) == gold  # 40 draws reach all three training replies and nothing from valid or test
    assert [r.text for r in build_system(config, "random_reply").respond([_seeker("x")] * 40, seeds)] == replies
    assert system.identity["replies"] == 3 and "cases.jsonl (split train)" in system.identity["source"]
    config.evaluate.reference_max_contexts = 2
    assert build_system(config, "random_reply").identity["replies"] == 2
    assert build_system(config, "random_reply").identity != system.identity  # a new pool: evaluated again


def test_reference_systems_name_the_missing_cases_file(tmp_path):
    config = Config(run_dir=str(tmp_path / "run"))
    with pytest.raises(RlffError, match=r"run/cases\.jsonl is missing.*data prepare"):
        build_system(config, "retrieval")
    with pytest.raises(RlffError, match="unknown system 'nope'.*dismissive, random_reply, retrieval"):
        build_system(config, "nope")


def test_retrieval_returns_the_reply_of_the_nearest_training_conversation(tmp_path, minilm_dir):
    from rlff_esc.agents.embeddings import Encoder

    run = tmp_path / "run"
    _write_cases(run)
    config = Config(run_dir=str(run))
    built = build_system(config, "retrieval")
    assert built.identity["contexts"] == 3 and built.identity["encoder"] == "embedded:minilm"
    contexts, _ = training_contexts(config)
    system = RetrievalSystem(contexts, Encoder(cache_path=None), history_turns=3, identity={})
    histories = [_seeker("Our family cat passed away and I keep crying when I see her bowl."),
                 _seeker("My company let me go today and now I worry about money."),
                 [Turn(speaker="seeker", text="My puppy got sick."), Turn(speaker="supporter", text="Oh no."),
                  Turn(speaker="seeker", text="The exam results came out and I got an F in maths.")]]
    replies = [r.text for r in system.respond(histories, [1, 2, 3])]
    assert replies == [TOPICS["dog"][1], TOPICS["job"][1], TOPICS["exam"][1]]
    assert [r.text for r in system.respond(histories, [7, 8, 9])] == replies  # nearest by content, whatever the seed
    # the comparison reads the newest turns first and only the last `history_turns`
    assert conversation_text(histories[2], 2) == ("seeker: The exam results came out and I got an F in maths. | "
                                                  "supporter: Oh no.")


def _transcript(replies, flagged=()):
    turns = [Turn(speaker="seeker", text="I feel low.").model_dump(exclude_none=True)]
    for reply in replies:
        turns += [{"speaker": "supporter", "text": reply}, {"speaker": "seeker", "text": "Hm."}]
    return {"turns": turns, "safety_flags": [{"turn": t, "category": "suicide"} for t in flagged],
            "success": False, "success_turn": None, "final_score": -1.0}


def test_repetition_counts_later_turns_that_repeat_an_earlier_one():
    # turn 2 repeats turn 1 once lower-cased and without punctuation; turn 4 is a near copy (ratio >= 0.8)
    same = ["I'm sorry to hear that.", "i'm SORRY to hear that!", "What happened at work?",
            "I am sorry to hear about that."]
    assert repetition(_transcript(same)) == pytest.approx(2 / 3)
    assert repetition(_transcript(["I understand.", "Tell me more about your sister.", "How did she react?"])) == 0
    assert repetition(_transcript(["Same words.", "Same words.", "Same words."])) == 1
    assert repetition(_transcript(["Only one turn."])) is None  # nothing it could have repeated
    # a safe reply sent in the system's place is not the system's turn
    assert repetition(_transcript(["Call this number.", "Call this number.", "Okay."], flagged=[1])) == 0
    assert repetition(_transcript(["", ""])) == 0  # empty replies are counted as empty, not as repeats
    stats = outcome_statistics([_transcript(same), _transcript(["Only one turn."]),
                                _transcript(["Same words.", "Same words."])], max_turns=4)
    cell = interval(stats["repetition"], 3, samples=300, seed=0)
    assert cell["value"] == pytest.approx((2 / 3 + 1) / 2)  # the one-turn dialogue is left out
    assert cell["low"] <= cell["value"] <= cell["high"]


def _report(tmp_path, successes: dict[str, list[int | None]]) -> str:
    """The report of hand-made transcripts: per system, the success turn of each case (None: failed)."""
    from rlff_esc.evaluate.report import write_report

    config = Config(run_dir=str(tmp_path / "run"))
    config.evaluate.max_turns, config.evaluate.bootstrap_samples = 4, 300
    systems = {}
    for name, turns in successes.items():
        transcripts = [{**_transcript(["A reply."] * (t or 4)), "success": t is not None, "success_turn": t}
                       for t in turns]
        systems[name] = {"cases": len(turns), "cases_source": "hand-made", "contexts": 0,
                         **system_summary(config, transcripts, [])}
    config.run_path.mkdir(parents=True)
    combined = {"systems": systems, "unavailable": {}, "agents": {}, "compared_to": None, "paired_tests": {},
                "max_turns": 4, "bootstrap_samples": 300}
    return write_report(config, combined).read_text()


def test_report_states_whether_the_ladder_is_ordered(tmp_path):
    fail, win = [None] * 20, [1] * 20
    ordered = _report(tmp_path / "a", {"dismissive": fail, "random_reply": [3] * 6 + [None] * 14,
                                       "retrieval": win})
    assert "SR orders them as it must (dismissive < random_reply < retrieval): **yes** (dismissive 0.000" in ordered
    assert "AvgT orders them as it must (dismissive > random_reply > retrieval): **yes**" in ordered
    assert "dismissive and retrieval do not overlap" in ordered and "no evidence" not in ordered
    assert "| dismissive | 0.000 [0.000, 0.000] | 4.00 [4.00, 4.00] | -1.000 [-1.000, -1.000] | 1.00" in ordered

    swapped = _report(tmp_path / "b", {"dismissive": win, "random_reply": fail, "retrieval": [2] * 10 + [None] * 10})
    assert "SR orders them as it must (dismissive < random_reply < retrieval): **no**" in swapped
    assert "AvgT orders them as it must (dismissive > random_reply > retrieval): **no**" in swapped
    assert "no evidence of their quality" in swapped

    close = _report(tmp_path / "c", {"dismissive": [1] * 9 + [None] * 11, "random_reply": [1] * 10 + [None] * 10,
                                     "retrieval": [1] * 11 + [None] * 9})
    assert "**yes**" in close and "dismissive and retrieval overlap" in close and "no evidence" in close

    partial = _report(tmp_path / "d", {"dismissive": fail, "retrieval": win})
    assert "Evaluate the others too (`--system random_reply`)" in partial and "orders them" not in partial
    assert "### Reference systems" not in _report(tmp_path / "e", {"base": win})
